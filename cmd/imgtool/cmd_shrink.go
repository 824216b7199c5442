package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"imgtool/internal/units"
	"imgtool/shrink"
)

type shrinkOptions struct {
	noExpand     bool
	slack        string
	dryRun       bool
	zeroFree     bool
	keepFreeData bool
	json         bool
	undo         bool
}

func newShrinkCmd(g *globalOptions) *cobra.Command {
	var opts shrinkOptions
	cmd := &cobra.Command{
		Use:   "shrink IMAGE [OUTPUT]",
		Short: "Shrink an image to its data and make it grow back on first boot",
		Long: `Shrink the ext2/3/4 filesystem of the last partition to its minimum plus some
slack, end that partition on a 1 MiB boundary (MBR or GPT, disk and partition IDs kept),
cut the file after it, and arm a first-boot expansion so that the image fills the card
it is written to: Raspberry Pi OS's own (trixie: "resize" on the kernel command line;
bookworm: init=.../firstboot; older: init=.../init_resize.sh), else a small systemd unit
that imgtool installs. When the last partition is not ext2/3/4, only the bytes after it
are cut.

With OUTPUT, the result goes there and IMAGE is not modified. Without it, IMAGE is
changed in place through an undo log (IMAGE.imgtool-undo): if imgtool is killed, the
next imgtool command on IMAGE restores it, and --undo does so explicitly.

--slack is the free space left in the filesystem (default: 5 % of its minimum size,
at least 64 MiB). Free space is made to read as zeros afterwards, so that the image
compresses well; --keep-free-data leaves it alone.`,
		Example: `  imgtool shrink backup.img
  imgtool shrink --dry-run backup.img
  imgtool shrink backup.img small.img
  imgtool shrink --slack 1G --no-expand backup.img
  imgtool shrink --undo backup.img`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runShrink(cmd.Context(), opts, args, g)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.noExpand, "no-expand", false, "do not arm a first-boot expansion")
	f.StringVar(&opts.slack, "slack", "", "free space to leave in the filesystem, e.g. 256M (default 5 %, at least 64 MiB)")
	f.BoolVar(&opts.dryRun, "dry-run", false, "print what would be done and change nothing")
	f.BoolVar(&opts.zeroFree, "zero-free", true, "make free space read as zeros (holes where possible)")
	f.BoolVar(&opts.keepFreeData, "keep-free-data", false, "leave free space as it is (same as --zero-free=false)")
	f.BoolVar(&opts.json, "json", false, "print one JSON document")
	f.BoolVar(&opts.undo, "undo", false, "restore IMAGE from the undo log an interrupted shrink left")
	return cmd
}

func runShrink(ctx context.Context, opts shrinkOptions, args []string, g *globalOptions) error {
	path := args[0]
	if opts.undo {
		if len(args) > 1 {
			return usagef("--undo takes only IMAGE")
		}
		st, err := shrink.Undo(path)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: nothing to undo (no %s.imgtool-undo)", path, path)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if opts.json {
			return writeJSON(g.stdout, map[string]any{"path": path, "restored_records": st.Records, "restored_bytes": st.Bytes, "size": st.OrigSize})
		}
		_, err = fmt.Fprintf(g.stdout, "%s: restored (%d ranges, %s), %s\n", path, st.Records, units.Human(st.Bytes), units.Human(st.OrigSize))
		return err
	}
	so := shrink.Options{Slack: -1, NoExpand: opts.noExpand, KeepFreeData: opts.keepFreeData || !opts.zeroFree}
	if opts.slack != "" {
		n, err := units.ParseSize(opts.slack)
		if err != nil || n < 0 {
			return usagef("--slack: %v", orMsg(err, "the size must not be negative"))
		}
		so.Slack = n
	}
	if len(args) == 2 {
		so.Output = args[1]
		if args[1] == path {
			return usagef("OUTPUT must differ from IMAGE (leave it out to shrink in place)")
		}
	}
	if opts.dryRun {
		p, err := shrink.Plan(path, so)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if opts.json {
			return writeJSON(g.stdout, p)
		}
		return printShrinkPlan(g.stdout, p)
	}
	var bar *progressBar
	if !opts.json && isTerminal(g.stderr) {
		bar = newProgressBar(g.stderr)
		so.Progress = bar
	}
	res, err := shrink.Apply(ctx, path, so)
	if bar != nil {
		bar.Done()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if opts.json {
		return writeJSON(g.stdout, res)
	}
	return printShrinkResult(g.stdout, res)
}

func printShrinkPlan(w io.Writer, p *shrink.PlanReport) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s (%d bytes), %s partition table\n", p.Path, units.Human(p.Size), p.Size, p.Table)
	if p.Partition > 0 {
		fmt.Fprintf(&b, "Last partition: %d at %d, %s, %s\n", p.Partition, p.PartStart, units.Human(p.PartSize), orDash(p.Filesystem))
	}
	if p.BlockSize > 0 && p.MinBlocks > 0 {
		fmt.Fprintf(&b, "Filesystem: %d blocks of %d bytes (%s); minimum %d blocks (%s); slack %s\n",
			p.Blocks, p.BlockSize, units.Human(int64(p.Blocks)*p.BlockSize), p.MinBlocks, units.Human(int64(p.MinBlocks)*p.BlockSize), units.Human(p.Slack))
	}
	if p.ShrinkFS {
		fmt.Fprintf(&b, "Would shrink the filesystem to %d blocks (%s), moving %d blocks and %d inodes\n",
			p.NewBlocks, units.Human(int64(p.NewBlocks)*p.BlockSize), p.BlocksToMove, p.InodesToMove)
	}
	if p.NeedsRecovery {
		b.WriteString("The journal needs recovery: it would be replayed first.\n")
	}
	if p.Note != "" {
		b.WriteString(p.Note + "\n")
	}
	if p.NoChange {
		fmt.Fprintf(&b, "Nothing to do: the image is already as small as it gets.\n")
	} else {
		fmt.Fprintf(&b, "Result: %s (%d bytes), %s smaller; partition %d would be %s\n",
			units.Human(p.NewSize), p.NewSize, units.Human(p.Size-p.NewSize), p.Partition, units.Human(p.NewPartSize))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func printShrinkResult(w io.Writer, r *shrink.Result) error {
	var b strings.Builder
	if r.Replayed {
		b.WriteString("Replayed the journal.\n")
	}
	if r.OrphansReleased > 0 {
		fmt.Fprintf(&b, "Released %d orphan inodes.\n", r.OrphansReleased)
	}
	if r.OldSize == r.NewSize && r.Plan.NoChange {
		fmt.Fprintf(&b, "%s: already as small as it gets (%s)\n", r.Output, units.Human(r.NewSize))
	} else {
		fmt.Fprintf(&b, "%s: %s → %s (%d bytes)\n", r.Output, units.Human(r.OldSize), units.Human(r.NewSize), r.NewSize)
	}
	if e := r.Expansion; e != nil {
		fmt.Fprintf(&b, "First-boot expansion: %s (%s)\n", e.Mechanism, r.ExpansionAction)
	}
	if r.ZeroedBytes > 0 {
		fmt.Fprintf(&b, "Free space reads as zeros: %s\n", units.Human(r.ZeroedBytes))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

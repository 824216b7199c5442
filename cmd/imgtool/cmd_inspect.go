package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"imgtool/customize"
	"imgtool/inspect"
	"imgtool/internal/units"
)

type inspectOptions struct {
	json     bool
	fits     string
	counters bool
	noVerify bool
	sha256   string
}

func newInspectCmd(g *globalOptions) *cobra.Command {
	var opts inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Show the partition table and filesystems of an image",
		Long: `Show the partition table of an image (MBR, GPT or none) and the filesystem of each
partition: type, label, UUID and exact used and free space. Also shows where the last
partition ends — the bytes a card must hold — and, with --fits, whether the image fits
on a card of a given size.

When the boot partition carries a first-boot customisation (firstrun.sh run by
systemd.run=, cloud-init user-data/network-config/meta-data, custom.toml, the ssh
flag, userconf.txt, wpa_supplicant.conf), a "First boot" section says what will run
and the settings it applies. Password hashes and Wi-Fi keys are never shown, only
whether they are set.

Sizes take K, M, G, T (powers of 1024) or KB, MB, GB, TB (powers of 1000, as card
vendors count): an "8 GB" card is --fits 8GB.`,
		Example: `  imgtool inspect raspios.img
  imgtool inspect --fits 7.4G backup.img
  imgtool inspect --json /dev/sdb`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInspect(cmd.Context(), opts, args, g)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.json, "json", false, "print one JSON document")
	f.StringVar(&opts.fits, "fits", "", "say whether the image fits on a card of this `SIZE` (e.g. 7.4G, 8GB)")
	f.BoolVar(&opts.counters, "counters", false, "take used/free from the filesystem headers instead of reading the allocation maps")
	f.BoolVar(&opts.noVerify, "no-verify", false, "read filesystems even when their checksums do not match")
	f.StringVar(&opts.sha256, "sha256", "", sha256Flag)
	return cmd
}

func runInspect(ctx context.Context, opts inspectOptions, args []string, g *globalOptions) error {
	var card int64
	if opts.fits != "" {
		n, err := units.ParseSize(opts.fits)
		if err != nil || n <= 0 {
			return usagef("--fits: %v", orMsg(err, "the size must be positive"))
		}
		card = n
	}
	if err := verifyInputChecksum(args[0], opts.sha256); err != nil {
		return err
	}
	img, err := openImage(args[0])
	if err != nil {
		return err
	}
	defer img.Close()
	rep, err := inspect.Build(img, args[0], inspect.Options{CardSize: card, Exact: !opts.counters, NoVerify: opts.noVerify})
	if err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	if opts.json {
		return writeJSON(g.stdout, rep)
	}
	return printInspect(g.stdout, rep)
}

func orMsg(err error, msg string) string {
	if err != nil {
		return err.Error()
	}
	return msg
}

func printInspect(w io.Writer, r *inspect.Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s image, %s (%d bytes)\n", r.Path, r.Format, units.Human(r.Size), r.Size)
	switch r.Table {
	case "none":
		fmt.Fprintf(&b, "Partition table: none (the whole image is one filesystem)\n")
	default:
		fmt.Fprintf(&b, "Partition table: %s, disk id %s, %d-byte sectors\n", r.Table, r.DiskID, r.SectorSize)
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tBOOT\tSTART\tEND\tSIZE\tTYPE\tFILESYSTEM\tLABEL\tUSED\tFREE")
	for _, p := range r.Partitions {
		boot := ""
		if p.Bootable {
			boot = "*"
		}
		typ := p.Type
		if p.TypeName != "" {
			typ = strings.TrimSpace(typ + " " + p.TypeName)
		}
		if p.Name != "" {
			typ += " \"" + p.Name + "\""
		}
		fsType, label, used, free := "-", "", "", ""
		if p.Extended {
			fsType = "(extended)"
		} else if f := p.Filesystem; f != nil {
			fsType = f.Type
			if f.Variant != "" {
				fsType += " (" + f.Variant + ")"
			}
			label = f.Label
			if f.Used >= 0 {
				used = units.Human(f.Used)
			}
			if f.Free >= 0 {
				free = units.Human(f.Free)
			}
		}
		end := fmt.Sprint(p.End)
		if p.Truncated {
			end += " (past end of image!)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Number, boot, p.Start, end, units.Human(p.Size), typ, fsType, label, used, free)
	}
	tw.Flush()
	b.WriteString("\n")
	fmt.Fprintf(&b, "START and END are byte offsets (e.g. for mount -o offset=START).\n")
	fmt.Fprintf(&b, "The last partition ends at byte %d (%s)", r.EndOfLastPartition, units.Human(r.EndOfLastPartition))
	if tail := r.Size - r.EndOfLastPartition; tail > 0 {
		fmt.Fprintf(&b, "; the %s after it hold no partition", units.Human(tail))
	}
	b.WriteString(".\n")
	for _, p := range r.Partitions {
		if f := p.Filesystem; f != nil {
			for _, w := range f.Warnings {
				fmt.Fprintf(&b, "warning: partition %d: %s\n", p.Number, w)
			}
			if f.NeedsRecovery && len(f.Warnings) == 0 {
				fmt.Fprintf(&b, "warning: partition %d: the journal needs recovery (the image was taken from a mounted filesystem)\n", p.Number)
			}
		}
	}
	for _, wmsg := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", wmsg)
	}
	printFirstBoot(&b, r.FirstBoot)
	if f := r.Fits; f != nil {
		switch {
		case f.Whole:
			fmt.Fprintf(&b, "Fits on a %s card: yes, with %s to spare.\n", units.Human(f.CardSize), units.Human(f.CardSize-r.Size))
		case f.Partitions:
			fmt.Fprintf(&b, "Fits on a %s card: yes, its partitions do (%s to spare), but the file is %s larger than the card: write only the first %d bytes, or run imgtool shrink.\n",
				units.Human(f.CardSize), units.Human(f.Margin), units.Human(r.Size-f.CardSize), r.EndOfLastPartition)
		default:
			fmt.Fprintf(&b, "Fits on a %s card: no, %s too large; run imgtool shrink %s\n", units.Human(f.CardSize), units.Human(-f.Margin), r.Path)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// printFirstBoot writes the "First boot" section: what is armed and its
// settings.
func printFirstBoot(b *strings.Builder, a *customize.Armed) {
	if a == nil {
		return
	}
	b.WriteString("\nFirst boot (armed):\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, s := range a.Sources {
		fmt.Fprintf(tw, "  %s\t%s", s.Mechanism, strings.Join(s.Files, " "))
		if s.How != "" {
			fmt.Fprintf(tw, " — %s", s.How)
		}
		fmt.Fprintln(tw)
		for _, n := range s.Notes {
			fmt.Fprintf(tw, "  \t  %s\n", n)
		}
	}
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "  %s\t%s\n", k, v)
		}
	}
	row("host name", a.Hostname)
	user := a.User
	if a.PasswordSet {
		if user == "" {
			user = "(default user)"
		}
		user += " (password set)"
	}
	row("user", user)
	if a.SSH || a.SSHKeys > 0 || a.SSHPasswordAuth != "" {
		var ssh []string
		if a.SSH {
			ssh = append(ssh, "enabled")
		}
		switch a.SSHKeys {
		case 0:
		case 1:
			ssh = append(ssh, "1 authorized key")
		default:
			ssh = append(ssh, fmt.Sprintf("%d authorized keys", a.SSHKeys))
		}
		if a.SSHPasswordAuth != "" {
			ssh = append(ssh, "password login "+a.SSHPasswordAuth)
		}
		row("SSH", strings.Join(ssh, ", "))
	}
	if a.WifiSSID != "" || a.WifiCountry != "" {
		var wifi []string
		if a.WifiSSID != "" {
			w := strconv.Quote(a.WifiSSID)
			if a.WifiPSKSet {
				w += " (key set)"
			} else {
				w += " (open)"
			}
			wifi = append(wifi, w)
		}
		if a.WifiCountry != "" {
			wifi = append(wifi, "country "+a.WifiCountry)
		}
		row("Wi-Fi", strings.Join(wifi, ", "))
	}
	row("time zone", a.Timezone)
	row("keymap", a.Keymap)
	row("locale", a.Locale)
	tw.Flush()
	for _, w := range a.Warnings {
		fmt.Fprintf(b, "warning: first boot: %s\n", w)
	}
}

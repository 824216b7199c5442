package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"imgtool/extract"
	"imgtool/fs/meta"
	"imgtool/internal/units"
)

type getOptions struct {
	force    bool
	devices  bool
	noXattrs bool
	noOwners bool
	noVerify bool
	json     bool
}

func newGetCmd(g *globalOptions) *cobra.Command {
	var opts getOptions
	cmd := &cobra.Command{
		Use:   "get IMAGE [PART:]PATH [DEST]",
		Short: "Copy a file or a directory tree out of an image",
		Long: `Copy a file or a whole directory tree out of a FAT or ext2/3/4 partition of an image
onto this computer, like cp -r: a DEST that does not exist becomes the copy, an
existing directory receives PATH under its base name, and the root / copies its
contents. DEST defaults to the current directory.

Modes, times, symbolic links and hard links are kept; owners (numeric uid/gid) and
extended attributes too when run as root. Nothing is ever written outside DEST: names
with '/', '..' or NUL are refused, and links inside the image are created as links but
never followed while writing. Device nodes are skipped unless run as root with
--devices. Existing files are not replaced without --force.`,
		Example: `  imgtool get raspios.img bootfs:/config.txt
  imgtool get backup.img 2:/etc/wpa_supplicant/wpa_supplicant.conf ./wpa.conf
  sudo imgtool get backup.img rootfs:/home/pi ./pi-home
  sudo imgtool get backup.img rootfs:/ ./rootfs-copy`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGet(cmd.Context(), opts, args, g)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.force, "force", "f", false, "replace existing files in DEST")
	f.BoolVar(&opts.devices, "devices", false, "create device nodes (root only)")
	f.BoolVar(&opts.noXattrs, "no-xattrs", false, "do not restore extended attributes")
	f.BoolVar(&opts.noOwners, "no-owners", false, "do not restore owners even when run as root")
	f.Bool("numeric-owner", true, "owners are restored by number, as stored in the image (always on)")
	f.BoolVar(&opts.noVerify, "no-verify", false, "read despite metadata checksum errors")
	f.BoolVar(&opts.json, "json", false, "print a JSON summary")
	return cmd
}

// getSummary is the JSON summary of get.
type getSummary struct {
	Source   string   `json:"source"`
	Dest     string   `json:"dest"`
	Files    int      `json:"files"`
	Dirs     int      `json:"dirs"`
	Symlinks int      `json:"symlinks"`
	Links    int      `json:"hard_links"`
	Special  int      `json:"special"`
	Skipped  int      `json:"skipped"`
	Bytes    int64    `json:"bytes"`
	Warnings []string `json:"warnings"`
}

func runGet(ctx context.Context, opts getOptions, args []string, g *globalOptions) error {
	sel, name := splitPartPath(args[1])
	dest := "."
	if len(args) == 3 {
		dest = args[2]
	}
	t, err := openTarget(args[0], sel, opts.noVerify)
	if err != nil {
		return err
	}
	defer t.Close()
	root := os.Geteuid() == 0
	eo := extract.Options{
		Force:   opts.force,
		Owners:  root && !opts.noOwners,
		Devices: opts.devices,
		Xattrs:  !opts.noXattrs,
	}
	var bar *progressLine
	if isTerminal(g.stderr) && !opts.json {
		bar = newProgressLine(g.stderr)
		eo.Progress = bar
	}
	res, err := extract.Copy(ctx, t.fsys, name, dest, eo)
	if bar != nil {
		bar.Done()
	}
	if h, ok := t.fsys.(meta.HiddenFS); ok {
		// Entries the reader refused to show: unsafe names in the image.
		for _, w := range h.Hidden() {
			res.Warnings = append(res.Warnings, w)
			res.Skipped++
		}
	}
	if err != nil {
		return fmt.Errorf("get %s: %w", args[1], err)
	}
	if opts.json {
		w := res.Warnings
		if w == nil {
			w = []string{}
		}
		return writeJSON(g.stdout, getSummary{Source: args[1], Dest: dest, Files: res.Files, Dirs: res.Dirs,
			Symlinks: res.Symlinks, Links: res.HardLinks, Special: res.Special, Skipped: res.Skipped, Bytes: res.Bytes, Warnings: w})
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(g.stderr, "imgtool: warning: %s\n", w)
	}
	if res.Skipped > 0 {
		fmt.Fprintf(g.stderr, "imgtool: %d entries skipped (see the warnings above)\n", res.Skipped)
	}
	return nil
}

// isTerminal reports whether w is a terminal (progress is only drawn there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressLine draws "N files, X copied" on one terminal line, at most
// ten times a second.
type progressLine struct {
	mu    sync.Mutex
	w     io.Writer
	last  time.Time
	start time.Time
	drawn bool
}

func newProgressLine(w io.Writer) *progressLine {
	return &progressLine{w: w, start: time.Now()}
}

// Update implements extract.Progress.
func (p *progressLine) Update(files, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	rate := float64(bytes) / now.Sub(p.start).Seconds()
	fmt.Fprintf(p.w, "\r\033[K%d entries, %s copied (%s/s)", files, units.Human(bytes), units.Human(int64(rate)))
	p.drawn = true
}

// Done clears the line.
func (p *progressLine) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

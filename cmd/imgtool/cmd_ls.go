package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	iofs "io/fs"
	"path"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"imgtool/fs/meta"
)

type lsOptions struct {
	long      bool
	recursive bool
	all       bool
	json      bool
	noVerify  bool
}

func newLsCmd(g *globalOptions) *cobra.Command {
	var opts lsOptions
	cmd := &cobra.Command{
		Use:   "ls IMAGE [PART:]PATH",
		Short: "List files in a partition of an image",
		Long: `List a directory (or show a file) inside a FAT or ext2/3/4 partition of an image,
without root or mounting.

PART is a partition number (as in /dev/sdX2), a filesystem label or a GPT partition
name, in any case; it may be left out when the image holds a single filesystem.`,
		Example: `  imgtool ls raspios.img bootfs:/
  imgtool ls -l raspios.img 2:/etc
  imgtool ls -lR --json backup.img rootfs:/home/pi`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLs(cmd.Context(), opts, args, g)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.long, "long", "l", false, "long listing: mode, owner, size, modification time, link target")
	f.BoolVarP(&opts.recursive, "recursive", "R", false, "list subdirectories recursively")
	f.BoolVarP(&opts.all, "all", "a", false, "include names starting with a dot")
	f.BoolVar(&opts.json, "json", false, "print one JSON document")
	f.BoolVar(&opts.noVerify, "no-verify", false, "read despite metadata checksum errors")
	return cmd
}

// lsEntry is one line of ls --json.
type lsEntry struct {
	Path  string    `json:"path"`
	Type  string    `json:"type"`
	Size  int64     `json:"size"`
	Mode  string    `json:"mode"`
	UID   uint32    `json:"uid"`
	GID   uint32    `json:"gid"`
	Mtime time.Time `json:"mtime"`
	Link  string    `json:"link,omitempty"`

	mode iofs.FileMode // for the text listing
}

func runLs(ctx context.Context, opts lsOptions, args []string, g *globalOptions) error {
	sel, name := splitPartPath(args[1])
	t, err := openTarget(args[0], sel, opts.noVerify)
	if err != nil {
		return err
	}
	defer t.Close()
	st, err := t.fsys.Lstat(name)
	if err != nil {
		return fmt.Errorf("%s: %w", args[1], err)
	}
	var entries []lsEntry
	add := func(p string, fi iofs.FileInfo) {
		entries = append(entries, makeEntry(t, p, fi))
	}
	if !st.IsDir() {
		add(displayPath(name), st)
	} else {
		err := walkDir(ctx, t.fsys, name, opts, add)
		if err != nil {
			return err
		}
	}
	if h, ok := t.fsys.(meta.HiddenFS); ok {
		for _, w := range h.Hidden() {
			fmt.Fprintf(g.stderr, "imgtool: warning: %s\n", w)
		}
	}
	if opts.json {
		if entries == nil {
			entries = []lsEntry{}
		}
		return writeJSON(g.stdout, entries)
	}
	return printLs(g.stdout, entries, opts, name)
}

// walkDir lists dir (and with -R everything below it) in name order.
func walkDir(ctx context.Context, fsys iofs.ReadDirFS, dir string, opts lsOptions, add func(string, iofs.FileInfo)) error {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", displayPath(dir), err)
	}
	var subdirs []string
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !opts.all && strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return fmt.Errorf("%s: %w", displayPath(path.Join(dir, e.Name())), err)
		}
		p := path.Join(dir, e.Name())
		add(displayPath(p), fi)
		if opts.recursive && e.IsDir() {
			subdirs = append(subdirs, p)
		}
	}
	for _, d := range subdirs {
		if err := walkDir(ctx, fsys, d, opts, add); err != nil {
			return err
		}
	}
	return nil
}

func displayPath(p string) string {
	if p == "." {
		return "/"
	}
	return "/" + p
}

func makeEntry(t *target, p string, fi iofs.FileInfo) lsEntry {
	e := lsEntry{Path: p, Type: fileType(fi.Mode()), Size: fi.Size(), Mtime: fi.ModTime().UTC(), mode: fi.Mode()}
	e.Mode = fmt.Sprintf("%04o", unixPerm(fi.Mode()))
	if st, ok := fi.Sys().(*meta.Stat); ok {
		e.UID, e.GID = st.Uid, st.Gid
		e.Link = st.Link
	}
	if fi.Mode()&iofs.ModeSymlink != 0 && e.Link == "" {
		if l, err := t.fsys.ReadLink(strings.TrimPrefix(p, "/")); err == nil {
			e.Link = l
		}
	}
	return e
}

func fileType(m iofs.FileMode) string {
	switch {
	case m.IsDir():
		return "dir"
	case m&iofs.ModeSymlink != 0:
		return "symlink"
	case m&iofs.ModeNamedPipe != 0:
		return "fifo"
	case m&iofs.ModeSocket != 0:
		return "socket"
	case m&iofs.ModeCharDevice != 0:
		return "char"
	case m&iofs.ModeDevice != 0:
		return "block"
	}
	return "file"
}

// unixPerm returns the permission bits with setuid/setgid/sticky in their
// Unix places.
func unixPerm(m iofs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&iofs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&iofs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&iofs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}

// modeString renders a mode as ls -l does ("drwxr-xr-x", "-rwsr-xr-x").
func modeString(m iofs.FileMode) string {
	b := []byte("----------")
	switch fileType(m) {
	case "dir":
		b[0] = 'd'
	case "symlink":
		b[0] = 'l'
	case "fifo":
		b[0] = 'p'
	case "socket":
		b[0] = 's'
	case "char":
		b[0] = 'c'
	case "block":
		b[0] = 'b'
	}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if m.Perm()&(1<<uint(8-i)) != 0 {
			b[1+i] = rwx[i]
		}
	}
	special := func(pos int, set bool, lower, upper byte) {
		if !set {
			return
		}
		if b[pos] != '-' {
			b[pos] = lower
		} else {
			b[pos] = upper
		}
	}
	special(3, m&iofs.ModeSetuid != 0, 's', 'S')
	special(6, m&iofs.ModeSetgid != 0, 's', 'S')
	special(9, m&iofs.ModeSticky != 0, 't', 'T')
	return string(b)
}

func printLs(w io.Writer, entries []lsEntry, opts lsOptions, base string) error {
	if !opts.long && !opts.recursive {
		var b strings.Builder
		for _, e := range entries {
			b.WriteString(path.Base(e.Path))
			b.WriteByte('\n')
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	// tabwriter writes cell by cell: buffer its output so that a long
	// listing takes a few large writes, not one system call per cell.
	bw := bufio.NewWriterSize(w, 64<<10)
	tw := tabwriter.NewWriter(bw, 0, 0, 1, ' ', 0)
	// Group by directory as ls -R does.
	byDir := map[string][]lsEntry{}
	var dirs []string
	for _, e := range entries {
		d := path.Dir(e.Path)
		if _, ok := byDir[d]; !ok {
			dirs = append(dirs, d)
		}
		byDir[d] = append(byDir[d], e)
	}
	if opts.recursive {
		sort.Strings(dirs)
	}
	for i, d := range dirs {
		if opts.recursive {
			if i > 0 {
				fmt.Fprintln(tw)
			}
			fmt.Fprintf(tw, "%s:\n", d)
		}
		for _, e := range byDir[d] {
			name := path.Base(e.Path)
			if !opts.long {
				fmt.Fprintln(tw, name)
				continue
			}
			if e.Link != "" {
				name += " -> " + e.Link
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", modeString(e.mode), e.UID, e.GID, e.Size, e.Mtime.Format("2006-01-02 15:04:05"), name)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}

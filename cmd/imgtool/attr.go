package main

import (
	"context"
	"encoding/json"
	"fmt"
	iofs "io/fs"
	"strings"

	"github.com/spf13/cobra"

	"imgtool/fs/meta"
)

// attrOptions are the flags of chmod and chown.
type attrOptions struct {
	recursive bool
	json      bool
}

// newAttrCmd completes cmd, which holds the help of chmod or chown, with
// what the two share: three arguments (IMAGE, the mode or owner,
// [PART:]PATH), the -R and --json flags, and running run.
func newAttrCmd(g *globalOptions, cmd *cobra.Command, run func(context.Context, attrOptions, []string, *globalOptions) error) *cobra.Command {
	var opts attrOptions
	cmd.Args = cobra.ExactArgs(3)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return run(cmd.Context(), opts, args, g)
	}
	cmd.Flags().BoolVarP(&opts.recursive, "recursive", "R", false, "change a directory and everything below it")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print a JSON summary")
	return cmd
}

// attrChange changes one item of chmod or chown; top is set for PATH
// itself (the first item). It returns the error to show, or skip for an
// item it left alone.
type attrChange func(it attrItem, top bool) (skip bool, err error)

// runAttr runs chmod or chown, whose arguments are IMAGE, the mode or
// owner, and [PART:]PATH. Once the partition is open, prepare checks the
// request against it and returns the change for one item; only then is
// PATH (with -R, its tree) listed and changed, item by item, through the
// undo log, so that any error leaves the image as it was. sum holds the
// action and its argument; runAttr fills in the rest and prints it.
func runAttr(g *globalOptions, opts attrOptions, args []string, sum attrSummary, prepare func(s *editSession, f *editFS) (attrChange, error)) error {
	sel, name := splitPartPath(args[2])
	s, err := beginEdit(args[0])
	if err != nil {
		return err
	}
	sum.Image, sum.Path = args[0], name
	err = func() error {
		f, err := s.open(sel)
		if err != nil {
			return err
		}
		sum.Partition = f.part.Number
		change, err := prepare(s, f)
		if err != nil {
			return err
		}
		items, err := collectAttrs(f, args[2], name, opts.recursive)
		if err != nil {
			return err
		}
		for i, it := range items {
			skip, err := change(it, i == 0)
			if err != nil {
				return err
			}
			if skip {
				sum.Skipped++
				continue
			}
			sum.count(it.typ)
		}
		return nil
	}()
	if err := s.finish(err); err != nil {
		return err
	}
	return printAttr(g, opts.json, sum)
}

// attrItem is one file that chmod or chown changes.
type attrItem struct {
	path     string
	typ      iofs.FileMode // type bits only
	perm     uint32        // permission, setuid, setgid and sticky bits as stored
	uid, gid uint32
}

// collectAttrs lists name and, with recursive, everything below it (a
// directory's entries after the directory; symbolic links are not
// followed), read before anything changes.
func collectAttrs(f *editFS, spec, name string, recursive bool) ([]attrItem, error) {
	item := func(p string, fi iofs.FileInfo) attrItem {
		it := attrItem{path: p, typ: fi.Mode().Type(), perm: unixPerm(fi.Mode())}
		if st, ok := fi.Sys().(*meta.Stat); ok {
			it.perm = st.Unix & 0o7777
			it.uid, it.gid = st.Uid, st.Gid
		}
		return it
	}
	fi, err := iofs.Lstat(f.fsys, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: check the path with imgtool ls", spec, err)
	}
	if !recursive || !fi.IsDir() {
		return []attrItem{item(name, fi)}, nil
	}
	var out []attrItem
	err = iofs.WalkDir(f.fsys, name, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, item(p, fi))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: reading the tree: %w; nothing was changed", spec, err)
	}
	return out, nil
}

// bitsFileMode is the inverse of unixPerm.
func bitsFileMode(b uint32) iofs.FileMode {
	m := iofs.FileMode(b & 0o777)
	if b&0o4000 != 0 {
		m |= iofs.ModeSetuid
	}
	if b&0o2000 != 0 {
		m |= iofs.ModeSetgid
	}
	if b&0o1000 != 0 {
		m |= iofs.ModeSticky
	}
	return m
}

// attrSummary is the JSON summary of chmod and chown.
type attrSummary struct {
	Image     string `json:"image"`
	Partition int    `json:"partition"`
	Path      string `json:"path"`
	Action    string `json:"action"`          // "chmod" or "chown"
	Mode      string `json:"mode,omitempty"`  // as given to chmod
	Owner     string `json:"owner,omitempty"` // as given to chown
	Files     int    `json:"files"`
	Dirs      int    `json:"dirs"`
	Symlinks  int    `json:"symlinks"`
	Skipped   int    `json:"skipped"` // left alone: links under chmod -R, FAT directories
}

func (s *attrSummary) count(typ iofs.FileMode) {
	switch {
	case typ.IsDir():
		s.Dirs++
	case typ&iofs.ModeSymlink != 0:
		s.Symlinks++
	default:
		s.Files++
	}
}

func printAttr(g *globalOptions, asJSON bool, s attrSummary) error {
	if asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	arg := s.Mode
	if s.Action == "chown" {
		arg = s.Owner
	}
	line := fmt.Sprintf("%s %s %d:/%s: %s", s.Action, arg, s.Partition, strings.TrimPrefix(s.Path, "."), countWords(s.Files, s.Dirs, s.Symlinks, -1))
	if s.Skipped > 0 {
		line += fmt.Sprintf("; %d left alone", s.Skipped)
	}
	_, err := fmt.Fprintln(g.stdout, line)
	return err
}

// countWords says how many files (with their bytes, unless bytes < 0),
// directories and links an edit touched: "2 files, 10 bytes, 1 directory".
func countWords(files, dirs, links int, bytes int64) string {
	var what []string
	add := func(n int, one, many string) {
		if n == 1 {
			what = append(what, "1 "+one)
		} else if n > 1 {
			what = append(what, fmt.Sprintf("%d %s", n, many))
		}
	}
	add(files, "file", "files")
	if files > 0 && bytes >= 0 {
		what = append(what, fmt.Sprintf("%d bytes", bytes))
	}
	add(dirs, "directory", "directories")
	add(links, "link", "links")
	if len(what) == 0 {
		return "nothing"
	}
	return strings.Join(what, ", ")
}

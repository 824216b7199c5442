package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

type putOptions struct {
	mode      string
	owner     string
	recursive bool
	json      bool
}

func newPutCmd(g *globalOptions) *cobra.Command {
	var opts putOptions
	cmd := &cobra.Command{
		Use:   "put IMAGE SRC... [PART:]PATH",
		Short: "Copy files from this computer into an image",
		Long: `Copy files (with -r, directory trees) from this computer into a FAT or ext2/3/4
partition of a raw image, like cp: a PATH that is an existing directory (or ends in /)
receives each SRC under its base name, otherwise the one SRC becomes PATH. Existing
files are replaced. The image file is changed in place, without root and without
mounting, through an undo log: an interrupted put is rolled back by the next imgtool
command, and a put that fails (full filesystem, bad name) changes nothing.

On ext2/3/4, files get --mode (default: the source's permission bits) and --owner
(default 0:0); FAT stores neither. Symbolic links inside a copied tree are copied as
links on ext2/3/4 and refused on FAT.`,
		Example: `  imgtool put raspios.img ssh bootfs:/
  imgtool put raspios.img config.txt bootfs:/config.txt
  imgtool put raspios.img id_ed25519.pub rootfs:/home/pi/.ssh/authorized_keys --mode 600 --owner 1000:1000
  imgtool put raspios.img -r ./overlay-files 2:/opt/app`,
		Args: cobra.MinimumNArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPut(cmd.Context(), opts, args, g)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.mode, "mode", "", "permission bits in octal for the files written (ext2/3/4)")
	f.StringVar(&opts.owner, "owner", "0:0", "numeric owner uid:gid of what is written (ext2/3/4)")
	f.BoolVarP(&opts.recursive, "recursive", "r", false, "copy directories and their contents")
	f.BoolVar(&opts.json, "json", false, "print a JSON summary")
	return cmd
}

// editSummary is the JSON summary of put, rm, mkdir and ln.
type editSummary struct {
	Image     string `json:"image"`
	Partition int    `json:"partition"`
	Path      string `json:"path"`
	Action    string `json:"action"`
	Files     int    `json:"files"`
	Dirs      int    `json:"dirs"`
	Symlinks  int    `json:"symlinks"`
	Bytes     int64  `json:"bytes"`
}

func printEdit(g *globalOptions, asJSON bool, s editSummary) error {
	if asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	_, err := fmt.Fprintf(g.stdout, "%s %d:/%s: %s\n", s.Action, s.Partition, strings.TrimPrefix(s.Path, "."), countWords(s.Files, s.Dirs, s.Symlinks, s.Bytes))
	return err
}

// parseOwner parses "uid:gid".
func parseOwner(s string) (uid, gid uint32, err error) {
	u, gs, ok := strings.Cut(s, ":")
	a, err1 := strconv.ParseUint(u, 10, 32)
	b, err2 := strconv.ParseUint(gs, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, usagef("--owner %q: give numeric uid:gid, e.g. 1000:1000", s)
	}
	return uint32(a), uint32(b), nil
}

// parseMode parses an octal permission string; "" gives ok=false.
func parseMode(s string) (iofs.FileMode, bool, error) {
	if s == "" {
		return 0, false, nil
	}
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, false, usagef("--mode %q: give octal permission bits, e.g. 644", s)
	}
	return bitsFileMode(uint32(m)), true, nil
}

func runPut(_ context.Context, opts putOptions, args []string, g *globalOptions) error {
	imagePath, srcs, destSpec := args[0], args[1:len(args)-1], args[len(args)-1]
	mode, haveMode, err := parseMode(opts.mode)
	if err != nil {
		return err
	}
	uid, gid, err := parseOwner(opts.owner)
	if err != nil {
		return err
	}
	for _, src := range srcs {
		fi, err := os.Lstat(src)
		if err != nil {
			return fmt.Errorf("%w: give an existing file", err)
		}
		if fi.IsDir() && !opts.recursive {
			return usagef("%s is a directory: use -r to copy it", src)
		}
	}
	sel, dest := splitPartPath(destSpec)
	s, err := beginEdit(imagePath)
	if err != nil {
		return err
	}
	sum := editSummary{Image: imagePath, Path: dest, Action: "put"}
	err = func() error {
		f, err := s.open(sel)
		if err != nil {
			return err
		}
		sum.Partition = f.part.Number
		intoDir := len(srcs) > 1 || strings.HasSuffix(destSpec, "/") || dest == "."
		if fi, err := iofs.Stat(f.fsys, dest); err == nil && fi.IsDir() {
			intoDir = true
		} else if intoDir {
			return fmt.Errorf("%s: %s is not a directory in the image; create it with imgtool mkdir -p", imagePath, destSpec)
		}
		for _, src := range srcs {
			to := dest
			if intoDir {
				to = path.Join(dest, filepath.Base(filepath.Clean(src)))
			}
			if err := putTree(f, src, to, mode, haveMode, uid, gid, &sum); err != nil {
				return err
			}
		}
		return nil
	}()
	if err := s.finish(err); err != nil {
		return err
	}
	return printEdit(g, opts.json, sum)
}

// putTree copies src (a file, link or directory) to name.
func putTree(f *editFS, src, name string, mode iofs.FileMode, haveMode bool, uid, gid uint32, sum *editSummary) error {
	return filepath.WalkDir(src, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := path.Join(name, filepath.ToSlash(rel))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			m := fi.Mode().Perm()
			if haveMode {
				m = mode | dirExec(mode)
			}
			if err := f.ed.Mkdir(to, m, uid, gid); err != nil && !errors.Is(err, iofs.ErrExist) {
				return editError(to, err)
			}
			if !errors.Is(err, iofs.ErrExist) {
				sum.Dirs++
			}
		case d.Type()&iofs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := f.ed.Symlink(filepath.ToSlash(target), to); err != nil {
				return editError(to, err)
			}
			sum.Symlinks++
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			m := fi.Mode().Perm() | fi.Mode()&(iofs.ModeSetuid|iofs.ModeSetgid|iofs.ModeSticky)
			if haveMode {
				m = mode
			}
			if err := f.ed.WriteFile(to, data, m, uid, gid); err != nil {
				return editError(to, err)
			}
			sum.Files++
			sum.Bytes += int64(len(data))
		default:
			return fmt.Errorf("%s: only files, directories and symbolic links can be copied", p)
		}
		return nil
	})
}

// dirExec adds search permission wherever --mode grants read, so that a
// directory copied with --mode 644 stays usable.
func dirExec(m iofs.FileMode) iofs.FileMode { return (m & 0o444) >> 2 }

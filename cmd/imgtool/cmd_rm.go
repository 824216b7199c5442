package main

import (
	"context"
	"fmt"
	iofs "io/fs"

	"github.com/spf13/cobra"
)

type rmOptions struct {
	recursive bool
	json      bool
}

func newRmCmd(g *globalOptions) *cobra.Command {
	var opts rmOptions
	cmd := &cobra.Command{
		Use:   "rm IMAGE [PART:]PATH",
		Short: "Remove a file or a directory from an image",
		Long: `Remove a file or symbolic link (with -r, a directory and everything in it) from a FAT
or ext2/3/4 partition of a raw image, in place, through an undo log: an interrupted
rm is rolled back by the next imgtool command, and a failed rm changes nothing.

On ext2/3/4, each entry leaves its directory before its blocks and inode are freed;
a file with other hard links keeps its content under them, and indexed (htree)
directories are handled.`,
		Example: `  imgtool rm raspios.img bootfs:/firstrun.sh
  imgtool rm raspios.img rootfs:/etc/ssh/ssh_host_rsa_key
  imgtool rm -r raspios.img bootfs:/overlays/old
  imgtool rm -r raspios.img rootfs:/var/cache/apt/archives`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRm(cmd.Context(), opts, args, g)
		},
	}
	cmd.Flags().BoolVarP(&opts.recursive, "recursive", "r", false, "remove a directory and its contents")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print a JSON summary")
	return cmd
}

func runRm(_ context.Context, opts rmOptions, args []string, g *globalOptions) error {
	sel, name := splitPartPath(args[1])
	if name == "." {
		return usagef("refusing to remove the root directory of a filesystem")
	}
	s, err := beginEdit(args[0])
	if err != nil {
		return err
	}
	sum := editSummary{Image: args[0], Path: name, Action: "removed"}
	err = func() error {
		f, err := s.open(sel)
		if err != nil {
			return err
		}
		sum.Partition = f.part.Number
		fi, err := iofs.Lstat(f.fsys, name)
		if err != nil {
			return fmt.Errorf("%s: %w: check the path with imgtool ls", args[1], err)
		}
		switch {
		case fi.IsDir() && !opts.recursive:
			return usagef("%s is a directory: use -r to remove it and its contents", args[1])
		case fi.IsDir():
			err := iofs.WalkDir(f.fsys, name, func(p string, d iofs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				switch {
				case d.IsDir():
					sum.Dirs++
				case d.Type()&iofs.ModeSymlink != 0:
					sum.Symlinks++
				default:
					sum.Files++
					if fi, err := d.Info(); err == nil && d.Type().IsRegular() {
						sum.Bytes += fi.Size()
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("%s: reading the tree to remove: %w; nothing was changed", args[1], err)
			}
			if f.fat != nil {
				return editError(args[1], f.fat.RemoveAll(name))
			}
			return editError(args[1], f.ext4.RemoveAll(name))
		default:
			if fi.Mode()&iofs.ModeSymlink != 0 {
				sum.Symlinks = 1
			} else {
				sum.Files, sum.Bytes = 1, fi.Size()
			}
			return editError(args[1], f.ed.Remove(name))
		}
	}()
	if err := s.finish(err); err != nil {
		return err
	}
	return printEdit(g, opts.json, sum)
}

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
rm is rolled back by the next imgtool command.

Removing directories is supported on FAT only; on ext2/3/4, rm removes files and
links.`,
		Example: `  imgtool rm raspios.img bootfs:/firstrun.sh
  imgtool rm raspios.img rootfs:/etc/ssh/ssh_host_rsa_key
  imgtool rm -r raspios.img bootfs:/overlays/old`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRm(cmd.Context(), opts, args, g)
		},
	}
	cmd.Flags().BoolVarP(&opts.recursive, "recursive", "r", false, "remove a directory and its contents (FAT)")
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
		case fi.IsDir() && f.fat == nil:
			return fmt.Errorf("%s is a directory on ext2/3/4: imgtool removes files and links there, not directories; remove the files inside one by one", args[1])
		case fi.IsDir():
			n := 0
			_ = iofs.WalkDir(f.fsys, name, func(_ string, d iofs.DirEntry, err error) error {
				if err == nil {
					if d.IsDir() {
						sum.Dirs++
					} else {
						n++
					}
				}
				return nil
			})
			sum.Files = n
			return editError(args[1], f.fat.RemoveAll(name))
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

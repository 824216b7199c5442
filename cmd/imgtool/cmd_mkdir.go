package main

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"strings"

	"github.com/spf13/cobra"
)

type mkdirOptions struct {
	parents bool
	mode    string
	owner   string
	json    bool
}

func newMkdirCmd(g *globalOptions) *cobra.Command {
	var opts mkdirOptions
	cmd := &cobra.Command{
		Use:   "mkdir IMAGE [PART:]PATH",
		Short: "Create a directory in an image",
		Long: `Create a directory in a FAT or ext2/3/4 partition of a raw image, in place, through an
undo log. With -p, missing parents are created and an existing directory is not an
error. On ext2/3/4 the directories get --mode (default 755) and --owner (default 0:0).`,
		Example: `  imgtool mkdir raspios.img bootfs:/custom
  imgtool mkdir -p raspios.img rootfs:/home/pi/.ssh --mode 700 --owner 1000:1000`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMkdir(cmd.Context(), opts, args, g)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.parents, "parents", "p", false, "create missing parents; no error if the directory exists")
	f.StringVar(&opts.mode, "mode", "755", "permission bits in octal (ext2/3/4)")
	f.StringVar(&opts.owner, "owner", "0:0", "numeric owner uid:gid (ext2/3/4)")
	f.BoolVar(&opts.json, "json", false, "print a JSON summary")
	return cmd
}

func runMkdir(_ context.Context, opts mkdirOptions, args []string, g *globalOptions) error {
	mode, _, err := parseMode(opts.mode)
	if err != nil {
		return err
	}
	uid, gid, err := parseOwner(opts.owner)
	if err != nil {
		return err
	}
	sel, name := splitPartPath(args[1])
	if name == "." && !opts.parents {
		return usagef("the root directory exists already")
	}
	s, err := beginEdit(args[0])
	if err != nil {
		return err
	}
	sum := editSummary{Image: args[0], Path: name, Action: "created"}
	err = func() error {
		f, err := s.open(sel)
		if err != nil {
			return err
		}
		sum.Partition = f.part.Number
		if name == "." {
			return nil
		}
		steps := []string{name}
		if opts.parents {
			steps = nil
			elems := strings.Split(name, "/")
			for i := range elems {
				steps = append(steps, strings.Join(elems[:i+1], "/"))
			}
		}
		for i, p := range steps {
			err := f.ed.Mkdir(p, mode, uid, gid)
			if errors.Is(err, iofs.ErrExist) && opts.parents {
				fi, serr := iofs.Stat(f.fsys, p)
				if serr != nil || !fi.IsDir() {
					return fmt.Errorf("%s exists and is not a directory", p)
				}
				continue
			}
			if errors.Is(err, iofs.ErrExist) && i == len(steps)-1 {
				return fmt.Errorf("%s exists already (use -p to accept that)", args[1])
			}
			if err != nil {
				return editError(p, err)
			}
			sum.Dirs++
		}
		return nil
	}()
	if err := s.finish(err); err != nil {
		return err
	}
	return printEdit(g, opts.json, sum)
}

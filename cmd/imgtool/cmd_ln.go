package main

import (
	"context"

	"github.com/spf13/cobra"
)

type lnOptions struct {
	symbolic bool
	json     bool
}

func newLnCmd(g *globalOptions) *cobra.Command {
	var opts lnOptions
	cmd := &cobra.Command{
		Use:   "ln -s TARGET IMAGE [PART:]PATH",
		Short: "Create a symbolic link in an image",
		Long: `Create (or replace) the symbolic link PATH pointing at TARGET in an ext2/3/4 partition
of a raw image, in place, through an undo log. TARGET is stored as given and is
resolved inside the image when the system runs. FAT has no links; hard links are not
supported, so -s is required.`,
		Example: `  imgtool ln -s /lib/systemd/system/ssh.service raspios.img rootfs:/etc/systemd/system/multi-user.target.wants/ssh.service
  imgtool ln -s /usr/share/zoneinfo/Europe/Paris raspios.img 2:/etc/localtime`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLn(cmd.Context(), opts, args, g)
		},
	}
	cmd.Flags().BoolVarP(&opts.symbolic, "symbolic", "s", false, "make a symbolic link (required)")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print a JSON summary")
	return cmd
}

func runLn(_ context.Context, opts lnOptions, args []string, g *globalOptions) error {
	if !opts.symbolic {
		return usagef("only symbolic links are supported: use ln -s")
	}
	target := args[0]
	if target == "" {
		return usagef("the link target is empty")
	}
	sel, name := splitPartPath(args[2])
	if name == "." {
		return usagef("give the link's path inside the image, e.g. rootfs:/etc/localtime")
	}
	s, err := beginEdit(args[1])
	if err != nil {
		return err
	}
	sum := editSummary{Image: args[1], Path: name, Action: "linked", Symlinks: 1}
	err = func() error {
		f, err := s.open(sel)
		if err != nil {
			return err
		}
		sum.Partition = f.part.Number
		return editError(args[2], f.ed.Symlink(target, name))
	}()
	if err := s.finish(err); err != nil {
		return err
	}
	return printEdit(g, opts.json, sum)
}

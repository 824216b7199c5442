package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"

	"github.com/spf13/cobra"
)

type catOptions struct {
	noVerify bool
}

func newCatCmd(g *globalOptions) *cobra.Command {
	var opts catOptions
	cmd := &cobra.Command{
		Use:   "cat IMAGE [PART:]PATH...",
		Short: "Print files from a partition of an image",
		Long: `Write the contents of files inside a FAT or ext2/3/4 partition of an image to
standard output, streaming (memory does not grow with the file).

PART is a partition number, a filesystem label or a GPT partition name, in any case;
it may be left out when the image holds a single filesystem.`,
		Example: `  imgtool cat raspios.img bootfs:/config.txt
  imgtool cat backup.img 2:/etc/fstab 2:/etc/hostname
  imgtool cat backup.img rootfs:/var/log/syslog | grep error`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCat(cmd.Context(), opts, args, g)
		},
	}
	cmd.Flags().BoolVar(&opts.noVerify, "no-verify", false, "read despite metadata checksum errors")
	return cmd
}

func runCat(ctx context.Context, opts catOptions, args []string, g *globalOptions) error {
	// Files of one partition share one opened filesystem.
	opened := map[string]*target{}
	defer func() {
		for _, t := range opened {
			t.Close()
		}
	}()
	for _, spec := range args[1:] {
		sel, name := splitPartPath(spec)
		t, ok := opened[sel]
		if !ok {
			var err error
			t, err = openTarget(args[0], sel, opts.noVerify)
			if err != nil {
				return err
			}
			opened[sel] = t
		}
		f, err := t.fsys.Open(name)
		if err != nil {
			return fmt.Errorf("%s: %w", spec, err)
		}
		st, err := f.Stat()
		if err == nil && st.IsDir() {
			f.Close()
			return fmt.Errorf("%s is a directory; use imgtool ls to list it or imgtool get to copy it", spec)
		}
		err = catFile(ctx, g.stdout, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", spec, err)
		}
	}
	return nil
}

// catFile copies f to w: inside the kernel when the file's blocks lie in a
// raw image file (see catDirect), else through a buffer.
func catFile(ctx context.Context, w io.Writer, f iofs.File) error {
	n, err := catDirect(ctx, w, f)
	if !errors.Is(err, errNoDirect) {
		return err
	}
	if n > 0 {
		s, ok := f.(io.Seeker)
		if !ok {
			return err
		}
		if _, err := s.Seek(n, io.SeekStart); err != nil {
			return err
		}
	}
	// A plain Writer, so that CopyBuffer uses our buffer (an *os.File
	// would take over with its own 32 KiB one); 256 KiB stays in the CPU
	// cache and keeps the system calls few.
	_, err = io.CopyBuffer(struct{ io.Writer }{w}, ctxReader{ctx, f}, make([]byte, 256<<10))
	return err
}

// ctxReader stops a copy when the context is cancelled (Ctrl-C).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"imgtool/image"
)

// Exit statuses, documented in the root command's help.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const exitStatusHelp = `
EXIT STATUS
  0  success
  1  failure (the message on stderr says what went wrong and what to do)
  2  bad usage (unknown flag, wrong number of arguments, bad value)
`

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// usageError marks errors that come from how imgtool was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// globalOptions are the flags every command shares.
type globalOptions struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func newRootCmd(g *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:   "imgtool",
		Short: "Inspect, extract from, shrink, convert and flash raw disk images",
		Long: `imgtool works on raw disk images (.img) such as Raspberry Pi SD-card backups and
single-board-computer OS downloads: it reads their partition tables and FAT and ext4
filesystems without root, loop devices or mounting.` + "\n" + exitStatusHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.SetIn(g.stdin)
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.AddCommand(
		newInspectCmd(g),
		newLsCmd(g),
		newCatCmd(g),
		newGetCmd(g),
		newVersionCmd(g),
		newMountCmd(g), newUmountCmd(g),
		newDevicesCmd(g), newFlashCmd(g), newReadCmd(g),
	)
	for _, c := range root.Commands() {
		if c.Args != nil {
			c.Args = wrapArgs(c.Args)
		}
	}
	return root
}

// wrapArgs turns argument-count errors into usage errors.
func wrapArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := v(c, args); err != nil {
			return usageError{fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
		}
		return nil
	}
}

// run executes imgtool with args and returns the exit status. Errors are
// printed here and only here.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globalOptions{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(g)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "imgtool") {
		msg = "imgtool: " + msg
	}
	fmt.Fprintln(stderr, msg)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return exitUsage
	}
	return exitError
}

// isCobraUsage recognises the errors cobra returns without our hooks
// (unknown commands).
func isCobraUsage(err error) bool {
	return strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag")
}

// openImage opens an image file or device with every container format
// imgtool knows.
func openImage(path string) (image.Image, error) {
	return image.Open(path, image.WithFormats(imageFormats()...))
}

// imageFormats lists the container formats probed before raw.
func imageFormats() []image.Format {
	return nil
}

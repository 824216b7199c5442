package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"imgtool/image"
	"imgtool/image/bzip2"
	"imgtool/image/gzip"
	"imgtool/image/qcow2"
	"imgtool/image/simg"
	"imgtool/image/vhd"
	"imgtool/image/vhdx"
	"imgtool/image/vmdk"
	"imgtool/image/xz"
	imgzip "imgtool/image/zip"
	"imgtool/image/zstd"
	"imgtool/shrink"
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
		newShrinkCmd(g),
		newConvertCmd(g), newChecksumCmd(g),
		newPutCmd(g), newRmCmd(g), newMkdirCmd(g), newLnCmd(g),
		newChmodCmd(g), newChownCmd(g), newEditCmd(g),
		newCustomizeCmd(g),
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
// imgtool knows. "ARCHIVE.zip:MEMBER" names a member of a zip archive (when
// the whole string is not itself an existing file). An image that an
// interrupted imgtool shrink left half-changed (it has an undo log next to
// it) is restored first.
func openImage(path string) (image.Image, error) {
	img, err := openUnspooled(path)
	if err != nil {
		return nil, err
	}
	// A stream that cannot be read at random (gzip, bzip2, single-block
	// xz, plain zstd, deflated zip members) is decompressed once into a
	// temporary file; do it now so that a damaged or cut file fails here,
	// rather than later as a silently empty image (Size cannot fail).
	if s, ok := image.As[interface{ Spool() error }](img); ok {
		if err := s.Spool(); err != nil {
			img.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return img, nil
}

// openUnspooled opens path as openImage does, but leaves a stream that
// cannot be read at random as it is, decoded when first read.
func openUnspooled(path string) (image.Image, error) {
	var zipOpts []imgzip.Option
	if _, err := os.Stat(path); err != nil {
		if i := strings.LastIndex(strings.ToLower(path), ".zip:"); i > 0 {
			zipOpts = append(zipOpts, imgzip.WithMember(path[i+5:]))
			path = path[:i+4]
		}
	}
	if _, err := shrink.RecoverIfNeeded(path); err != nil {
		return nil, err
	}
	return image.Open(path, image.WithFormats(imageFormats(zipOpts...)...))
}

// imageFormats lists the container formats probed before raw. Each
// recognises its input by content (magic numbers), never by name.
func imageFormats(zipOpts ...imgzip.Option) []image.Format {
	return []image.Format{
		xz.Format,
		zstd.Format,
		gzip.Format,
		bzip2.Format,
		imgzip.NewFormat(zipOpts...),
		qcow2.Format,
		vhdx.Format,
		vmdk.Format,
		simg.Format,
		vhd.Format, // its footer is at the end: tried after the formats with a header
	}
}

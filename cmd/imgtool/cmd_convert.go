package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"imgtool/convert"
	"imgtool/internal/units"
)

type convertOptions struct {
	format       string
	level        int
	noSeekable   bool
	compress     bool
	keepFreeData bool
	bmap         string
	force        bool
	sha256       string
	json         bool
}

// vmFormats are the output formats whose writers are not part of this
// build yet.
var vmFormats = []string{"qcow2", "vhd", "vhd-fixed", "vmdk", "simg", "android sparse", "vhdx", "bzip2", "zip"}

func newConvertCmd(g *globalOptions) *cobra.Command {
	var opts convertOptions
	cmd := &cobra.Command{
		Use:   "convert INPUT OUTPUT",
		Short: "Copy an image into another format (.img, .img.xz, .img.gz, .img.zst), skipping free space",
		Long: `Copy the disk held in INPUT (any image imgtool opens: .img, .img.xz, .img.zst, .img.gz,
qcow2, VHD, VMDK, …) into OUTPUT, whose name chooses the format unless --format is given:
  .img         raw (free space becomes holes when OUTPUT is a file)     --format raw or sparse
  .xz          xz in independent blocks, readable at random (xz -T0, imgtool)
  .gz          gzip members compressed in parallel (any gunzip reads them)
  .zst         seekable zstd (any zstd reads it; --no-seekable for a plain stream)
  .qcow2       QEMU qcow2 (-c compresses its clusters)

Free space inside FAT and ext2/3/4 filesystems, and the space after the last partition,
is not copied: it reads as zeros in OUTPUT, which makes it smaller and faster to write.
--keep-free-data copies every byte (for forensics). OUTPUT - writes to stdout.
--bmap writes a bmaptool block map of the data blocks beside OUTPUT (or to the FILE given).
An existing OUTPUT is not replaced without --force.`,
		Example: `  imgtool convert raspios.img raspios.img.xz
  imgtool convert --bmap backup.img backup.img.zst
  imgtool convert --sha256 raspios.img.xz.sha256 raspios.img.xz raspios.img
  imgtool convert --format gz --level 9 backup.img - | ssh host 'cat > backup.img.gz'`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConvert(cmd.Context(), opts, args, g)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.format, "format", "", "output `FORMAT`: "+strings.Join(convert.Names(), ", ")+" (default: from OUTPUT's name)")
	f.IntVar(&opts.level, "level", 0, "compression `LEVEL` (xz and gz 1-9, default 6; zst 1-22, default 3)")
	f.BoolVar(&opts.noSeekable, "no-seekable", false, "write a plain zstd stream without a seek table")
	f.BoolVarP(&opts.compress, "compress", "c", false, "compress qcow2 clusters (as qemu-img convert -c; OUTPUT must be a file)")
	f.BoolVar(&opts.keepFreeData, "keep-free-data", false, "copy every byte, free filesystem space included")
	f.StringVar(&opts.bmap, "bmap", "", "also write a block map (.bmap) beside OUTPUT, or to `FILE`")
	f.Lookup("bmap").NoOptDefVal = "auto"
	f.BoolVarP(&opts.force, "force", "f", false, "replace OUTPUT (and the .bmap) if they exist")
	f.StringVar(&opts.sha256, "sha256", "", sha256Flag)
	f.BoolVar(&opts.json, "json", false, "print a JSON summary")
	return cmd
}

type convertSummary struct {
	Input           string   `json:"input"`
	Output          string   `json:"output"`
	Format          string   `json:"format"`
	InputSize       int64    `json:"input_size"`
	ImageSize       int64    `json:"image_size"`
	DataBytes       int64    `json:"data_bytes"`
	OutputSize      int64    `json:"output_size"`
	Ratio           float64  `json:"ratio"`
	FilesystemAware bool     `json:"filesystem_aware"`
	Bmap            string   `json:"bmap,omitempty"`
	Seconds         float64  `json:"seconds"`
	Warnings        []string `json:"warnings"`
}

// bmapPath names the block map written beside out: its name without the
// compression ending, plus .bmap (as bmaptool looks for it).
func bmapPath(out string) string {
	for _, ext := range []string{".xz", ".gz", ".zst", ".zstd", ".bz2"} {
		if strings.HasSuffix(strings.ToLower(out), ext) {
			out = out[:len(out)-len(ext)]
			break
		}
	}
	return out + ".bmap"
}

func runConvert(ctx context.Context, opts convertOptions, args []string, g *globalOptions) error {
	in, out := args[0], args[1]
	name := opts.format
	if name == "" {
		if out == "-" {
			return usagef("give --format when OUTPUT is - (stdout): %s", strings.Join(convert.Names(), ", "))
		}
		if name = convert.FormatOf(out); name == "" {
			return usagef("cannot tell the format from the name %s; give --format (%s)", out, strings.Join(convert.Names(), ", "))
		}
	}
	format, ok := convert.Lookup(name)
	if !ok {
		for _, vm := range vmFormats {
			if name == vm {
				return fmt.Errorf("writing %s images is not available in this build; convert to .img and use qemu-img convert", name)
			}
		}
		return usagef("unknown format %s; use one of %s", name, strings.Join(convert.Names(), ", "))
	}
	if out == "-" && opts.json {
		return usagef("--json and OUTPUT - both use stdout; write OUTPUT to a file")
	}
	if opts.compress && format.Name != "qcow2" {
		return usagef("--compress applies to qcow2 output only; xz, gz and zst are always compressed")
	}
	if opts.compress && out == "-" {
		return usagef("compressed qcow2 needs a file: give OUTPUT a name, or drop --compress")
	}
	if opts.noSeekable && format.Name != "zst" {
		return usagef("--no-seekable applies to zst output only")
	}
	bmapOut := opts.bmap
	if bmapOut == "auto" {
		if out == "-" {
			return usagef("--bmap needs a FILE when OUTPUT is - (stdout): --bmap=FILE")
		}
		bmapOut = bmapPath(out)
	}
	if out != "-" && same(in, out) {
		return usagef("OUTPUT %s is INPUT itself; give another file", out)
	}
	if err := verifyInputChecksum(in, opts.sha256); err != nil {
		return err
	}
	img, err := openImage(in)
	if err != nil {
		return err
	}
	defer img.Close()

	sum := convertSummary{Input: in, Output: out, Format: format.Name, ImageSize: img.Size(), Bmap: bmapOut, Warnings: []string{}}
	if fi, err := os.Stat(in); err == nil && fi.Mode().IsRegular() {
		sum.InputSize = fi.Size()
	} else {
		sum.InputSize = img.Size()
	}

	var created []string
	cleanup := func() {
		for _, p := range created {
			os.Remove(p)
		}
	}
	var w io.Writer = g.stdout
	var outFile *os.File
	if out != "-" {
		if outFile, err = createFile(out, opts.force); err != nil {
			return err
		}
		created = append(created, out)
		w = outFile
	}
	var bmapFile *os.File
	if bmapOut != "" {
		if bmapFile, err = createFile(bmapOut, opts.force); err != nil {
			if outFile != nil {
				outFile.Close()
			}
			cleanup()
			return err
		}
		created = append(created, bmapOut)
	}
	co := convert.Options{Level: opts.level, NoSeekable: opts.noSeekable, Compress: opts.compress, KeepFreeData: opts.keepFreeData}
	if bmapFile != nil {
		co.Bmap = bmapFile
	}
	var bar *progressBar
	if isTerminal(g.stderr) && !opts.json {
		bar = newProgressBar(g.stderr)
		co.Progress = bar
	}
	start := time.Now()
	res, err := convert.Convert(ctx, img, w, format.Name, co)
	if bar != nil {
		bar.Done()
	}
	for _, f := range []*os.File{outFile, bmapFile} {
		if f == nil {
			continue
		}
		if fi, serr := f.Stat(); err == nil && serr == nil && fi.Mode().IsRegular() {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		cleanup()
		if ctx.Err() != nil {
			return errors.New("convert interrupted; the incomplete output was removed")
		}
		if out == "-" {
			return fmt.Errorf("converting %s: %w", in, err)
		}
		return fmt.Errorf("converting %s into %s: %w (the incomplete %s was removed)", in, out, err, out)
	}
	sum.Seconds = time.Since(start).Seconds()
	sum.DataBytes, sum.FilesystemAware = res.DataBytes, res.FilesystemAware
	sum.OutputSize = res.OutputBytes
	if outFile != nil {
		if fi, err := os.Stat(out); err == nil {
			sum.OutputSize = fi.Size()
		}
	}
	if sum.InputSize > 0 {
		sum.Ratio = float64(sum.OutputSize) / float64(sum.InputSize)
	}
	sum.Warnings = append(sum.Warnings, res.Warnings...)
	if opts.json {
		return writeJSON(g.stdout, sum)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(g.stderr, "imgtool: warning: %s\n", w)
	}
	msg := fmt.Sprintf("Converted %s (%s) into %s (%s, %s): %s of data in %s (%s/s)",
		in, units.Human(sum.InputSize), out, format.Name, units.Human(sum.OutputSize),
		units.Human(sum.DataBytes), clock(time.Since(start)), units.Human(int64(rateOf(sum.DataBytes, time.Since(start)))))
	if bmapOut != "" {
		msg += "; block map " + bmapOut
	}
	w = g.stdout
	if out == "-" {
		w = g.stderr
	}
	fmt.Fprintln(w, msg)
	return nil
}

// createFile creates path for writing; an existing file is replaced only
// with force.
func createFile(path string, force bool) (*os.File, error) {
	flag := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flag = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flag, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("%s already exists; pass --force to replace it, or give another name", path)
	}
	return f, err
}

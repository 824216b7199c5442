package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"imgtool/blockmap"
	"imgtool/convert"
	"imgtool/flash"
	"imgtool/image"
	"imgtool/inspect"
	"imgtool/internal/units"
	"imgtool/shrink"
)

type readOptions struct {
	all    bool
	force  bool
	shrink bool
	json   bool
}

func newReadCmd(g *globalOptions) *cobra.Command {
	var opts readOptions
	cmd := &cobra.Command{
		Use:   "read DEVICE OUTPUT",
		Short: "Back up a disk (SD card, USB drive) into an image file",
		Long: `Read a disk into an image file: a backup of an SD card or USB drive that imgtool
flash can write back. DEVICE may also be an image file.

By default only the bytes up to the end of the last partition are read, and the free
space inside FAT and ext2/3/4 filesystems is not copied: it becomes holes in OUTPUT
(a sparse file), as do all-zero blocks. --all reads every byte of the disk.

OUTPUT's name chooses the format: a raw image (.img), or compressed (.img.xz, .img.gz,
.img.zst) or VM (.qcow2) as imgtool convert writes them. An existing OUTPUT is not
replaced without --force.

Reading a disk whose partitions are mounted read-write gives a backup that may be
inconsistent (files can change while they are read): imgtool warns, and the --json
summary lists those mount points. Unmount them first for a clean backup.`,
		Example: `  sudo imgtool read /dev/sdb backup.img
  sudo imgtool read --all /dev/mmcblk0 whole-card.img
  imgtool read --json raspios.img copy.img`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRead(cmd.Context(), opts, args, g)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.all, "all", false, "read every byte of the disk, not only up to the end of the last partition")
	f.BoolVarP(&opts.force, "force", "f", false, "replace OUTPUT if it exists")
	f.BoolVar(&opts.shrink, "shrink", false, "shrink the backup afterwards, as imgtool shrink does (compressed outputs are shrunk before compressing)")
	f.BoolVar(&opts.json, "json", false, "print a JSON summary")
	return cmd
}

// readSummary is the JSON summary of read.
type readSummary struct {
	Source           string   `json:"source"`
	Output           string   `json:"output"`
	Format           string   `json:"format"`
	SourceSize       int64    `json:"source_size"`
	Size             int64    `json:"size"`
	Whole            bool     `json:"whole"`
	FilesystemAware  bool     `json:"filesystem_aware"`
	BytesRead        int64    `json:"bytes_read"`
	BytesWritten     int64    `json:"bytes_written"`
	Holes            int64    `json:"holes"`
	Seconds          float64  `json:"seconds"`
	MountedReadWrite []string `json:"mounted_read_write"`
	Warnings         []string `json:"warnings"`
	// ShrunkSize is the size after --shrink (before compression), 0 without.
	ShrunkSize int64 `json:"shrunk_size,omitempty"`
}

func runRead(ctx context.Context, opts readOptions, args []string, g *globalOptions) error {
	limitMemory()
	src, dst := args[0], args[1]
	format := outputFormat(dst)
	if same(src, dst) {
		return usagef("OUTPUT %s is DEVICE itself; give another file", dst)
	}
	// --shrink into a compressed or VM format: read into a raw image next
	// to OUTPUT, shrink it there, then convert it into OUTPUT.
	final, finalFormat := dst, format
	if opts.shrink && format != "raw" {
		if _, err := os.Stat(final); err == nil && !opts.force {
			return fmt.Errorf("%s already exists; pass --force to replace it, or give another name", final)
		}
		dst, format = final+".imgtool-read.img", "raw"
		defer os.Remove(dst)
	}
	sum := readSummary{Source: src, Output: dst, Format: format, MountedReadWrite: []string{}, Warnings: []string{}}
	warn := func(msg string) {
		sum.Warnings = append(sum.Warnings, msg)
		if !opts.json {
			fmt.Fprintf(g.stderr, "imgtool: warning: %s\n", msg)
		}
	}

	var img image.Image
	var err error
	if image.IsDevice(src) {
		if img, err = flash.ReadDevice(src); err != nil {
			return err
		}
		if mps, err := flash.MountedReadWrite(src); err == nil && len(mps) > 0 {
			sum.MountedReadWrite = mps
			warn(fmt.Sprintf("%s is mounted read-write at %s: files may change while they are read, so the backup may be inconsistent; unmount it (or remount it read-only) for a clean backup",
				src, strings.Join(mps, ", ")))
		}
	} else if img, err = openImage(src); err != nil {
		return err
	}
	defer img.Close()
	sum.SourceSize = img.Size()

	// How much to read, and which ranges of it hold data.
	end := img.Size()
	sum.Whole = true
	if !opts.all {
		rep, err := inspect.Build(img, src, inspect.Options{})
		switch {
		case err != nil:
			warn(fmt.Sprintf("cannot read the partition table (%v); reading the whole disk", err))
		case rep.EndOfLastPartition > 0 && rep.EndOfLastPartition < end:
			end, sum.Whole = rep.EndOfLastPartition, false
		}
	}
	var ext []image.Extent
	if !opts.all {
		if m, err := blockmap.Compute(img, blockmap.Options{}); err == nil {
			ext, sum.FilesystemAware = m.Extents, true
		} else {
			warn(fmt.Sprintf("cannot map the filesystems (%v); reading every byte up to the end of the last partition", err))
		}
	}
	if ext == nil {
		if ext, err = img.Extents(); err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
	}
	ranges := dataRanges(ext, end)
	sum.Size = end

	out, err := createOutput(dst, format, opts.force, end, ranges)
	if err != nil {
		return err
	}
	var bar *progressBar
	if isTerminal(g.stderr) && !opts.json {
		bar = newProgressBar(g.stderr)
		var total int64
		for _, r := range ranges {
			total += r.Len
		}
		bar.Phase("read", total)
	}
	start := time.Now()
	read, written, err := copyRanges(ctx, img, out, ranges, bar)
	if err == nil {
		err = out.Finish(end)
	}
	if bar != nil {
		bar.Done()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		if ctx.Err() != nil {
			return fmt.Errorf("read interrupted; the incomplete %s was removed", dst)
		}
		return fmt.Errorf("reading %s into %s: %w (the incomplete %s was removed)", src, dst, err, dst)
	}
	sum.BytesRead, sum.BytesWritten, sum.Holes = read, written, end-written
	sum.Seconds = time.Since(start).Seconds()
	if opts.shrink {
		res, err := shrink.Apply(ctx, dst, shrink.Options{Slack: -1})
		if err != nil {
			if dst != final {
				return fmt.Errorf("the backup could not be shrunk: %w", err)
			}
			return fmt.Errorf("%s was written but not shrunk: %w", dst, err)
		}
		sum.ShrunkSize = res.NewSize
		if dst != final {
			if err := convertFile(ctx, dst, final, finalFormat); err != nil {
				return err
			}
		}
		dst = final
	}
	if opts.json {
		return writeJSON(g.stdout, sum)
	}
	what := "up to the end of the last partition"
	if sum.Whole {
		what = "whole disk"
	}
	fmt.Fprintf(g.stdout, "Read %s into %s: %s (%s), %s of data, %s left as holes, in %s (%s/s)\n",
		src, dst, units.Human(end), what, units.Human(written), units.Human(end-written),
		clock(time.Since(start)), units.Human(int64(rateOf(read, time.Since(start)))))
	return nil
}

// same reports whether two paths name the same file.
func same(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// dataRanges returns the Data extents of ext below end, rounded out to
// 4 KiB and merged.
func dataRanges(ext []image.Extent, end int64) []image.Extent {
	var out []image.Extent
	for _, e := range ext {
		if e.Kind != image.Data || e.Len <= 0 || e.Off >= end {
			continue
		}
		off := e.Off &^ 4095
		stop := min(end, (e.End()+4095)&^4095)
		if n := len(out); n > 0 && out[n-1].End() >= off {
			if stop > out[n-1].End() {
				out[n-1].Len = stop - out[n-1].Off
			}
			continue
		}
		out = append(out, image.Extent{Off: off, Len: stop - off, Kind: image.Data})
	}
	return out
}

// readChunk is a piece of the source on its way to the output.
type readChunk struct {
	off int64
	buf []byte
}

// copyRanges copies the ranges of src into out, one goroutine reading and
// this one writing, and leaves all-zero 4 KiB blocks as holes. It returns
// the bytes read and the bytes written.
func copyRanges(ctx context.Context, src io.ReaderAt, out output, ranges []image.Extent, bar *progressBar) (read, written int64, err error) {
	const chunk = 4 << 20
	const nbuf = 4
	free := make(chan []byte, nbuf)
	for range nbuf {
		free <- make([]byte, chunk)
	}
	full := make(chan readChunk, nbuf)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rerr := make(chan error, 1)
	go func() {
		defer close(full)
		for _, r := range ranges {
			for off := r.Off; off < r.End(); {
				var buf []byte
				select {
				case buf = <-free:
				case <-ctx.Done():
					rerr <- ctx.Err()
					return
				}
				n := int(min(int64(chunk), r.End()-off))
				if m, err := src.ReadAt(buf[:n], off); err != nil && !(err == io.EOF && m == n) {
					rerr <- fmt.Errorf("reading at byte %d: %w", off, err)
					return
				}
				full <- readChunk{off, buf[:n]}
				off += int64(n)
			}
		}
		rerr <- nil
	}()
	for c := range full {
		read += int64(len(c.buf))
		n, err := writeNonZero(out, c.buf, c.off)
		written += n
		if err != nil {
			cancel()
			for range full {
			}
			return read, written, err
		}
		if bar != nil {
			bar.Update(int64(len(c.buf)))
		}
		free <- c.buf[:cap(c.buf)]
	}
	return read, written, <-rerr
}

var zeroBlock [4096]byte

// writeNonZero writes the blocks of p that are not all zeros, coalescing
// neighbours into one write.
func writeNonZero(w io.WriterAt, p []byte, off int64) (int64, error) {
	var written int64
	start := -1
	flush := func(end int) error {
		if start < 0 {
			return nil
		}
		_, err := w.WriteAt(p[start:end], off+int64(start))
		written += int64(end - start)
		start = -1
		return err
	}
	for i := 0; i < len(p); i += len(zeroBlock) {
		j := min(len(p), i+len(zeroBlock))
		if string(p[i:j]) == string(zeroBlock[:j-i]) {
			if err := flush(i); err != nil {
				return written, err
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	return written, flush(len(p))
}

// output is where read puts the backup.
type output interface {
	io.WriterAt
	// Finish sets the final size and makes the data durable.
	Finish(size int64) error
	Close() error
}

// outputFormat names the format OUTPUT's name asks for: "raw" unless its
// extension is that of a compressed or VM image.
func outputFormat(path string) string {
	name := strings.ToLower(filepath.Base(path))
	for _, f := range []struct{ ext, format string }{
		{".xz", "xz"}, {".gz", "gzip"}, {".zst", "zstd"}, {".bz2", "bzip2"}, {".zip", "zip"},
		{".qcow2", "qcow2"}, {".vhdx", "vhdx"}, {".vhd", "vhd"}, {".vmdk", "vmdk"}, {".simg", "android sparse"},
	} {
		if strings.HasSuffix(name, f.ext) {
			return f.format
		}
	}
	return "raw"
}

// createOutput creates OUTPUT in the given format for an image of size
// bytes whose data lies in ranges (in order); the rest reads as zeros.
// This is the one place where output formats plug in: raw images are
// written in place with holes, the others (compressed, VM images) through
// package convert's sequential writers.
func createOutput(path, format string, force bool, size int64, ranges []image.Extent) (output, error) {
	flag := os.O_RDWR | os.O_CREATE | os.O_EXCL
	if force {
		flag = os.O_RDWR | os.O_CREATE | os.O_TRUNC
	}
	var cf convert.Format
	if format != "raw" {
		var ok bool
		if cf, ok = convert.Lookup(format); !ok {
			return nil, fmt.Errorf("format %s is not supported for output; write one of %s", format, strings.Join(convert.Names(), ", "))
		}
	}
	f, err := os.OpenFile(path, flag, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("%s already exists; pass --force to replace it, or give another name", path)
	}
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file; give the name of an image file to create", path)
	}
	if format == "raw" {
		return rawOutput{f}, nil
	}
	ext := convert.Layout(ranges, size)
	w, err := cf.New(f, size, ext, convert.Options{})
	if err != nil {
		f.Close()
		return nil, err
	}
	return &convertOutput{f: f, w: w, ext: ext}, nil
}

// convertOutput feeds the in-order writes of copyRanges to a sequential
// convert.Writer: the bytes of the data ranges that were not written (zero
// blocks) are sent as zeros.
type convertOutput struct {
	f   *os.File
	w   convert.Writer
	ext []image.Extent
	ei  int
	pos int64
}

// fill sends zeros for the data bytes before off.
func (o *convertOutput) fill(off int64) error {
	for o.ei < len(o.ext) && o.pos < off {
		e := o.ext[o.ei]
		if e.Kind != image.Data {
			o.pos = e.End()
			o.ei++
			continue
		}
		n := min(off, e.End()) - o.pos
		if err := convert.WriteZeros(o.w, n); err != nil {
			return err
		}
		o.pos += n
		if o.pos == e.End() {
			o.ei++
		}
	}
	return nil
}

func (o *convertOutput) WriteAt(p []byte, off int64) (int, error) {
	if off < o.pos {
		return 0, fmt.Errorf("output written out of order at byte %d", off)
	}
	if err := o.fill(off); err != nil {
		return 0, err
	}
	if _, err := o.w.Write(p); err != nil {
		return 0, err
	}
	o.pos += int64(len(p))
	for o.ei < len(o.ext) && o.pos >= o.ext[o.ei].End() {
		o.ei++
	}
	return len(p), nil
}

func (o *convertOutput) Finish(size int64) error {
	if err := o.fill(size); err != nil {
		return err
	}
	if err := o.w.Close(); err != nil {
		return err
	}
	return o.f.Sync()
}

func (o *convertOutput) Close() error { return o.f.Close() }

// rawOutput is a sparse raw image file.
type rawOutput struct{ *os.File }

func (o rawOutput) Finish(size int64) error {
	if err := o.Truncate(size); err != nil {
		return err
	}
	return o.Sync()
}

// convertFile writes the image at src into a new file dst in format.
func convertFile(ctx context.Context, src, dst, format string) error {
	img, err := openImage(src)
	if err != nil {
		return err
	}
	defer img.Close()
	f, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := convert.Convert(ctx, img, f, format, convert.Options{}); err != nil {
		f.Close()
		os.Remove(dst)
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(dst)
		return err
	}
	return nil
}

package convert

import (
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"

	"imgtool/image"
	"imgtool/image/qcow2"
	"imgtool/image/simg"
	"imgtool/image/vhd"
	"imgtool/image/vmdk"
)

// Writer receives the bytes of the Data extents of an image, in order and
// concatenated; Close finishes the output (it does not close the
// underlying writer).
type Writer interface {
	io.Writer
	Close() error
}

// NewWriterFunc makes the Writer of a format that writes an image of size
// bytes laid out as extents (covering [0, size) in order) to w.
type NewWriterFunc func(w io.Writer, size int64, extents []image.Extent, o Options) (Writer, error)

// Format is an output format.
type Format struct {
	Name    string   // as --format takes it
	Aliases []string // other names accepted by Lookup
	Exts    []string // file name endings that select it, longest first
	New     NewWriterFunc
	counted bool // the output is counted by wrapping w (not for writers that need the file itself)
}

// formats is the table of output formats. The VM formats (qcow2, vhd,
// vmdk, simg) are entries whose New wraps the package's NewWriter.
var formats = []Format{
	{Name: "raw", Aliases: []string{"img"}, Exts: []string{".img", ".raw", ".bin", ".iso"}, New: newRaw},
	{Name: "sparse", New: newSparse},
	{Name: "xz", Exts: []string{".xz"}, New: newXZ, counted: true},
	{Name: "gz", Aliases: []string{"gzip"}, Exts: []string{".gz", ".gzip"}, New: newGzip, counted: true},
	{Name: "zst", Aliases: []string{"zstd"}, Exts: []string{".zst", ".zstd"}, New: newZstd, counted: true},
	{Name: "qcow2", Exts: []string{".qcow2"}, New: newQcow2},
	{Name: "vhd", Aliases: []string{"vpc"}, Exts: []string{".vhd"}, New: newVHD(false)},
	{Name: "vhd-fixed", New: newVHD(true)},
	{Name: "vmdk", Exts: []string{".vmdk"}, New: newVMDK},
	{Name: "simg", Aliases: []string{"android-sparse"}, Exts: []string{".simg"}, New: newSimg},
}

func newVHD(fixed bool) NewWriterFunc {
	return func(w io.Writer, size int64, ext []image.Extent, o Options) (Writer, error) {
		var opts []vhd.WriterOption
		if fixed {
			opts = append(opts, vhd.WithFixed())
		}
		return vhd.NewWriter(w, size, ext, opts...)
	}
}

func newVMDK(w io.Writer, size int64, ext []image.Extent, o Options) (Writer, error) {
	var opts []vmdk.WriterOption
	if o.Workers > 0 {
		opts = append(opts, vmdk.WithWorkers(o.Workers))
	}
	if f, ok := w.(interface{ Name() string }); ok {
		opts = append(opts, vmdk.WithFileName(filepath.Base(f.Name())))
	}
	return vmdk.NewWriter(w, size, ext, opts...)
}

func newSimg(w io.Writer, size int64, ext []image.Extent, o Options) (Writer, error) {
	return simg.NewWriter(w, size, ext)
}

func newQcow2(w io.Writer, size int64, ext []image.Extent, o Options) (Writer, error) {
	var opts []qcow2.WriterOption
	if o.Compress {
		opts = append(opts, qcow2.WithCompression())
	}
	if o.Workers > 0 {
		opts = append(opts, qcow2.WithWorkers(o.Workers))
	}
	return qcow2.NewWriter(w, size, ext, opts...)
}

// NewWriter makes the Writer of the named format for an image of size
// bytes laid out as ext (which must cover [0, size) in order; Layout makes
// such a list from Data ranges).
func NewWriter(format string, w io.Writer, size int64, ext []image.Extent, o Options) (Writer, error) {
	f, ok := Lookup(format)
	if !ok {
		return nil, fmt.Errorf("convert: unknown format %q", format)
	}
	return f.New(w, size, ext, o)
}

// Layout rounds the Data extents of ext out to BlockSize, merges them and
// fills the gaps with Zero extents, so that the result covers [0, size).
func Layout(ext []image.Extent, size int64) []image.Extent { return roundData(ext, size) }

// Formats lists the output formats.
func Formats() []Format { return append([]Format(nil), formats...) }

// Names lists the output format names.
func Names() []string {
	var n []string
	for _, f := range formats {
		n = append(n, f.Name)
	}
	return n
}

// Lookup finds a format by its name or an alias.
func Lookup(name string) (Format, bool) {
	name = strings.ToLower(name)
	for _, f := range formats {
		if f.Name == name {
			return f, true
		}
		for _, a := range f.Aliases {
			if a == name {
				return f, true
			}
		}
	}
	return Format{}, false
}

// FormatOf names the format a file name asks for by its ending, or "" when
// the ending is not that of any format.
func FormatOf(path string) string {
	name := strings.ToLower(filepath.Base(path))
	for _, f := range formats {
		for _, e := range f.Exts {
			if strings.HasSuffix(name, e) {
				return f.Name
			}
		}
	}
	return ""
}

func numWorkers() int { return runtime.GOMAXPROCS(0) }

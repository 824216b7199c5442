package vdisk

import (
	"io"
	"os"
)

// FileTarget returns w as an io.WriterAt with the offset at which the
// output starts, or nil when w cannot be written at arbitrary offsets: it
// is not an io.WriterAt, or it is an *os.File that is not a regular file
// or a block device (a pipe, a terminal, a socket). The file offset is
// only read, never moved.
func FileTarget(w io.Writer) (io.WriterAt, int64) {
	wa, ok := w.(io.WriterAt)
	if !ok {
		return nil, 0
	}
	f, ok := w.(*os.File)
	if !ok {
		return wa, 0
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, 0
	}
	m := fi.Mode()
	if !m.IsRegular() && (m&os.ModeDevice == 0 || m&os.ModeCharDevice != 0) {
		return nil, 0
	}
	base, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, 0
	}
	return wa, base
}

// OffsetWriterAt adds Base to every offset before writing to W.
type OffsetWriterAt struct {
	W    io.WriterAt
	Base int64
}

// WriteAt writes p at Base+off of W.
func (o OffsetWriterAt) WriteAt(p []byte, off int64) (int, error) { return o.W.WriteAt(p, o.Base+off) }

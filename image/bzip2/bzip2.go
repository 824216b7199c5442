// Package bzip2 reads disk images compressed with bzip2 (.img.bz2),
// including concatenated streams (what pbzip2 and lbzip2 write).
//
// # Scope
//
// Probe recognises the bzip2 magic ("BZh", a block size digit and the
// block or end-of-stream magic). A bzip2 stream is read from the start:
// Stream decompresses it with the standard library's compress/bzip2, and the
// first ReadAt, Size or Extents call decompresses the whole stream once into
// a sparse temporary file (package image/spool) that later calls read.
// Whole-image jobs should use Stream (the spool.Streamer interface).
//
// # Limits
//
// bzip2 records no decompressed size, so Size spools. Extents reports the
// all-zero 64 KiB chunks found while spooling. Decompression is
// single-threaded.
//
// Specification: the bzip2 format as implemented by bzip2 1.0 (there is no
// formal specification); see compress/bzip2.
//
// # Security
//
// Files are untrusted. Block CRCs are verified by the decoder; a truncated
// or corrupt file fails with an error naming the compressed offset reached.
// Memory use is bounded by the decoder (at most 900 kB blocks); disk use is
// the non-zero part of the image (bounded with spool.WithMaxSize).
package bzip2

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"

	"imgtool/image"
	"imgtool/image/spool"
)

// Format lets image.Open recognise bzip2 files.
var Format = image.Format{Name: "bzip2", Probe: Probe}

// NewFormat returns a Format whose images spool with the given options.
func NewFormat(opts ...spool.Option) image.Format {
	return image.Format{Name: "bzip2", Probe: func(r io.ReaderAt, size int64) (image.Image, error) {
		return probe(r, size, opts)
	}}
}

// Probe recognises a bzip2 file by its magic and opens it with New; other
// content gives an error wrapping image.ErrWrongType.
func Probe(r io.ReaderAt, size int64) (image.Image, error) { return probe(r, size, nil) }

var (
	blockMagic = []byte{0x31, 0x41, 0x59, 0x26, 0x53, 0x59}
	endMagic   = []byte{0x17, 0x72, 0x45, 0x38, 0x50, 0x90}
)

func probe(r io.ReaderAt, size int64, opts []spool.Option) (image.Image, error) {
	var m [10]byte
	if size < int64(len(m)) {
		return nil, image.ErrWrongType
	}
	if _, err := r.ReadAt(m[:], 0); err != nil {
		return nil, fmt.Errorf("bzip2: reading the header: %w", err)
	}
	if string(m[:3]) != "BZh" || m[3] < '1' || m[3] > '9' ||
		!(bytes.Equal(m[4:], blockMagic) || bytes.Equal(m[4:], endMagic)) {
		return nil, image.ErrWrongType
	}
	return New(r, size, opts...)
}

// New returns the image of the bzip2 file r (size bytes), which
// decompresses lazily.
func New(r io.ReaderAt, size int64, opts ...spool.Option) (*spool.Image, error) {
	open := func() (io.ReadCloser, error) {
		cr := &countReader{r: io.NewSectionReader(r, 0, size)}
		br := bufio.NewReaderSize(cr, 256<<10)
		return &reader{zr: bzip2.NewReader(br), cr: cr, br: br}, nil
	}
	return spool.New("bzip2", open, opts...), nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type reader struct {
	zr io.Reader
	cr *countReader
	br *bufio.Reader
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.zr.Read(p)
	if err != nil && err != io.EOF {
		off := r.cr.n - int64(r.br.Buffered())
		msg := "decompression failed"
		if errors.Is(err, io.ErrUnexpectedEOF) {
			msg = "compressed data ends early (file truncated)"
		}
		err = fmt.Errorf("%w: %w", &image.FormatError{Format: "bzip2", Off: off, Msg: msg}, err)
	}
	return n, err
}

func (r *reader) Close() error { return nil }

// Package gzip reads disk images compressed with gzip (.img.gz), including
// files of several members (what pigz and cat a.gz b.gz produce).
//
// # Scope
//
// Probe recognises the gzip magic (1F 8B 08). A gzip stream cannot be read
// at random: Stream decompresses from the start with
// github.com/klauspost/compress/gzip, and the first ReadAt, Size or Extents
// call decompresses the whole stream once into a sparse temporary file
// (package image/spool) that later calls read. Whole-image jobs should use
// Stream (the spool.Streamer interface) and never create that file.
//
// # Limits
//
// The decompressed size is not known before decompressing (the ISIZE field
// of the trailer holds it modulo 4 GiB, for the last member only), so Size
// spools. Extents reports the all-zero 64 KiB chunks found while spooling.
//
// Specification: RFC 1952.
//
// # Security
//
// Files are untrusted. Each member's CRC-32 and length are verified by the
// decoder; a truncated or corrupt file fails with an error naming the offset
// in the compressed file reached so far. Memory use is constant; disk use is
// the non-zero part of the decompressed image (bounded with
// spool.WithMaxSize).
package gzip

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"

	"imgtool/image"
	"imgtool/image/sizemark"
	"imgtool/image/spool"
)

// Format lets image.Open recognise gzip files.
var Format = image.Format{Name: "gzip", Probe: Probe}

// NewFormat returns a Format whose images spool with the given options.
func NewFormat(opts ...spool.Option) image.Format {
	return image.Format{Name: "gzip", Probe: func(r io.ReaderAt, size int64) (image.Image, error) {
		return probe(r, size, opts)
	}}
}

// Probe recognises a gzip file by its magic and opens it with New; other
// content gives an error wrapping image.ErrWrongType.
func Probe(r io.ReaderAt, size int64) (image.Image, error) { return probe(r, size, nil) }

func probe(r io.ReaderAt, size int64, opts []spool.Option) (image.Image, error) {
	var m [3]byte
	if size < 18 {
		return nil, image.ErrWrongType
	}
	if _, err := r.ReadAt(m[:], 0); err != nil {
		return nil, fmt.Errorf("gzip: reading the header: %w", err)
	}
	if m != [3]byte{0x1F, 0x8B, 0x08} {
		return nil, image.ErrWrongType
	}
	return New(r, size, opts...)
}

// New checks the first member's header of the gzip file r (size bytes) and
// returns its image, which decompresses lazily.
func New(r io.ReaderAt, size int64, opts ...spool.Option) (*spool.Image, error) {
	open := func() (io.ReadCloser, error) { return openStream(r, size) }
	rc, err := open()
	if err != nil {
		return nil, err
	}
	// imgtool's own files declare their size in the first member's header.
	if n, ok := sizemark.FromGzipExtra(rc.(*reader).zr.Header.Extra); ok {
		opts = append(opts[:len(opts):len(opts)], spool.WithSize(n))
	}
	rc.Close()
	return spool.New("gzip", open, opts...), nil
}

// openStream returns a reader of every member's decompressed data whose
// errors name the compressed offset reached.
func openStream(r io.ReaderAt, size int64) (io.ReadCloser, error) {
	cr := &countReader{r: io.NewSectionReader(r, 0, size)}
	br := bufio.NewReaderSize(cr, 256<<10)
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, wrap(err, cr.n-int64(br.Buffered()))
	}
	return &reader{zr: zr, cr: cr, br: br}, nil
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
	zr *gzip.Reader
	cr *countReader
	br *bufio.Reader
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.zr.Read(p)
	if err != nil && err != io.EOF {
		err = wrap(err, r.cr.n-int64(r.br.Buffered()))
	}
	return n, err
}

func (r *reader) Close() error { return r.zr.Close() }

func wrap(err error, off int64) error {
	msg := "decompression failed"
	if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
		msg = "compressed data ends early (file truncated)"
	}
	return fmt.Errorf("%w: %w", &image.FormatError{Format: "gzip", Off: off, Msg: msg}, err)
}

package convert

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"

	"imgtool/image"
	"imgtool/image/sizemark"
)

// gzipChunk is the uncompressed size of each gzip member.
const gzipChunk = 4 << 20

type gzipCodec struct {
	level int
	pool  sync.Pool
}

func newGzip(w io.Writer, size int64, ext []image.Extent, o Options) (Writer, error) {
	level := o.Level
	if level == 0 {
		level = 6
	}
	if level < 1 || level > 9 {
		return nil, fmt.Errorf("convert: gzip level %d is out of range 1–9", level)
	}
	chunk := o.ChunkSize
	if chunk == 0 {
		chunk = gzipChunk
	}
	// An empty first member declares the image's size, so that a file cut
	// between two members is recognised as damaged (package sizemark).
	zw, err := gzip.NewWriterLevel(w, level)
	if err != nil {
		return nil, err
	}
	zw.Header.Extra = sizemark.GzipExtra(size)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	c := &gzipCodec{level: level}
	return newChunked(w, size, ext, c, chunk, o.Workers, int64(3*chunk+1<<20), 400<<20)
}

func (c *gzipCodec) encode(in []byte) (encoded, error) {
	var buf bytes.Buffer
	buf.Grow(len(in)/2 + 1024)
	zw, _ := c.pool.Get().(*gzip.Writer)
	if zw == nil {
		var err error
		if zw, err = gzip.NewWriterLevel(&buf, c.level); err != nil {
			return encoded{}, err
		}
	} else {
		zw.Reset(&buf)
	}
	if _, err := zw.Write(in); err != nil {
		return encoded{}, err
	}
	if err := zw.Close(); err != nil {
		return encoded{}, err
	}
	c.pool.Put(zw)
	return encoded{data: buf.Bytes(), n: len(in)}, nil
}

func (c *gzipCodec) emit(w io.Writer, e encoded) error {
	_, err := w.Write(e.data)
	return err
}

func (c *gzipCodec) finish(io.Writer) error { return nil }

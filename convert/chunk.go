package convert

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"imgtool/image"
	"imgtool/internal/zero"
)

// encoded is one chunk after compression.
type encoded struct {
	data []byte // the bytes to write
	n    int    // uncompressed length
	sum  []byte // format-specific check of the uncompressed bytes (CRC64, xxhash)
	// unpadded is the xz block's unpadded size (header, data and check).
	unpadded uint64
	// shared is set when data may be handed out again (the encoding of
	// a chunk of zeros), so that the codec must not reuse its buffer.
	shared bool
}

// codec is what a chunked format supplies to the parallel pipeline.
type codec interface {
	// encode compresses one chunk; it runs on many goroutines at once.
	encode(in []byte) (encoded, error)
	// emit writes one encoded chunk, in order, and records it.
	emit(w io.Writer, e encoded) error
	// finish writes what follows the last chunk (index, seek table).
	finish(w io.Writer) error
}

// chunked is a Writer that cuts the image into chunks of chunkSize bytes,
// compresses them in parallel with a codec and writes them in order.
type chunked struct {
	w         io.Writer
	c         codec
	size      int64
	ext       []image.Extent
	ei        int   // current extent
	pos       int64 // image offset of the next byte
	chunkSize int

	buf     []byte // the chunk being filled
	hasData bool

	workers  chan struct{} // semaphore for encoding goroutines
	maxQueue int
	pending  []*job
	free     chan []byte
	err      error
	closed   bool

	zmu   sync.Mutex
	zeros map[int]*zeroEntry // encodings of all-zero chunks by length
}

type zeroEntry struct {
	once sync.Once
	e    encoded
	err  error
}

type job struct {
	in   []byte // nil for an all-zero chunk
	n    int
	out  encoded
	err  error
	done chan struct{}
}

// newChunked makes the pipeline. perChunkMem estimates the memory one
// chunk in flight costs (input, output, encoder state); the queue is kept
// under budget bytes.
func newChunked(w io.Writer, size int64, ext []image.Extent, c codec, chunkSize, workers int, perChunkMem, budget int64) (*chunked, error) {
	ext, err := normalize(ext, size)
	if err != nil {
		return nil, err
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	q := workers + 2
	if perChunkMem > 0 && budget > 0 {
		q = max(2, min(q, int(budget/perChunkMem)))
		workers = min(workers, q)
	}
	return &chunked{
		w: w, c: c, size: size, ext: ext, chunkSize: chunkSize,
		workers: make(chan struct{}, workers), maxQueue: q,
		free:  make(chan []byte, q+1),
		zeros: map[int]*zeroEntry{},
	}, nil
}

// normalize checks that ext covers [0, size) in order and drops empty
// extents.
func normalize(ext []image.Extent, size int64) ([]image.Extent, error) {
	var out []image.Extent
	var pos int64
	for _, e := range ext {
		if e.Len == 0 {
			continue
		}
		if e.Off != pos || e.Len < 0 {
			return nil, fmt.Errorf("convert: extents must cover the image in order: extent at %d, expected %d", e.Off, pos)
		}
		if n := len(out); n > 0 && out[n-1].Kind == e.Kind {
			out[n-1].Len += e.Len
		} else {
			out = append(out, e)
		}
		pos = e.End()
	}
	if pos != size {
		return nil, fmt.Errorf("convert: extents end at %d, the image at %d", pos, size)
	}
	return out, nil
}

func (c *chunked) getBuf() []byte {
	select {
	case b := <-c.free:
		return b[:0]
	default:
		return make([]byte, 0, c.chunkSize)
	}
}

// Write takes the next bytes of the Data extents.
func (c *chunked) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.closed {
		return 0, errors.New("convert: write after Close")
	}
	total := len(p)
	for len(p) > 0 {
		if err := c.skipZeros(); err != nil {
			return total - len(p), err
		}
		if c.ei >= len(c.ext) {
			c.err = fmt.Errorf("convert: %d bytes more than the Data extents hold", len(p))
			return total - len(p), c.err
		}
		e := c.ext[c.ei]
		if c.buf == nil {
			c.buf = c.getBuf()
		}
		n := int(min(int64(len(p)), e.End()-c.pos, int64(c.chunkSize-len(c.buf))))
		c.buf = append(c.buf, p[:n]...)
		c.hasData = true
		c.pos += int64(n)
		p = p[n:]
		if c.pos == e.End() {
			c.ei++
		}
		if len(c.buf) == c.chunkSize {
			if err := c.dispatch(); err != nil {
				return total - len(p), err
			}
		}
	}
	return total, nil
}

// skipZeros advances over Zero extents, filling the chunk with zeros.
func (c *chunked) skipZeros() error {
	for c.ei < len(c.ext) && c.ext[c.ei].Kind != image.Data {
		e := c.ext[c.ei]
		for c.pos < e.End() {
			room := c.chunkSize
			if c.buf != nil {
				room -= len(c.buf)
			}
			n := int(min(e.End()-c.pos, int64(room)))
			if c.buf == nil && n == c.chunkSize {
				// A whole chunk of zeros: no buffer needed.
				if err := c.submit(&job{n: n}); err != nil {
					return err
				}
				c.pos += int64(n)
				continue
			}
			if c.buf == nil {
				c.buf = c.getBuf()
			}
			l := len(c.buf)
			c.buf = c.buf[:l+n]
			clear(c.buf[l:])
			c.pos += int64(n)
			if len(c.buf) == c.chunkSize {
				if err := c.dispatch(); err != nil {
					return err
				}
			}
		}
		c.ei++
	}
	return nil
}

// dispatch sends the current chunk to be encoded.
func (c *chunked) dispatch() error {
	j := &job{in: c.buf, n: len(c.buf)}
	if !c.hasData {
		select {
		case c.free <- c.buf:
		default:
		}
		j.in = nil
	}
	c.buf, c.hasData = nil, false
	return c.submit(j)
}

func (c *chunked) submit(j *job) error {
	if j.n == 0 {
		return nil
	}
	j.done = make(chan struct{})
	c.workers <- struct{}{}
	go func() {
		defer func() { <-c.workers; close(j.done) }()
		if j.in != nil && !zero.Is(j.in) {
			j.out, j.err = c.c.encode(j.in)
			return
		}
		j.out, j.err = c.zeroChunk(j.n)
	}()
	c.pending = append(c.pending, j)
	for len(c.pending) > 0 {
		if len(c.pending) < c.maxQueue {
			select {
			case <-c.pending[0].done:
			default:
				return nil
			}
		}
		if err := c.writeHead(); err != nil {
			return err
		}
	}
	return nil
}

// writeHead waits for the oldest chunk and writes it.
func (c *chunked) writeHead() error {
	j := c.pending[0]
	<-j.done
	c.pending = c.pending[1:]
	if j.in != nil {
		select {
		case c.free <- j.in:
		default:
		}
	}
	if c.err != nil {
		return c.err
	}
	if j.err != nil {
		c.err = j.err
		return c.err
	}
	if err := c.c.emit(c.w, j.out); err != nil {
		c.err = err
		return err
	}
	return nil
}

func (c *chunked) zeroChunk(n int) (encoded, error) {
	c.zmu.Lock()
	z := c.zeros[n]
	if z == nil {
		z = &zeroEntry{}
		c.zeros[n] = z
	}
	c.zmu.Unlock()
	z.once.Do(func() { z.e, z.err = c.c.encode(make([]byte, n)) })
	return z.e, z.err
}

// Close encodes the last chunk, waits for all of them and writes the
// trailer. It does not close the underlying writer.
func (c *chunked) Close() error {
	if c.closed {
		return c.err
	}
	c.closed = true
	if c.err == nil {
		c.err = c.skipZeros()
	}
	if c.err == nil && c.pos != c.size {
		c.err = fmt.Errorf("convert: the Data extents were not all written: stopped at byte %d of %d", c.pos, c.size)
	}
	if c.err == nil && c.buf != nil {
		c.err = c.dispatch()
	}
	for len(c.pending) > 0 {
		c.writeHead()
	}
	if c.err != nil {
		return c.err
	}
	c.err = c.c.finish(c.w)
	return c.err
}

package spool

import (
	"container/list"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// Block is one independently decodable piece of a compressed image (an xz
// block, a frame of a seekable zstd file): Len decompressed bytes at offset
// Off of the image.
type Block struct {
	Off int64
	Len int64
}

// DecodeFunc decodes block i into dst, whose length is exactly the block's
// Len. It must fail, not return short data, when the block decodes to
// another length. It is called from several goroutines at once.
type DecodeFunc func(i int, dst []byte) error

// Blocks gives random access to an image made of independently decodable
// blocks, decoding only the blocks a read touches. Blocks that a read covers
// only in part are kept in a small LRU cache bounded in bytes; blocks that a
// read covers whole are decoded straight into the caller's buffer, several
// at once. Its methods may be called from several goroutines at once.
type Blocks struct {
	blocks  []Block
	decode  DecodeFunc
	budget  int64
	workers int
	size    int64
	decoded atomic.Int64

	mu    sync.Mutex
	lru   *list.List // of *cacheEntry, most recent first
	cache map[int]*list.Element
	bytes int64
}

type cacheEntry struct {
	i    int
	done chan struct{}
	data []byte
	err  error
}

// NewBlocks returns a Blocks over blocks, which must be in order, start at
// 0 and leave no gaps (the caller checks this with CheckBlocks). The cache
// holds at most cacheBytes of decoded data, but always at least one block;
// at most workers blocks are decoded at once by one ReadAt.
func NewBlocks(blocks []Block, decode DecodeFunc, cacheBytes int64, workers int) *Blocks {
	if workers < 1 {
		workers = 1
	}
	var size int64
	if n := len(blocks); n > 0 {
		size = blocks[n-1].Off + blocks[n-1].Len
	}
	return &Blocks{
		blocks: blocks, decode: decode, budget: cacheBytes, workers: workers, size: size,
		lru: list.New(), cache: make(map[int]*list.Element),
	}
}

// CheckBlocks verifies that blocks start at 0, are in order, leave no gaps
// and that none is longer than maxLen; it returns the total length.
func CheckBlocks(blocks []Block, maxLen int64) (int64, error) {
	var off int64
	for i, b := range blocks {
		if b.Off != off || b.Len < 0 || b.Len > maxLen {
			return 0, fmt.Errorf("spool: block %d at %d, %d bytes, does not follow the previous one or is too long", i, b.Off, b.Len)
		}
		off += b.Len
		if off < 0 {
			return 0, errors.New("spool: blocks overflow")
		}
	}
	return off, nil
}

// Size returns the total decompressed size.
func (b *Blocks) Size() int64 { return b.size }

// Decoded returns how many blocks have been decoded so far.
func (b *Blocks) Decoded() int64 { return b.decoded.Load() }

// ReadAt reads decompressed bytes.
func (b *Blocks) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("spool: read at negative offset %d", off)
	}
	if off >= b.size {
		if len(p) == 0 && off == b.size {
			return 0, nil
		}
		return 0, io.EOF
	}
	short := int64(len(p)) > b.size-off
	if short {
		p = p[:b.size-off]
	}
	first := sort.Search(len(b.blocks), func(i int) bool { return b.blocks[i].Off+b.blocks[i].Len > off })
	end := off + int64(len(p))
	type job struct {
		i      int
		dst    []byte
		from   int64 // offset within the block
		direct bool
	}
	var jobs []job
	for i := first; i < len(b.blocks) && b.blocks[i].Off < end; i++ {
		blk := b.blocks[i]
		if blk.Len == 0 {
			continue
		}
		lo := max(blk.Off, off)
		hi := min(blk.Off+blk.Len, end)
		jobs = append(jobs, job{
			i: i, dst: p[lo-off : hi-off : hi-off], from: lo - blk.Off,
			direct: lo == blk.Off && hi == blk.Off+blk.Len,
		})
	}
	run := func(j job) error {
		if j.direct {
			b.decoded.Add(1)
			return b.decode(j.i, j.dst)
		}
		data, err := b.get(j.i)
		if err != nil {
			return err
		}
		copy(j.dst, data[j.from:])
		return nil
	}
	var err error
	if len(jobs) == 1 || b.workers == 1 {
		for _, j := range jobs {
			if err = run(j); err != nil {
				break
			}
		}
	} else {
		var g errgroup.Group
		g.SetLimit(b.workers)
		for _, j := range jobs {
			g.Go(func() error { return run(j) })
		}
		err = g.Wait()
	}
	if err != nil {
		return 0, err
	}
	if short {
		return len(p), io.EOF
	}
	return len(p), nil
}

// get returns block i from the cache, decoding it if needed.
func (b *Blocks) get(i int) ([]byte, error) {
	b.mu.Lock()
	if el, ok := b.cache[i]; ok {
		b.lru.MoveToFront(el)
		e := el.Value.(*cacheEntry)
		b.mu.Unlock()
		<-e.done
		return e.data, e.err
	}
	e := &cacheEntry{i: i, done: make(chan struct{})}
	b.cache[i] = b.lru.PushFront(e)
	b.mu.Unlock()

	buf := make([]byte, b.blocks[i].Len)
	b.decoded.Add(1)
	err := b.decode(i, buf)

	b.mu.Lock()
	if err != nil {
		e.err = err
		if el, ok := b.cache[i]; ok && el.Value == e {
			b.lru.Remove(el)
			delete(b.cache, i)
		}
	} else {
		e.data = buf
		b.bytes += int64(len(buf))
		b.evict(e)
	}
	b.mu.Unlock()
	close(e.done)
	return e.data, e.err
}

// evict drops the least recently used finished blocks, other than keep,
// while the cache is over budget. b.mu is held.
func (b *Blocks) evict(keep *cacheEntry) {
	for el := b.lru.Back(); el != nil && b.bytes > b.budget; {
		prev := el.Prev()
		e := el.Value.(*cacheEntry)
		if e != keep && e.data != nil {
			b.bytes -= int64(len(e.data))
			b.lru.Remove(el)
			delete(b.cache, e.i)
		}
		el = prev
	}
}

// Stream returns a reader of the whole content in order. Blocks are
// decoded ahead of the reader, up to workers at once, while the caller
// consumes earlier ones, so decoding overlaps whatever the caller does with
// the data (writing a device, compressing again). At most about workers+2
// decoded blocks are held at once. Close stops the decoding.
func (b *Blocks) Stream() io.ReadCloser {
	ahead := max(b.workers, 2)
	s := &blockStream{
		b:       b,
		futures: make(chan chan blockResult, ahead),
		free:    make(chan []byte, ahead+2),
		stop:    make(chan struct{}),
	}
	s.running.Add(1)
	go s.produce(ahead)
	return s
}

type blockResult struct {
	data []byte
	err  error
}

type blockStream struct {
	b       *Blocks
	futures chan chan blockResult // in block order
	free    chan []byte           // consumed buffers, for reuse
	stop    chan struct{}
	once    sync.Once
	running sync.WaitGroup // the producer and the decodes it started

	cur []byte
	pos int
	err error
}

// produce starts the decoding of each block in order, at most ahead at
// once, handing the results to Read through futures.
func (s *blockStream) produce(ahead int) {
	defer s.running.Done()
	defer close(s.futures)
	sem := make(chan struct{}, ahead)
	for i, blk := range s.b.blocks {
		fut := make(chan blockResult, 1)
		select {
		case s.futures <- fut:
		case <-s.stop:
			return
		}
		select {
		case sem <- struct{}{}:
		case <-s.stop:
			return
		}
		var buf []byte
		select {
		case buf = <-s.free:
		default:
		}
		if int64(cap(buf)) < blk.Len {
			buf = make([]byte, blk.Len)
		}
		buf = buf[:blk.Len]
		s.running.Add(1)
		go func() {
			defer s.running.Done()
			defer func() { <-sem }()
			s.b.decoded.Add(1)
			err := s.b.decode(i, buf)
			fut <- blockResult{data: buf, err: err}
		}()
	}
}

func (s *blockStream) Read(p []byte) (int, error) {
	for s.pos >= len(s.cur) {
		if s.err != nil {
			return 0, s.err
		}
		if s.cur != nil {
			select {
			case s.free <- s.cur:
			default:
			}
			s.cur = nil
		}
		fut, ok := <-s.futures
		if !ok {
			s.err = io.EOF
			return 0, io.EOF
		}
		r := <-fut
		if r.err != nil {
			s.err = r.err
			s.stopOnce()
			return 0, r.err
		}
		s.cur, s.pos = r.data, 0
	}
	n := copy(p, s.cur[s.pos:])
	s.pos += n
	return n, nil
}

func (s *blockStream) stopOnce() { s.once.Do(func() { close(s.stop) }) }

// Close stops decoding ahead and waits for the blocks being decoded, so
// that the decoder is idle when Close returns.
func (s *blockStream) Close() error {
	s.stopOnce()
	s.running.Wait()
	if s.err == nil {
		s.err = errors.New("spool: stream closed")
	}
	s.cur = nil
	return nil
}

package flash

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"imgtool/image"
	"imgtool/internal/zero"
)

// ErrInterrupted is wrapped by Write and CheckCapacity when the context is
// cancelled: the target then holds an incomplete image.
var ErrInterrupted = errors.New("flash: interrupted")

// ErrVerify is wrapped by the *VerifyError that Write returns when the
// target does not read back what was written.
var ErrVerify = errors.New("flash: verification failed")

// Streamer is an optional interface of images that decode faster
// sequentially than by ReadAt (compressed images). Write reads such images
// front to back through one Stream, which must yield exactly Size bytes.
type Streamer interface {
	Stream() (io.ReadCloser, error)
}

// Progress receives progress reports from Write, Verify and CheckCapacity.
//
// Phase starts a phase ("write", "verify", "capacity-write",
// "capacity-read") of total bytes; Update adds n bytes done in the current
// phase. Update may be called from several goroutines at once, so an
// implementation must be safe for concurrent use (Counter uses atomics);
// Phase is never called while an Update is running.
type Progress interface {
	Phase(name string, total int64)
	Update(n int64)
}

// Counter is a Progress that keeps the current phase in atomics, for a
// caller that polls it (a progress bar redrawn on a timer).
type Counter struct {
	phase atomic.Pointer[string]
	total atomic.Int64
	done  atomic.Int64
}

// Phase records a new phase and resets the count.
func (c *Counter) Phase(name string, total int64) {
	c.phase.Store(&name)
	c.total.Store(total)
	c.done.Store(0)
}

// Update adds n to the count.
func (c *Counter) Update(n int64) { c.done.Add(n) }

// Load returns the current phase, its total and the bytes done.
func (c *Counter) Load() (phase string, total, done int64) {
	if p := c.phase.Load(); p != nil {
		phase = *p
	}
	return phase, c.total.Load(), c.done.Load()
}

type noProgress struct{}

func (noProgress) Phase(string, int64) {}
func (noProgress) Update(int64)        {}

// Unmapped says what Write does with the ranges of the target that the
// block map leaves out.
type Unmapped uint8

const (
	// UnmappedAuto writes zeros over the image's own Zero extents when no
	// block map is given (so the target reads back exactly as the image),
	// and leaves unmapped ranges alone when the caller gives a block map.
	UnmappedAuto Unmapped = iota
	// LeaveUnmapped leaves unmapped ranges as they were.
	LeaveUnmapped
	// ZeroUnmapped writes zeros over unmapped ranges.
	ZeroUnmapped
	// DiscardUnmapped discards unmapped ranges (BLKDISCARD on Linux
	// devices, a punched hole in files); what a device then reads there is
	// up to the device. Where discarding is not supported the range is
	// left alone and Result.Warnings says so.
	DiscardUnmapped
)

// Options configures Write. The zero value writes every byte of the image
// (holes as zeros) and verifies it.
type Options struct {
	// BlockMap lists the ranges of the image to write; only its Data
	// extents count. Nil means the image's own Extents.
	BlockMap []image.Extent
	// Unmapped says what to do with the ranges outside the block map.
	Unmapped Unmapped
	// NoVerify skips reading the targets back.
	NoVerify bool
	// Progress receives the write and verify phases; nil for none.
	Progress Progress
	// ChunkSize is the size of each read and write, rounded up to 4 KiB;
	// 0 means 4 MiB.
	ChunkSize int
	// Buffers is how many chunks may be in flight between the reader, the
	// hasher and the writers; 0 means 8.
	Buffers int
	// Sequential makes Write read an image that is read at random (see
	// Seekable) one piece at a time, in order, rather than several at
	// once: for an image that checks what it reads in order, as the one
	// bmap.Verify returns does.
	Sequential bool
	// LastPartitionEnd, when known, is where the image's last partition
	// ends; it improves the message when a target is too small.
	LastPartitionEnd int64
}

// Result describes a finished Write.
type Result struct {
	// BytesWritten is how many bytes were written to each target (image
	// data and zeros).
	BytesWritten int64
	// BytesSkipped is how many bytes of each target were left alone or
	// discarded.
	BytesSkipped int64
	Duration     time.Duration
	// Verified is true when every target read back as written.
	Verified bool
	// SHA256 is the hex SHA-256 of the whole image, or "" when Write did
	// not see every byte of it (a block map skipped ranges of an image
	// read by ReadAt) or did not verify (NoVerify: the hash would cost
	// more than the write on a fast device).
	SHA256 string
	// Warnings are problems that did not stop the write (a device that
	// cannot discard, a partition table the kernel could not reread).
	Warnings []string
}

// VerifyError reports a target that did not read back as written.
type VerifyError struct {
	Target   string
	FirstBad int64 // offset of the first byte that differs
	BadBytes int64 // how many bytes differ
}

// Error says where and how much differs and what to check.
func (e *VerifyError) Error() string {
	return fmt.Sprintf("flash: %s does not read back what was written: %d bytes differ, the first at offset %d (%#x); "+
		"the device may be failing or may claim more capacity than it has: run imgtool flash --check-capacity on it (this erases it), or try another card",
		e.Target, e.BadBytes, e.FirstBad, e.FirstBad)
}

// Unwrap returns ErrVerify.
func (e *VerifyError) Unwrap() error { return ErrVerify }

// testHookBeforeVerify, when set by a test, runs on each target after it
// was written and flushed and before it is read back.
var testHookBeforeVerify func(Target)

type action uint8

const (
	actWrite action = iota
	actZero
	actDiscard
	actLeave
)

// segment is a range of the image with what to do with it.
type segment struct {
	off, n    int64
	act       action
	knownZero bool // the image is known to hold zeros here
}

// Seekable is an optional interface of compressed images that may or may
// not be readable at random (zstd files with or without a seek table).
// Seekable reports whether ReadAt decodes only the pieces it reads (true)
// or needs the whole image decompressed first (false). Write reads an
// image that is seekable by ReadAt, several pieces at once, and one that is
// not through its Stream without asking for its Extents.
type Seekable interface {
	Seekable() bool
}

// streamOnly reports whether img can only be read cheaply from the start.
func streamOnly(img image.Image) bool {
	if _, ok := image.As[Streamer](img); !ok {
		return false
	}
	s, ok := image.As[Seekable](img)
	return ok && !s.Seekable()
}

// seekable reports whether img (or an image it wraps) is read at random.
func seekable(img image.Image) bool {
	s, ok := image.As[Seekable](img)
	return ok && s.Seekable()
}

// useStream reports whether Write reads img through its Stream.
func useStream(img image.Image) bool {
	_, ok := image.As[Streamer](img)
	return ok && !seekable(img)
}

// plan builds the segments covering [0, size).
func plan(img image.Image, o Options) ([]segment, error) {
	size := img.Size()
	explicit := o.BlockMap != nil
	ext := o.BlockMap
	if !explicit && streamOnly(img) {
		// Its extents would cost decoding the whole image once more: every
		// byte comes from the stream instead.
		ext = []image.Extent{{Off: 0, Len: size, Kind: image.Data}}
	} else if !explicit {
		var err error
		if ext, err = img.Extents(); err != nil {
			return nil, fmt.Errorf("flash: listing the image's extents: %w", err)
		}
	}
	var data [][2]int64
	for _, e := range ext {
		if e.Kind != image.Data || e.Len <= 0 {
			continue
		}
		if e.Off < 0 || e.Off > size || e.Len > size-e.Off {
			return nil, fmt.Errorf("flash: block map range %d+%d lies outside the image (size %d); check the block map", e.Off, e.Len, size)
		}
		start := e.Off &^ (ioAlign - 1)
		end := min(size, (e.End()+ioAlign-1)&^(ioAlign-1))
		data = append(data, [2]int64{start, end})
	}
	sort.Slice(data, func(i, j int) bool { return data[i][0] < data[j][0] })
	unmapped := o.Unmapped
	if unmapped == UnmappedAuto {
		unmapped = ZeroUnmapped
		if explicit {
			unmapped = LeaveUnmapped
		}
	}
	act := map[Unmapped]action{LeaveUnmapped: actLeave, ZeroUnmapped: actZero, DiscardUnmapped: actDiscard}[unmapped]
	var segs []segment
	pos := int64(0)
	gap := func(end int64) {
		if end > pos {
			segs = append(segs, segment{off: pos, n: end - pos, act: act, knownZero: !explicit})
			pos = end
		}
	}
	for _, d := range data {
		gap(d[0])
		if d[1] > pos {
			if n := len(segs); n > 0 && segs[n-1].act == actWrite && segs[n-1].off+segs[n-1].n == pos {
				segs[n-1].n += d[1] - pos
			} else {
				segs = append(segs, segment{off: pos, n: d[1] - pos, act: actWrite})
			}
			pos = d[1]
		}
	}
	gap(size)
	return segs, nil
}

// chunk is one piece of the image on its way to the hasher and writers.
type chunk struct {
	off       int64
	n         int
	act       action
	data      []byte // the image's bytes, or nil
	knownZero bool
	zero      bool // data was read and holds only zeros
	vidx      int  // index in the verify list, or -1
	refs      atomic.Int32
	slot      []byte
	ready     chan error // when data is being read: the read's result
}

// span is a written range to read back, with its hash.
type span struct {
	off  int64
	n    int
	zero bool // zeros were written, not image data
}

type growable interface{ growable() bool }
type truncater interface{ truncate(int64) error }
type discarder interface{ discard(off, n int64) error }
type rereader interface{ rereadPartitions() error }

// Write writes img to every target at once and, unless opts.NoVerify,
// reads each back and compares it with what was written.
//
// The image is read once (through Streamer when img offers it and is not
// Seekable, by ReadAt otherwise: several chunks at once when img is
// Seekable and opts.Sequential is not set), hashed by another goroutine and
// written by one goroutine per target, with at most opts.Buffers chunks in
// flight: the slowest target sets the pace. Only the Data ranges of the
// block map are written (rounded out to 4 KiB); see Unmapped for the rest. Each target is
// then flushed (Sync), read back and compared chunk by chunk with SHA-256
// hashes taken while writing, and a device's partition table is reread.
//
// A device target must be at least as large as the image (see CheckFits);
// a file target grows to the image's size. Write does not close the
// targets. On any error every target holds an incomplete image; when ctx
// is cancelled the error wraps ErrInterrupted, and when a target reads back
// wrong it is a *VerifyError.
func Write(ctx context.Context, img image.Image, targets []Target, opts Options) (Result, error) {
	start := time.Now()
	var res Result
	if len(targets) == 0 {
		return res, errors.New("flash: no target given")
	}
	size := img.Size()
	for _, t := range targets {
		if g, ok := t.(growable); ok && g.growable() {
			continue
		}
		if err := CheckFits(t.Name(), size, t.Size(), opts.LastPartitionEnd); err != nil {
			return res, err
		}
	}
	segs, err := plan(img, opts)
	if err != nil {
		return res, err
	}
	p := opts.Progress
	if p == nil {
		p = noProgress{}
	}
	w := newWriter(img, targets, opts, p)
	for _, s := range segs {
		switch s.act {
		case actWrite, actZero:
			res.BytesWritten += s.n
		default:
			res.BytesSkipped += s.n
		}
	}
	p.Phase("write", res.BytesWritten)
	sum, err := w.run(ctx, segs)
	res.Warnings = append(res.Warnings, w.warnings()...)
	if err != nil {
		res.Duration = time.Since(start)
		return res, err
	}
	res.SHA256 = sum
	if err := w.finish(ctx, size); err != nil {
		res.Duration = time.Since(start)
		return res, err
	}
	res.Verified = !opts.NoVerify
	for _, t := range targets {
		if r, ok := t.(rereader); ok {
			if err := r.rereadPartitions(); err != nil {
				res.Warnings = append(res.Warnings, err.Error())
			}
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

type writer struct {
	img       image.Image
	targets   []Target
	opts      Options
	p         Progress
	chunkSize int
	zeros     []byte

	mu       sync.Mutex
	warns    []string
	err      error
	spans    []span     // written by the producer
	hashes   [][32]byte // written by the hasher, in the same order
	discards []bool     // per target: discarding failed already
}

func newWriter(img image.Image, targets []Target, o Options, p Progress) *writer {
	cs := o.ChunkSize
	if cs <= 0 {
		cs = 4 << 20
	}
	cs = (cs + ioAlign - 1) &^ (ioAlign - 1)
	if o.Buffers <= 0 {
		o.Buffers = 8
	}
	return &writer{img: img, targets: targets, opts: o, p: p, chunkSize: cs,
		zeros: alignedBuf(cs), discards: make([]bool, len(targets))}
}

func (w *writer) warn(s string) {
	w.mu.Lock()
	w.warns = append(w.warns, s)
	w.mu.Unlock()
}

func (w *writer) warnings() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.warns...)
}

// fail records the first error and cancels the pipeline.
func (w *writer) fail(err error, cancel context.CancelFunc) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	cancel()
}

func (w *writer) targetNames() string {
	names := make([]string, len(w.targets))
	for i, t := range w.targets {
		names[i] = t.Name()
	}
	return strings.Join(names, ", ")
}

func (w *writer) interrupted(ctx context.Context, what string) error {
	return fmt.Errorf("%w: %s now holds an incomplete image; %s: %w", ErrInterrupted, w.targetNames(), what, context.Cause(ctx))
}

// run streams the segments through the reader, hasher and writers and
// returns the image's SHA-256 ("" when not every byte was seen).
func (w *writer) run(parent context.Context, segs []segment) (string, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()

	var stream io.ReadCloser
	if s, ok := image.As[Streamer](w.img); ok && useStream(w.img) {
		rc, err := s.Stream()
		if err != nil {
			return "", fmt.Errorf("flash: opening the image stream: %w", err)
		}
		stream = rc
		defer rc.Close()
	}

	slots := make(chan []byte, w.opts.Buffers)
	for range w.opts.Buffers {
		slots <- alignedBuf(w.chunkSize)
	}
	hashCh := make(chan *chunk, w.opts.Buffers)
	// Chunk hashes (for the read-back) are computed on their own goroutine,
	// beside the whole-image hash: SHA-256 is the slowest stage.
	var chunkCh chan *chunk
	if !w.opts.NoVerify {
		chunkCh = make(chan *chunk, w.opts.Buffers)
	}
	outs := make([]chan *chunk, len(w.targets))
	for i := range outs {
		outs[i] = make(chan *chunk, w.opts.Buffers)
	}
	release := func(c *chunk) {
		if c.refs.Add(-1) == 0 {
			if c.act != actLeave {
				w.p.Update(int64(c.n))
			}
			slots <- c.slot
		}
	}

	var wg sync.WaitGroup
	// Hasher.
	whole := sha256.New()
	complete := true
	wg.Go(func() {
		for c := range hashCh {
			// Without the read-back the image's hash is not needed, and
			// SHA-256 would be the slowest stage on a fast device.
			if ctx.Err() == nil && !w.opts.NoVerify {
				w.hashWhole(c, whole)
			}
			release(c)
		}
	})
	if chunkCh != nil {
		wg.Go(func() {
			zh := map[int][32]byte{}
			for c := range chunkCh {
				if ctx.Err() == nil {
					w.hashChunk(c, zh)
				}
				release(c)
			}
		})
	}
	// Writers.
	for i, t := range w.targets {
		wg.Go(func() {
			for c := range outs[i] {
				if ctx.Err() == nil {
					if err := w.writeChunk(i, t, c); err != nil {
						w.fail(err, cancel)
					}
				}
				release(c)
			}
		})
	}

	// Forwarder: hands the chunks on in order, each once its bytes are
	// read.
	seq := make(chan *chunk, w.opts.Buffers)
	var ferr error // the first read error, set by the forwarder
	wg.Go(func() {
		defer func() {
			close(hashCh)
			if chunkCh != nil {
				close(chunkCh)
			}
			for _, o := range outs {
				close(o)
			}
		}()
		for c := range seq {
			if c.ready != nil {
				if err := <-c.ready; err != nil || ferr != nil {
					if ferr == nil {
						ferr = err
						cancel()
					}
					slots <- c.slot
					continue
				}
			}
			if ferr != nil {
				slots <- c.slot
				continue
			}
			hashCh <- c
			if chunkCh != nil && c.vidx >= 0 {
				chunkCh <- c
			}
			if c.act != actLeave {
				for _, o := range outs {
					o <- c
				}
			}
		}
	})

	var perr error
	// Producer (this goroutine). A stream is read here, in order; an image
	// read by ReadAt is read by up to readers goroutines at once (a
	// seekable compressed image decodes its frames on every core).
	readers := 1
	if stream == nil && seekable(w.img) && !w.opts.Sequential {
		readers = max(1, min(runtime.GOMAXPROCS(0), w.opts.Buffers/2))
	}
	sem := make(chan struct{}, readers)
	needZero := !w.opts.NoVerify
	pos := int64(0)
produce:
	for _, s := range segs {
		if s.act == actLeave && stream == nil && !s.knownZero {
			complete = false
			continue
		}
		if s.act != actWrite && stream == nil && !s.knownZero {
			complete = false
		}
		for off := s.off; off < s.off+s.n; {
			// Chunks end at multiples of the chunk size, so that they
			// match the frames of a seekable compressed image.
			n := int(min(int64(w.chunkSize)-off%int64(w.chunkSize), s.off+s.n-off))
			var slot []byte
			select {
			case slot = <-slots:
			case <-ctx.Done():
				break produce
			}
			c := &chunk{off: off, n: n, act: s.act, knownZero: s.knownZero, vidx: -1, slot: slot}
			if stream != nil || s.act == actWrite {
				c.data = slot[:n]
				if stream != nil {
					if err := w.read(stream, c.data, off, &pos); err != nil {
						perr = err
						slots <- slot
						break produce
					}
					c.zero = needZero && s.act == actWrite && zero.Is(c.data)
				} else {
					c.ready = make(chan error, 1)
					select {
					case sem <- struct{}{}:
					case <-ctx.Done():
						slots <- slot
						break produce
					}
					go func() {
						err := w.read(nil, c.data, c.off, nil)
						c.zero = err == nil && needZero && zero.Is(c.data)
						<-sem
						c.ready <- err
					}()
				}
			}
			if s.act == actWrite || s.act == actZero {
				c.vidx = len(w.spans)
				w.spans = append(w.spans, span{off: off, n: n, zero: s.act == actZero})
			}
			refs := int32(1)
			if s.act != actLeave {
				refs += int32(len(w.targets))
			}
			if chunkCh != nil && c.vidx >= 0 {
				refs++
			}
			c.refs.Store(refs)
			seq <- c
			off += int64(n)
		}
	}
	close(seq)
	wg.Wait()
	if perr == nil {
		perr = ferr
	}

	if parent.Err() != nil {
		return "", w.interrupted(parent, "write it again before using it")
	}
	if perr != nil {
		return "", fmt.Errorf("%w; %s now holds an incomplete image", perr, w.targetNames())
	}
	if w.err != nil {
		return "", fmt.Errorf("%w; it now holds an incomplete image", w.err)
	}
	if !complete || w.opts.NoVerify {
		return "", nil
	}
	return hex.EncodeToString(whole.Sum(nil)), nil
}

// read fills p with the image's bytes at off.
func (w *writer) read(stream io.Reader, p []byte, off int64, pos *int64) error {
	if stream != nil {
		if *pos != off {
			return fmt.Errorf("flash: internal error: stream at %d, wanted %d", *pos, off)
		}
		n, err := io.ReadFull(stream, p)
		*pos += int64(n)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("flash: the image's data ends at byte %d, before its size of %d bytes; the image is truncated or damaged", *pos, w.img.Size())
			}
			return fmt.Errorf("flash: reading the image at offset %d: %w", off, err)
		}
		return nil
	}
	n, err := w.img.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("flash: reading the image at offset %d: %w", off+int64(n), err)
}

// hashWhole adds a chunk to the whole-image hash.
func (w *writer) hashWhole(c *chunk, whole hash.Hash) {
	switch {
	case c.data != nil:
		whole.Write(c.data)
	case c.knownZero:
		whole.Write(w.zeros[:c.n])
	}
}

// hashChunk records the hash of a chunk that is written (for the
// read-back), in order; zh caches the hashes of zero chunks by length.
func (w *writer) hashChunk(c *chunk, zh map[int][32]byte) {
	var h [32]byte
	if c.act == actZero || c.zero {
		var ok bool
		if h, ok = zh[c.n]; !ok {
			h = sha256.Sum256(w.zeros[:c.n])
			zh[c.n] = h
		}
	} else {
		h = sha256.Sum256(c.data)
	}
	w.hashes = append(w.hashes, h)
}

func (w *writer) writeChunk(i int, t Target, c *chunk) error {
	var p []byte
	switch c.act {
	case actWrite:
		p = c.data
	case actZero:
		p = w.zeros[:c.n]
	case actDiscard:
		if w.discards[i] {
			return nil
		}
		d, ok := t.(discarder)
		var err error
		if !ok {
			err = errors.ErrUnsupported
		} else {
			err = d.discard(c.off, int64(c.n))
		}
		if errors.Is(err, errors.ErrUnsupported) {
			w.discards[i] = true
			w.warn(fmt.Sprintf("%s cannot discard; unmapped ranges were left as they were", t.Name()))
			return nil
		}
		if err != nil {
			return fmt.Errorf("flash: discarding %d bytes at offset %d of %s: %w", c.n, c.off, t.Name(), err)
		}
		return nil
	default:
		return nil
	}
	if _, err := t.WriteAt(p, c.off); err != nil {
		return fmt.Errorf("flash: writing %s at offset %d: %w", t.Name(), c.off, err)
	}
	return nil
}

// finish flushes, verifies and (for files) sizes each target, one
// goroutine per target.
func (w *writer) finish(ctx context.Context, size int64) error {
	for _, t := range w.targets {
		if g, ok := t.(growable); ok && g.growable() && t.Size() < size {
			if tr, ok := t.(truncater); ok {
				if err := tr.truncate(size); err != nil {
					return err
				}
			}
		}
	}
	var verifyTotal int64
	for _, s := range w.spans {
		verifyTotal += int64(s.n)
	}
	errs := make([]error, len(w.targets))
	var wg sync.WaitGroup
	for i, t := range w.targets {
		wg.Go(func() {
			if err := t.Sync(); err != nil {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if w.opts.NoVerify {
		return nil
	}
	w.p.Phase("verify", verifyTotal*int64(len(w.targets)))
	for i, t := range w.targets {
		if testHookBeforeVerify != nil {
			testHookBeforeVerify(t)
		}
		wg.Go(func() { errs[i] = w.verify(ctx, t) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("%w: the image was written to %s but not verified: %w", ErrInterrupted, w.targetNames(), context.Cause(ctx))
	}
	return errors.Join(errs...)
}

// verify reads t's written spans back and compares their hashes; on a
// mismatch it compares bytes with the image to count the differences.
func (w *writer) verify(ctx context.Context, t Target) error {
	buf := alignedBuf(w.chunkSize)
	var want []byte
	verr := &VerifyError{Target: t.Name(), FirstBad: -1}
	for i, s := range w.spans {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		got := buf[:s.n]
		if n, err := t.ReadAt(got, s.off); n < s.n {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("flash: reading %s back at offset %d: %w", t.Name(), s.off+int64(n), err)
		}
		w.p.Update(int64(s.n))
		if sha256.Sum256(got) == w.hashes[i] {
			continue
		}
		if want == nil {
			want = make([]byte, w.chunkSize)
		}
		exp := want[:s.n]
		if s.zero {
			clear(exp)
		} else if n, err := w.img.ReadAt(exp, s.off); n < s.n {
			// The image cannot be read again: count the whole chunk.
			_ = err
			if verr.FirstBad < 0 {
				verr.FirstBad = s.off
			}
			verr.BadBytes += int64(s.n)
			continue
		}
		for j := range exp {
			if exp[j] != got[j] {
				if verr.FirstBad < 0 {
					verr.FirstBad = s.off + int64(j)
				}
				verr.BadBytes++
			}
		}
	}
	if verr.FirstBad >= 0 {
		return verr
	}
	return nil
}

// Package spool gives random access to a compressed image that can only be
// decompressed from the start, by decompressing it once into a temporary
// file.
//
// # Scope
//
// New returns an Image built from a function that opens the decompressed
// stream. Nothing is decompressed until a method needs the bytes: the first
// ReadAt, Extents or (when the size was not given with WithSize) Size call
// decompresses the whole stream into a temporary file, once, and every later
// call reads that file. Stream decompresses from the start again without a
// temporary file, so whole-image jobs (convert, flash) that only stream never
// write one; once the file exists, Stream reads it instead.
//
// The temporary file is sparse: all-zero 64 KiB chunks are skipped rather
// than written, and Extents reports them as Zero extents from its own record
// (so holes are reported the same on every system). Close removes the file.
//
// Streamer is the optional interface that the compressed images of imgtool
// implement; whole-image jobs type-assert an image.Image to it.
//
// Blocks is the other half of random access to compressed images: for
// formats made of independently decodable blocks listed in an index (xz
// files with several blocks, seekable zstd), it decodes only the blocks a
// read touches, keeps a few in an LRU cache bounded in bytes, and decodes
// the blocks a large read covers whole in parallel, straight into the
// caller's buffer.
//
// # Limits
//
// The temporary file needs as much free space as the non-zero part of the
// image. When the disk fills up, the error says so and suggests setting
// TMPDIR (or WithDir) to a folder with more room. Size cannot report an
// error: when spooling fails, Size returns 0 and ReadAt and Extents return
// the error; Spool returns it directly.
//
// # Security
//
// The stream is untrusted. Memory use is bounded (one 64 KiB chunk and one
// extent per zero run or data run, merged when adjacent); Blocks holds at
// most its cache budget (or one block) plus the blocks being decoded, whose
// sizes the caller checks with CheckBlocks before use; the disk use is
// bounded by the stream's own length and by WithMaxSize, when given. A size
// given with WithSize that does not match the decompressed length is an
// error, never a silently short or long image.
package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"imgtool/image"
	"imgtool/internal/zero"
)

// Streamer is implemented by images that can produce their whole content
// sequentially, from the start, more cheaply than through ReadAt (a
// compressed image decodes its stream without a temporary file). The caller
// closes the returned reader. Each call starts a new stream from offset 0.
type Streamer interface {
	Stream() (io.ReadCloser, error)
}

// Progress receives the number of decompressed bytes written so far while a
// stream is being spooled. Update is called from the goroutine that spools.
type Progress interface {
	Update(n int64)
}

// ChunkSize is the granularity of hole detection: a chunk of this many bytes
// that is all zeros is not written to the temporary file.
const ChunkSize = 64 << 10

// ErrSizeMismatch is wrapped when the decompressed stream is longer or
// shorter than the size the container declared.
var ErrSizeMismatch = errors.New("spool: decompressed size differs from the declared size")

// ErrTooLarge is wrapped when the stream exceeds the limit set with
// WithMaxSize.
var ErrTooLarge = errors.New("spool: decompressed image exceeds the size limit")

// Option configures New. The same options are accepted by the compressed
// formats of imgtool that may spool.
type Option func(*Config)

// Config holds the settings made by Options. Packages that build on spool
// read it with Apply.
type Config struct {
	// Dir is the folder of the temporary file; "" means os.TempDir().
	Dir string
	// Progress, when not nil, is told how far spooling has got.
	Progress Progress
	// Size is the declared decompressed size, or -1 when unknown.
	Size int64
	// MaxSize bounds the decompressed size; 0 means no bound.
	MaxSize int64
}

// Apply returns the Config made by opts.
func Apply(opts ...Option) Config {
	c := Config{Size: -1}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// WithDir puts the temporary file in dir instead of os.TempDir().
func WithDir(dir string) Option { return func(c *Config) { c.Dir = dir } }

// WithProgress reports spooling progress to p.
func WithProgress(p Progress) Option { return func(c *Config) { c.Progress = p } }

// WithSize declares the decompressed size, so Size does not need to spool;
// a stream of another length is an error wrapping ErrSizeMismatch.
func WithSize(n int64) Option { return func(c *Config) { c.Size = n } }

// WithMaxSize fails spooling (with ErrTooLarge) once the stream exceeds n
// bytes.
func WithMaxSize(n int64) Option { return func(c *Config) { c.MaxSize = n } }

// Image is an image.Image over a stream, spooled to a temporary file on
// first use. Its methods may be called from several goroutines at once.
type Image struct {
	format string
	open   func() (io.ReadCloser, error)
	cfg    Config

	once   sync.Once
	mu     sync.Mutex // guards f and closed
	f      *os.File
	closed bool
	size   int64
	ext    []image.Extent
	err    error
}

var (
	_ image.Image = (*Image)(nil)
	_ Streamer    = (*Image)(nil)
)

// New returns an Image named format (e.g. "gzip") whose content is what
// stream returns. stream is called once per Stream call and once for
// spooling; each call must return a reader positioned at the start.
func New(format string, stream func() (io.ReadCloser, error), opts ...Option) *Image {
	return &Image{format: format, open: stream, cfg: Apply(opts...)}
}

// Format returns the name given to New.
func (s *Image) Format() string { return s.format }

// Size returns the decompressed size: the declared one when WithSize was
// given, otherwise what spooling found (0 when spooling failed).
func (s *Image) Size() int64 {
	if s.cfg.Size >= 0 {
		return s.cfg.Size
	}
	if s.Spool() != nil {
		return 0
	}
	return s.size
}

// Spool decompresses the stream into the temporary file unless that was
// done already, and returns the error of doing so.
func (s *Image) Spool() error {
	s.once.Do(func() { s.err = s.spool() })
	return s.err
}

// ReadAt reads decompressed bytes, spooling first if needed.
func (s *Image) ReadAt(p []byte, off int64) (int, error) {
	if err := s.Spool(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("spool: %s: read at negative offset %d", s.format, off)
	}
	if off >= s.size {
		return 0, io.EOF
	}
	short := int64(len(p)) > s.size-off
	if short {
		p = p[:s.size-off]
	}
	s.mu.Lock()
	f, closed := s.f, s.closed
	s.mu.Unlock()
	if closed {
		return 0, os.ErrClosed
	}
	n, err := f.ReadAt(p, off)
	if err == nil && short {
		err = io.EOF
	}
	if err == io.EOF && !short {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Extents lists the spooled image's zero runs (whole all-zero chunks) as
// Zero extents and the rest as Data.
func (s *Image) Extents() ([]image.Extent, error) {
	if err := s.Spool(); err != nil {
		return nil, err
	}
	return append([]image.Extent(nil), s.ext...), nil
}

// Stream returns the decompressed content from the start: from the
// temporary file when it exists, otherwise by decompressing again.
func (s *Image) Stream() (io.ReadCloser, error) {
	s.mu.Lock()
	f, closed := s.f, s.closed
	s.mu.Unlock()
	if closed {
		return nil, os.ErrClosed
	}
	if f != nil {
		return io.NopCloser(io.NewSectionReader(f, 0, s.size)), nil
	}
	return s.open()
}

// Close removes the temporary file, if any.
func (s *Image) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.f == nil {
		return nil
	}
	name := s.f.Name()
	err := s.f.Close()
	if rerr := os.Remove(name); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

func (s *Image) spool() error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return os.ErrClosed
	}
	rc, err := s.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.CreateTemp(s.cfg.Dir, "imgtool-"+s.format+"-*.img")
	if err != nil {
		return fmt.Errorf("spool: creating the temporary file for the decompressed %s image: %w; set TMPDIR to a writable folder", s.format, err)
	}
	size, ext, err := fill(f, rc, s.cfg)
	if err != nil {
		err = explain(err, f.Name(), s.format, size)
		f.Close()
		os.Remove(f.Name())
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		f.Close()
		os.Remove(f.Name())
		return os.ErrClosed
	}
	s.f, s.size, s.ext = f, size, ext
	return nil
}

// fill copies r into f, skipping all-zero chunks, and returns the number of
// bytes and the extents.
func fill(f *os.File, r io.Reader, cfg Config) (int64, []image.Extent, error) {
	buf := make([]byte, ChunkSize)
	var off int64
	var ext []image.Extent
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if cfg.MaxSize > 0 && off+int64(n) > cfg.MaxSize {
				return off, nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, cfg.MaxSize)
			}
			if cfg.Size >= 0 && off+int64(n) > cfg.Size {
				return off, nil, fmt.Errorf("%w: stream continues past the declared %d bytes", ErrSizeMismatch, cfg.Size)
			}
			kind := image.Zero
			if !zero.Is(buf[:n]) {
				kind = image.Data
				if _, err := f.WriteAt(buf[:n], off); err != nil {
					return off, nil, err
				}
			}
			ext = appendExtent(ext, image.Extent{Off: off, Len: int64(n), Kind: kind})
			off += int64(n)
			if cfg.Progress != nil {
				cfg.Progress.Update(off)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return off, nil, fmt.Errorf("decompressing at byte %d of the image: %w", off, rerr)
		}
	}
	if cfg.Size >= 0 && off != cfg.Size {
		return off, nil, fmt.Errorf("%w: stream ends after %d of the declared %d bytes", ErrSizeMismatch, off, cfg.Size)
	}
	if err := f.Truncate(off); err != nil {
		return off, nil, err
	}
	if ext == nil {
		ext = []image.Extent{}
	}
	return off, ext, nil
}

// explain turns an error from spooling into one that says what happened.
func explain(err error, name, format string, done int64) error {
	if diskFull(err) {
		return fmt.Errorf("spool: the disk holding the temporary file %s is full after %d bytes of the decompressed %s image; "+
			"free some space or set TMPDIR to a folder on a disk with more room: %w", name, done, format, err)
	}
	return fmt.Errorf("spool: %s: %w", format, err)
}

func appendExtent(list []image.Extent, e image.Extent) []image.Extent {
	if n := len(list); n > 0 && list[n-1].Kind == e.Kind && list[n-1].End() == e.Off {
		list[n-1].Len += e.Len
		return list
	}
	return append(list, e)
}

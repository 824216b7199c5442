// Package zstd reads disk images compressed with Zstandard (.img.zst),
// with random access when the file is in the seekable format.
//
// # Scope
//
// Probe recognises a file starting with a Zstandard frame or a skippable
// frame. When the file ends with a seek table (the seekable format: a final
// skippable frame listing the compressed and decompressed size of every
// frame), ReadAt decodes only the frames it touches, keeping a few in a
// small cache, and decodes the frames a large read covers whole in parallel.
// Other files (what the zstd tool writes, with or without --long) cannot be
// read at random: the first ReadAt, Size or Extents call decompresses the
// whole stream into a sparse temporary file (package image/spool).
//
// Every Image returned here implements spool.Streamer: Stream decompresses
// the whole image from the start without a temporary file. The stream's
// RLE blocks are handed to the decoder as raw blocks of the same bytes,
// which it copies instead of filling a byte at a time (the free space of a
// disk image is RLE blocks of zeros). When every frame of a file without
// seek table declares its content size (as the zstd tool writes from a
// file), Size adds them up from the frame and block headers instead of
// decoding the file.
//
// Frames made only of raw and RLE blocks (imgtool writes its chunks of
// zeros so) are decoded here, not by the decoder; a frame's own checksum,
// checked by the decoder, is compared with the seek table's rather than
// computed again.
//
// Decoding uses github.com/klauspost/compress/zstd; the seek table is parsed
// with github.com/SaveTheRbtz/zstd-seekable-format-go/pkg.
//
// # Limits
//
// Windows larger than MaxWindow (made with zstd --long=28 or more) are
// refused with an error that says so. Seekable
// files with a frame larger than MaxIndexedFrame spool like ordinary ones.
// Extents of a seekable file is one Data extent.
//
// Specifications: RFC 8878 (Zstandard) and the Zstandard seekable format
// (contrib/seekable_format/zstd_seekable_compression_format.md in the zstd
// repository).
//
// # Security
//
// Files are untrusted. The seek table is bounded by MaxFrames and checked
// against the file: the frames it lists must exactly fill the file before
// it. Every frame must decode to the size the table gives, and its checksum,
// when the table has them, must match. Memory for decoded frames is bounded
// by the cache budget plus one frame per worker, each at most
// MaxIndexedFrame; streaming memory by MaxWindow. Damage is reported as an
// *image.FormatError naming the offset in the compressed file.
package zstd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	seekable "github.com/SaveTheRbtz/zstd-seekable-format-go/pkg"
	"github.com/klauspost/compress/zstd"

	"imgtool/image"
	"imgtool/image/sizemark"
	"imgtool/image/spool"
)

const (
	// MaxIndexedFrame is the largest frame decoded into memory for random
	// access.
	MaxIndexedFrame = 64 << 20
	// MaxFrames bounds the number of frames in a seek table.
	MaxFrames = 4 << 20
	// MaxWindow bounds the window of streamed frames: 128 MiB, what
	// zstd --long=27 and zstd --ultra -22 use and what the zstd tool itself
	// accepts by default. The decoder allocates the window up front.
	MaxWindow = 128 << 20
	// CacheSize bounds the cache of decoded frames: four frames or CacheSize
	// bytes, whichever is smaller, but at least one frame.
	CacheSize = 256 << 20
)

const (
	frameMagic     = 0xFD2FB528
	skippableMagic = 0x184D2A50 // low four bits vary
	seekTableMagic = 0x184D2A5E
	seekableMagic  = 0x8F92EAB1
	footerLen      = 9
)

// Format lets image.Open recognise zstd files.
var Format = image.Format{Name: "zstd", Probe: Probe}

// NewFormat returns a Format whose images spool with the given options.
func NewFormat(opts ...spool.Option) image.Format {
	return image.Format{Name: "zstd", Probe: func(r io.ReaderAt, size int64) (image.Image, error) {
		return probe(r, size, opts)
	}}
}

// Probe recognises a zstd file by its first magic number and opens it with
// New; other content gives an error wrapping image.ErrWrongType.
func Probe(r io.ReaderAt, size int64) (image.Image, error) { return probe(r, size, nil) }

func probe(r io.ReaderAt, size int64, opts []spool.Option) (image.Image, error) {
	var m [4]byte
	if size < 8 {
		return nil, image.ErrWrongType
	}
	if _, err := r.ReadAt(m[:], 0); err != nil {
		return nil, fmt.Errorf("zstd: reading the header: %w", err)
	}
	v := binary.LittleEndian.Uint32(m[:])
	if v != frameMagic && v&^0xF != skippableMagic {
		return nil, image.ErrWrongType
	}
	return New(r, size, opts...)
}

// Image is a decompressed zstd file. Its methods may be called from several
// goroutines at once.
type Image struct {
	r      io.ReaderAt
	size   int64 // compressed
	frames []frame
	usize  int64
	sums   bool
	blocks *spool.Blocks // seekable: random access by frame
	sp     *spool.Image  // otherwise: spooled

	decOnce  sync.Once
	dec      *zstd.Decoder
	decErr   error
	srcs     sync.Pool // of *[]byte: compressed frames being decoded
	zeroSums zeroSums
}

type frame struct {
	off   int64 // compressed offset
	clen  int64
	ulen  int64
	check uint32
}

var (
	_ image.Image    = (*Image)(nil)
	_ spool.Streamer = (*Image)(nil)
)

func formatErr(off int64, format string, args ...any) error {
	return &image.FormatError{Format: "zstd", Off: off, Msg: fmt.Sprintf(format, args...)}
}

// New returns the image of the zstd file r (size bytes). A seekable file
// has its seek table read and checked here; other files decompress lazily.
func New(r io.ReaderAt, size int64, opts ...spool.Option) (*Image, error) {
	return newImage(r, size, MaxIndexedFrame, opts)
}

func newImage(r io.ReaderAt, size, maxFrame int64, opts []spool.Option) (*Image, error) {
	z := &Image{r: r, size: size}
	seekableFile, err := z.readSeekTable()
	if err != nil {
		return nil, err
	}
	// imgtool's own files declare their size in a first skippable frame.
	head := make([]byte, sizemark.ZstdFrameLen)
	declared, marked := int64(0), false
	if n, _ := r.ReadAt(head, 0); n == len(head) {
		declared, marked = sizemark.FromZstdStart(head)
	}
	if marked && seekableFile && declared != z.usize {
		return nil, formatErr(0, "the file declares %d bytes but its seek table adds up to %d; the file is damaged", declared, z.usize)
	}
	if marked && !seekableFile {
		opts = append(opts[:len(opts):len(opts)], spool.WithSize(declared))
	}
	// What the zstd tool writes from a file declares each frame's size:
	// the image's size is then known without decoding it.
	if !marked && !seekableFile {
		if n, ok := walkFrames(r, size); ok {
			opts = append(opts[:len(opts):len(opts)], spool.WithSize(n))
		}
	}
	var largest int64
	for _, f := range z.frames {
		largest = max(largest, f.ulen)
	}
	if seekableFile && largest <= maxFrame {
		list := make([]spool.Block, len(z.frames))
		var off int64
		for i, f := range z.frames {
			list[i] = spool.Block{Off: off, Len: f.ulen}
			off += f.ulen
		}
		if _, err := spool.CheckBlocks(list, maxFrame); err != nil {
			return nil, err
		}
		z.blocks = spool.NewBlocks(list, z.decodeFrame, min(4*largest, CacheSize), runtime.GOMAXPROCS(0))
		return z, nil
	}
	if seekableFile {
		opts = append(opts[:len(opts):len(opts)], spool.WithSize(z.usize))
	}
	z.sp = spool.New("zstd", z.stream, opts...)
	return z, nil
}

// readSeekTable reads the seek table if the file ends with one.
func (z *Image) readSeekTable() (bool, error) {
	if z.size < footerLen+8 {
		return false, nil
	}
	var foot [footerLen]byte
	footOff := z.size - footerLen
	if _, err := z.r.ReadAt(foot[:], footOff); err != nil {
		return false, fmt.Errorf("zstd: reading at offset %d: %w", footOff, err)
	}
	if binary.LittleEndian.Uint32(foot[5:]) != seekableMagic {
		return false, nil
	}
	n := int64(binary.LittleEndian.Uint32(foot[:4]))
	desc := foot[4]
	if desc&0x7C != 0 {
		return true, formatErr(footOff+4, "reserved bits of the seek table descriptor set (%#02x)", desc)
	}
	entry := int64(8)
	if desc&0x80 != 0 {
		entry = 12
	}
	if n > MaxFrames {
		return true, formatErr(footOff, "seek table lists %d frames, more than the limit of %d", n, MaxFrames)
	}
	tableLen := 8 + n*entry + footerLen
	tableOff := z.size - tableLen
	if tableOff < 0 {
		return true, formatErr(footOff, "seek table of %d frames is larger than the file", n)
	}
	buf := make([]byte, tableLen)
	if _, err := z.r.ReadAt(buf, tableOff); err != nil {
		return true, fmt.Errorf("zstd: reading at offset %d: %w", tableOff, err)
	}
	if binary.LittleEndian.Uint32(buf) != seekTableMagic || int64(binary.LittleEndian.Uint32(buf[4:])) != tableLen-8 {
		return true, formatErr(tableOff, "no seek table frame header where the footer puts it")
	}
	table, err := seekable.NewSeekTable(buf)
	if err != nil {
		return true, fmt.Errorf("%w: %w", formatErr(tableOff, "bad seek table"), err)
	}
	if table.NumFrames() != n {
		return true, formatErr(tableOff, "seek table holds %d frames, its footer says %d", table.NumFrames(), n)
	}
	z.sums = table.HasChecksums()
	z.frames = make([]frame, 0, n)
	var coff int64
	for i := range n {
		e, ok := table.EntryByID(i)
		if !ok {
			return true, formatErr(tableOff+8+i*entry, "seek table entry %d missing", i)
		}
		f := frame{off: coff, clen: int64(e.CompressedSize), ulen: int64(e.DecompressedSize), check: e.Checksum}
		if f.clen == 0 && f.ulen != 0 {
			return true, formatErr(tableOff+8+i*entry, "seek table entry %d has no compressed data", i)
		}
		coff += f.clen
		if coff > tableOff {
			return true, formatErr(tableOff+8+i*entry, "frames listed in the seek table are larger than the file")
		}
		z.usize += f.ulen
		z.frames = append(z.frames, f)
	}
	if coff != tableOff {
		return true, formatErr(coff, "seek table accounts for %d bytes of frames, the file holds %d", coff, tableOff)
	}
	return true, nil
}

// Format returns "zstd".
func (z *Image) Format() string { return "zstd" }

// Seekable reports whether ReadAt decodes frames at random (true) or goes
// through a temporary file (false).
func (z *Image) Seekable() bool { return z.blocks != nil }

// Size returns the decompressed size: from the seek table when there is
// one, otherwise after spooling (0 if that fails).
func (z *Image) Size() int64 {
	if z.blocks != nil {
		return z.usize
	}
	return z.sp.Size()
}

// ReadAt reads decompressed bytes.
func (z *Image) ReadAt(p []byte, off int64) (int, error) {
	if z.blocks != nil {
		return z.blocks.ReadAt(p, off)
	}
	return z.sp.ReadAt(p, off)
}

// Extents returns one Data extent for a seekable file; a spooled one
// reports the zero chunks it found.
func (z *Image) Extents() ([]image.Extent, error) {
	if z.blocks != nil {
		if z.usize == 0 {
			return []image.Extent{}, nil
		}
		return []image.Extent{{Off: 0, Len: z.usize, Kind: image.Data}}, nil
	}
	return z.sp.Extents()
}

// Stream decompresses the whole image from the start.
func (z *Image) Stream() (io.ReadCloser, error) {
	if z.blocks != nil {
		return z.blocks.Stream(), nil
	}
	return z.sp.Stream()
}

// Close releases the decoder and the temporary file, if any. It does not
// close r.
func (z *Image) Close() error {
	if z.dec != nil {
		z.dec.Close()
	}
	if z.sp != nil {
		return z.sp.Close()
	}
	return nil
}

// decodeFrame decodes frame i into dst.
func (z *Image) decodeFrame(i int, dst []byte) error {
	z.decOnce.Do(func() {
		z.dec, z.decErr = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithDecoderMaxMemory(MaxIndexedFrame),
			zstd.WithDecodeAllCapLimit(true))
	})
	if z.decErr != nil {
		return z.decErr
	}
	f := z.frames[i]
	bp, _ := z.srcs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer z.srcs.Put(bp)
	if int64(cap(*bp)) < f.clen {
		*bp = make([]byte, f.clen)
	}
	src := (*bp)[:f.clen]
	if _, err := z.r.ReadAt(src, f.off); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return formatErr(f.off, "frame %d runs past the end of the file", i)
		}
		return fmt.Errorf("zstd: reading at offset %d: %w", f.off, err)
	}
	// A frame of raw and RLE blocks only (free space: zeros) is copied or
	// filled here; its checksum is then computed here too.
	if stored, has, zeros, ok := decodeSimpleZeros(src, dst); ok {
		if !has && !z.sums {
			return nil
		}
		var sum uint32
		if zeros {
			sum = z.zeroSums.sum(dst)
		} else {
			sum = contentSum(dst)
		}
		if (has && sum != stored) || (z.sums && sum != f.check) {
			return fmt.Errorf("%w: %w", formatErr(f.off, "frame %d checksum mismatch", i), ErrChecksum)
		}
		return nil
	}
	out, err := z.dec.DecodeAll(src, dst[:0])
	if err != nil {
		return fmt.Errorf("%w: %w", formatErr(f.off, "frame %d is corrupt", i), err)
	}
	if len(out) != len(dst) || (len(out) > 0 && &out[0] != &dst[0]) {
		return formatErr(f.off, "frame %d decodes to %d bytes, the seek table gives %d", i, len(out), len(dst))
	}
	if !z.sums {
		return nil
	}
	// The decoder checked the frame's own checksum, the same function of
	// the same bytes as the seek table's: comparing the two stored values
	// spares hashing the frame again.
	sum, has := uint32(0), false
	if h, ok := parseFrameHeader(src); ok && h.checksum && len(src) >= h.len+4 {
		sum, has = binary.LittleEndian.Uint32(src[len(src)-4:]), true
	}
	if !has {
		sum = contentSum(dst)
	}
	if sum != f.check {
		return fmt.Errorf("%w: %w", formatErr(f.off, "frame %d checksum mismatch", i), ErrChecksum)
	}
	return nil
}

// ErrChecksum is wrapped when a frame's checksum in the seek table does
// not match its decoded data.
var ErrChecksum = errors.New("zstd: checksum mismatch")

// stream decodes every frame in order.
func (z *Image) stream() (io.ReadCloser, error) {
	cr := &countReader{r: io.NewSectionReader(z.r, 0, z.size)}
	br := bufio.NewReaderSize(cr, 256<<10)
	dec, err := zstd.NewReader(newRLEAsRaw(br), zstd.WithDecoderMaxWindow(MaxWindow), zstd.WithDecoderConcurrency(min(4, runtime.GOMAXPROCS(0))))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return &streamReader{dec: dec, cr: cr, br: br}, nil
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

type streamReader struct {
	dec *zstd.Decoder
	cr  *countReader
	br  *bufio.Reader
	err error
}

func (s *streamReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.dec.Read(p)
	if err != nil && err != io.EOF {
		off := s.cr.n - int64(s.br.Buffered())
		msg := "decompression failed"
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
			msg = "compressed data ends early (file truncated)"
		case errors.Is(err, zstd.ErrWindowSizeExceeded):
			msg = fmt.Sprintf("frame needs a window larger than %d MiB; decompress it first with zstd -d --long=31", MaxWindow>>20)
		}
		err = fmt.Errorf("%w: %w", formatErr(off, "%s", msg), err)
	}
	s.err = err
	return n, err
}

func (s *streamReader) Close() error {
	s.dec.Close()
	if s.err == nil {
		s.err = errors.New("zstd: stream closed")
	}
	return nil
}

// Spool decompresses the image into its temporary file now when it cannot
// be read at random (a stream without an index), so that damage shows up
// as an error here rather than as a short image later; it does nothing for
// an image read at random.
func (z *Image) Spool() error {
	if z.sp == nil {
		return nil
	}
	return z.sp.Spool()
}

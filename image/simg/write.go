package simg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"imgtool/image"
	"imgtool/image/internal/vdisk"
)

// errTooMuch is returned by Write when more bytes come than the Data
// extents hold.
var errTooMuch = vdisk.ErrTooMuch("simg")

// Writer defaults.
const (
	DefaultBlockSize = 4096
	maxRawBlocks     = 32768 // blocks of one RAW chunk at most
)

// WriterOption configures a Writer.
type WriterOption func(*writerOptions)

type writerOptions struct {
	blockSize int64
}

// WithBlockSize sets the block size, a multiple of 4 that divides the
// disk size. The default is 4096 bytes, or for a disk whose size is not a
// multiple of 4096 the largest power of two that divides it.
func WithBlockSize(n int64) WriterOption {
	return func(o *writerOptions) { o.blockSize = n }
}

// Writer writes an Android sparse image sequentially. Create it with
// NewWriter, send the bytes of the Data extents with Write, finish with
// Close.
type Writer struct {
	w    io.Writer
	wa   io.WriterAt // nil: stream mode, no FILL chunks
	size int64
	blk  int64
	runs [][2]int64 // blocks touched by Data extents
	ri   int        // run of the next block

	header Header
	next   int64     // first block not yet covered by a chunk
	open   ChunkType // chunk being written: ChunkRaw, ChunkFill or 0
	start  int64     // its first block
	n      int64     // its blocks so far
	hdrPos int64     // file offset of an open RAW chunk's header
	chunks uint32

	pos    int64
	asm    vdisk.Assembler
	spare  []byte
	err    error
	closed bool
}

// NewWriter starts a sparse image of size bytes on w. extents must cover
// [0, size) in order: the bytes of the Data extents follow through Write,
// Zero extents read back as zeros without being sent (DONT_CARE chunks).
func NewWriter(w io.Writer, size int64, extents []image.Extent, opts ...WriterOption) (*Writer, error) {
	var o writerOptions
	for _, opt := range opts {
		opt(&o)
	}
	blk := o.blockSize
	if blk == 0 {
		for blk = DefaultBlockSize; blk > 4 && size%blk != 0; blk /= 2 {
		}
	}
	if blk < 4 || blk%4 != 0 || blk > maxBlockSize || size%blk != 0 {
		return nil, fmt.Errorf("simg: block size %d must be a multiple of 4 up to 64 MiB that divides the disk size %d", blk, size)
	}
	if size/blk > math.MaxUint32 {
		return nil, fmt.Errorf("simg: %d blocks of %d bytes exceed the format's 2^32 blocks", size/blk, blk)
	}
	data, total, err := vdisk.CheckExtents("simg", extents, size)
	if err != nil {
		return nil, err
	}
	s := &Writer{w: w, size: size, blk: blk, runs: vdisk.UnitRuns(data, blk)}
	if wa, base := vdisk.FileTarget(w); wa != nil {
		s.wa = vdisk.OffsetWriterAt{W: wa, Base: base}
	}
	s.header = Header{
		Magic:        Magic,
		MajorVersion: MajorVersion,
		FileHdrSz:    HeaderSize,
		ChunkHdrSz:   ChunkHeaderSize,
		BlkSz:        uint32(blk),
		TotalBlks:    uint32(size / blk),
	}
	if s.wa == nil {
		// Stream: the chunks follow from the extents alone.
		end := int64(0)
		for _, r := range s.runs {
			if r[0] > end {
				s.header.TotalChunks++
			}
			s.header.TotalChunks += uint32((r[1] - r[0] + maxRawBlocks) / maxRawBlocks)
			end = r[1] + 1
		}
		if end < size/blk {
			s.header.TotalChunks++
		}
	}
	if err := s.put(s.headerBytes()); err != nil {
		return nil, err
	}
	s.asm.Init("simg", errTooMuch, data, total, blk, s.newBuf, s.emit)
	return s, nil
}

func (s *Writer) headerBytes() []byte {
	b := make([]byte, HeaderSize)
	if _, err := binary.Encode(b, binary.LittleEndian, &s.header); err != nil {
		panic(err) // the buffer is the size of the struct
	}
	return b
}

func chunkHeader(t ChunkType, blocks, total int64) []byte {
	b := make([]byte, ChunkHeaderSize)
	binary.LittleEndian.PutUint16(b, uint16(t))
	binary.LittleEndian.PutUint32(b[4:], uint32(blocks))
	binary.LittleEndian.PutUint32(b[8:], uint32(total))
	return b
}

func (s *Writer) newBuf() []byte {
	if b := s.spare; b != nil {
		s.spare = nil
		clear(b)
		return b
	}
	return make([]byte, s.blk)
}

// put appends b to the output.
func (s *Writer) put(b []byte) error {
	n, err := s.w.Write(b)
	s.pos += int64(n)
	if err != nil {
		return fmt.Errorf("simg: writing at offset %#x: %w", s.pos, err)
	}
	return nil
}

// closeChunk ends the open chunk: a RAW chunk's header gets its length (in
// file mode), a FILL chunk is written whole.
func (s *Writer) closeChunk() error {
	t := s.open
	s.open = 0
	switch t {
	case ChunkRaw:
		s.chunks++
		if s.wa == nil {
			return nil
		}
		h := chunkHeader(ChunkRaw, s.n, ChunkHeaderSize+s.n*s.blk)
		if _, err := s.wa.WriteAt(h, s.hdrPos); err != nil {
			return fmt.Errorf("simg: writing a chunk header at offset %#x: %w", s.hdrPos, err)
		}
	case ChunkFill:
		s.chunks++
		return s.put(append(chunkHeader(ChunkFill, s.n, ChunkHeaderSize+4), 0, 0, 0, 0))
	}
	return nil
}

// skipTo covers the blocks before b with a DONT_CARE chunk.
func (s *Writer) skipTo(b int64) error {
	if b <= s.next {
		return nil
	}
	if err := s.closeChunk(); err != nil {
		return err
	}
	s.chunks++
	err := s.put(chunkHeader(ChunkDontCare, b-s.next, ChunkHeaderSize))
	s.next = b
	return err
}

// emit stores block b.
func (s *Writer) emit(b int64, buf []byte) error {
	defer func() { s.spare = buf }()
	if err := s.skipTo(b); err != nil {
		return err
	}
	s.next = b + 1
	t := ChunkRaw
	if s.wa != nil && vdisk.IsZero(buf) {
		t = ChunkFill
	}
	if s.open == t && s.n < maxRawBlocks && (t == ChunkFill || s.wa != nil) {
		s.n++
		if t == ChunkRaw {
			return s.put(buf)
		}
		return nil
	}
	if s.open == ChunkRaw && s.wa == nil && s.n < s.planned(s.start) {
		s.n++
		return s.put(buf)
	}
	if err := s.closeChunk(); err != nil {
		return err
	}
	s.open, s.start, s.n = t, b, 1
	if t == ChunkFill {
		return nil
	}
	s.hdrPos = s.pos
	n := int64(1)
	if s.wa == nil {
		n = s.planned(b)
	}
	if err := s.put(chunkHeader(ChunkRaw, n, ChunkHeaderSize+n*s.blk)); err != nil {
		return err
	}
	return s.put(buf)
}

// planned returns the blocks of the RAW chunk that starts at block b in
// stream mode: the rest of b's touched run, at most maxRawBlocks.
func (s *Writer) planned(b int64) int64 {
	for s.ri < len(s.runs) && s.runs[s.ri][1] < b {
		s.ri++
	}
	r := s.runs[s.ri]
	return min(r[1]-b+1, maxRawBlocks-(b-r[0])%maxRawBlocks)
}

// Write takes the next bytes of the Data extents, in order.
func (s *Writer) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.closed {
		return 0, errors.New("simg: write after Close")
	}
	n, err := s.asm.Write(p)
	if err != nil && s.err == nil {
		s.err = err
	}
	return n, err
}

// Close writes the last chunks and, for output written to a file, the
// header's chunk count. It does not close the underlying writer.
func (s *Writer) Close() error {
	if s.closed {
		return s.err
	}
	s.closed = true
	if s.err != nil {
		return s.err
	}
	err := s.asm.Finish()
	if err == nil {
		err = s.skipTo(s.size / s.blk)
	}
	if err == nil {
		err = s.closeChunk()
	}
	if err == nil {
		if s.wa != nil {
			s.header.TotalChunks = s.chunks
			if _, werr := s.wa.WriteAt(s.headerBytes(), 0); werr != nil {
				err = fmt.Errorf("simg: writing the header: %w", werr)
			}
		} else if s.chunks != s.header.TotalChunks {
			err = fmt.Errorf("simg: wrote %d chunks, the header says %d", s.chunks, s.header.TotalChunks)
		}
	}
	if err != nil {
		s.err = err
	}
	return err
}

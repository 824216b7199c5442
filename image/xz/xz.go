// Package xz reads disk images compressed with xz (.img.xz), with random
// access where the file allows it.
//
// # Scope
//
// The container is parsed here from its end: stream footers, indexes and
// headers of every concatenated stream, with stream padding between and
// after them. Each block is decoded on its own, and its length, padding and
// integrity check (None, CRC32, CRC64 or SHA-256) are verified against the
// header and the index before its data counts as read. Blocks read at
// random are decoded by this package's LZMA2 decoder (lzma2.go) straight
// into their buffer, which serves as the dictionary; blocks read in order
// by Stream, and blocks whose compressed data is much larger than their
// size, go through the LZMA2 reader of github.com/ulikunitz/xz/lzma.
//
// Files cut into many blocks (what xz -T0 writes, as do Raspberry Pi OS
// downloads) are read at random: ReadAt decodes only the blocks it touches,
// keeping a few in a small cache, and decodes the blocks a large read covers
// whole in parallel, straight into the caller's buffer. Files with a block
// larger than MaxIndexedBlock (a single-block file made by plain xz, unless
// small) cannot be read at random without decoding from the start: their
// random access goes through a temporary file (package image/spool), made
// on the first ReadAt or Extents. Size never needs it: the index gives it.
//
// Every Image returned here also implements spool.Streamer: Stream decodes
// the whole image in order without a temporary file, blocks in parallel
// when there are several.
//
// # Limits
//
// Only blocks whose filter chain is LZMA2 alone are supported (what xz
// writes for disk images); a BCJ or Delta filter is refused with an error
// naming it. LZMA2 dictionaries are capped at MaxDictSize. Extents reports
// the whole image as data: xz records nothing about zeros.
//
// Specification: The .xz File Format, version 1.2.1,
// https://tukaani.org/xz/xz-file-format.txt.
//
// # Security
//
// Files are untrusted. The index is bounded by MaxIndexSize and MaxBlocks,
// stream padding and streams by the file size and MaxStreams; every size
// from the index is checked against the file before use and every block
// against its header. Memory for decoded blocks is bounded by the cache
// budget (CacheSize, at least one block) plus one block per worker, each at
// most MaxIndexedBlock; dictionaries by the block size and MaxDictSize.
// Damage is reported as an *image.FormatError naming the offset in the
// compressed file.
package xz

import (
	"crypto/sha256"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"imgtool/image"
	"imgtool/image/spool"
	"imgtool/internal/zero"
)

// MaxIndexedBlock is the largest block that is decoded into memory for
// random access; a file with a larger block spools instead.
const MaxIndexedBlock = 64 << 20

// CacheSize bounds the memory of the cache of decoded blocks: four blocks or
// CacheSize bytes, whichever is smaller, but always at least one block.
const CacheSize = 256 << 20

// Format lets image.Open recognise xz files.
var Format = image.Format{Name: "xz", Probe: Probe}

// NewFormat returns a Format whose images spool with the given options
// (temporary folder, progress).
func NewFormat(opts ...spool.Option) image.Format {
	return image.Format{Name: "xz", Probe: func(r io.ReaderAt, size int64) (image.Image, error) {
		return probe(r, size, opts)
	}}
}

// Probe recognises an xz file by its stream header magic and opens it with
// New; other content gives an error wrapping image.ErrWrongType.
func Probe(r io.ReaderAt, size int64) (image.Image, error) {
	return probe(r, size, nil)
}

func probe(r io.ReaderAt, size int64, opts []spool.Option) (image.Image, error) {
	var m [6]byte
	if size < int64(len(m)) {
		return nil, image.ErrWrongType
	}
	if _, err := r.ReadAt(m[:], 0); err != nil {
		return nil, readErr(0, err)
	}
	if m != HeaderMagic {
		return nil, image.ErrWrongType
	}
	return New(r, size, opts...)
}

// Image is a decompressed xz file. Its methods may be called from several
// goroutines at once.
type Image struct {
	r      io.ReaderAt
	ix     *index
	blocks *spool.Blocks // random access by block, or nil
	sp     *spool.Image  // random access by spooling, or nil

	zmu     sync.Mutex
	zeros   map[blockKey]bool // small blocks known to decode to zeros
	decoded atomic.Int64      // blocks run through the LZMA2 decoder
}

// blockKey identifies a block by its bytes. Blocks are decoded on their
// own (each starts with a dictionary and state reset), so byte-identical
// blocks decode to the same data: the many blocks of free space in a disk
// image, identical once compressed, are decoded once.
type blockKey struct {
	sum  [sha256.Size]byte // of header, compressed data and check
	ulen int64
}

// maxKeyedBlock is the largest block (as stored) looked up by its bytes;
// an all-zero block of any size is a few kilobytes once compressed.
const maxKeyedBlock = 64 << 10

// maxZeroKeys bounds the remembered zero blocks.
const maxZeroKeys = 4096

var (
	_ image.Image    = (*Image)(nil)
	_ spool.Streamer = (*Image)(nil)
)

// New reads the container structure of the xz file r (size bytes) and
// returns its image. Options configure the temporary file used when the
// file has blocks too large to be read at random.
func New(r io.ReaderAt, size int64, opts ...spool.Option) (*Image, error) {
	return newImage(r, size, MaxIndexedBlock, opts)
}

func newImage(r io.ReaderAt, size, maxBlock int64, opts []spool.Option) (*Image, error) {
	ix, err := readIndex(r, size)
	if err != nil {
		return nil, err
	}
	img := &Image{r: r, ix: ix}
	var largest int64
	for _, b := range ix.blocks {
		largest = max(largest, b.ulen)
	}
	if largest <= maxBlock {
		list := make([]spool.Block, len(ix.blocks))
		for i, b := range ix.blocks {
			list[i] = spool.Block{Off: b.uoff, Len: b.ulen}
		}
		if _, err := spool.CheckBlocks(list, maxBlock); err != nil {
			return nil, err
		}
		budget := min(4*largest, CacheSize)
		img.blocks = spool.NewBlocks(list, img.decodeBlock, budget, runtime.GOMAXPROCS(0))
	} else {
		opts = append(opts[:len(opts):len(opts)], spool.WithSize(ix.size))
		img.sp = spool.New("xz", img.stream, opts...)
	}
	return img, nil
}

// Format returns "xz".
func (x *Image) Format() string { return "xz" }

// Size returns the decompressed size given by the index.
func (x *Image) Size() int64 { return x.ix.size }

// Blocks returns the number of blocks, across all streams.
func (x *Image) Blocks() int { return len(x.ix.blocks) }

// Streams returns the number of concatenated streams.
func (x *Image) Streams() int { return x.ix.streams }

// Indexed reports whether ReadAt decodes blocks at random (true) or goes
// through a temporary file (false).
func (x *Image) Indexed() bool { return x.blocks != nil }

// Seekable reports the same as Indexed, for readers (flash) that read a
// seekable image by ReadAt, several pieces at once, and stream the others.
func (x *Image) Seekable() bool { return x.blocks != nil }

// ReadAt reads decompressed bytes.
func (x *Image) ReadAt(p []byte, off int64) (int, error) {
	if x.blocks != nil {
		return x.blocks.ReadAt(p, off)
	}
	return x.sp.ReadAt(p, off)
}

// Extents returns one Data extent for an indexed file; a spooled one
// reports the zero chunks it found.
func (x *Image) Extents() ([]image.Extent, error) {
	if x.blocks != nil {
		if x.ix.size == 0 {
			return []image.Extent{}, nil
		}
		return []image.Extent{{Off: 0, Len: x.ix.size, Kind: image.Data}}, nil
	}
	return x.sp.Extents()
}

// Stream decodes the whole image from the start.
func (x *Image) Stream() (io.ReadCloser, error) {
	if x.blocks != nil {
		return x.blocks.Stream(), nil
	}
	return x.stream()
}

// Close releases the temporary file, if any. It does not close r.
func (x *Image) Close() error {
	if x.sp != nil {
		return x.sp.Close()
	}
	return nil
}

// decodeBlock decodes block i into dst. A small block byte-identical to
// one that decoded to zeros is filled with zeros without decoding.
func (x *Image) decodeBlock(i int, dst []byte) error {
	b := x.ix.blocks[i]
	var key blockKey
	keyed := false
	if b.unpadded <= maxKeyedBlock {
		raw := make([]byte, b.unpadded)
		if _, err := x.r.ReadAt(raw, b.off); err == nil {
			key, keyed = blockKey{sha256.Sum256(raw), b.ulen}, true
			x.zmu.Lock()
			hit := x.zeros[key]
			x.zmu.Unlock()
			if hit {
				clear(dst)
				return nil
			}
		}
	}
	if err := x.decodeBlockData(i, dst); err != nil {
		return err
	}
	if keyed && zero.Is(dst) {
		x.zmu.Lock()
		if x.zeros == nil {
			x.zeros = map[blockKey]bool{}
		}
		if len(x.zeros) < maxZeroKeys {
			x.zeros[key] = true
		}
		x.zmu.Unlock()
	}
	return nil
}

// decodeBlockData decodes block i into dst and checks its length, padding
// and integrity check.
func (x *Image) decodeBlockData(i int, dst []byte) error {
	x.decoded.Add(1)
	if ok, err := decodeBlockInto(x.r, x.ix.blocks[i], dst); ok {
		return err
	}
	br, err := openBlock(x.r, x.ix.blocks[i])
	if err != nil {
		return err
	}
	if _, err := io.ReadFull(br, dst); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			// blockReader reports short data itself; this is a safeguard.
			return formatErr(x.ix.blocks[i].off, "block decodes to fewer bytes than the index gives")
		}
		return err
	}
	var one [1]byte
	n, err := br.Read(one[:])
	if n != 0 || err == nil {
		return formatErr(x.ix.blocks[i].off, "block decodes to more than the %d bytes the index gives", len(dst))
	}
	if err != io.EOF {
		return err
	}
	return nil
}

// stream returns a sequential reader of every block in order.
func (x *Image) stream() (io.ReadCloser, error) {
	return &seqReader{x: x}, nil
}

type seqReader struct {
	x    *Image
	next int
	cur  io.Reader
	err  error
}

func (s *seqReader) Read(p []byte) (int, error) {
	for s.err == nil {
		if s.cur == nil {
			if s.next >= len(s.x.ix.blocks) {
				s.err = io.EOF
				break
			}
			s.cur, s.err = openBlock(s.x.r, s.x.ix.blocks[s.next])
			s.next++
			continue
		}
		n, err := s.cur.Read(p)
		if err == io.EOF {
			s.cur = nil
			err = nil
		}
		s.err = err
		if n > 0 || len(p) == 0 {
			return n, nil
		}
	}
	return 0, s.err
}

func (s *seqReader) Close() error {
	if s.err == nil {
		s.err = errors.New("xz: stream closed")
	}
	return nil
}

// Spool decompresses the image into its temporary file now when it cannot
// be read at random (a stream without an index), so that damage shows up
// as an error here rather than as a short image later; it does nothing for
// an image read at random.
func (x *Image) Spool() error {
	if x.sp == nil {
		return nil
	}
	return x.sp.Spool()
}

// Package simg reads Android sparse images (the format of img2simg and
// fastboot) as random-access disks.
//
// # Scope
//
// New walks the chunk list once and builds an index, so that ReadAt is
// random access: RAW chunks are read from the file, FILL chunks repeat
// their 32-bit value, DONT_CARE chunks read as zeros. When the file holds
// CRC32 chunks, New checks each against the CRC32 of the disk up to that
// point (DONT_CARE blocks counted as zeros, as libsparse does), reading the
// disk once. Extents reports RAW chunks and FILL chunks of a non-zero value
// as image.Data, DONT_CARE chunks and zero FILL chunks as image.Zero.
//
// # Limits
//
// Only major version 1 exists and is read. The header's image checksum
// field is not checked (libsparse does not set it).
//
// # Writing
//
// NewWriter writes a sparse image sequentially, never reading the output
// back nor moving its offset: blocks touched by Data extents as RAW
// chunks, the others as DONT_CARE chunks. The header's chunk count must
// come first, so all-zero blocks inside Data extents become FILL chunks
// only when the output is a file (an io.WriterAt): Close then rewrites
// the header and each RAW chunk header gets its length with WriteAt. To a
// stream (a pipe), every touched block is RAW.
//
// The format is defined by AOSP's system/core/libsparse/sparse_format.h.
//
// # Security
//
// Images are untrusted. The chunk walk is bounded by the declared chunk
// count and the file size, the index by 4 194 304 chunks, the block size by
// 64 MiB; every chunk must fit in the file and the chunks must cover
// exactly the declared number of blocks. Malformed structures are reported
// as *image.FormatError naming the file offset; nothing panics.
//
// ReadAt and Extents are safe for concurrent use.
package simg

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"sort"

	"imgtool/image"
)

// Format lets image.Open recognise Android sparse images.
var Format = image.Format{Name: "simg", Probe: Probe}

// ChunkType is the type of a chunk.
type ChunkType uint16

// Chunk types.
const (
	ChunkRaw      ChunkType = 0xcac1 // data follows
	ChunkFill     ChunkType = 0xcac2 // a 32-bit value fills the blocks
	ChunkDontCare ChunkType = 0xcac3 // blocks not stored; read as zeros
	ChunkCRC32    ChunkType = 0xcac4 // CRC32 of the disk so far
)

// String returns "raw", "fill", "dont-care", "crc32" or "unknown(0xNNNN)".
func (c ChunkType) String() string {
	switch c {
	case ChunkRaw:
		return "raw"
	case ChunkFill:
		return "fill"
	case ChunkDontCare:
		return "dont-care"
	case ChunkCRC32:
		return "crc32"
	}
	return fmt.Sprintf("unknown(%#04x)", uint16(c))
}

// chunk is one index entry: disk bytes [off, next chunk's off).
type chunk struct {
	off  int64     // disk offset
	arg  int64     // RAW: file offset of the data; FILL: the value
	typ  ChunkType // RAW, FILL or DONT_CARE
	hdr  int64     // file offset of the chunk header, for errors
	size int64     // disk bytes
}

// Image is an open Android sparse image. Create it with New.
type Image struct {
	// Header is the file header.
	Header Header

	r        io.ReaderAt
	fileSize int64
	size     int64
	chunks   []chunk
}

var _ image.Image = (*Image)(nil)

// Probe returns the sparse image in r, or an error wrapping
// image.ErrWrongType when r does not start with the sparse magic.
func Probe(r io.ReaderAt, size int64) (image.Image, error) {
	var m [4]byte
	if size < 4 {
		return nil, fmt.Errorf("simg: %w", image.ErrWrongType)
	}
	if _, err := r.ReadAt(m[:], 0); err != nil || binary.LittleEndian.Uint32(m[:]) != Magic {
		return nil, fmt.Errorf("simg: %w", image.ErrWrongType)
	}
	return New(r, size)
}

func formatErr(off int64, format string, args ...any) error {
	return &image.FormatError{Format: "simg", Off: off, Msg: fmt.Sprintf(format, args...)}
}

func readFull(r io.ReaderAt, p []byte, off, fileSize int64, what string) error {
	if off < 0 || off > fileSize || int64(len(p)) > fileSize-off {
		return formatErr(off, "%s (%d bytes) extends beyond the end of the file (%d bytes)", what, len(p), fileSize)
	}
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		return formatErr(off+int64(n), "%s: file ends early", what)
	}
	return fmt.Errorf("simg: reading %s at offset %#x: %w", what, off, err)
}

// New reads the sparse image in r, which is size bytes long.
func New(r io.ReaderAt, size int64) (*Image, error) {
	var hb [HeaderSize]byte
	if err := readFull(r, hb[:], 0, size, "header"); err != nil {
		return nil, err
	}
	d := &Image{r: r, fileSize: size}
	h := &d.Header
	if _, err := binary.Decode(hb[:], binary.LittleEndian, h); err != nil {
		return nil, formatErr(0, "header: %v", err)
	}
	switch {
	case h.Magic != Magic:
		return nil, formatErr(0, "bad magic %#08x", h.Magic)
	case h.MajorVersion != MajorVersion:
		return nil, formatErr(4, "major version %d, only 1 exists", h.MajorVersion)
	case h.FileHdrSz < HeaderSize:
		return nil, formatErr(8, "file header size %d below %d", h.FileHdrSz, HeaderSize)
	case h.ChunkHdrSz < ChunkHeaderSize:
		return nil, formatErr(10, "chunk header size %d below %d", h.ChunkHdrSz, ChunkHeaderSize)
	case h.BlkSz == 0 || h.BlkSz%4 != 0 || h.BlkSz > maxBlockSize:
		return nil, formatErr(12, "block size %d not a multiple of 4 up to 64 MiB", h.BlkSz)
	}
	bs := int64(h.BlkSz)
	d.size = int64(h.TotalBlks) * bs
	chdr := int64(h.ChunkHdrSz)
	if int64(h.TotalChunks) > (size-int64(h.FileHdrSz))/chdr+1 {
		return nil, formatErr(20, "%d chunks cannot fit in a file of %d bytes", h.TotalChunks, size)
	}
	if h.TotalChunks > maxChunks {
		return nil, formatErr(20, "%d chunks, more than the limit of %d", h.TotalChunks, maxChunks)
	}
	d.chunks = make([]chunk, 0, h.TotalChunks)
	pos := int64(h.FileHdrSz)
	var disk int64
	hasCRC := false
	var ch ChunkHeader
	cb := make([]byte, ChunkHeaderSize)
	for i := uint32(0); i < h.TotalChunks; i++ {
		if err := readFull(r, cb, pos, size, fmt.Sprintf("chunk %d header", i)); err != nil {
			return nil, err
		}
		if _, err := binary.Decode(cb, binary.LittleEndian, &ch); err != nil {
			return nil, formatErr(pos, "chunk header: %v", err)
		}
		total := int64(ch.TotalSz)
		n := int64(ch.ChunkSz) * bs
		var body int64 // bytes after the chunk header
		switch ch.ChunkType {
		case ChunkRaw:
			body = n
		case ChunkFill, ChunkCRC32:
			body = 4
		case ChunkDontCare:
		default:
			return nil, formatErr(pos, "chunk %d has unknown type %s", i, ch.ChunkType)
		}
		if total != chdr+body {
			return nil, formatErr(pos+8, "%s chunk %d of %d blocks is %d bytes long, want %d", ch.ChunkType, i, ch.ChunkSz, total, chdr+body)
		}
		if total > size-pos {
			return nil, formatErr(pos, "%s chunk %d of %d bytes extends beyond the end of the file", ch.ChunkType, i, total)
		}
		if ch.ChunkType == ChunkCRC32 {
			if ch.ChunkSz != 0 {
				return nil, formatErr(pos+4, "crc32 chunk %d covers %d blocks, want 0", i, ch.ChunkSz)
			}
			hasCRC = true
		} else if ch.ChunkSz != 0 {
			if n > d.size-disk {
				return nil, formatErr(pos+4, "chunk %d ends beyond the %d blocks the header declares", i, h.TotalBlks)
			}
			c := chunk{off: disk, typ: ch.ChunkType, hdr: pos, size: n}
			switch ch.ChunkType {
			case ChunkRaw:
				c.arg = pos + chdr
			case ChunkFill:
				var v [4]byte
				if err := readFull(r, v[:], pos+chdr, size, "fill value"); err != nil {
					return nil, err
				}
				c.arg = int64(binary.LittleEndian.Uint32(v[:]))
				if c.arg == 0 {
					c.typ = ChunkDontCare
				}
			}
			// Merge with the previous chunk where nothing changes.
			if l := len(d.chunks); l > 0 && d.chunks[l-1].typ == c.typ && c.typ != ChunkRaw &&
				(c.typ == ChunkDontCare || d.chunks[l-1].arg == c.arg) {
				d.chunks[l-1].size += n
			} else {
				d.chunks = append(d.chunks, c)
			}
			disk += n
		}
		pos += total
	}
	if disk != d.size {
		return nil, formatErr(pos, "chunks cover %d blocks, the header declares %d: file truncated?", disk/bs, h.TotalBlks)
	}
	if hasCRC {
		if err := d.verifyCRC(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// verifyCRC walks the chunk list again and checks every CRC32 chunk
// against the CRC32 of the disk before it.
func (d *Image) verifyCRC() error {
	h := &d.Header
	bs := int64(h.BlkSz)
	chdr := int64(h.ChunkHdrSz)
	pos := int64(h.FileHdrSz)
	var disk int64
	var crc uint32
	buf := make([]byte, 1<<20)
	cb := make([]byte, ChunkHeaderSize)
	for i := uint32(0); i < h.TotalChunks; i++ {
		if err := readFull(d.r, cb, pos, d.fileSize, "chunk header"); err != nil {
			return err
		}
		typ := ChunkType(binary.LittleEndian.Uint16(cb))
		n := int64(binary.LittleEndian.Uint32(cb[4:])) * bs
		if typ == ChunkCRC32 {
			var v [4]byte
			if err := readFull(d.r, v[:], pos+chdr, d.fileSize, "crc32 value"); err != nil {
				return err
			}
			if want := binary.LittleEndian.Uint32(v[:]); want != crc {
				return formatErr(pos+chdr, "crc32 chunk %d says %#08x, the disk before it has %#08x", i, want, crc)
			}
		}
		for done := int64(0); done < n; {
			k := min(n-done, int64(len(buf)))
			if _, err := d.ReadAt(buf[:k], disk+done); err != nil && err != io.EOF {
				return err
			}
			crc = crc32.Update(crc, crc32.IEEETable, buf[:k])
			done += k
		}
		disk += n
		pos += int64(binary.LittleEndian.Uint32(cb[8:]))
	}
	return nil
}

// Size returns the disk size in bytes (blocks × block size).
func (d *Image) Size() int64 { return d.size }

// Format returns "simg".
func (d *Image) Format() string { return "simg" }

// Close does nothing: the caller owns the reader.
func (d *Image) Close() error { return nil }

// ReadAt reads len(p) bytes of the disk at off. It returns io.EOF when the
// read reaches the end of the disk.
func (d *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("simg: negative offset %d", off)
	}
	if off >= d.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > d.size-off {
		p = p[:d.size-off]
		eof = io.EOF
	}
	i := sort.Search(len(d.chunks), func(i int) bool { return d.chunks[i].off+d.chunks[i].size > off })
	done := 0
	for ; done < len(p) && i < len(d.chunks); i++ {
		c := &d.chunks[i]
		pos := off + int64(done)
		in := pos - c.off
		n := int(min(c.size-in, int64(len(p)-done)))
		dst := p[done : done+n]
		switch c.typ {
		case ChunkRaw:
			if err := readFull(d.r, dst, c.arg+in, d.fileSize, "raw chunk"); err != nil {
				return done, err
			}
		case ChunkFill:
			fill(dst, uint32(c.arg), in)
		default:
			clear(dst)
		}
		done += n
	}
	return done, eof
}

// Extents returns RAW chunks and non-zero FILL chunks as image.Data and
// DONT_CARE and zero FILL chunks as image.Zero, merged and in order.
func (d *Image) Extents() ([]image.Extent, error) {
	var out []image.Extent
	for _, c := range d.chunks {
		k := image.Data
		if c.typ == ChunkDontCare {
			k = image.Zero
		}
		if l := len(out); l > 0 && out[l-1].Kind == k {
			out[l-1].Len += c.size
		} else {
			out = append(out, image.Extent{Off: c.off, Len: c.size, Kind: k})
		}
	}
	return out, nil
}

// fill writes the repeated little-endian value v into dst, which starts at
// byte offset in of the pattern.
func fill(dst []byte, v uint32, in int64) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	n := 0
	for ; n < len(dst) && n < 4; n++ {
		dst[n] = b[(in+int64(n))%4]
	}
	for n < len(dst) {
		n += copy(dst[n:], dst[:n])
	}
}

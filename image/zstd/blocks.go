package zstd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"sync"

	"github.com/cespare/xxhash/v2"
)

// Block types of RFC 8878 section 3.1.1.2.2.
const (
	blockRaw        = 0
	blockRLE        = 1
	blockCompressed = 2
	// maxBlock is the largest decompressed block the format allows.
	maxBlock = 128 << 10
)

// frameHeader is what this package needs from a frame header (RFC 8878
// section 3.1.1.1).
type frameHeader struct {
	len      int   // bytes of magic number and header
	size     int64 // Frame_Content_Size, or -1 when absent
	checksum bool  // a Content_Checksum follows the last block
}

// parseFrameHeader reads the header of the frame starting at b (which
// holds at least the magic number and the descriptor). It returns false
// when b is too short to hold the whole header or the header is invalid.
func parseFrameHeader(b []byte) (frameHeader, bool) {
	if len(b) < 5 || binary.LittleEndian.Uint32(b) != frameMagic {
		return frameHeader{}, false
	}
	fhd := b[4]
	if fhd&0x08 != 0 { // reserved bit
		return frameHeader{}, false
	}
	single := fhd&0x20 != 0
	n := 5
	if !single {
		n++ // Window_Descriptor
	}
	n += [4]int{0, 1, 2, 4}[fhd&3]
	fcsLen := [4]int{0, 2, 4, 8}[fhd>>6]
	if fcsLen == 0 && single {
		fcsLen = 1
	}
	if len(b) < n+fcsLen {
		return frameHeader{}, false
	}
	h := frameHeader{len: n + fcsLen, size: -1, checksum: fhd&0x04 != 0}
	f := b[n:]
	switch fcsLen {
	case 1:
		h.size = int64(f[0])
	case 2:
		h.size = int64(binary.LittleEndian.Uint16(f)) + 256
	case 4:
		h.size = int64(binary.LittleEndian.Uint32(f))
	case 8:
		v := binary.LittleEndian.Uint64(f)
		if v > math.MaxInt64 {
			return frameHeader{}, false
		}
		h.size = int64(v)
	}
	return h, true
}

// maxFrameHeader is the longest frame header: magic, descriptor, window
// descriptor, a four-byte dictionary ID and an eight-byte content size.
const maxFrameHeader = 4 + 1 + 1 + 4 + 8

// decodeSimple decodes a frame made only of raw and RLE blocks into dst
// without the general decoder, which fills RLE blocks a byte at a time.
// It returns ok false, and leaves dst undefined, when the frame holds a
// compressed block or does not have exactly the frame's layout (the
// general decoder then decodes it and reports what is wrong). On ok, sum
// is the frame's stored content checksum when it has one (has true); the
// caller checks it.
func decodeSimple(src, dst []byte) (sum uint32, has, ok bool) {
	sum, has, _, ok = decodeSimpleZeros(src, dst)
	return sum, has, ok
}

// decodeSimpleZeros is decodeSimple that also reports whether every block
// was an RLE block of zeros (so that dst holds only zeros).
func decodeSimpleZeros(src, dst []byte) (sum uint32, has, zeros, ok bool) {
	h, ok := parseFrameHeader(src)
	if !ok || (h.size >= 0 && h.size != int64(len(dst))) {
		return 0, false, false, false
	}
	zeros = true
	p, out := h.len, 0
	for {
		if len(src)-p < 3 {
			return 0, false, false, false
		}
		bh := uint32(src[p]) | uint32(src[p+1])<<8 | uint32(src[p+2])<<16
		p += 3
		last, typ, n := bh&1 != 0, int(bh>>1)&3, int(bh>>3)
		if n > maxBlock || n > len(dst)-out {
			return 0, false, false, false
		}
		switch typ {
		case blockRaw:
			if len(src)-p < n {
				return 0, false, false, false
			}
			copy(dst[out:out+n], src[p:p+n])
			p += n
			zeros = zeros && n == 0
		case blockRLE:
			if len(src)-p < 1 {
				return 0, false, false, false
			}
			fill(dst[out:out+n], src[p])
			zeros = zeros && src[p] == 0
			p++
		default:
			return 0, false, false, false
		}
		out += n
		if last {
			break
		}
	}
	if out != len(dst) {
		return 0, false, false, false
	}
	if h.checksum {
		if len(src)-p != 4 {
			return 0, false, false, false
		}
		return binary.LittleEndian.Uint32(src[p:]), true, zeros, true
	}
	return 0, false, zeros, len(src) == p
}

// fill sets every byte of b to v.
func fill(b []byte, v byte) {
	if v == 0 {
		clear(b)
		return
	}
	if len(b) == 0 {
		return
	}
	b[0] = v
	for n := 1; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}

// contentSum returns the low 32 bits of the XXH64 of b, the checksum of
// both a frame (Content_Checksum) and a seek table entry.
func contentSum(b []byte) uint32 { return uint32(xxhash.Sum64(b)) }

// zeroSums caches the checksum of n zero bytes by n, for frames of zeros:
// the free space of an image is many frames of the same length.
type zeroSums struct {
	mu   sync.Mutex
	sums map[int]uint32
}

// sum returns contentSum of zeros, which holds only zero bytes.
func (z *zeroSums) sum(zeros []byte) uint32 {
	z.mu.Lock()
	v, ok := z.sums[len(zeros)]
	z.mu.Unlock()
	if ok {
		return v
	}
	v = contentSum(zeros)
	z.mu.Lock()
	if z.sums == nil {
		z.sums = map[int]uint32{}
	}
	if len(z.sums) < 64 {
		z.sums[len(zeros)] = v
	}
	z.mu.Unlock()
	return v
}

// rleAsRaw rewrites a zstd stream so that its RLE blocks become raw blocks
// holding the same bytes, and passes everything else through unchanged.
// Both kinds of block decode to the same content (and so to the same
// checksums), but the decoder copies raw blocks with memmove where it
// fills RLE blocks a byte at a time: on a disk image, whose free space is
// stored as RLE blocks of zeros, this more than halves the decoding time.
//
// It follows the frame layout only as far as it is well-formed: anything
// it does not recognise (an unknown magic number, a reserved block type, a
// block larger than the format allows, a cut stream) is passed through as
// it is, from there to the end, for the decoder to report.
type rleAsRaw struct {
	r       *bufio.Reader
	state   int
	check   bool   // the current frame ends with a checksum
	pending []byte // bytes to hand out first
	hdr     [maxFrameHeader]byte
	copyN   int64 // bytes to pass through next
	fillN   int   // bytes of value fillV to produce next
	fillV   byte
	pattern []byte // maxBlock bytes of patternV, for non-zero RLE blocks
	patV    byte
	err     error
}

const (
	stFrame = iota // at the start of a frame
	stBlock        // at a block header
	stCheck        // at the checksum after the last block
	stPass         // passing the rest through
)

func newRLEAsRaw(r *bufio.Reader) *rleAsRaw { return &rleAsRaw{r: r} }

// Read implements io.Reader.
func (t *rleAsRaw) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		switch {
		case len(t.pending) > 0:
			k := copy(p[n:], t.pending)
			t.pending = t.pending[k:]
			n += k
		case t.fillN > 0:
			k := min(t.fillN, len(p)-n)
			if t.fillV == 0 {
				clear(p[n : n+k])
			} else {
				if t.pattern == nil || t.patV != t.fillV {
					if t.pattern == nil {
						t.pattern = make([]byte, maxBlock)
					}
					fill(t.pattern, t.fillV)
					t.patV = t.fillV
				}
				copy(p[n:n+k], t.pattern)
			}
			t.fillN -= k
			n += k
		case t.copyN > 0:
			if n > 0 && t.r.Buffered() == 0 {
				return n, nil // do not block with data in hand
			}
			k, err := t.r.Read(p[n : n+int(min(t.copyN, int64(len(p)-n)))])
			t.copyN -= int64(k)
			n += k
			if err != nil {
				if err == io.EOF && t.copyN > 0 && t.state != stPass {
					err = io.ErrUnexpectedEOF
				}
				return n, err
			}
		case t.err != nil:
			return n, t.err
		default:
			if n > 0 && t.r.Buffered() == 0 && t.state != stPass {
				return n, nil
			}
			t.next()
		}
	}
	return n, nil
}

// next reads the next header and sets what follows it.
func (t *rleAsRaw) next() {
	switch t.state {
	case stPass:
		t.copyN = math.MaxInt64
	case stCheck:
		t.copyN = 4
		t.state = stFrame
	case stFrame:
		b, err := t.r.Peek(4)
		if len(b) == 0 && errors.Is(err, io.EOF) {
			t.err = io.EOF
			return
		}
		if len(b) < 4 {
			t.state = stPass
			return
		}
		magic := binary.LittleEndian.Uint32(b)
		switch {
		case magic == frameMagic:
			b, _ := t.r.Peek(maxFrameHeader)
			h, ok := parseFrameHeader(b)
			if !ok {
				t.state = stPass
				return
			}
			k := copy(t.hdr[:], b[:h.len])
			t.r.Discard(k)
			t.pending = t.hdr[:k]
			t.check = h.checksum
			t.state = stBlock
		case magic&^0xF == skippableMagic:
			b, _ := t.r.Peek(8)
			if len(b) < 8 {
				t.state = stPass
				return
			}
			k := copy(t.hdr[:], b)
			t.r.Discard(k)
			t.pending = t.hdr[:k]
			t.copyN = int64(binary.LittleEndian.Uint32(b[4:]))
		default:
			t.state = stPass
		}
	case stBlock:
		b, _ := t.r.Peek(4)
		if len(b) < 3 {
			t.state = stPass
			return
		}
		bh := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
		last, typ, size := bh&1 != 0, int(bh>>1)&3, int64(bh>>3)
		if typ > blockCompressed || size > maxBlock || (typ == blockRLE && len(b) < 4) {
			t.state = stPass
			return
		}
		if typ == blockRLE {
			raw := bh &^ 6 // the same size and last flag, block type raw
			t.hdr[0], t.hdr[1], t.hdr[2] = byte(raw), byte(raw>>8), byte(raw>>16)
			t.pending = t.hdr[:3]
			t.fillN, t.fillV = int(size), b[3]
			t.r.Discard(4)
		} else {
			copy(t.hdr[:3], b)
			t.pending = t.hdr[:3]
			t.copyN = size
			t.r.Discard(3)
		}
		if last {
			t.state = stFrame
			if t.check {
				t.state = stCheck
			}
		}
	}
}

// walkFrames adds up the content sizes of the frames of a file that has
// no seek table. It returns false when a frame does not declare its size
// (what zstd writes when compressing from a pipe) or the file does not
// follow the frame layout; the caller then finds the size by decoding.
// Only the frame and block headers are read: a few kilobytes per
// megabyte of compressed data that is not all RLE.
func walkFrames(r io.ReaderAt, size int64) (int64, bool) {
	br := &headReader{r: r, size: size}
	var total int64
	off := int64(0)
	for frames := 0; off < size; frames++ {
		if frames >= MaxFrames {
			return 0, false
		}
		b := br.at(off, maxFrameHeader)
		if len(b) < 8 {
			return 0, false
		}
		magic := binary.LittleEndian.Uint32(b)
		if magic&^0xF == skippableMagic {
			off += 8 + int64(binary.LittleEndian.Uint32(b[4:]))
			continue
		}
		h, ok := parseFrameHeader(b)
		if !ok || h.size < 0 || h.size > math.MaxInt64-total {
			return 0, false
		}
		total += h.size
		off += int64(h.len)
		for {
			b := br.at(off, 3)
			if len(b) < 3 {
				return 0, false
			}
			bh := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
			n := int64(bh >> 3)
			switch int(bh>>1) & 3 {
			case blockRLE:
				n = 1
			case blockRaw, blockCompressed:
			default:
				return 0, false
			}
			off += 3 + n
			if bh&1 != 0 {
				break
			}
		}
		if h.checksum {
			off += 4
		}
	}
	return total, off == size
}

// headReader reads small pieces of r through a 4 KiB window.
type headReader struct {
	r    io.ReaderAt
	size int64
	buf  [4096]byte
	off  int64
	n    int
}

// at returns up to n bytes at off (fewer at the end of the file).
func (h *headReader) at(off int64, n int) []byte {
	if off < h.off || off+int64(n) > h.off+int64(h.n) {
		h.off = off
		k := int(min(int64(len(h.buf)), h.size-off))
		if k < 0 {
			k = 0
		}
		m, _ := h.r.ReadAt(h.buf[:k], off)
		h.n = m
	}
	b := h.buf[off-h.off : h.n]
	return b[:min(n, len(b))]
}

package convert

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"io"
	"math"
	"sync"

	"github.com/ulikunitz/xz/lzma"

	"imgtool/image"
)

// xz container constants (The .xz File Format 1.2.1).
var (
	xzHeaderMagic = []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}
	xzFooterMagic = []byte{'Y', 'Z'}
)

const (
	xzCheckCRC64  = 0x04
	xzFilterLZMA2 = 0x21
	// segment is the unit whose compressibility is judged: a stretch that
	// does not compress is stored as uncompressed LZMA2 chunks.
	xzSegment = 1 << 20
	// xzMaxUncompressedChunk is the largest uncompressed LZMA2 chunk.
	xzMaxUncompressedChunk = 64 << 10
)

// crc64Table is built on first use, not at start-up.
var crc64Table = sync.OnceValue(func() *crc64.Table { return crc64.MakeTable(crc64.ECMA) })

// xzPreset gives the dictionary size of each xz level 1–9 (as xz -1 … -9).
var xzPreset = [10]int{0: 256 << 10, 1: 1 << 20, 2: 2 << 20, 3: 4 << 20, 4: 4 << 20, 5: 8 << 20, 6: 8 << 20, 7: 16 << 20, 8: 32 << 20, 9: 64 << 20}

type xzCodec struct {
	dict    int
	props   byte // LZMA2 filter property: the dictionary size
	matcher lzma.MatchAlgorithm
	records [][2]uint64 // unpadded size, uncompressed size
}

// newXZ returns the xz writer.
func newXZ(w io.Writer, size int64, ext []image.Extent, o Options) (Writer, error) {
	level := o.Level
	if level == 0 {
		level = 6
	}
	if level < 1 || level > 9 {
		return nil, fmt.Errorf("convert: xz level %d is out of range 1–9", level)
	}
	dict := xzPreset[level]
	block := o.ChunkSize
	if block == 0 {
		block = max(8<<20, dict)
	}
	dict = min(dict, block) // a larger dictionary than the block gains nothing
	c := &xzCodec{dict: dict, props: lzma2DictProp(dict), matcher: lzma.HashTable4}
	if level >= 8 {
		c.matcher = lzma.BinaryTree
	}
	// One block in flight costs its input, its output and the encoder
	// (the dictionary plus hash tables, about 4× the dictionary).
	per := int64(2*block + 5*dict)
	cw, err := newChunked(w, size, ext, c, block, o.Workers, per, 400<<20)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(xzStreamHeader()); err != nil {
		return nil, err
	}
	return cw, nil
}

// lzma2DictProp encodes a dictionary size as the LZMA2 property byte:
// the smallest (2 | b&1) << (b/2 + 11) that holds it.
func lzma2DictProp(dict int) byte {
	for b := byte(0); b < 40; b++ {
		if int64(2|b&1)<<(b/2+11) >= int64(dict) {
			return b
		}
	}
	return 40
}

func xzStreamHeader() []byte {
	h := append([]byte{}, xzHeaderMagic...)
	flags := []byte{0x00, xzCheckCRC64}
	h = append(h, flags...)
	return binary.LittleEndian.AppendUint32(h, crc32.ChecksumIEEE(flags))
}

// encode makes one xz block: header, LZMA2 data, padding (the check is
// kept apart in sum).
func (c *xzCodec) encode(in []byte) (encoded, error) {
	var lz bytes.Buffer
	lz.Grow(len(in)/2 + 1024)
	// Group the segments into runs that compress and runs that do not.
	for off := 0; off < len(in); {
		end := min(len(in), off+xzSegment)
		store := highEntropy(in[off:end])
		for end < len(in) {
			next := min(len(in), end+xzSegment)
			if highEntropy(in[end:next]) != store {
				break
			}
			end = next
		}
		if store {
			storeLZMA2(&lz, in[off:end])
		} else if err := c.compressRun(&lz, in[off:end]); err != nil {
			return encoded{}, err
		}
		off = end
	}
	lz.WriteByte(0x00) // end of LZMA2 data

	hdr := c.blockHeader(uint64(lz.Len()), uint64(len(in)))
	out := make([]byte, 0, len(hdr)+lz.Len()+3)
	out = append(out, hdr...)
	out = append(out, lz.Bytes()...)
	for len(out)%4 != 0 {
		out = append(out, 0)
	}
	sum := binary.LittleEndian.AppendUint64(nil, crc64.Checksum(in, crc64Table()))
	return encoded{data: out, n: len(in), sum: sum, unpadded: uint64(len(hdr)+lz.Len()) + 8}, nil
}

// compressRun appends the LZMA2 chunks of p (starting with a dictionary
// reset), or stores p when compressing does not make it smaller.
func (c *xzCodec) compressRun(lz *bytes.Buffer, p []byte) error {
	var tmp bytes.Buffer
	tmp.Grow(len(p)/2 + 1024)
	w, err := lzma.Writer2Config{DictCap: c.dict, Matcher: c.matcher}.NewWriter2(&tmp)
	if err != nil {
		return fmt.Errorf("convert: lzma2: %w", err)
	}
	if _, err := w.Write(p); err != nil {
		return fmt.Errorf("convert: lzma2: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("convert: lzma2: %w", err)
	}
	b := tmp.Bytes()
	if len(b) < 2 || b[len(b)-1] != 0 || (b[0] != 0x01 && b[0] < 0xE0) {
		return fmt.Errorf("convert: lzma2 encoder gave unexpected framing")
	}
	b = b[:len(b)-1]
	if len(b) >= len(p)+len(p)/xzMaxUncompressedChunk*3+3 {
		storeLZMA2(lz, p)
		return nil
	}
	lz.Write(b)
	return nil
}

// storeLZMA2 appends p as uncompressed LZMA2 chunks, the first with a
// dictionary reset.
func storeLZMA2(lz *bytes.Buffer, p []byte) {
	ctl := byte(0x01)
	for len(p) > 0 {
		n := min(len(p), xzMaxUncompressedChunk)
		lz.Write([]byte{ctl, byte((n - 1) >> 8), byte(n - 1)})
		lz.Write(p[:n])
		p = p[n:]
		ctl = 0x02
	}
}

// highEntropy reports whether p looks incompressible: its byte
// distribution carries more than 7.9 bits per byte.
func highEntropy(p []byte) bool {
	if len(p) < 4096 {
		return false
	}
	var cnt [4][256]uint32
	i := 0
	for ; i+4 <= len(p); i += 4 {
		cnt[0][p[i]]++
		cnt[1][p[i+1]]++
		cnt[2][p[i+2]]++
		cnt[3][p[i+3]]++
	}
	for ; i < len(p); i++ {
		cnt[0][p[i]]++
	}
	n := float64(len(p))
	var h float64
	for b := range 256 {
		if k := cnt[0][b] + cnt[1][b] + cnt[2][b] + cnt[3][b]; k > 0 {
			f := float64(k) / n
			h -= f * math.Log2(f)
		}
	}
	return h > 7.9
}

// blockHeader encodes a block header with both sizes and one LZMA2 filter.
func (c *xzCodec) blockHeader(compressed, uncompressed uint64) []byte {
	b := []byte{0, 0x40 | 0x80} // size placeholder; flags: 1 filter, both sizes present
	b = appendVLI(b, compressed)
	b = appendVLI(b, uncompressed)
	b = append(b, xzFilterLZMA2, 1, c.props)
	for (len(b)+4)%4 != 0 {
		b = append(b, 0)
	}
	b[0] = byte((len(b)+4)/4 - 1)
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

func appendVLI(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func (c *xzCodec) emit(w io.Writer, e encoded) error {
	if _, err := w.Write(e.data); err != nil {
		return err
	}
	if _, err := w.Write(e.sum); err != nil {
		return err
	}
	c.records = append(c.records, [2]uint64{e.unpadded, uint64(e.n)})
	return nil
}

// finish writes the index and the stream footer.
func (c *xzCodec) finish(w io.Writer) error {
	idx := []byte{0x00}
	idx = appendVLI(idx, uint64(len(c.records)))
	for _, r := range c.records {
		idx = appendVLI(idx, r[0])
		idx = appendVLI(idx, r[1])
	}
	for len(idx)%4 != 0 {
		idx = append(idx, 0)
	}
	idx = binary.LittleEndian.AppendUint32(idx, crc32.ChecksumIEEE(idx))
	foot := binary.LittleEndian.AppendUint32(nil, uint32(len(idx)/4-1))
	foot = append(foot, 0x00, xzCheckCRC64)
	foot = append(binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(foot)), foot...)
	foot = append(foot, xzFooterMagic...)
	if _, err := w.Write(idx); err != nil {
		return err
	}
	_, err := w.Write(foot)
	return err
}

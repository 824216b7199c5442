package xz

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"

	"imgtool/image"
)

// Limits on what the container may make this package allocate or loop over.
const (
	// MaxIndexSize bounds the index of one stream (records of about six
	// bytes: some ten million blocks).
	MaxIndexSize = 64 << 20
	// MaxBlocks bounds the number of blocks in the whole file.
	MaxBlocks = 4 << 20
	// MaxStreams bounds the number of concatenated streams.
	MaxStreams = 1 << 16
)

// blockInfo locates one block, as the index describes it.
type blockInfo struct {
	off      int64 // offset of the block header in the file
	unpadded int64 // header + compressed data + check, without padding
	uoff     int64 // offset of its data in the decompressed image
	ulen     int64 // uncompressed size
	check    CheckType
}

// index is the parsed container: every block of every stream, in order.
type index struct {
	blocks  []blockInfo
	size    int64 // total uncompressed size
	streams int
}

func formatErr(off int64, format string, args ...any) error {
	return &image.FormatError{Format: "xz", Off: off, Msg: sprintf(format, args...)}
}

// readIndex walks the file backwards from its end, stream by stream,
// reading each footer, index and header.
func readIndex(r io.ReaderAt, size int64) (*index, error) {
	if size < headerLen+footerLen+8 {
		return nil, formatErr(0, "file too short (%d bytes) for an xz stream", size)
	}
	if size%4 != 0 {
		return nil, formatErr(size, "file size %d is not a multiple of four; the file is truncated or has trailing garbage", size)
	}
	var streams [][]blockInfo
	nblocks := 0
	end := size
	for end > 0 {
		// Skip stream padding (zeros, in multiples of four).
		var err error
		end, err = skipPadding(r, end)
		if err != nil {
			return nil, err
		}
		if end == 0 {
			if len(streams) == 0 {
				return nil, formatErr(0, "file holds only zeros")
			}
			return nil, formatErr(0, "stream padding before the first stream")
		}
		if len(streams) >= MaxStreams {
			return nil, formatErr(end, "more than %d streams", MaxStreams)
		}
		blocks, start, err := readStream(r, end, MaxBlocks-nblocks)
		if err != nil {
			return nil, err
		}
		nblocks += len(blocks)
		streams = append(streams, blocks)
		end = start
	}
	ix := &index{streams: len(streams), blocks: make([]blockInfo, 0, nblocks)}
	for i := len(streams) - 1; i >= 0; i-- {
		for _, b := range streams[i] {
			b.uoff = ix.size
			ix.size += b.ulen
			if ix.size < 0 {
				return nil, formatErr(b.off, "uncompressed size overflows")
			}
			ix.blocks = append(ix.blocks, b)
		}
	}
	return ix, nil
}

// skipPadding moves end back over zero bytes, four at a time, reading in
// chunks so that long padding costs few reads.
func skipPadding(r io.ReaderAt, end int64) (int64, error) {
	var buf [4096]byte
	for end > 0 {
		n := min(int64(len(buf)), end)
		chunk := buf[:n]
		if _, err := r.ReadAt(chunk, end-n); err != nil {
			return 0, readErr(end-n, err)
		}
		i := len(chunk)
		for i >= 4 && bytes.Equal(chunk[i-4:i], []byte{0, 0, 0, 0}) {
			i -= 4
		}
		end -= int64(len(chunk) - i)
		if i > 0 {
			return end, nil
		}
	}
	return 0, nil
}

func readErr(off int64, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return formatErr(off, "unexpected end of file")
	}
	return &readError{off: off, err: err}
}

type readError struct {
	off int64
	err error
}

func (e *readError) Error() string { return sprintf("xz: reading at offset %d: %v", e.off, e.err) }
func (e *readError) Unwrap() error { return e.err }

// readStream reads the stream that ends at end (just after its footer) and
// returns its blocks and its start offset.
func readStream(r io.ReaderAt, end int64, maxBlocks int) ([]blockInfo, int64, error) {
	if end < headerLen+footerLen+8 {
		return nil, 0, formatErr(0, "stream ending at %d is too short", end)
	}
	footOff := end - footerLen
	var fb [footerLen]byte
	if _, err := r.ReadAt(fb[:], footOff); err != nil {
		return nil, 0, readErr(footOff, err)
	}
	var foot StreamFooter
	_, _ = binary.Decode(fb[:], binary.LittleEndian, &foot)
	if foot.Magic != FooterMagic {
		return nil, 0, formatErr(footOff+10, "no stream footer magic (file truncated?)")
	}
	if crc32.ChecksumIEEE(fb[4:10]) != foot.CRC32 {
		return nil, 0, formatErr(footOff, "stream footer CRC32 mismatch")
	}
	check, err := parseFlags(foot.Flags, footOff+8)
	if err != nil {
		return nil, 0, err
	}
	indexLen := (int64(foot.BackwardSize) + 1) * 4
	indexOff := footOff - indexLen
	if indexOff < headerLen {
		return nil, 0, formatErr(footOff+4, "index size %d reaches before the start of the file", indexLen)
	}
	if indexLen > MaxIndexSize {
		return nil, 0, formatErr(footOff+4, "index of %d bytes is larger than the limit of %d", indexLen, MaxIndexSize)
	}
	ib := make([]byte, indexLen)
	if _, err := r.ReadAt(ib, indexOff); err != nil {
		return nil, 0, readErr(indexOff, err)
	}
	blocks, total, err := parseIndex(ib, indexOff, check, maxBlocks)
	if err != nil {
		return nil, 0, err
	}
	start := indexOff - total - headerLen
	if start < 0 {
		return nil, 0, formatErr(indexOff, "blocks listed in the index (%d bytes) reach before the start of the file", total)
	}
	var hb [headerLen]byte
	if _, err := r.ReadAt(hb[:], start); err != nil {
		return nil, 0, readErr(start, err)
	}
	var head StreamHeader
	_, _ = binary.Decode(hb[:], binary.LittleEndian, &head)
	if head.Magic != HeaderMagic {
		return nil, 0, formatErr(start, "no stream header where the index puts it")
	}
	if crc32.ChecksumIEEE(hb[6:8]) != head.CRC32 {
		return nil, 0, formatErr(start+6, "stream header CRC32 mismatch")
	}
	if head.Flags != foot.Flags {
		return nil, 0, formatErr(start+6, "stream header flags differ from the footer's")
	}
	off := start + headerLen
	for i := range blocks {
		blocks[i].off = off
		off += pad4(blocks[i].unpadded)
	}
	return blocks, start, nil
}

func parseFlags(f [2]byte, off int64) (CheckType, error) {
	if f[0] != 0 || f[1]&0xF0 != 0 {
		return 0, formatErr(off, "unsupported stream flags %#02x %#02x", f[0], f[1])
	}
	c := CheckType(f[1])
	switch c {
	case CheckNone, CheckCRC32, CheckCRC64, CheckSHA256:
		return c, nil
	}
	return 0, formatErr(off+1, "unsupported check type %s", c)
}

// parseIndex decodes an index (spec 4) found at offset base. It returns the
// blocks (without file offsets) and the total padded size of the blocks.
func parseIndex(b []byte, base int64, check CheckType, maxBlocks int) ([]blockInfo, int64, error) {
	if len(b) < 8 || b[0] != 0 {
		return nil, 0, formatErr(base, "no index indicator where the footer puts the index")
	}
	body := len(b) - 4
	if crc32.ChecksumIEEE(b[:body]) != binary.LittleEndian.Uint32(b[body:]) {
		return nil, 0, formatErr(base+int64(body), "index CRC32 mismatch")
	}
	p := 1
	count, err := uvarint(b[:body], &p, base)
	if err != nil {
		return nil, 0, err
	}
	// Each record takes at least two bytes.
	if count > uint64(body-p)/2 {
		return nil, 0, formatErr(base+1, "index claims %d records, more than it can hold", count)
	}
	if count > uint64(maxBlocks) {
		return nil, 0, formatErr(base+1, "more than %d blocks", MaxBlocks)
	}
	minUnpadded := int64(check.Size()) + 8 + 1 // smallest header, one byte of data
	blocks := make([]blockInfo, count)
	var total int64
	for i := range blocks {
		at := base + int64(p)
		up, err := uvarint(b[:body], &p, base)
		if err != nil {
			return nil, 0, err
		}
		us, err := uvarint(b[:body], &p, base)
		if err != nil {
			return nil, 0, err
		}
		if up < uint64(minUnpadded) || up > 1<<62 || us > 1<<62 {
			return nil, 0, formatErr(at, "index record %d has impossible sizes (unpadded %d, uncompressed %d)", i, up, us)
		}
		blocks[i] = blockInfo{unpadded: int64(up), ulen: int64(us), check: check}
		total += pad4(int64(up))
		if total > base {
			return nil, 0, formatErr(at, "blocks listed in the index are larger than the file")
		}
	}
	for ; p%4 != 0; p++ {
		if p >= body || b[p] != 0 {
			return nil, 0, formatErr(base+int64(p), "bad index padding")
		}
	}
	if p != body {
		return nil, 0, formatErr(base+int64(p), "index has %d unexpected bytes after its records", body-p)
	}
	return blocks, total, nil
}

// uvarint decodes a multibyte integer (spec 1.2) from b at *p.
func uvarint(b []byte, p *int, base int64) (uint64, error) {
	var v uint64
	for i := 0; i < 9; i++ {
		if *p >= len(b) {
			return 0, formatErr(base+int64(*p), "truncated integer")
		}
		c := b[*p]
		*p++
		v |= uint64(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			if c == 0 && i > 0 {
				return 0, formatErr(base+int64(*p-1), "integer not in its shortest form")
			}
			return v, nil
		}
	}
	return 0, formatErr(base+int64(*p-1), "integer longer than nine bytes")
}

func pad4(n int64) int64 { return (n + 3) &^ 3 }

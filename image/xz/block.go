package xz

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"strings"
	"sync"

	"github.com/ulikunitz/xz/lzma"
)

// MaxDictSize bounds the LZMA2 dictionary allocated for a block whose
// uncompressed size is not known to be smaller. xz -9 uses 64 MiB; files
// made with a larger --lzma2=dict fail with an error naming the limit if a
// match reaches further back than this.
const MaxDictSize = 256 << 20

// crc64Table is built on first use, not at start-up.
var crc64Table = sync.OnceValue(func() *crc64.Table { return crc64.MakeTable(crc64.ECMA) })

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// blockHeader is the parsed header of a block (spec 3.1).
type blockHeader struct {
	size int64  // header length in bytes
	dict uint32 // LZMA2 dictionary size
}

// readBlockHeader reads and checks the header of block b against the index.
func readBlockHeader(r io.ReaderAt, b blockInfo) (blockHeader, error) {
	var first [1]byte
	if _, err := r.ReadAt(first[:], b.off); err != nil {
		return blockHeader{}, readErr(b.off, err)
	}
	if first[0] == 0 {
		return blockHeader{}, formatErr(b.off, "index indicator where a block header should be")
	}
	hlen := (int64(first[0]) + 1) * 4
	buf := make([]byte, hlen)
	if _, err := r.ReadAt(buf, b.off); err != nil {
		return blockHeader{}, readErr(b.off, err)
	}
	body := buf[:hlen-4]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(buf[hlen-4:]) {
		return blockHeader{}, formatErr(b.off+hlen-4, "block header CRC32 mismatch")
	}
	flags := body[1]
	if flags&blockFlagReserved != 0 {
		return blockHeader{}, formatErr(b.off+1, "reserved block flags set (%#02x)", flags)
	}
	csize := b.unpadded - hlen - int64(b.check.Size())
	if csize <= 0 {
		return blockHeader{}, formatErr(b.off, "block header (%d bytes) does not fit the block's size in the index (%d)", hlen, b.unpadded)
	}
	p := 2
	if flags&blockFlagCompressed != 0 {
		v, err := uvarint(body, &p, b.off)
		if err != nil {
			return blockHeader{}, err
		}
		if v != uint64(csize) {
			return blockHeader{}, formatErr(b.off, "block header says %d compressed bytes, the index %d", v, csize)
		}
	}
	if flags&blockFlagUncompressed != 0 {
		v, err := uvarint(body, &p, b.off)
		if err != nil {
			return blockHeader{}, err
		}
		if v != uint64(b.ulen) {
			return blockHeader{}, formatErr(b.off, "block header says %d uncompressed bytes, the index %d", v, b.ulen)
		}
	}
	nf := int(flags&blockFlagFilters) + 1
	ids := make([]FilterID, 0, nf)
	var props []byte
	for range nf {
		id, err := uvarint(body, &p, b.off)
		if err != nil {
			return blockHeader{}, err
		}
		plen, err := uvarint(body, &p, b.off)
		if err != nil {
			return blockHeader{}, err
		}
		if plen > uint64(len(body)-p) {
			return blockHeader{}, formatErr(b.off+int64(p), "filter properties run past the block header")
		}
		ids = append(ids, FilterID(id))
		props = body[p : p+int(plen)]
		p += int(plen)
	}
	if nf != 1 || ids[0] != FilterLZMA2 {
		names := make([]string, len(ids))
		for i, id := range ids {
			names[i] = id.String()
		}
		return blockHeader{}, fmt.Errorf("xz: block at offset %d uses the filter chain %s; only LZMA2 alone is supported: "+
			"decompress the file with xz first: %w", b.off, strings.Join(names, " + "), ErrUnsupported)
	}
	if len(props) != 1 || props[0] > 40 {
		return blockHeader{}, formatErr(b.off, "bad LZMA2 properties")
	}
	for ; p < len(body); p++ {
		if body[p] != 0 {
			return blockHeader{}, formatErr(b.off+int64(p), "non-zero block header padding")
		}
	}
	d := props[0]
	dict := uint32(0xFFFFFFFF)
	if d < 40 {
		dict = (2 | uint32(d&1)) << (d/2 + 11)
	}
	return blockHeader{size: hlen, dict: dict}, nil
}

// ErrUnsupported is wrapped when a file uses a feature this package does
// not implement (a filter other than LZMA2).
var ErrUnsupported = errors.New("xz: unsupported feature")

// ErrCheck is wrapped when a block's integrity check does not match.
var ErrCheck = errors.New("xz: integrity check failed")

// openBlock returns a reader of block b's uncompressed data that verifies,
// when the data ends, its length, the padding and the integrity check.
func openBlock(r io.ReaderAt, b blockInfo) (io.Reader, error) {
	h, err := readBlockHeader(r, b)
	if err != nil {
		return nil, err
	}
	csize := b.unpadded - h.size - int64(b.check.Size())
	dataOff := b.off + h.size
	sr := io.NewSectionReader(r, dataOff, csize)
	cr := &countReader{sr: sr, r: bufio.NewReaderSize(sr, int(min(csize, 64<<10)))}
	dict := int64(h.dict)
	dict = min(dict, max(b.ulen, 1), MaxDictSize)
	dict = max(dict, lzma.MinDictCap)
	lz, err := lzma.Reader2Config{DictCap: int(dict)}.NewReader2(cr)
	if err != nil {
		return nil, formatErr(dataOff, "LZMA2: %v", err)
	}
	var sum hash.Hash
	switch b.check {
	case CheckCRC32:
		sum = crc32.NewIEEE()
	case CheckCRC64:
		sum = crc64.New(crc64Table())
	case CheckSHA256:
		sum = sha256.New()
	}
	return &blockReader{r: r, b: b, lz: lz, cr: cr, csize: csize, dataOff: dataOff, sum: sum, dict: dict}, nil
}

// countReader buffers the compressed data of a block and tells how much of
// it the decoder has consumed.
type countReader struct {
	sr *io.SectionReader
	r  *bufio.Reader
}

func (c *countReader) Read(p []byte) (int, error) { return c.r.Read(p) }

// consumed returns the number of bytes handed to the decoder.
func (c *countReader) consumed() int64 {
	pos, _ := c.sr.Seek(0, io.SeekCurrent)
	return pos - int64(c.r.Buffered())
}

// blockReader decodes one block and checks it at its end.
type blockReader struct {
	r       io.ReaderAt
	b       blockInfo
	lz      *lzma.Reader2
	cr      *countReader
	csize   int64
	dataOff int64
	sum     hash.Hash
	dict    int64
	n       int64
	err     error
}

func (br *blockReader) Read(p []byte) (int, error) {
	if br.err != nil {
		return 0, br.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if rest := br.b.ulen - br.n; int64(len(p)) > rest+1 {
		p = p[:rest+1]
	}
	n, err := br.lz.Read(p)
	br.n += int64(n)
	if br.n > br.b.ulen {
		br.err = formatErr(br.b.off, "block decodes to more than the %d bytes the index gives", br.b.ulen)
		return 0, br.err
	}
	if br.sum != nil {
		br.sum.Write(p[:n])
	}
	switch {
	case err == io.EOF:
		err = br.finish()
	case err != nil:
		err = br.corrupt(err)
	}
	br.err = err
	return n, err
}

func (br *blockReader) corrupt(err error) error {
	at := br.dataOff + br.cr.consumed()
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return formatErr(at, "LZMA2 data of the block at %d ends early (file truncated or corrupt)", br.b.off)
	}
	msg := err.Error()
	if br.dict < MaxDictSize || !strings.Contains(msg, "dist") {
		return formatErr(at, "LZMA2 data of the block at %d is corrupt: %v", br.b.off, err)
	}
	return formatErr(at, "LZMA2 data of the block at %d: %v (the dictionary is limited to %d bytes)", br.b.off, err, MaxDictSize)
}

// finish checks the block once LZMA2 has ended.
func (br *blockReader) finish() error {
	if br.n != br.b.ulen {
		return formatErr(br.b.off, "block decodes to %d bytes, the index gives %d", br.n, br.b.ulen)
	}
	if n := br.cr.consumed(); n != br.csize {
		return formatErr(br.dataOff+n, "LZMA2 data ends %d bytes before the end of the block's compressed data", br.csize-n)
	}
	end := br.dataOff + br.csize
	tail := make([]byte, pad4(br.b.unpadded)-br.b.unpadded+int64(br.b.check.Size()))
	if _, err := br.r.ReadAt(tail, end); err != nil {
		return readErr(end, err)
	}
	padLen := len(tail) - br.b.check.Size()
	if !bytes.Equal(tail[:padLen], make([]byte, padLen)) {
		return formatErr(end, "non-zero block padding")
	}
	if br.sum == nil {
		return io.EOF
	}
	want := tail[padLen:]
	got := br.sum.Sum(nil)
	if br.b.check == CheckCRC32 || br.b.check == CheckCRC64 {
		// CRCs are stored little endian; Sum gives big endian.
		for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
			got[i], got[j] = got[j], got[i]
		}
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("xz: block at offset %d: %s mismatch: %w", br.b.off, br.b.check, ErrCheck)
	}
	return io.EOF
}

// decodeBlockInto decodes block b, whose uncompressed size is len(dst),
// straight into dst with decodeLZMA2 and verifies its length, padding and
// integrity check. It reports ok = false, without error, for a block whose
// compressed data is too large for its size to be read into memory at
// once; openBlock reads such a block instead.
func decodeBlockInto(r io.ReaderAt, b blockInfo, dst []byte) (ok bool, err error) {
	if int64(len(dst)) != b.ulen {
		return false, nil
	}
	h, err := readBlockHeader(r, b)
	if err != nil {
		return true, err
	}
	csize := b.unpadded - h.size - int64(b.check.Size())
	if csize > int64(len(dst))+int64(len(dst))>>4+1<<16 {
		return false, nil
	}
	dataOff := b.off + h.size
	tailLen := pad4(b.unpadded) - b.unpadded + int64(b.check.Size())
	buf := make([]byte, csize+tailLen)
	if _, err := r.ReadAt(buf, dataOff); err != nil {
		return true, readErr(dataOff, err)
	}
	src, tail := buf[:csize], buf[csize:]
	dict := min(int64(h.dict), MaxDictSize)
	if err := decodeLZMA2(dst, src, dict); err != nil {
		var e *lzma2Error
		if !errors.As(err, &e) {
			return true, formatErr(dataOff, "LZMA2 data of the block at %d: %v", b.off, err)
		}
		at := dataOff + int64(e.off)
		switch {
		case e.kind == errTruncated:
			return true, formatErr(at, "LZMA2 data of the block at %d ends early (file truncated or corrupt)", b.off)
		case e.kind == errDict && int64(h.dict) > MaxDictSize:
			return true, formatErr(at, "LZMA2 data of the block at %d: %v (the dictionary is limited to %d bytes)", b.off, err, MaxDictSize)
		case e.kind == errSize:
			return true, formatErr(at, "block at %d does not decode to the %d bytes the index gives: %v", b.off, len(dst), err)
		}
		return true, formatErr(at, "LZMA2 data of the block at %d is corrupt: %v", b.off, err)
	}
	end := dataOff + csize
	padLen := len(tail) - b.check.Size()
	if !bytes.Equal(tail[:padLen], make([]byte, padLen)) {
		return true, formatErr(end, "non-zero block padding")
	}
	want := tail[padLen:]
	var got []byte
	switch b.check {
	case CheckNone:
		return true, nil
	case CheckCRC32:
		got = binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(dst))
	case CheckCRC64:
		got = binary.LittleEndian.AppendUint64(nil, crc64.Checksum(dst, crc64Table()))
	case CheckSHA256:
		s := sha256.Sum256(dst)
		got = s[:]
	}
	if !bytes.Equal(got, want) {
		return true, fmt.Errorf("xz: block at offset %d: %s mismatch: %w", b.off, b.check, ErrCheck)
	}
	return true, nil
}

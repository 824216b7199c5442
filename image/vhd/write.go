package vhd

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"imgtool/image"
	"imgtool/image/internal/vdisk"
)

// errTooMuch is returned by Write when more bytes come than the Data
// extents hold.
var errTooMuch = vdisk.ErrTooMuch("vhd")

// Writer defaults and fixed values.
const (
	DefaultBlockSize = 2 << 20
	// creatorApp marks the disk as one whose size is the footer's current
	// size rather than its CHS geometry: QEMU reads "qem2" (like "win ")
	// that way, so any size reads back exactly.
	creatorApp      = "qem2"
	creatorVersion  = 0x00010000
	creatorHostOS   = 0x5769326b // "Wi2k"
	formatVersion   = 0x00010000
	featureReserved = 2 // the spec's "reserved" feature bit, always set
	maxDynamicSize  = 2040 << 30
	fixedUnit       = 1 << 20
)

// vhdEpoch is the footer timestamp's zero: 2000-01-01 00:00:00 UTC.
var vhdEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// WriterOption configures a Writer.
type WriterOption func(*writerOptions)

type writerOptions struct {
	fixed     bool
	blockSize int64
}

// WithFixed writes a fixed disk: the whole disk, zeros included, then the
// footer.
func WithFixed() WriterOption {
	return func(o *writerOptions) { o.fixed = true }
}

// WithBlockSize sets the block size of a dynamic disk, a power of two
// from 512 bytes to 256 MiB; the default is 2 MiB.
func WithBlockSize(n int64) WriterOption {
	return func(o *writerOptions) { o.blockSize = n }
}

// Writer writes a VHD sequentially. Create it with NewWriter, send the
// bytes of the Data extents with Write, finish with Close.
type Writer struct {
	w      io.Writer
	wa     io.WriterAt // nil: stream mode, the BAT is written up front
	o      writerOptions
	size   int64
	footer Footer
	data   []image.Extent

	bs        int64
	bitmap    int64 // bytes of a block's sector bitmap
	batOff    int64
	bat       []uint32
	bitmapExt int // first Data extent that may overlap the next block

	pos    int64 // bytes written
	asm    vdisk.Assembler
	spare  []byte
	err    error
	closed bool
}

// NewWriter starts a VHD of size bytes (a multiple of 512) on w. extents
// must cover [0, size) in order: the bytes of the Data extents follow
// through Write, Zero extents read back as zeros without being sent.
func NewWriter(w io.Writer, size int64, extents []image.Extent, opts ...WriterOption) (*Writer, error) {
	o := writerOptions{blockSize: DefaultBlockSize}
	for _, opt := range opts {
		opt(&o)
	}
	if size%SectorSize != 0 {
		return nil, fmt.Errorf("vhd: disk size %d is not a multiple of 512 bytes", size)
	}
	bs := o.blockSize
	if bs < SectorSize || bs > maxBlockSize || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("vhd: block size %d is not a power of two from 512 bytes to 256 MiB", bs)
	}
	if !o.fixed && size > maxDynamicSize {
		return nil, fmt.Errorf("vhd: a dynamic disk holds at most 2040 GiB, not %d bytes; use VHDX or qcow2", size)
	}
	data, total, err := vdisk.CheckExtents("vhd", extents, size)
	if err != nil {
		return nil, err
	}
	v := &Writer{w: w, o: o, size: size, data: data, bs: bs}
	v.footer = newFooter(size, o.fixed)
	if o.fixed {
		v.asm.Init("vhd", errTooMuch, data, total, fixedUnit, v.newBuf, v.emitFixed)
		return v, nil
	}
	if wa, base := vdisk.FileTarget(w); wa != nil {
		v.wa = vdisk.OffsetWriterAt{W: wa, Base: base}
	}
	v.bitmap = (bs/SectorSize/8 + SectorSize - 1) / SectorSize * SectorSize
	v.bat = make([]uint32, (size+bs-1)/bs)
	for i := range v.bat {
		v.bat[i] = unusedBAT
	}
	v.batOff = SectorSize + DynamicHeaderSize
	batBytes := (int64(len(v.bat))*4 + SectorSize - 1) / SectorSize * SectorSize
	if v.wa == nil {
		// Stream: every block a Data extent touches is stored, in order.
		s := (v.batOff + batBytes) / SectorSize
		for _, r := range vdisk.UnitRuns(data, bs) {
			for b := r[0]; b <= r[1]; b++ {
				v.bat[b] = uint32(s)
				s += (v.bitmap + bs) / SectorSize
			}
		}
	}
	h := DynamicHeader{
		DataOffset:      noDataOffset,
		TableOffset:     uint64(v.batOff),
		HeaderVersion:   formatVersion,
		MaxTableEntries: uint32(len(v.bat)),
		BlockSize:       uint32(bs),
	}
	copy(h.Cookie[:], DynamicCookie)
	hb := make([]byte, DynamicHeaderSize)
	if _, err := binary.Encode(hb, binary.BigEndian, &h); err != nil {
		return nil, fmt.Errorf("vhd: %w", err)
	}
	binary.BigEndian.PutUint32(hb[dynamicChecksumOff:], checksum(hb, dynamicChecksumOff))
	if err := v.put(v.footerBytes()); err != nil {
		return nil, err
	}
	if err := v.put(hb); err != nil {
		return nil, err
	}
	if err := v.put(v.batBytes(batBytes)); err != nil {
		return nil, err
	}
	v.asm.Init("vhd", errTooMuch, data, total, bs, v.newBuf, v.emitBlock)
	return v, nil
}

// newFooter returns the footer of a disk of size bytes.
func newFooter(size int64, fixed bool) Footer {
	f := Footer{
		Features:          featureReserved,
		FileFormatVersion: formatVersion,
		DataOffset:        SectorSize,
		CreatorVersion:    creatorVersion,
		CreatorHostOS:     creatorHostOS,
		OriginalSize:      uint64(size),
		CurrentSize:       uint64(size),
		Geometry:          chs(size / SectorSize),
		DiskType:          DiskDynamic,
	}
	if fixed {
		f.DataOffset = noDataOffset
		f.DiskType = DiskFixed
	}
	copy(f.Cookie[:], FooterCookie)
	copy(f.CreatorApplication[:], creatorApp)
	if d := time.Since(vhdEpoch); d > 0 {
		f.TimeStamp = uint32(d / time.Second)
	}
	_, _ = rand.Read(f.UniqueID[:]) // never fails
	return f
}

// chs computes the geometry as the VHD specification's appendix does.
func chs(sectors int64) Geometry {
	sectors = min(sectors, 65535*16*255)
	var spt, heads, cth int64
	if sectors >= 65535*16*63 {
		spt, heads = 255, 16
		cth = sectors / spt
	} else {
		spt = 17
		cth = sectors / spt
		heads = max((cth+1023)/1024, 4)
		if cth >= heads*1024 || heads > 16 {
			spt, heads = 31, 16
			cth = sectors / spt
		}
		if cth >= heads*1024 {
			spt, heads = 63, 16
			cth = sectors / spt
		}
	}
	return Geometry{Cylinders: uint16(cth / heads), Heads: uint8(heads), SectorsPerTrack: uint8(spt)}
}

func (v *Writer) footerBytes() []byte {
	b := make([]byte, FooterSize)
	if _, err := binary.Encode(b, binary.BigEndian, &v.footer); err != nil {
		panic(err) // the buffer is the size of the struct
	}
	binary.BigEndian.PutUint32(b[footerChecksumOff:], checksum(b, footerChecksumOff))
	return b
}

func (v *Writer) batBytes(n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 0xff
	}
	for i, e := range v.bat {
		binary.BigEndian.PutUint32(b[i*4:], e)
	}
	return b
}

func (v *Writer) newBuf() []byte {
	if b := v.spare; b != nil {
		v.spare = nil
		clear(b)
		return b
	}
	return make([]byte, v.asm.Unit())
}

// put appends b to the output.
func (v *Writer) put(b []byte) error {
	n, err := v.w.Write(b)
	v.pos += int64(n)
	if err != nil {
		return fmt.Errorf("vhd: writing at offset %#x: %w", v.pos, err)
	}
	return nil
}

func (v *Writer) putZeros(n int64) error {
	for n > 0 {
		k := min(n, int64(len(vdisk.ZeroBlock)))
		if err := v.put(vdisk.ZeroBlock[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// emitFixed writes unit u of a fixed disk, after the zeros before it.
func (v *Writer) emitFixed(u int64, buf []byte) error {
	defer func() { v.spare = buf }()
	if err := v.putZeros(u*fixedUnit - v.pos); err != nil {
		return err
	}
	return v.put(buf[:min(fixedUnit, v.size-u*fixedUnit)])
}

// sectorBitmap returns the bitmap of block b: a bit set for every sector
// a Data extent overlaps.
func (v *Writer) sectorBitmap(b int64) []byte {
	bm := make([]byte, v.bitmap)
	start, end := b*v.bs, (b+1)*v.bs
	for v.bitmapExt < len(v.data) && v.data[v.bitmapExt].End() <= start {
		v.bitmapExt++
	}
	for _, e := range v.data[v.bitmapExt:] {
		if e.Off >= end {
			break
		}
		first := (max(e.Off, start) - start) / SectorSize
		last := (min(e.End(), end) - 1 - start) / SectorSize
		for s := first; s <= last; s++ {
			bm[s/8] |= 0x80 >> (s % 8)
		}
	}
	return bm
}

// emitBlock writes block b of a dynamic disk: its sector bitmap and data.
// In file mode an all-zero block is left unallocated.
func (v *Writer) emitBlock(b int64, buf []byte) error {
	defer func() { v.spare = buf }()
	bm := v.sectorBitmap(b)
	if v.wa != nil {
		if vdisk.IsZero(buf) {
			return nil
		}
		s := v.pos / SectorSize
		if s > unusedBAT-1 {
			return errors.New("vhd: output too large for the block allocation table")
		}
		v.bat[b] = uint32(s)
	} else if int64(v.bat[b])*SectorSize != v.pos {
		return fmt.Errorf("vhd: block %d at offset %#x, planned at sector %d", b, v.pos, v.bat[b])
	}
	if err := v.put(bm); err != nil {
		return err
	}
	return v.put(buf)
}

// Write takes the next bytes of the Data extents, in order.
func (v *Writer) Write(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.closed {
		return 0, errors.New("vhd: write after Close")
	}
	n, err := v.asm.Write(p)
	if err != nil && v.err == nil {
		v.err = err
	}
	return n, err
}

// Close writes the last block and the footer (for a fixed disk, the zeros
// before it) and, for a dynamic disk written to a file, the block
// allocation table. It does not close the underlying writer.
func (v *Writer) Close() error {
	if v.closed {
		return v.err
	}
	v.closed = true
	if v.err != nil {
		return v.err
	}
	err := v.asm.Finish()
	if err == nil && v.o.fixed {
		err = v.putZeros(v.size - v.pos)
	}
	if err == nil {
		err = v.put(v.footerBytes())
	}
	if err == nil && v.wa != nil {
		b := v.batBytes(int64(len(v.bat)) * 4)
		if _, werr := v.wa.WriteAt(b, v.batOff); werr != nil {
			err = fmt.Errorf("vhd: writing the block allocation table: %w", werr)
		}
	}
	if err != nil {
		v.err = err
	}
	return err
}

// Package vhd reads Microsoft Virtual Hard Disk images (VHD, QEMU's "vpc"
// format) as random-access disks.
//
// # Scope
//
// Fixed disks (the disk followed by a 512-byte footer) and dynamic disks (a
// block allocation table and, per allocated block, a sector bitmap followed
// by the block's data) are read. The footer at the end of the file is used,
// or for dynamic disks its copy at offset 0 when the end is damaged; the
// footer and dynamic header checksums are verified. Size reports the
// footer's current size. In a dynamic disk, unallocated blocks and sectors
// whose bitmap bit is clear read as zeros and are reported as image.Zero by
// Extents. A fixed disk has no allocation information: Extents reports one
// image.Data extent.
//
// # Limits
//
// Differencing disks are refused (ErrDifferencing, naming the parent).
// Footers of 511 bytes written by very old Virtual PC versions are not
// recognised. Some tools (Virtual PC, QEMU for disks they created) compute
// the size from the CHS geometry instead of the current size; for images
// made by QEMU both agree.
//
// # Writing
//
// NewWriter writes a dynamic disk (WithFixed: a fixed disk) sequentially,
// never reading the output back nor moving its offset. The footer's
// creator application is "qem2", which QEMU (like Hyper-V for "win ")
// reads as "the size is the current size, not the CHS geometry", so any
// size that is a multiple of 512 reads back exactly. A dynamic disk is
// the footer copy, the dynamic header, the block allocation table, then
// per stored block its sector bitmap (a bit set for each sector a Data
// extent overlaps) and its data, then the footer. Written to a stream
// (not an io.WriterAt, or an *os.File that is a pipe), every block a
// Data extent touches is stored and the table is written first; written
// to a file, all-zero blocks are left unallocated and Close writes the
// table with WriteAt.
//
// The format is specified in Microsoft's "Virtual Hard Disk Image Format
// Specification", version 1.0.
//
// # Security
//
// Images are untrusted. The block size is limited to 256 MiB; the block
// allocation table is read only when it lies inside the file, and a table
// whose blocks overlap is refused, so the work of Extents is bounded by
// the file size; every data and bitmap offset is checked against the file
// size before reading. Malformed structures are reported as
// *image.FormatError naming the file offset; nothing panics.
//
// ReadAt and Extents are safe for concurrent use.
package vhd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"unicode/utf16"

	"imgtool/image"
)

// Format lets image.Open recognise VHD images.
var Format = image.Format{Name: "vhd", Probe: Probe}

// ErrDifferencing is wrapped when the image is a differencing disk, which
// needs its parent to be read.
var ErrDifferencing = errors.New("vhd: differencing disk")

// DiskType is the footer's disk type.
type DiskType uint32

// Disk types.
const (
	DiskNone         DiskType = 0
	DiskFixed        DiskType = 2
	DiskDynamic      DiskType = 3
	DiskDifferencing DiskType = 4
)

// String returns "fixed", "dynamic", "differencing" or "unknown(N)".
func (t DiskType) String() string {
	switch t {
	case DiskNone:
		return "none"
	case DiskFixed:
		return "fixed"
	case DiskDynamic:
		return "dynamic"
	case DiskDifferencing:
		return "differencing"
	}
	return fmt.Sprintf("unknown(%d)", uint32(t))
}

// Image is an open VHD image. Create it with New.
type Image struct {
	// Footer is the footer in use.
	Footer Footer
	// Dynamic is the dynamic disk header; zero for a fixed disk.
	Dynamic DynamicHeader

	r          io.ReaderAt
	fileSize   int64
	size       int64
	blockSize  int64
	bitmapSize int64
	bat        []uint32 // entries covering the disk
}

var _ image.Image = (*Image)(nil)

// Probe returns the VHD image in r, or an error wrapping image.ErrWrongType
// when neither the last 512 bytes nor the first 512 bytes start with the
// footer cookie.
func Probe(r io.ReaderAt, size int64) (image.Image, error) {
	if size < FooterSize {
		return nil, fmt.Errorf("vhd: %w", image.ErrWrongType)
	}
	var c [8]byte
	for _, off := range []int64{size - FooterSize, 0} {
		if _, err := r.ReadAt(c[:], off); err == nil && string(c[:]) == FooterCookie {
			return New(r, size)
		}
	}
	return nil, fmt.Errorf("vhd: %w", image.ErrWrongType)
}

func formatErr(off int64, format string, args ...any) error {
	return &image.FormatError{Format: "vhd", Off: off, Msg: fmt.Sprintf(format, args...)}
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
	return fmt.Errorf("vhd: reading %s at offset %#x: %w", what, off, err)
}

// checksum returns the one's complement of the sum of b's bytes, with the
// four bytes at skip counted as zero.
func checksum(b []byte, skip int) uint32 {
	var s uint32
	for i, c := range b {
		if i < skip || i >= skip+4 {
			s += uint32(c)
		}
	}
	return ^s
}

// readFooter reads and verifies the footer at off.
func readFooter(r io.ReaderAt, off, fileSize int64) (Footer, error) {
	var f Footer
	b := make([]byte, FooterSize)
	if err := readFull(r, b, off, fileSize, "footer"); err != nil {
		return f, err
	}
	if string(b[:8]) != FooterCookie {
		return f, formatErr(off, "no footer cookie %q", FooterCookie)
	}
	if _, err := binary.Decode(b, binary.BigEndian, &f); err != nil {
		return f, formatErr(off, "footer: %v", err)
	}
	if c := checksum(b, footerChecksumOff); c != f.Checksum {
		return f, formatErr(off+footerChecksumOff, "footer checksum %#08x, computed %#08x", f.Checksum, c)
	}
	return f, nil
}

// New reads the VHD image in r, which is size bytes long.
func New(r io.ReaderAt, size int64) (*Image, error) {
	if size < FooterSize {
		return nil, formatErr(0, "file of %d bytes is too short for a footer", size)
	}
	d := &Image{r: r, fileSize: size}
	f, err := readFooter(r, size-FooterSize, size)
	if err != nil {
		// Dynamic disks keep a copy at the start.
		cp, err2 := readFooter(r, 0, size)
		if err2 != nil || cp.DiskType == DiskFixed {
			return nil, err
		}
		f = cp
	}
	d.Footer = f
	if f.CurrentSize > 1<<62 {
		return nil, formatErr(48, "current size %d too large", f.CurrentSize)
	}
	d.size = int64(f.CurrentSize)
	switch f.DiskType {
	case DiskFixed:
		if d.size > size-FooterSize {
			return nil, formatErr(size-FooterSize+48, "fixed disk of %d bytes in a file of %d bytes: file truncated", d.size, size)
		}
		return d, nil
	case DiskDynamic, DiskDifferencing:
	default:
		return nil, formatErr(size-FooterSize+60, "disk type %s", f.DiskType)
	}
	if err := d.readDynamic(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Image) readDynamic() error {
	f := &d.Footer
	if f.DataOffset > uint64(d.fileSize) {
		return formatErr(footerDataOffsetOff, "dynamic header offset %#x beyond the end of the file", f.DataOffset)
	}
	hoff := int64(f.DataOffset)
	b := make([]byte, DynamicHeaderSize)
	if err := readFull(d.r, b, hoff, d.fileSize, "dynamic header"); err != nil {
		return err
	}
	if string(b[:8]) != DynamicCookie {
		return formatErr(hoff, "no dynamic header cookie %q", DynamicCookie)
	}
	h := &d.Dynamic
	if _, err := binary.Decode(b, binary.BigEndian, h); err != nil {
		return formatErr(hoff, "dynamic header: %v", err)
	}
	if c := checksum(b, dynamicChecksumOff); c != h.Checksum {
		return formatErr(hoff+dynamicChecksumOff, "dynamic header checksum %#08x, computed %#08x", h.Checksum, c)
	}
	if f.DiskType == DiskDifferencing {
		return fmt.Errorf("%w with parent %q; merge it with its parent first: qemu-img convert -O vpc DISK.vhd FLAT.vhd", ErrDifferencing, parentName(h.ParentUnicodeName[:]))
	}
	bs := int64(h.BlockSize)
	if bs < SectorSize || bs%SectorSize != 0 || bs > maxBlockSize {
		return formatErr(hoff+32, "block size %d not a multiple of 512 up to 256 MiB", bs)
	}
	d.blockSize = bs
	d.bitmapSize = ((bs/SectorSize+7)/8 + SectorSize - 1) / SectorSize * SectorSize
	need := (d.size + bs - 1) / bs
	if need > int64(h.MaxTableEntries) {
		return formatErr(hoff+28, "block table of %d entries too small for a %d-byte disk (needs %d)", h.MaxTableEntries, d.size, need)
	}
	if h.TableOffset > uint64(d.fileSize) {
		return formatErr(hoff+dynamicTableOffOff, "block table offset %#x beyond the end of the file", h.TableOffset)
	}
	raw := make([]byte, 0)
	if need*4 <= d.fileSize {
		raw = make([]byte, need*4)
	}
	if err := readFull(d.r, raw, int64(h.TableOffset), d.fileSize, "block allocation table"); err != nil || int64(len(raw)) != need*4 {
		if err == nil {
			err = formatErr(int64(h.TableOffset), "block allocation table of %d entries larger than the file", need)
		}
		return err
	}
	d.bat = make([]uint32, need)
	var used []uint32
	for i := range d.bat {
		d.bat[i] = binary.BigEndian.Uint32(raw[i*4:])
		if d.bat[i] != unusedBAT {
			used = append(used, d.bat[i])
		}
	}
	slices.Sort(used)
	for i := 1; i < len(used); i++ {
		// Blocks never overlap; refusing overlaps bounds the work of
		// Extents by the file size.
		if int64(used[i]-used[i-1])*SectorSize < d.bitmapSize+d.blockSize {
			return formatErr(int64(h.TableOffset), "blocks at sectors %d and %d overlap", used[i-1], used[i])
		}
	}
	return nil
}

// parentName decodes the UTF-16 big-endian parent name.
func parentName(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.BigEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// Size returns the virtual disk size in bytes (the footer's current size).
func (d *Image) Size() int64 { return d.size }

// Format returns "vhd".
func (d *Image) Format() string { return "vhd" }

// Close does nothing: the caller owns the reader.
func (d *Image) Close() error { return nil }

// run is a stretch of the disk with one state.
type run struct {
	data bool  // allocated sectors, else zeros
	n    int64 // bytes from the requested offset
}

// bitmap reads the sector bitmap of an allocated block at file sector s.
func (d *Image) bitmap(s uint32, bi int64) ([]byte, int64, error) {
	off := int64(s) * SectorSize
	if off+d.bitmapSize+min(d.blockSize, d.size-bi*d.blockSize) > d.fileSize {
		return nil, 0, formatErr(int64(d.Dynamic.TableOffset)+bi*4, "block %d at %#x extends beyond the end of the file", bi, off)
	}
	bm := make([]byte, d.bitmapSize)
	if err := readFull(d.r, bm, off, d.fileSize, "sector bitmap"); err != nil {
		return nil, 0, err
	}
	return bm, off + d.bitmapSize, nil
}

// runAt returns the run of the dynamic disk that starts at off, up to the
// end of off's block, using the block's bitmap bm when allocated.
func (d *Image) runAt(off int64, bm []byte) run {
	in := off % d.blockSize
	rest := min(d.blockSize-in, d.size-off)
	if bm == nil {
		return run{n: rest}
	}
	s := in / SectorSize
	bit := func(s int64) bool { return bm[s/8]>>(7-s%8)&1 != 0 }
	set := bit(s)
	n := SectorSize - in%SectorSize
	for e := s + 1; n < rest; e++ {
		if e%8 == 0 && n+8*SectorSize <= rest && (bm[e/8] == 0 || bm[e/8] == 0xff) && (bm[e/8] != 0) == set {
			n += 8 * SectorSize
			e += 7
			continue
		}
		if bit(e) != set {
			break
		}
		n += SectorSize
	}
	return run{data: set, n: min(n, rest)}
}

// ReadAt reads len(p) bytes of the virtual disk at off. It returns io.EOF
// when the read reaches the end of the disk.
func (d *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("vhd: negative offset %d", off)
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
	if d.Footer.DiskType == DiskFixed {
		if err := readFull(d.r, p, off, d.fileSize, "data"); err != nil {
			return 0, err
		}
		return len(p), eof
	}
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		bi := pos / d.blockSize
		var bm []byte
		var data int64
		if s := d.bat[bi]; s != unusedBAT {
			var err error
			if bm, data, err = d.bitmap(s, bi); err != nil {
				return done, err
			}
		}
		// Serve the rest of this block run by run with one bitmap read.
		for done < len(p) && (off+int64(done))/d.blockSize == bi {
			pos := off + int64(done)
			r := d.runAt(pos, bm)
			n := int(min(r.n, int64(len(p)-done)))
			if r.data {
				if err := readFull(d.r, p[done:done+n], data+pos%d.blockSize, d.fileSize, "block data"); err != nil {
					return done, err
				}
			} else {
				clear(p[done : done+n])
			}
			done += n
		}
	}
	return done, eof
}

// Extents returns the allocation recorded in the block table and sector
// bitmaps: allocated sectors as image.Data, the rest as image.Zero. A fixed
// disk is one image.Data extent.
func (d *Image) Extents() ([]image.Extent, error) {
	if d.size == 0 {
		return nil, nil
	}
	if d.Footer.DiskType == DiskFixed {
		return []image.Extent{{Off: 0, Len: d.size, Kind: image.Data}}, nil
	}
	var out []image.Extent
	add := func(off, n int64, k image.ExtentKind) {
		if l := len(out); l > 0 && out[l-1].Kind == k && out[l-1].End() == off {
			out[l-1].Len += n
			return
		}
		out = append(out, image.Extent{Off: off, Len: n, Kind: k})
	}
	for bi, s := range d.bat {
		start := int64(bi) * d.blockSize
		end := min(start+d.blockSize, d.size)
		if s == unusedBAT {
			add(start, end-start, image.Zero)
			continue
		}
		bm, _, err := d.bitmap(s, int64(bi))
		if err != nil {
			return nil, err
		}
		for off := start; off < end; {
			r := d.runAt(off, bm)
			k := image.Zero
			if r.data {
				k = image.Data
			}
			add(off, r.n, k)
			off += r.n
		}
	}
	return out, nil
}

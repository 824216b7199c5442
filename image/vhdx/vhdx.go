// Package vhdx reads Microsoft VHDX images (Hyper-V's virtual disk format)
// as random-access disks.
//
// # Scope
//
// New reads the two headers (the valid one with the larger sequence number
// wins), the region tables, the metadata (block size, virtual disk size,
// logical sector size) and the block allocation table (BAT). Fixed and
// dynamic disks are read: fully present payload blocks from the file, blocks
// in any other state (not present, undefined, zero, unmapped) as zeros.
// Extents reports fully present blocks as image.Data and the rest as
// image.Zero. CRC-32C checksums of headers and region tables are verified.
//
// # Limits
//
// Refused with ErrUnsupported and a message saying what to do: differencing
// disks (they need their parent), images whose log is not empty (it must be
// replayed first, which this read-only package does not do), and required
// regions or metadata items it does not know. Nothing is ever written.
//
// The format is specified in Microsoft's [MS-VHDX] "Virtual Hard Disk v2
// (VHDX) File Format".
//
// # Security
//
// Images are untrusted. Block sizes are limited to 1–256 MiB as the
// specification says, the virtual size to 64 TiB, and region and metadata
// tables to their fixed 64 KiB. The BAT must lie inside the file; it is
// scanned in 1 MiB pieces and only fully present blocks are kept, which must
// lie inside the file and not overlap, so memory and the work of Extents are
// bounded by the size of the file, not by the virtual size it claims.
// Malformed structures are reported as *image.FormatError naming the file
// offset; nothing panics.
//
// ReadAt and Extents are safe for concurrent use.
package vhdx

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"
	"sync"

	"imgtool/image"
)

// Format lets image.Open recognise VHDX images.
var Format = image.Format{Name: "vhdx", Probe: Probe}

// ErrUnsupported is wrapped when the image is valid but cannot be read on
// its own.
var ErrUnsupported = errors.New("vhdx: unsupported")

// BlockState is the state of a payload block in the BAT.
type BlockState uint8

// Payload block states.
const (
	BlockNotPresent       BlockState = 0
	BlockUndefined        BlockState = 1
	BlockZero             BlockState = 2
	BlockUnmapped         BlockState = 3
	BlockFullyPresent     BlockState = 6
	BlockPartiallyPresent BlockState = 7
)

// String returns the state's name, for example "fully present".
func (s BlockState) String() string {
	switch s {
	case BlockNotPresent:
		return "not present"
	case BlockUndefined:
		return "undefined"
	case BlockZero:
		return "zero"
	case BlockUnmapped:
		return "unmapped"
	case BlockFullyPresent:
		return "fully present"
	case BlockPartiallyPresent:
		return "partially present"
	}
	return fmt.Sprintf("unknown(%d)", uint8(s))
}

// Well-known GUIDs.
var (
	RegionBAT          = mustGUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
	RegionMetadata     = mustGUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
	ItemFileParameters = mustGUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	ItemVirtualSize    = mustGUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	ItemPage83         = mustGUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
	ItemLogicalSector  = mustGUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
	ItemPhysicalSector = mustGUID("CDA348C7-445D-4471-9CC9-E9885251C556")
	ItemParentLocator  = mustGUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
)

// mustGUID parses a GUID in its text form into the on-disk byte order.
func mustGUID(s string) GUID {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		panic("vhdx: bad GUID " + s)
	}
	var g GUID
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	copy(g[8:], b[8:])
	return g
}

// String returns the GUID in its usual text form.
func (g GUID) String() string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", binary.LittleEndian.Uint32(g[0:]), binary.LittleEndian.Uint16(g[4:]),
		binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:])
}

// Image is an open VHDX image. Create it with New.
type Image struct {
	// Header is the current header.
	Header Header
	// BlockSize is the payload block size in bytes.
	BlockSize int64
	// LogicalSectorSize is 512 or 4096.
	LogicalSectorSize int64

	r        io.ReaderAt
	fileSize int64
	size     int64
	alloc    []allocBlock // fully present blocks, by block index
	batOff   int64
	chunk    int64 // payload blocks per sector bitmap block
}

var _ image.Image = (*Image)(nil)

// Probe returns the VHDX image in r, or an error wrapping
// image.ErrWrongType when r does not start with the VHDX signature.
func Probe(r io.ReaderAt, size int64) (image.Image, error) {
	var b [8]byte
	if size < 8 {
		return nil, fmt.Errorf("vhdx: %w", image.ErrWrongType)
	}
	if _, err := r.ReadAt(b[:], 0); err != nil || string(b[:]) != FileSignature {
		return nil, fmt.Errorf("vhdx: %w", image.ErrWrongType)
	}
	return New(r, size)
}

func formatErr(off int64, format string, args ...any) error {
	return &image.FormatError{Format: "vhdx", Off: off, Msg: fmt.Sprintf(format, args...)}
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
	return fmt.Errorf("vhdx: reading %s at offset %#x: %w", what, off, err)
}

// castagnoli is built on first use, not at start-up.
var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// crcOK checks the CRC-32C of b whose checksum field is at bytes 4–7.
func crcOK(b []byte) bool {
	want := binary.LittleEndian.Uint32(b[4:])
	c := crc32.Update(0, castagnoli(), b[:4])
	c = crc32.Update(c, castagnoli(), []byte{0, 0, 0, 0})
	c = crc32.Update(c, castagnoli(), b[8:])
	return c == want
}

// New reads the VHDX image in r, which is size bytes long.
func New(r io.ReaderAt, size int64) (*Image, error) {
	var sig [8]byte
	if err := readFull(r, sig[:], 0, size, "file identifier"); err != nil {
		return nil, err
	}
	if string(sig[:]) != FileSignature {
		return nil, formatErr(0, "no %q signature", FileSignature)
	}
	d := &Image{r: r, fileSize: size}
	if err := d.readHeader(); err != nil {
		return nil, err
	}
	regions, err := d.readRegions()
	if err != nil {
		return nil, err
	}
	if err := d.readMetadata(regions[RegionMetadata]); err != nil {
		return nil, err
	}
	if err := d.readBAT(regions[RegionBAT]); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Image) readHeader() error {
	var best *Header
	var errs []error
	for _, off := range []int64{Header1Offset, Header2Offset} {
		b := make([]byte, HeaderSize)
		if err := readFull(d.r, b, off, d.fileSize, "header"); err != nil {
			errs = append(errs, err)
			continue
		}
		var h Header
		binary.Decode(b, binary.LittleEndian, &h)
		if h.Signature != HeaderSignature {
			errs = append(errs, formatErr(off, "no header signature"))
			continue
		}
		if !crcOK(b) {
			errs = append(errs, formatErr(off+4, "header checksum mismatch"))
			continue
		}
		if best == nil || h.SequenceNumber > best.SequenceNumber {
			best = &h
		}
	}
	if best == nil {
		return errors.Join(errs...)
	}
	d.Header = *best
	if d.Header.Version != 1 {
		return fmt.Errorf("vhdx: header version %d: %w", d.Header.Version, ErrUnsupported)
	}
	if d.Header.LogGUID != (GUID{}) {
		return fmt.Errorf("vhdx: the log holds updates not yet applied (the disk was not closed cleanly): %w; "+
			"replay it on a copy first: qemu-img check -r all COPY.vhdx (or attach the disk once in Hyper-V)", ErrUnsupported)
	}
	return nil
}

type region struct{ off, len int64 }

func (d *Image) readRegions() (map[GUID]region, error) {
	var errs []error
	for _, off := range []int64{RegionTable1Offset, RegionTable2Offset} {
		b := make([]byte, RegionTableSize)
		if err := readFull(d.r, b, off, d.fileSize, "region table"); err != nil {
			errs = append(errs, err)
			continue
		}
		var h RegionTableHeader
		binary.Decode(b, binary.LittleEndian, &h)
		if h.Signature != RegionSignature {
			errs = append(errs, formatErr(off, "no region table signature"))
			continue
		}
		if !crcOK(b) {
			errs = append(errs, formatErr(off+4, "region table checksum mismatch"))
			continue
		}
		if h.EntryCount > maxRegionEntries {
			errs = append(errs, formatErr(off+8, "%d region entries", h.EntryCount))
			continue
		}
		m := map[GUID]region{}
		for i := range int(h.EntryCount) {
			var e RegionTableEntry
			binary.Decode(b[16+32*i:], binary.LittleEndian, &e)
			eoff := off + 16 + 32*int64(i)
			if e.GUID != RegionBAT && e.GUID != RegionMetadata {
				if e.Required&1 != 0 {
					return nil, fmt.Errorf("vhdx: required region %v: %w", e.GUID, ErrUnsupported)
				}
				continue
			}
			if e.FileOffset%mib != 0 || e.FileOffset > uint64(d.fileSize) || int64(e.Length) > d.fileSize-int64(e.FileOffset) {
				return nil, formatErr(eoff, "region %v at %#x (%d bytes) outside the file", e.GUID, e.FileOffset, e.Length)
			}
			m[e.GUID] = region{int64(e.FileOffset), int64(e.Length)}
		}
		for _, g := range []GUID{RegionBAT, RegionMetadata} {
			if _, ok := m[g]; !ok {
				return nil, formatErr(off, "region table lacks region %v", g)
			}
		}
		return m, nil
	}
	return nil, errors.Join(errs...)
}

func (d *Image) readMetadata(reg region) error {
	if reg.len < MetadataTableSize {
		return formatErr(reg.off, "metadata region of %d bytes too short", reg.len)
	}
	b := make([]byte, MetadataTableSize)
	if err := readFull(d.r, b, reg.off, d.fileSize, "metadata table"); err != nil {
		return err
	}
	var h MetadataTableHeader
	binary.Decode(b, binary.LittleEndian, &h)
	if string(h.Signature[:]) != MetadataSignature {
		return formatErr(reg.off, "no metadata table signature")
	}
	if h.EntryCount > maxMetadataEntries {
		return formatErr(reg.off+10, "%d metadata entries", h.EntryCount)
	}
	item := func(e MetadataTableEntry, eoff int64, n int) ([]byte, error) {
		if int64(e.Length) < int64(n) || int64(e.Offset)+int64(n) > reg.len {
			return nil, formatErr(eoff, "metadata item %v at %d (%d bytes) invalid", e.ItemID, e.Offset, e.Length)
		}
		v := make([]byte, n)
		return v, readFull(d.r, v, reg.off+int64(e.Offset), d.fileSize, "metadata item")
	}
	var haveParams, haveSize, haveSector bool
	var params FileParameters
	for i := range int(h.EntryCount) {
		var e MetadataTableEntry
		eoff := reg.off + 32 + 32*int64(i)
		binary.Decode(b[32+32*i:], binary.LittleEndian, &e)
		switch e.ItemID {
		case ItemFileParameters:
			v, err := item(e, eoff, 8)
			if err != nil {
				return err
			}
			binary.Decode(v, binary.LittleEndian, &params)
			haveParams = true
		case ItemVirtualSize:
			v, err := item(e, eoff, 8)
			if err != nil {
				return err
			}
			s := binary.LittleEndian.Uint64(v)
			if s > maxVirtualSize {
				return formatErr(reg.off+int64(e.Offset), "virtual size %d beyond 64 TiB", s)
			}
			d.size = int64(s)
			haveSize = true
		case ItemLogicalSector:
			v, err := item(e, eoff, 4)
			if err != nil {
				return err
			}
			d.LogicalSectorSize = int64(binary.LittleEndian.Uint32(v))
			haveSector = true
		case ItemParentLocator:
			return fmt.Errorf("vhdx: differencing disk (it has a parent locator): %w; merge it with its parent first: qemu-img convert -O vhdx DISK.vhdx FLAT.vhdx", ErrUnsupported)
		case ItemPage83, ItemPhysicalSector:
		default:
			if e.Flags&4 != 0 {
				return fmt.Errorf("vhdx: required metadata item %v: %w", e.ItemID, ErrUnsupported)
			}
		}
	}
	if !haveParams || !haveSize || !haveSector {
		return formatErr(reg.off, "metadata lacks file parameters, virtual disk size or logical sector size")
	}
	if params.Flags&2 != 0 {
		return fmt.Errorf("vhdx: differencing disk: %w; merge it with its parent first: qemu-img convert -O vhdx DISK.vhdx FLAT.vhdx", ErrUnsupported)
	}
	bs := int64(params.BlockSize)
	if bs < mib || bs > 256*mib || bs&(bs-1) != 0 {
		return formatErr(reg.off, "block size %d not a power of two from 1 to 256 MiB", bs)
	}
	if d.LogicalSectorSize != 512 && d.LogicalSectorSize != 4096 {
		return formatErr(reg.off, "logical sector size %d", d.LogicalSectorSize)
	}
	if d.size%d.LogicalSectorSize != 0 {
		return formatErr(reg.off, "virtual size %d not a multiple of the sector size", d.size)
	}
	d.BlockSize = bs
	d.chunk = (1 << 23) * d.LogicalSectorSize / bs
	return nil
}

// readBAT scans the BAT in pieces and keeps only the fully present blocks,
// so memory is bounded by the data the file really holds, not by the
// virtual size.
func (d *Image) readBAT(reg region) error {
	blocks := (d.size + d.BlockSize - 1) / d.BlockSize
	entries := blocks
	if blocks > 0 {
		entries += (blocks - 1) / d.chunk
	}
	if entries*8 > reg.len {
		return formatErr(reg.off, "BAT of %d bytes too small for %d blocks", reg.len, blocks)
	}
	d.batOff = reg.off
	buf := make([]byte, min(entries*8, 1<<20))
	var offs []int64
	for j0 := int64(0); j0 < entries; j0 += int64(len(buf)) / 8 {
		raw := buf[:min(int64(len(buf)), (entries-j0)*8)]
		if err := readFull(d.r, raw, reg.off+j0*8, d.fileSize, "BAT"); err != nil {
			return err
		}
		for k := 0; k < len(raw); k += 8 {
			j := j0 + int64(k/8)
			if j%(d.chunk+1) == d.chunk {
				continue // a sector bitmap entry
			}
			i := j - j/(d.chunk+1)
			e := binary.LittleEndian.Uint64(raw[k:])
			switch st := BlockState(e & batStateMask); st {
			case BlockFullyPresent:
				off := e & batOffsetMask
				if off == 0 || off > uint64(d.fileSize) || int64(off)+min(d.BlockSize, d.size-i*d.BlockSize) > d.fileSize {
					return formatErr(reg.off+j*8, "block %d at %#x beyond the end of the file", i, off)
				}
				d.alloc = append(d.alloc, allocBlock{i, int64(off)})
				offs = append(offs, int64(off))
			case BlockNotPresent, BlockUndefined, BlockZero, BlockUnmapped:
			case BlockPartiallyPresent:
				return fmt.Errorf("vhdx: partially present block %d in a disk without a parent: %w", i, ErrUnsupported)
			default:
				return formatErr(reg.off+j*8, "block %d in unknown state %d", i, st)
			}
		}
	}
	slices.Sort(offs)
	for i := 1; i < len(offs); i++ {
		if offs[i]-offs[i-1] < d.BlockSize {
			return formatErr(reg.off, "blocks at %#x and %#x overlap", offs[i-1], offs[i])
		}
	}
	return nil
}

// allocBlock is a fully present payload block.
type allocBlock struct {
	block int64 // index in the virtual disk
	off   int64 // file offset
}

// find returns the file offset of block bi, or -1 when it reads as zeros.
func (d *Image) find(bi int64) int64 {
	i, ok := slices.BinarySearchFunc(d.alloc, bi, func(a allocBlock, b int64) int { return int(min(max(a.block-b, -1), 1)) })
	if !ok {
		return -1
	}
	return d.alloc[i].off
}

// Size returns the virtual disk size in bytes.
func (d *Image) Size() int64 { return d.size }

// Format returns "vhdx".
func (d *Image) Format() string { return "vhdx" }

// Close does nothing: the caller owns the reader.
func (d *Image) Close() error { return nil }

// ReadAt reads len(p) bytes of the virtual disk at off. It returns io.EOF
// when the read reaches the end of the disk.
func (d *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("vhdx: negative offset %d", off)
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
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		bi := pos / d.BlockSize
		in := pos % d.BlockSize
		n := int(min(d.BlockSize-in, int64(len(p)-done)))
		if host := d.find(bi); host >= 0 {
			if err := readFull(d.r, p[done:done+n], host+in, d.fileSize, "payload block"); err != nil {
				return done, err
			}
		} else {
			clear(p[done : done+n])
		}
		done += n
	}
	return done, eof
}

// Extents returns fully present blocks as image.Data and all others as
// image.Zero, merged and in order.
func (d *Image) Extents() ([]image.Extent, error) {
	var out []image.Extent
	add := func(off, n int64, k image.ExtentKind) {
		if n <= 0 {
			return
		}
		if l := len(out); l > 0 && out[l-1].Kind == k {
			out[l-1].Len += n
		} else {
			out = append(out, image.Extent{Off: off, Len: n, Kind: k})
		}
	}
	var pos int64
	for _, a := range d.alloc {
		start := a.block * d.BlockSize
		end := min(start+d.BlockSize, d.size)
		add(pos, start-pos, image.Zero)
		add(start, end-start, image.Data)
		pos = end
	}
	add(pos, d.size-pos, image.Zero)
	return out, nil
}

// Package vmdk reads single-file VMware virtual disks (VMDK) as
// random-access disks.
//
// # Scope
//
// Two single-file kinds are read: monolithicSparse (a hosted sparse extent
// with a grain directory and grain tables, and the descriptor embedded in
// the file) and streamOptimized (deflate-compressed grains with markers,
// whose grain directory is found through the footer at the end of the
// file). Unallocated grains and zeroed grains (when the header allows them)
// read as zeros and are reported as image.Zero by Extents; allocated grains
// are image.Data. Size is the header's capacity.
//
// # Limits
//
// Refused with ErrUnsupported and a message saying what to do: a
// descriptor file whose data lives in other files (monolithicFlat,
// twoGbMaxExtentSparse, …), a descriptor naming more than one extent, a
// delta disk with a parent, and ESX "COWD" sparse extents. Only the primary
// grain directory is read.
//
// # Writing
//
// NewWriter writes a streamOptimized extent, a format made for sequential
// output, so any io.Writer (a pipe) will do: the header (grain directory
// "at the end") and embedded descriptor, then each grain that is not all
// zeros as its LBA, size and zlib stream padded to a sector (compressed
// on a bounded pool of goroutines, written in order), then the grain
// tables and grain directory with their markers, the footer and the
// end-of-stream marker.
//
// The format is specified in VMware's "Virtual Disk Format 5.0" technical
// note.
//
// # Security
//
// Images are untrusted. Grains are at most 2 MiB, grain tables at most
// 65536 entries, the embedded descriptor at most 1 MiB; the grain directory
// is read only when it lies inside the file, and a directory whose grain
// tables overlap is refused, so Extents does work bounded by the file
// size. Every grain and table offset is checked against the file size
// before it is read, and decompression never produces more than one grain.
// Malformed structures are reported as *image.FormatError naming the file
// offset; nothing panics.
//
// ReadAt and Extents are safe for concurrent use.
package vmdk

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/compress/zlib"

	"imgtool/image"
	"imgtool/image/internal/vdisk"
)

// Format lets image.Open recognise VMDK images.
var Format = image.Format{Name: "vmdk", Probe: Probe}

// ErrUnsupported is wrapped when the file is a VMDK this package does not
// read on its own.
var ErrUnsupported = errors.New("vmdk: unsupported")

// Flags are the header flags.
type Flags uint32

// Header flags.
const (
	FlagValidNewline Flags = 1 << 0  // newline detection characters are valid
	FlagRedundantGT  Flags = 1 << 1  // a redundant grain directory exists
	FlagZeroedGTE    Flags = 1 << 2  // grain table entry 1 means a zeroed grain
	FlagCompressed   Flags = 1 << 16 // grains are compressed
	FlagMarkers      Flags = 1 << 17 // metadata markers are present
)

// String names the set flags, for example "compressed|markers".
func (f Flags) String() string {
	var parts []string
	for _, n := range []struct {
		f Flags
		s string
	}{{FlagValidNewline, "newline"}, {FlagRedundantGT, "redundant-gt"}, {FlagZeroedGTE, "zeroed-gte"},
		{FlagCompressed, "compressed"}, {FlagMarkers, "markers"}} {
		if f&n.f != 0 {
			parts = append(parts, n.s)
			f &^= n.f
		}
	}
	if f != 0 {
		parts = append(parts, fmt.Sprintf("%#x", uint32(f)))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}

// CompressAlgorithm is the grain compression algorithm.
type CompressAlgorithm uint16

// Compression algorithms.
const (
	CompressNone    CompressAlgorithm = 0
	CompressDeflate CompressAlgorithm = 1
)

// String returns "none", "deflate" or "unknown(N)".
func (c CompressAlgorithm) String() string {
	switch c {
	case CompressNone:
		return "none"
	case CompressDeflate:
		return "deflate"
	}
	return fmt.Sprintf("unknown(%d)", uint16(c))
}

// MarkerType is the type of a stream-optimized metadata marker.
type MarkerType uint32

// Marker types.
const (
	MarkerEOS    MarkerType = 0 // end of stream
	MarkerGT     MarkerType = 1 // a grain table follows
	MarkerGD     MarkerType = 2 // the grain directory follows
	MarkerFooter MarkerType = 3 // the footer (a copy of the header) follows
)

// String returns "eos", "grain table", "grain directory", "footer" or
// "unknown(N)".
func (m MarkerType) String() string {
	switch m {
	case MarkerEOS:
		return "eos"
	case MarkerGT:
		return "grain table"
	case MarkerGD:
		return "grain directory"
	case MarkerFooter:
		return "footer"
	}
	return fmt.Sprintf("unknown(%d)", uint32(m))
}

// Image is an open single-file VMDK. Create it with New.
type Image struct {
	// Header is the sparse extent header in use (for a stream-optimized
	// extent, the footer's copy, which holds the grain directory offset).
	Header SparseExtentHeader
	// Descriptor is the embedded text descriptor, if any.
	Descriptor string

	r          io.ReaderAt
	fileSize   int64
	size       int64
	grainBytes int64
	gtBytes    int64 // disk bytes covered by one grain table
	gd         []uint32
	gts        *vdisk.LRU[[]uint32]
	grains     *vdisk.LRU[[]byte]
}

// inflaters holds zlib readers for reuse across images.
var inflaters sync.Pool

var _ image.Image = (*Image)(nil)

// Probe returns the VMDK in r, or an error wrapping image.ErrWrongType when
// r starts neither with the sparse extent magic nor with a text
// descriptor. A text descriptor is recognised and refused: its data lives
// in other files.
func Probe(r io.ReaderAt, size int64) (image.Image, error) {
	var b [len(descriptorText)]byte
	n, _ := r.ReadAt(b[:], 0)
	switch {
	case n >= 4 && binary.LittleEndian.Uint32(b[:]) == Magic:
		return New(r, size)
	case n >= 4 && string(b[:4]) == "COWD":
		return nil, fmt.Errorf("vmdk: ESX COWD sparse extent: %w; convert it on ESX or with qemu-img convert -O vmdk first", ErrUnsupported)
	case n == len(b) && string(b[:]) == descriptorText:
		return New(r, size)
	}
	return nil, fmt.Errorf("vmdk: %w", image.ErrWrongType)
}

func formatErr(off int64, format string, args ...any) error {
	return &image.FormatError{Format: "vmdk", Off: off, Msg: fmt.Sprintf(format, args...)}
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
	return fmt.Errorf("vmdk: reading %s at offset %#x: %w", what, off, err)
}

func readHeader(r io.ReaderAt, off, fileSize int64) (SparseExtentHeader, error) {
	var h SparseExtentHeader
	b := make([]byte, HeaderSize)
	if err := readFull(r, b, off, fileSize, "sparse extent header"); err != nil {
		return h, err
	}
	if _, err := binary.Decode(b, binary.LittleEndian, &h); err != nil {
		return h, formatErr(off, "header: %v", err)
	}
	if h.MagicNumber != Magic {
		return h, formatErr(off, "bad magic %#08x", h.MagicNumber)
	}
	return h, nil
}

// New reads the VMDK in r, which is size bytes long.
func New(r io.ReaderAt, size int64) (*Image, error) {
	var b [len(descriptorText)]byte
	if n, _ := r.ReadAt(b[:], 0); n == len(b) && string(b[:]) == descriptorText {
		desc := make([]byte, min(size, maxDescriptor))
		n, _ := r.ReadAt(desc, 0)
		return nil, descriptorOnly(string(desc[:n]))
	}
	h, err := readHeader(r, 0, size)
	if err != nil {
		return nil, err
	}
	d := &Image{r: r, fileSize: size}
	if h.Version < 1 || h.Version > 3 {
		return nil, fmt.Errorf("vmdk: sparse extent version %d: %w", h.Version, ErrUnsupported)
	}
	if h.DescriptorOffset != 0 && h.DescriptorSize != 0 {
		if h.DescriptorSize > maxDescriptor/SectorSize || h.DescriptorOffset > uint64(size)/SectorSize {
			return nil, formatErr(28, "embedded descriptor of %d sectors at sector %d invalid", h.DescriptorSize, h.DescriptorOffset)
		}
		desc := make([]byte, h.DescriptorSize*SectorSize)
		if err := readFull(r, desc, int64(h.DescriptorOffset)*SectorSize, size, "embedded descriptor"); err != nil {
			return nil, err
		}
		if i := bytes.IndexByte(desc, 0); i >= 0 {
			desc = desc[:i]
		}
		d.Descriptor = string(desc)
		if err := checkDescriptor(d.Descriptor); err != nil {
			return nil, err
		}
	}
	if h.GDOffset == gdAtEnd {
		if h, err = readFooter(r, size); err != nil {
			return nil, err
		}
	}
	d.Header = h
	if h.Flags&FlagCompressed != 0 && h.CompressAlgorithm != CompressDeflate {
		return nil, fmt.Errorf("vmdk: compression algorithm %s: %w", h.CompressAlgorithm, ErrUnsupported)
	}
	if h.GrainSize == 0 || h.GrainSize&(h.GrainSize-1) != 0 || h.GrainSize > maxGrainBytes/SectorSize {
		return nil, formatErr(20, "grain size of %d sectors not a power of two up to 2 MiB", h.GrainSize)
	}
	if h.NumGTEsPerGT == 0 || h.NumGTEsPerGT > maxGTEsPerGT {
		return nil, formatErr(44, "%d entries per grain table", h.NumGTEsPerGT)
	}
	if h.Capacity > (1<<62)/SectorSize {
		return nil, formatErr(12, "capacity of %d sectors too large", h.Capacity)
	}
	d.size = int64(h.Capacity) * SectorSize
	d.grainBytes = int64(h.GrainSize) * SectorSize
	d.gtBytes = d.grainBytes * int64(h.NumGTEsPerGT)
	nGD := (d.size + d.gtBytes - 1) / d.gtBytes
	if h.GDOffset > uint64(size)/SectorSize || nGD*4 > size-int64(h.GDOffset)*SectorSize {
		return nil, formatErr(56, "grain directory of %d entries at sector %d beyond the end of the file", nGD, h.GDOffset)
	}
	raw := make([]byte, nGD*4)
	gdOff := int64(h.GDOffset) * SectorSize
	if err := readFull(r, raw, gdOff, size, "grain directory"); err != nil {
		return nil, err
	}
	d.gd = make([]uint32, nGD)
	var used []uint32
	for i := range d.gd {
		d.gd[i] = binary.LittleEndian.Uint32(raw[i*4:])
		if d.gd[i] != 0 {
			used = append(used, d.gd[i])
		}
	}
	slices.Sort(used)
	for i := 1; i < len(used); i++ {
		// Grain tables never overlap; refusing overlaps bounds the work
		// of Extents by the file size.
		if int64(used[i]-used[i-1])*SectorSize < int64(h.NumGTEsPerGT)*4 {
			return nil, formatErr(gdOff, "grain tables at sectors %d and %d overlap", used[i-1], used[i])
		}
	}
	d.gts = vdisk.NewLRU[[]uint32](256)
	d.grains = vdisk.NewLRU[[]byte](4)
	return d, nil
}

// readFooter reads the footer of a stream-optimized extent: a footer
// marker, the footer (a header with the real grain directory offset) and an
// end-of-stream marker in the last three sectors.
func readFooter(r io.ReaderAt, size int64) (SparseExtentHeader, error) {
	if size < 3*SectorSize {
		return SparseExtentHeader{}, formatErr(0, "grain directory at the end, but the file is too short for a footer")
	}
	var mb [MarkerSize]byte
	moff := size - 3*SectorSize
	if err := readFull(r, mb[:], moff, size, "footer marker"); err != nil {
		return SparseExtentHeader{}, err
	}
	if t := MarkerType(binary.LittleEndian.Uint32(mb[12:])); t != MarkerFooter || binary.LittleEndian.Uint32(mb[8:]) != 0 {
		return SparseExtentHeader{}, formatErr(moff, "no footer marker before the end of the file (found %s): file truncated?", t)
	}
	h, err := readHeader(r, size-2*SectorSize, size)
	if err != nil {
		return h, err
	}
	if h.GDOffset == gdAtEnd {
		return h, formatErr(size-2*SectorSize+56, "footer does not give the grain directory offset")
	}
	return h, nil
}

// descriptorOnly explains why a descriptor file cannot be read alone.
func descriptorOnly(desc string) error {
	ct := descriptorField(desc, "createType")
	return fmt.Errorf("vmdk: this file is only the descriptor of a multi-file VMDK (createType %q, extents %s): %w; "+
		"convert the set to one file first: qemu-img convert -O vmdk -o subformat=monolithicSparse DESCRIPTOR.vmdk ONE.vmdk",
		ct, strings.Join(extentFiles(desc), ", "), ErrUnsupported)
}

// checkDescriptor refuses embedded descriptors that need other files.
func checkDescriptor(desc string) error {
	if ext := extentFiles(desc); len(ext) > 1 {
		return fmt.Errorf("vmdk: descriptor names %d extents (%s): %w; convert the set to one file first: qemu-img convert -O vmdk -o subformat=monolithicSparse DESCRIPTOR.vmdk ONE.vmdk",
			len(ext), strings.Join(ext, ", "), ErrUnsupported)
	}
	if p := descriptorField(desc, "parentCID"); p != "" && !strings.EqualFold(p, "ffffffff") {
		return fmt.Errorf("vmdk: delta disk with parent %q: %w; convert it with its parent first: qemu-img convert -O vmdk DISK.vmdk FLAT.vmdk",
			descriptorField(desc, "parentFileNameHint"), ErrUnsupported)
	}
	return nil
}

// descriptorField returns the value of key=value in a descriptor.
func descriptorField(desc, key string) string {
	sc := bufio.NewScanner(strings.NewReader(desc))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && strings.TrimSpace(k) == key {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}

// extentFiles returns the file names of a descriptor's extent lines.
func extentFiles(desc string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(desc))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 4 && (f[0] == "RW" || f[0] == "RDONLY" || f[0] == "NOACCESS") {
			if i := strings.IndexByte(sc.Text(), '"'); i >= 0 {
				name, _, _ := strings.Cut(sc.Text()[i+1:], `"`)
				out = append(out, strconvQuote(name))
			} else {
				out = append(out, f[3])
			}
		}
	}
	return out
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }

// Size returns the virtual disk size in bytes.
func (d *Image) Size() int64 { return d.size }

// Format returns "vmdk".
func (d *Image) Format() string { return "vmdk" }

// Close does nothing: the caller owns the reader.
func (d *Image) Close() error { return nil }

// grainTable returns grain table i, or nil when unallocated.
func (d *Image) grainTable(i int64) ([]uint32, error) {
	s := d.gd[i]
	if s == 0 {
		return nil, nil
	}
	if t, ok := d.gts.Get(uint64(s)); ok {
		return t, nil
	}
	n := int64(d.Header.NumGTEsPerGT)
	raw := make([]byte, n*4)
	if err := readFull(d.r, raw, int64(s)*SectorSize, d.fileSize, "grain table"); err != nil {
		return nil, err
	}
	t := make([]uint32, n)
	for j := range t {
		t[j] = binary.LittleEndian.Uint32(raw[j*4:])
	}
	d.gts.Put(uint64(s), t)
	return t, nil
}

// kind of a run of guest bytes.
type kind uint8

const (
	kZero kind = iota
	kData
	kCompressed
)

type mapping struct {
	kind kind
	host int64 // kData: file offset of the byte; kCompressed: file offset of the grain header
	n    int64 // bytes from the requested offset
	gte  int64 // file offset of the grain table entry, for errors
}

func (d *Image) lookup(off int64) (mapping, error) {
	gi := off / d.gtBytes
	t, err := d.grainTable(gi)
	if err != nil {
		return mapping{}, err
	}
	if t == nil {
		return mapping{kind: kZero, n: d.gtBytes - off%d.gtBytes}, nil
	}
	j := (off % d.gtBytes) / d.grainBytes
	in := off % d.grainBytes
	rest := d.grainBytes - in
	e := t[j]
	gte := int64(d.gd[gi])*SectorSize + j*4
	switch {
	case e == 0, e == gteZeroed && d.Header.Flags&FlagZeroedGTE != 0:
		return mapping{kind: kZero, n: rest}, nil
	case d.Header.Flags&FlagCompressed != 0:
		return mapping{kind: kCompressed, host: int64(e) * SectorSize, n: rest, gte: gte}, nil
	}
	host := int64(e)*SectorSize + in
	if host+min(rest, d.size-off) > d.fileSize {
		return mapping{}, formatErr(gte, "grain at sector %d beyond the end of the file", e)
	}
	return mapping{kind: kData, host: host, n: rest, gte: gte}, nil
}

// grain returns the decompressed grain starting at file offset host, which
// holds guest offset off.
func (d *Image) grain(m mapping, off int64) ([]byte, error) {
	if g, ok := d.grains.Get(uint64(m.host)); ok {
		return g, nil
	}
	var hb [GrainHdrSize]byte
	if err := readFull(d.r, hb[:], m.host, d.fileSize, "compressed grain header"); err != nil {
		return nil, err
	}
	lba := binary.LittleEndian.Uint64(hb[:])
	n := int64(binary.LittleEndian.Uint32(hb[8:]))
	start := off - off%d.grainBytes
	if lba != uint64(start/SectorSize) {
		return nil, formatErr(m.host, "compressed grain for sector %d found where sector %d was expected", lba, start/SectorSize)
	}
	if n == 0 || n > 2*d.grainBytes+4096 {
		return nil, formatErr(m.host+8, "compressed grain of %d bytes", n)
	}
	in := make([]byte, n)
	if err := readFull(d.r, in, m.host+GrainHdrSize, d.fileSize, "compressed grain"); err != nil {
		return nil, err
	}
	out := make([]byte, d.grainBytes)
	if err := d.inflate(out, in, min(d.grainBytes, d.size-start)); err != nil {
		return nil, formatErr(m.host, "compressed grain: %v", err)
	}
	d.grains.Put(uint64(m.host), out)
	return out, nil
}

// inflate decompresses the zlib stream in into out; at least need bytes
// must come out.
func (d *Image) inflate(out, in []byte, need int64) error {
	br := bytes.NewReader(in)
	zr, _ := inflaters.Get().(io.ReadCloser)
	if zr == nil {
		var err error
		if zr, err = zlib.NewReader(br); err != nil {
			return err
		}
	} else if err := zr.(zlib.Resetter).Reset(br, nil); err != nil {
		return err
	}
	defer inflaters.Put(zr)
	n, err := io.ReadFull(zr, out)
	if int64(n) >= need {
		return nil
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = fmt.Errorf("grain decompresses to %d bytes, want %d", n, need)
	}
	return err
}

// ReadAt reads len(p) bytes of the virtual disk at off. It returns io.EOF
// when the read reaches the end of the disk.
func (d *Image) ReadAt(p []byte, off int64) (int, error) {
	return vdisk.ReadAt(p, off, d.size, "vmdk", d.readRun)
}

// readRun fills a prefix of p, up to the end of the run that pos lies in,
// with the disk's bytes at pos.
func (d *Image) readRun(pos int64, p []byte) (int, error) {
	m, err := d.lookup(pos)
	if err != nil {
		return 0, err
	}
	n := int(min(m.n, int64(len(p))))
	dst := p[:n]
	switch m.kind {
	case kZero:
		clear(dst)
	case kData:
		if err := readFull(d.r, dst, m.host, d.fileSize, "grain"); err != nil {
			return 0, err
		}
	case kCompressed:
		g, err := d.grain(m, pos)
		if err != nil {
			return 0, err
		}
		copy(dst, g[pos%d.grainBytes:])
	}
	return n, nil
}

// Extents returns the allocation recorded in the grain tables: allocated
// grains as image.Data, unallocated and zeroed grains as image.Zero.
func (d *Image) Extents() ([]image.Extent, error) {
	var out []image.Extent
	for off := int64(0); off < d.size; {
		m, err := d.lookup(off)
		if err != nil {
			return nil, err
		}
		n := min(m.n, d.size-off)
		k := image.Data
		if m.kind == kZero {
			k = image.Zero
		}
		if l := len(out); l > 0 && out[l-1].Kind == k {
			out[l-1].Len += n
		} else {
			out = append(out, image.Extent{Off: off, Len: n, Kind: k})
		}
		off += n
	}
	return out, nil
}

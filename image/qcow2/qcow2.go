// Package qcow2 reads QEMU copy-on-write disk images (qcow2, versions 2 and
// 3) as random-access disks.
//
// # Scope
//
// New decodes the header (with the version 3 fields and header extensions)
// and the active L1 table; ReadAt then walks L1 and L2 tables to serve any
// range of the virtual disk. Supported: standard clusters, zero clusters
// (the version 3 zero flag, with or without a preallocated host cluster),
// unallocated clusters (read as zeros), compressed clusters (raw deflate, or
// zstd when the header's compression type says so), extended L2 entries
// (subclusters), cluster sizes from 512 bytes to 2 MiB, and images with the
// dirty bit set (read as they are, without replaying refcounts, which
// reading never needs). Extents reports the allocation recorded in the L2
// tables: allocated clusters as image.Data, unallocated and zero clusters as
// image.Zero.
//
// # Limits
//
// Refused, with an error that says so: images with a backing file
// (ErrBackingFile; the message names the file and the qemu-img command that
// flattens the chain), encrypted images (ErrEncrypted), images marked
// corrupt, images whose data lives in an external data file, and any
// incompatible feature this package does not know (ErrUnsupported, naming
// the feature). Internal snapshots are ignored: the active state is read.
//
// # Writing
//
// NewWriter writes a version 3 image (compat=1.1, 16-bit refcounts, zlib
// compression type) sequentially: the output is never read back nor its
// offset moved, and every refcount is exact (qemu-img check finds no
// errors and no leaks). Where the tables go depends on the output:
//
//   - A stream (w is not an io.WriterAt, or is an *os.File that is a pipe,
//     terminal or socket): every table is computed from the extents and
//     written before the data. Every cluster a Data extent touches gets a
//     host cluster, all-zero ones included.
//   - A file (an io.WriterAt: a regular file or block device): the header,
//     L1 table and refcount table come first, then room for the L2 tables
//     and refcount blocks sized for the largest possible result, then the
//     data; all-zero clusters are left unallocated and Close fills the
//     reserved room with WriteAt.
//
// Compressed output (WithCompression) places each cluster at an offset
// known only once the clusters before it are compressed, so it needs a
// file: NewWriter returns ErrNeedFile for a stream. Clusters are
// compressed as raw deflate with a 4 KiB window (what qemu inflates with)
// on a bounded pool of goroutines and written in order; a cluster whose
// compressed form is not smaller is stored as it is.
//
// The format is specified in QEMU's docs/interop/qcow2.txt.
//
// # Security
//
// Images are untrusted. The L1 table is read only when it lies inside the
// file and is at most 32 MiB; every L2 table, data cluster and compressed
// cluster offset is checked against the file size before it is read;
// decompression never produces more than one cluster; at most 16 MiB of L2
// tables are cached. Extents refuses an L1 table that names the same L2
// table twice, so its work is bounded by the size of the file, not by the
// virtual size the header claims. Malformed structures are reported as
// *image.FormatError naming the file offset; nothing panics.
//
// ReadAt and Extents are safe for concurrent use.
package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"imgtool/image"
	"imgtool/image/internal/vdisk"
)

// Format lets image.Open recognise qcow2 images.
var Format = image.Format{Name: "qcow2", Probe: Probe}

// Errors for images that are valid but cannot be read on their own.
var (
	// ErrBackingFile is wrapped when the image has a backing file.
	ErrBackingFile = errors.New("qcow2: image has a backing file")
	// ErrEncrypted is wrapped when the image is encrypted.
	ErrEncrypted = errors.New("qcow2: image is encrypted")
	// ErrUnsupported is wrapped when the image uses a feature this
	// package does not read.
	ErrUnsupported = errors.New("qcow2: unsupported feature")
)

// Feature is a set of incompatible feature bits of a version 3 header.
type Feature uint64

// Incompatible feature bits.
const (
	FeatureDirty           Feature = 1 << 0 // refcounts may be stale; readable
	FeatureCorrupt         Feature = 1 << 1 // metadata known to be damaged
	FeatureExternalData    Feature = 1 << 2 // guest data lives in another file
	FeatureCompressionType Feature = 1 << 3 // compression type field is used
	FeatureExtendedL2      Feature = 1 << 4 // L2 entries carry subcluster bitmaps

	knownFeatures = FeatureDirty | FeatureCorrupt | FeatureExternalData | FeatureCompressionType | FeatureExtendedL2
)

var featureNames = [...]string{"dirty", "corrupt", "external data file", "compression type", "extended L2 entries"}

// String names the set bits, for example "dirty|extended L2 entries".
func (f Feature) String() string {
	if f == 0 {
		return "none"
	}
	var parts []string
	for b := 0; b < 64; b++ {
		if f&(1<<b) == 0 {
			continue
		}
		if b < len(featureNames) {
			parts = append(parts, featureNames[b])
		} else {
			parts = append(parts, fmt.Sprintf("bit %d", b))
		}
	}
	return strings.Join(parts, "|")
}

// CompressionType is the algorithm of compressed clusters.
type CompressionType uint8

// Compression types.
const (
	CompressionZlib CompressionType = 0 // raw deflate (the qcow2 name is "zlib")
	CompressionZstd CompressionType = 1 // zstd frames
)

// String returns "zlib", "zstd" or "unknown(N)".
func (c CompressionType) String() string {
	switch c {
	case CompressionZlib:
		return "zlib"
	case CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("unknown(%d)", uint8(c))
}

// Image is an open qcow2 image. Create it with New.
type Image struct {
	// Header is the decoded header. For a version 2 image the version 3
	// fields are zero, except HeaderLength, which is 72.
	Header HeaderV3

	r           io.ReaderAt
	fileSize    int64
	size        int64
	clusterBits uint
	clusterSize int64
	l2Entries   int64 // entries per L2 table
	extL2       bool
	l1          []uint64
	l2          *vdisk.LRU[[]uint64]
	comp        *vdisk.LRU[[]byte]
	decomp      decompressor
}

var _ image.Image = (*Image)(nil)

// Probe returns the qcow2 image in r, or an error wrapping
// image.ErrWrongType when r does not start with the qcow2 magic.
func Probe(r io.ReaderAt, size int64) (image.Image, error) {
	var m [4]byte
	if size < 4 {
		return nil, fmt.Errorf("qcow2: %w", image.ErrWrongType)
	}
	if _, err := r.ReadAt(m[:], 0); err != nil {
		return nil, fmt.Errorf("qcow2: %w", image.ErrWrongType)
	}
	if binary.BigEndian.Uint32(m[:]) != Magic {
		return nil, fmt.Errorf("qcow2: %w", image.ErrWrongType)
	}
	return New(r, size)
}

func formatErr(off int64, format string, args ...any) error {
	return &image.FormatError{Format: "qcow2", Off: off, Msg: fmt.Sprintf(format, args...)}
}

// readFull reads len(p) bytes at off, reporting a short file as a
// FormatError about what.
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
	return fmt.Errorf("qcow2: reading %s at offset %#x: %w", what, off, err)
}

// New reads the qcow2 image in r, which is size bytes long.
func New(r io.ReaderAt, size int64) (*Image, error) {
	if size < HeaderV2Size {
		return nil, formatErr(0, "file of %d bytes is too short for a header", size)
	}
	buf := make([]byte, binary.Size(HeaderV3{}))
	n := len(buf)
	if int64(n) > size {
		n = int(size)
	}
	if err := readFull(r, buf[:n], 0, size, "header"); err != nil {
		return nil, err
	}
	d := &Image{r: r, fileSize: size}
	h := &d.Header
	if _, err := binary.Decode(buf, binary.BigEndian, &h.HeaderV2); err != nil {
		return nil, formatErr(0, "header: %v", err)
	}
	if h.Magic != Magic {
		return nil, formatErr(0, "bad magic %#08x", h.Magic)
	}
	switch h.Version {
	case 2:
		h.HeaderLength = HeaderV2Size
	case 3:
		if n < HeaderV3Size {
			return nil, formatErr(0, "file of %d bytes is too short for a version 3 header", size)
		}
		// buf is zero-padded when the file is shorter than the longest
		// header; the optional compression type then reads as zlib.
		if _, err := binary.Decode(buf, binary.BigEndian, h); err != nil {
			return nil, formatErr(0, "header: %v", err)
		}
		if h.HeaderLength <= HeaderV3Size {
			h.CompressionType = CompressionZlib
			h.Padding = [7]byte{}
		}
	default:
		return nil, fmt.Errorf("qcow2: version %d: %w (only versions 2 and 3 exist)", h.Version, ErrUnsupported)
	}
	if h.ClusterBits < MinClusterBits || h.ClusterBits > MaxClusterBits {
		return nil, formatErr(20, "cluster_bits %d outside %d..%d", h.ClusterBits, MinClusterBits, MaxClusterBits)
	}
	d.clusterBits = uint(h.ClusterBits)
	d.clusterSize = 1 << d.clusterBits
	if h.Version == 3 {
		if h.HeaderLength < HeaderV3Size || h.HeaderLength%8 != 0 || int64(h.HeaderLength) > d.clusterSize {
			return nil, formatErr(100, "header_length %d invalid", h.HeaderLength)
		}
	}
	ext, err := d.readExtensions()
	if err != nil {
		return nil, err
	}
	if err := d.checkFeatures(ext); err != nil {
		return nil, err
	}
	if h.CryptMethod != 0 || ext.crypto {
		return nil, fmt.Errorf("qcow2: encryption method %d: %w; decrypt it first: qemu-img convert --object secret,id=sec0,file=PASSWORD_FILE --image-opts encrypt.key-secret=sec0,driver=qcow2,file.filename=IN -O qcow2 OUT", h.CryptMethod, ErrEncrypted)
	}
	if h.BackingFileOffset != 0 {
		name, err := d.backingName()
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w %q; convert it with its backing chain first: qemu-img convert -O qcow2 IMAGE FLAT.qcow2", ErrBackingFile, name)
	}
	if h.Size > 1<<62 {
		return nil, formatErr(24, "virtual size %d too large", h.Size)
	}
	d.size = int64(h.Size)
	if d.extL2 {
		d.l2Entries = d.clusterSize / 16
	} else {
		d.l2Entries = d.clusterSize / 8
	}
	perL1 := d.l2Entries * d.clusterSize // bytes of disk per L1 entry, at most 2^39
	need := (d.size + perL1 - 1) / perL1
	if int64(h.L1Size) < need {
		return nil, formatErr(36, "L1 table of %d entries too small for a %d-byte disk (needs %d)", h.L1Size, d.size, need)
	}
	if int64(h.L1Size)*8 > maxL1Bytes {
		return nil, formatErr(36, "L1 table of %d entries exceeds the 32 MiB limit", h.L1Size)
	}
	// Entries past what the disk needs are never used: read only those.
	l1off := int64(h.L1TableOffset)
	if h.L1TableOffset > 1<<62 || l1off%d.clusterSize != 0 {
		return nil, formatErr(40, "L1 table offset %#x not cluster-aligned", h.L1TableOffset)
	}
	if need*8 > size-min(l1off, size) {
		return nil, formatErr(40, "L1 table at %#x (%d entries) extends beyond the end of the file", l1off, need)
	}
	if need > 0 {
		raw := make([]byte, need*8)
		if err := readFull(r, raw, l1off, size, "L1 table"); err != nil {
			return nil, err
		}
		d.l1 = make([]uint64, need)
		for i := range d.l1 {
			d.l1[i] = binary.BigEndian.Uint64(raw[i*8:])
		}
	}
	nl2 := int((16 << 20) >> d.clusterBits)
	d.l2 = vdisk.NewLRU[[]uint64](max(4, min(nl2, 1024)))
	d.comp = vdisk.NewLRU[[]byte](4)
	d.decomp = newDecompressor(h.CompressionType)
	return d, nil
}

type extensions struct {
	featureNames map[int]string
	dataFile     string
	crypto       bool
}

// readExtensions walks the header extensions, which lie in the first
// cluster after the header.
func (d *Image) readExtensions() (extensions, error) {
	var ext extensions
	off := int64(d.Header.HeaderLength)
	end := min(d.clusterSize, d.fileSize)
	for i := 0; off+8 <= end; i++ {
		var hb [8]byte
		if err := readFull(d.r, hb[:], off, d.fileSize, "header extension"); err != nil {
			return ext, err
		}
		typ, length := binary.BigEndian.Uint32(hb[:]), int64(binary.BigEndian.Uint32(hb[4:]))
		if typ == ExtEnd {
			break
		}
		if length > end-off-8 {
			return ext, formatErr(off, "header extension %#x of %d bytes extends beyond the first cluster", typ, length)
		}
		data := make([]byte, length)
		if err := readFull(d.r, data, off+8, d.fileSize, "header extension"); err != nil {
			return ext, err
		}
		switch typ {
		case ExtFeatureNameTable:
			ext.featureNames = map[int]string{}
			for j := 0; j+48 <= len(data); j += 48 {
				if data[j] != 0 { // incompatible features only
					continue
				}
				ext.featureNames[int(data[j+1])] = strings.TrimRight(string(data[j+2:j+48]), "\x00")
			}
		case ExtDataFile:
			ext.dataFile = string(data)
		case ExtFullDiskCrypto:
			ext.crypto = true
		}
		off += 8 + (length+7)&^7
	}
	return ext, nil
}

func (d *Image) checkFeatures(ext extensions) error {
	f := Feature(d.Header.IncompatibleFeatures)
	if unknown := f &^ knownFeatures; unknown != 0 {
		var names []string
		for b := 0; b < 64; b++ {
			if unknown&(1<<b) == 0 {
				continue
			}
			if n := ext.featureNames[b]; n != "" {
				names = append(names, fmt.Sprintf("%q (bit %d)", n, b))
			} else {
				names = append(names, fmt.Sprintf("bit %d", b))
			}
		}
		return fmt.Errorf("qcow2: incompatible feature %s: %w", strings.Join(names, ", "), ErrUnsupported)
	}
	if f&FeatureCorrupt != 0 {
		return fmt.Errorf("qcow2: image is marked corrupt: %w; repair a copy with qemu-img check -r all, then read that", ErrUnsupported)
	}
	if f&FeatureExternalData != 0 {
		name := ext.dataFile
		if name == "" {
			name = "(unnamed)"
		}
		return fmt.Errorf("qcow2: guest data lives in the external data file %q: %w; convert it first: qemu-img convert -O qcow2 IMAGE SELF-CONTAINED.qcow2", name, ErrUnsupported)
	}
	ct := d.Header.CompressionType
	if ct != CompressionZlib && f&FeatureCompressionType == 0 {
		return formatErr(104, "compression type %s without the compression type feature bit", ct)
	}
	if ct != CompressionZlib && ct != CompressionZstd {
		return fmt.Errorf("qcow2: compression type %s: %w", ct, ErrUnsupported)
	}
	d.extL2 = f&FeatureExtendedL2 != 0
	return nil
}

func (d *Image) backingName() (string, error) {
	h := &d.Header
	if h.BackingFileSize > maxBackingName || h.BackingFileOffset > uint64(d.fileSize) {
		return "", formatErr(8, "backing file name of %d bytes at %#x invalid", h.BackingFileSize, h.BackingFileOffset)
	}
	name := make([]byte, h.BackingFileSize)
	if err := readFull(d.r, name, int64(h.BackingFileOffset), d.fileSize, "backing file name"); err != nil {
		return "", err
	}
	return string(name), nil
}

// Size returns the virtual disk size in bytes.
func (d *Image) Size() int64 { return d.size }

// Format returns "qcow2".
func (d *Image) Format() string { return "qcow2" }

// Close does nothing: the caller owns the reader.
func (d *Image) Close() error { return nil }

// ClusterSize returns the cluster size in bytes.
func (d *Image) ClusterSize() int64 { return d.clusterSize }

// l2Table returns the L2 table of L1 entry i, or nil when unallocated.
func (d *Image) l2Table(i int64) ([]uint64, error) {
	e := d.l1[i]
	off := int64(e & offsetMask)
	if off == 0 {
		return nil, nil
	}
	l1pos := int64(d.Header.L1TableOffset) + i*8
	if e&l1Reserved != 0 {
		return nil, formatErr(l1pos, "L1 entry %d has reserved bits set (%#x)", i, e)
	}
	if off%d.clusterSize != 0 {
		return nil, formatErr(l1pos, "L1 entry %d: L2 table offset %#x not cluster-aligned", i, off)
	}
	if off > d.fileSize-d.clusterSize {
		return nil, formatErr(l1pos, "L1 entry %d: L2 table at %#x beyond the end of the file", i, off)
	}
	if t, ok := d.l2.Get(uint64(off)); ok {
		return t, nil
	}
	raw := make([]byte, d.clusterSize)
	if err := readFull(d.r, raw, off, d.fileSize, "L2 table"); err != nil {
		return nil, err
	}
	t := make([]uint64, len(raw)/8)
	for j := range t {
		t[j] = binary.BigEndian.Uint64(raw[j*8:])
	}
	d.l2.Put(uint64(off), t)
	return t, nil
}

// kind of a run of guest bytes.
type kind uint8

const (
	kZero kind = iota
	kData
	kCompressed
)

// mapping says where the guest bytes at a given offset live.
type mapping struct {
	kind kind
	host int64 // kData: host offset of the first byte; kCompressed: offset of the compressed data
	clen int64 // kCompressed: bytes of compressed data
	n    int64 // guest bytes covered from the requested offset
}

// lookup maps the guest offset off (< size).
func (d *Image) lookup(off int64) (mapping, error) {
	vc := off >> d.clusterBits
	inCl := off & (d.clusterSize - 1)
	l1i := vc / d.l2Entries
	perL1 := d.l2Entries << d.clusterBits
	t, err := d.l2Table(l1i)
	if err != nil {
		return mapping{}, err
	}
	if t == nil {
		return mapping{kind: kZero, n: perL1 - off%perL1}, nil
	}
	j := vc % d.l2Entries
	var e, bitmap uint64
	if d.extL2 {
		e, bitmap = t[2*j], t[2*j+1]
	} else {
		e = t[j]
	}
	l2pos := int64(d.l1[l1i]&offsetMask) + j*8
	if d.extL2 {
		l2pos += j * 8
	}
	rest := d.clusterSize - inCl
	if e&entryCompressed != 0 {
		x := 62 - (d.clusterBits - 8)
		host := int64(e & (1<<x - 1))
		sectors := int64((e >> x) & (1<<(62-x) - 1))
		end := (host &^ 511) + (sectors+1)*512
		if host >= d.fileSize {
			return mapping{}, formatErr(l2pos, "compressed cluster at %#x beyond the end of the file", host)
		}
		end = min(end, d.fileSize)
		return mapping{kind: kCompressed, host: host, clen: end - host, n: rest}, nil
	}
	if e&l2StdReserved != 0 {
		return mapping{}, formatErr(l2pos, "L2 entry has reserved bits set (%#x)", e)
	}
	host := int64(e & offsetMask)
	if d.extL2 {
		sub := d.clusterSize / 32
		si := inCl / sub
		rest = sub - inCl%sub
		zeroBit, allocBit := bitmap>>(32+si)&1 != 0, bitmap>>si&1 != 0
		// Merge neighbouring subclusters of the same state.
		for k := si + 1; k < 32; k++ {
			if (bitmap>>(32+k)&1 != 0) != zeroBit || (bitmap>>k&1 != 0) != allocBit {
				break
			}
			rest += sub
		}
		if zeroBit || !allocBit {
			return mapping{kind: kZero, n: rest}, nil
		}
		if host == 0 {
			return mapping{}, formatErr(l2pos+8, "subcluster allocated in an unallocated cluster")
		}
	} else if e&entryZero != 0 || host == 0 {
		return mapping{kind: kZero, n: rest}, nil
	}
	if host%d.clusterSize != 0 {
		return mapping{}, formatErr(l2pos, "data cluster offset %#x not cluster-aligned", host)
	}
	if host+inCl+min(rest, d.size-off) > d.fileSize {
		return mapping{}, formatErr(l2pos, "data cluster at %#x beyond the end of the file", host)
	}
	return mapping{kind: kData, host: host + inCl, n: rest}, nil
}

// ReadAt reads len(p) bytes of the virtual disk at off. Unallocated and zero
// clusters read as zeros. It returns io.EOF when the read reaches the end of
// the disk.
func (d *Image) ReadAt(p []byte, off int64) (int, error) {
	return vdisk.ReadAt(p, off, d.size, "qcow2", d.readRun)
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
		if err := readFull(d.r, dst, m.host, d.fileSize, "data cluster"); err != nil {
			return 0, err
		}
	case kCompressed:
		cl, err := d.cluster(m)
		if err != nil {
			return 0, err
		}
		copy(dst, cl[pos&(d.clusterSize-1):])
	}
	return n, nil
}

// cluster returns the decompressed cluster of a compressed mapping.
func (d *Image) cluster(m mapping) ([]byte, error) {
	if c, ok := d.comp.Get(uint64(m.host)); ok {
		return c, nil
	}
	in := make([]byte, m.clen)
	if err := readFull(d.r, in, m.host, d.fileSize, "compressed cluster"); err != nil {
		return nil, err
	}
	out := make([]byte, d.clusterSize)
	if err := d.decomp.decompress(out, in); err != nil {
		return nil, formatErr(m.host, "compressed cluster: %v", err)
	}
	d.comp.Put(uint64(m.host), out)
	return out, nil
}

// maxExtents bounds the list Extents builds.
const maxExtents = 1 << 23

// Extents returns the allocation of the virtual disk recorded in the L2
// tables: allocated (including compressed) clusters as image.Data,
// unallocated and zero clusters as image.Zero, merged and in order.
func (d *Image) Extents() ([]image.Extent, error) {
	// A valid image never names one L2 table twice in its active L1 table;
	// refusing that bounds the walk below by the file size.
	var offs []uint64
	for _, e := range d.l1 {
		if o := e & offsetMask; o != 0 {
			offs = append(offs, o)
		}
	}
	slices.Sort(offs)
	for i := 1; i < len(offs); i++ {
		if offs[i] == offs[i-1] {
			return nil, formatErr(int64(d.Header.L1TableOffset), "L1 table names the L2 table at %#x twice", offs[i])
		}
	}
	var out []image.Extent
	add := func(off, n int64, k image.ExtentKind) error {
		if l := len(out); l > 0 && out[l-1].Kind == k && out[l-1].End() == off {
			out[l-1].Len += n
			return nil
		}
		if len(out) >= maxExtents {
			return formatErr(0, "more than %d extents", maxExtents)
		}
		out = append(out, image.Extent{Off: off, Len: n, Kind: k})
		return nil
	}
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
		if err := add(off, n, k); err != nil {
			return nil, err
		}
		off += n
	}
	return out, nil
}

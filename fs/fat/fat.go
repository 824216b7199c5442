// Package fat reads FAT12, FAT16 and FAT32 filesystems as an io/fs.FS.
//
// New(r, size) checks the boot sector, loads the active FAT and returns an
// *FS that implements fs.ReadDirFS, fs.StatFS, fs.ReadFileFS and
// fs.ReadLinkFS, plus the fs/meta capabilities: exact usage from the FAT
// (meta.UsageFS), the byte ranges in use (meta.AllocationFS) and the volume
// label and ID (meta.Labeled). Identify looks only at the boot sector, the
// FSInfo sector and the root directory's label entry.
//
// Supported: the three variants, told apart by cluster count as the
// specification says (fewer than 4085 clusters is FAT12, fewer than 65525
// is FAT16, else FAT32); long file names (VFAT, UTF-16) with their checksum;
// short names in code page 437 with the Windows NT lower-case flags; write,
// access and creation times, reported as UTC as Linux does by default; the
// FAT32 active-FAT selection of BPB_ExtFlags. Names are case-preserving and
// lookups are case-insensitive, as on FAT; a file may also be opened by its
// short alias ("LONGFI~1.TXT").
//
// Writing: OpenWriter creates, replaces, truncates and removes files and
// directories (writer.go); ReplaceFile rewrites one file in place.
//
// Not supported: exFAT, code pages other than 437, time zones other than
// UTC, and the FAT12/16 root-directory extensions of old DOS
// versions. FileInfo.Sys() returns a *meta.Stat whose Ino is synthetic: the
// byte offset of the file's short directory entry (1 for the root).
//
// Reference: Microsoft Extensible Firmware Initiative FAT32 File System
// Specification, "FAT: General Overview of On-Disk Format", version 1.03
// (fatgen103), 2000.
//
// # Security
//
// Images are untrusted. Every allocation is bounded by the image size or by
// the specification's limits (the FAT is read once and is no larger than
// the image; a directory holds at most 65536 entries; a file's run list is
// at most one entry per cluster). Every cluster-chain walk is bounded by the
// cluster count, and chains that loop, leave the data area, reach a free or
// bad cluster or end before the file does are reported as a *FormatError
// naming the byte offset of the offending FAT entry or directory entry. A
// subdirectory is opened only through the entry that its ".." entry points
// back to and never when its cluster is one of its ancestors', and a
// cluster may belong to one directory only (the first one read keeps it),
// so a corrupt tree cannot make
// fs.WalkDir loop or revisit a directory. No function panics on bad input.
package fat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"strings"
	"sync"
	"sync/atomic"

	"imgtool/fs/meta"
)

// ErrNotFAT is returned (wrapped) by Identify and New when the boot sector
// is not a FAT boot sector. It wraps meta.ErrWrongType.
var ErrNotFAT = fmt.Errorf("fat: not a FAT filesystem: %w", meta.ErrWrongType)

// ErrCorrupt matches (errors.Is) every *FormatError.
var ErrCorrupt = errors.New("fat: corrupt filesystem")

// FormatError reports a structural problem at a byte offset from the start
// of the filesystem.
type FormatError struct {
	Off int64  // byte offset of the faulty structure
	Msg string // what is wrong
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("fat: %s (at offset %d)", e.Msg, e.Off)
}

// Is reports whether target is ErrCorrupt.
func (e *FormatError) Is(target error) bool { return target == ErrCorrupt }

func formatErr(off int64, format string, args ...any) error {
	return &FormatError{Off: off, Msg: fmt.Sprintf(format, args...)}
}

// Variant is the FAT type: the width of a FAT entry.
type Variant uint8

// The three FAT variants.
const (
	FAT12 Variant = 12
	FAT16 Variant = 16
	FAT32 Variant = 32
)

// String returns "FAT12", "FAT16" or "FAT32".
func (v Variant) String() string {
	switch v {
	case FAT12, FAT16, FAT32:
		return fmt.Sprintf("FAT%d", uint8(v))
	}
	return fmt.Sprintf("Variant(%d)", uint8(v))
}

// Limits and markers of cluster numbers.
const (
	firstCluster  = 2          // clusters 0 and 1 are reserved
	maxFAT12      = 4085       // fewer clusters than this is FAT12
	maxFAT16      = 65525      // fewer clusters than this is FAT16
	maxClusters32 = 0x0FFFFFF5 // largest valid FAT32 cluster count (28-bit entries)
)

// geometry is what the boot sector says, checked.
type geometry struct {
	variant       Variant
	sectorSize    int64
	clusterSize   int64
	reserved      int64 // reserved sectors
	numFATs       int64
	fatSectors    int64
	rootEntries   int64 // FAT12/16
	totalSectors  int64
	fatOff        int64 // byte offset of the active FAT
	rootOff       int64 // FAT12/16: byte offset of the root directory
	dataOff       int64 // byte offset of cluster 2
	clusters      uint32
	rootCluster   uint32 // FAT32
	fsInfoSector  int64  // FAT32, 0 when none
	volumeID      uint32
	hasID         bool
	bootLabel     string
	fsSize        int64 // totalSectors × sectorSize
	metadataBytes int64 // reserved + FATs + fixed root directory = dataOff
}

// parseBoot reads and checks the boot sector.
func parseBoot(r io.ReaderAt, size int64) (*geometry, error) {
	if size < 512 {
		return nil, fmt.Errorf("%w: %d bytes is too small for a boot sector", ErrNotFAT, size)
	}
	var sec [512]byte
	if _, err := r.ReadAt(sec[:], 0); err != nil {
		return nil, fmt.Errorf("fat: reading boot sector: %w", err)
	}
	var b BPB
	if _, err := binary.Decode(sec[:36], binary.LittleEndian, &b); err != nil {
		return nil, fmt.Errorf("fat: decoding boot sector: %w", err)
	}
	switch {
	case b.Jump[0] != 0xEB && b.Jump[0] != 0xE9 && !(sec[bootSigOff] == 0x55 && sec[bootSigOff+1] == 0xAA):
		return nil, fmt.Errorf("%w: no jump instruction or boot signature", ErrNotFAT)
	case b.BytesPerSector != 512 && b.BytesPerSector != 1024 && b.BytesPerSector != 2048 && b.BytesPerSector != 4096:
		return nil, fmt.Errorf("%w: %d bytes per sector", ErrNotFAT, b.BytesPerSector)
	case b.SectorsPerCluster == 0 || b.SectorsPerCluster&(b.SectorsPerCluster-1) != 0:
		return nil, fmt.Errorf("%w: %d sectors per cluster", ErrNotFAT, b.SectorsPerCluster)
	case b.ReservedSectors == 0:
		return nil, fmt.Errorf("%w: no reserved sectors", ErrNotFAT)
	case b.NumFATs == 0 || b.NumFATs > 4:
		return nil, fmt.Errorf("%w: %d FATs", ErrNotFAT, b.NumFATs)
	case b.Media != 0xF0 && b.Media < 0xF8:
		return nil, fmt.Errorf("%w: media byte %#x", ErrNotFAT, b.Media)
	}
	g := &geometry{
		sectorSize:  int64(b.BytesPerSector),
		reserved:    int64(b.ReservedSectors),
		numFATs:     int64(b.NumFATs),
		rootEntries: int64(b.RootEntries),
	}
	g.clusterSize = g.sectorSize * int64(b.SectorsPerCluster)
	g.totalSectors = int64(b.TotalSectors16)
	if g.totalSectors == 0 {
		g.totalSectors = int64(b.TotalSectors32)
	}
	g.fatSectors = int64(b.FATSize16)
	var e32 EBPB32
	if _, err := binary.Decode(sec[36:90], binary.LittleEndian, &e32); err != nil {
		return nil, fmt.Errorf("fat: decoding boot sector: %w", err)
	}
	if g.fatSectors == 0 {
		g.fatSectors = int64(e32.FATSize32)
	}
	if g.totalSectors == 0 || g.fatSectors == 0 {
		return nil, fmt.Errorf("%w: zero total sectors or FAT size", ErrNotFAT)
	}
	rootSectors := (g.rootEntries*dirEntrySize + g.sectorSize - 1) / g.sectorSize
	g.rootOff = (g.reserved + g.numFATs*g.fatSectors) * g.sectorSize
	dataSector := g.reserved + g.numFATs*g.fatSectors + rootSectors
	if dataSector >= g.totalSectors {
		return nil, fmt.Errorf("%w: data area starts at sector %d, beyond the %d sectors of the volume", ErrNotFAT, dataSector, g.totalSectors)
	}
	g.dataOff = dataSector * g.sectorSize
	g.metadataBytes = g.dataOff
	g.fsSize = g.totalSectors * g.sectorSize
	count := (g.totalSectors - dataSector) / int64(b.SectorsPerCluster)
	switch {
	case count < maxFAT12:
		g.variant = FAT12
	case count < maxFAT16:
		g.variant = FAT16
	default:
		g.variant = FAT32
	}
	if count == 0 {
		return nil, fmt.Errorf("%w: no data clusters", ErrNotFAT)
	}
	if count > maxClusters32 {
		count = maxClusters32
	}
	// A FAT too small for the cluster count limits the usable clusters.
	if fit := g.fatSectors*g.sectorSize*8/int64(g.variant) - firstCluster; fit < count {
		if fit <= 0 {
			return nil, fmt.Errorf("%w: FAT of %d sectors holds no cluster", ErrNotFAT, g.fatSectors)
		}
		count = fit
	}
	g.clusters = uint32(count)

	if g.variant == FAT32 {
		if b.RootEntries != 0 || b.FATSize16 != 0 && e32.FATSize32 == 0 {
			return nil, fmt.Errorf("%w: FAT32 by cluster count but with a FAT16 root directory or FAT size", ErrNotFAT)
		}
		g.rootCluster = e32.RootCluster
		if g.rootCluster < firstCluster || g.rootCluster >= g.clusters+firstCluster {
			return nil, formatErr(44, "root directory cluster %d out of range", g.rootCluster)
		}
		active := int64(0)
		if e32.ExtFlags&0x80 != 0 && int64(e32.ExtFlags&0x0F) < g.numFATs {
			active = int64(e32.ExtFlags & 0x0F)
		}
		g.fatOff = (g.reserved + active*g.fatSectors) * g.sectorSize
		if s := int64(e32.FSInfoSector); s > 0 && s < g.reserved {
			g.fsInfoSector = s
		}
		if e32.BootSig == 0x29 || e32.BootSig == 0x28 {
			g.volumeID, g.hasID = e32.VolumeID, true
		}
		if e32.BootSig == 0x29 {
			g.bootLabel = labelString(e32.VolumeLabel[:])
		}
	} else {
		if b.RootEntries == 0 {
			return nil, fmt.Errorf("%w: %s without root directory entries", ErrNotFAT, g.variant)
		}
		g.fatOff = g.reserved * g.sectorSize
		var e16 EBPB16
		if _, err := binary.Decode(sec[36:62], binary.LittleEndian, &e16); err != nil {
			return nil, fmt.Errorf("fat: decoding boot sector: %w", err)
		}
		if e16.BootSig == 0x29 || e16.BootSig == 0x28 {
			g.volumeID, g.hasID = e16.VolumeID, true
		}
		if e16.BootSig == 0x29 {
			g.bootLabel = labelString(e16.VolumeLabel[:])
		}
	}
	return g, nil
}

// labelString trims a space-padded label; "NO NAME" means none.
func labelString(b []byte) string {
	b = bytes.TrimRight(b, " \x00")
	if string(b) == "NO NAME" {
		return ""
	}
	var sb strings.Builder
	for _, c := range b {
		sb.WriteRune(oemRune(c))
	}
	return sb.String()
}

func (g *geometry) uuid() string {
	if !g.hasID {
		return ""
	}
	return fmt.Sprintf("%04X-%04X", g.volumeID>>16, g.volumeID&0xFFFF)
}

// clusterOff returns the byte offset of cluster c (c ≥ 2).
func (g *geometry) clusterOff(c uint32) int64 {
	return g.dataOff + int64(c-firstCluster)*g.clusterSize
}

// valid reports whether c is a data cluster.
func (g *geometry) valid(c uint32) bool {
	return c >= firstCluster && c-firstCluster < g.clusters
}

// entryOff is the byte offset of cluster c's entry in the active FAT.
func (g *geometry) entryOff(c uint32) int64 {
	return g.fatOff + int64(c)*int64(g.variant)/8
}

// fatBytes is the size of the part of the FAT that describes clusters.
func (g *geometry) fatBytes() int64 {
	return (int64(g.clusters+firstCluster)*int64(g.variant) + 7) / 8
}

// Kinds of FAT entry values.
const (
	entFree = iota
	entNext
	entEOC
	entBad
	entInvalid // reserved value or out of range
)

// classify interprets a FAT entry value.
func (g *geometry) classify(v uint32) int {
	var bad uint32
	switch g.variant {
	case FAT12:
		bad = 0xFF7
	case FAT16:
		bad = 0xFFF7
	default:
		bad = 0x0FFFFFF7
	}
	switch {
	case v == 0:
		return entFree
	case v == bad:
		return entBad
	case v > bad:
		return entEOC
	case g.valid(v):
		return entNext
	}
	return entInvalid
}

// fatChunk is the unit in which the FAT is read: opening a filesystem to
// read one file touches a few chunks, not the whole table (2 MiB for a
// 256 MiB FAT32 boot partition).
const fatChunk = 64 << 10

// table is an in-memory copy of the active FAT, read chunk by chunk as
// entries are first looked up. It is safe for concurrent use.
type table struct {
	g      *geometry
	r      io.ReaderAt
	off    int64         // of the FAT in r
	raw    []byte        // the FAT's bytes plus one (a FAT12 read of the last entry touches the next byte)
	loaded []atomic.Bool // per chunk of raw
	all    atomic.Bool   // every chunk is loaded
	mu     sync.Mutex    // serialises loading
	err    error         // the first read error, under mu
}

func newTable(g *geometry, r io.ReaderAt, off, n int64) *table {
	return &table{g: g, r: r, off: off, raw: make([]byte, n+1), loaded: make([]atomic.Bool, (n+fatChunk-1)/fatChunk)}
}

// load makes sure the bytes [lo, hi) of the FAT are in raw.
func (t *table) load(lo, hi int64) error {
	n := int64(len(t.raw) - 1)
	hi = min(hi, n)
	for i := lo / fatChunk; i*fatChunk < hi; i++ {
		if t.loaded[i].Load() {
			continue
		}
		t.mu.Lock()
		if !t.loaded[i].Load() {
			a, b := i*fatChunk, min((i+1)*fatChunk, n)
			if _, err := t.r.ReadAt(t.raw[a:b], t.off+a); err != nil {
				if t.err == nil {
					t.err = fmt.Errorf("fat: reading the FAT at offset %d: %w", t.off+a, err)
				}
				err = t.err
				t.mu.Unlock()
				return err
			}
			t.loaded[i].Store(true)
		}
		t.mu.Unlock()
	}
	return nil
}

// loadAll reads the whole FAT, for a walk over every entry (usage, the
// allocation map, the writer).
func (t *table) loadAll() error {
	if t.all.Load() {
		return nil
	}
	if err := t.load(0, int64(len(t.raw))); err != nil {
		return err
	}
	t.all.Store(true)
	return nil
}

// entryBytes returns the byte range of cluster c's entry in raw.
func (t *table) entryBytes(c uint32) (lo, hi int64) {
	switch t.g.variant {
	case FAT12:
		o := int64(c) + int64(c)/2
		return o, o + 2
	case FAT16:
		return 2 * int64(c), 2*int64(c) + 2
	}
	return 4 * int64(c), 4*int64(c) + 4
}

// get returns cluster c's entry. An entry that cannot be read reads as 1,
// a value no chain may hold, so that walks stop with an invalid-entry
// error (load reports the cause).
func (t *table) get(c uint32) uint32 {
	lo, hi := t.entryBytes(c)
	if hi > int64(len(t.raw)) {
		return 1
	}
	if !t.all.Load() {
		if err := t.load(lo, hi); err != nil {
			return 1
		}
	}
	return t.at(c)
}

// at decodes cluster c's entry from raw, which must hold it.
func (t *table) at(c uint32) uint32 {
	switch t.g.variant {
	case FAT12:
		o := int(c) + int(c)/2
		v := uint32(t.raw[o]) | uint32(t.raw[o+1])<<8
		if c&1 != 0 {
			return v >> 4
		}
		return v & 0xFFF
	case FAT16:
		return uint32(binary.LittleEndian.Uint16(t.raw[2*c:]))
	}
	return binary.LittleEndian.Uint32(t.raw[4*c:]) & 0x0FFFFFFF
}

// FS is a FAT filesystem opened for reading. It is safe for concurrent use.
type FS struct {
	r    io.ReaderAt
	size int64 // of the image
	g    *geometry
	fat  *table

	labelOnce sync.Once
	label     string

	mu       sync.Mutex
	dirs     map[uint32]*dirData // parsed directories by first cluster (0: fixed root)
	cached   int                 // entries held in dirs
	dirOwner map[uint32]uint32   // directory cluster → first cluster of its directory

	hidden meta.HiddenLog // entries with unsafe names, for Hidden
}

// Hidden describes the directory entries the reader hid, or showed by their
// short names, because their names cannot be io/fs path elements (see
// meta.HiddenFS).
func (f *FS) Hidden() []string { return f.hidden.Hidden() }

// Compile-time checks of the interfaces FS implements.
var (
	_ iofs.FS           = (*FS)(nil)
	_ iofs.ReadDirFS    = (*FS)(nil)
	_ iofs.StatFS       = (*FS)(nil)
	_ iofs.ReadFileFS   = (*FS)(nil)
	_ iofs.ReadLinkFS   = (*FS)(nil)
	_ meta.UsageFS      = (*FS)(nil)
	_ meta.AllocationFS = (*FS)(nil)
	_ meta.Labeled      = (*FS)(nil)
	_ meta.HiddenFS     = (*FS)(nil)
)

// New opens the FAT filesystem held in the first size bytes of r. It reads
// the boot sector and the start of the active FAT; the rest of the FAT and
// directories are read when first used. It returns an error wrapping ErrNotFAT (and meta.ErrWrongType) when
// r does not hold a FAT filesystem.
func New(r io.ReaderAt, size int64) (*FS, error) {
	g, err := parseBoot(r, size)
	if err != nil {
		return nil, err
	}
	n := g.fatBytes()
	if g.fatOff+n > size {
		return nil, formatErr(g.fatOff, "FAT of %d bytes extends past the end of the %d-byte image", n, size)
	}
	t := newTable(g, r, g.fatOff, n)
	if err := t.load(0, 1); err != nil { // the first chunk: fail early on an unreadable image
		return nil, err
	}
	f := &FS{
		r:        r,
		size:     size,
		g:        g,
		fat:      t,
		dirs:     make(map[uint32]*dirData),
		dirOwner: make(map[uint32]uint32),
	}
	return f, nil
}

// Variant returns the FAT type.
func (f *FS) Variant() Variant { return f.g.variant }

// ClusterSize returns the size of a cluster in bytes.
func (f *FS) ClusterSize() int64 { return f.g.clusterSize }

// UUID returns the volume ID as blkid prints it ("A1B2-C3D4"), or "" when
// the boot sector has none.
func (f *FS) UUID() string { return f.g.uuid() }

// Label returns the volume label: the root directory's volume-label entry,
// else the boot sector's, with trailing spaces trimmed.
func (f *FS) Label() string {
	f.labelOnce.Do(func() {
		f.label = f.g.bootLabel
		if d, err := f.readDir(f.rootKey()); err == nil && d.hasLabel {
			f.label = d.label
		}
	})
	return f.label
}

// Identify reads the boot sector (and, for FAT32, the FSInfo sector and for
// all variants the root directory's volume label) and describes the
// filesystem. It returns an error wrapping meta.ErrWrongType when r does
// not hold a FAT filesystem.
func Identify(r io.ReaderAt, size int64) (*meta.Info, error) {
	g, err := parseBoot(r, size)
	if err != nil {
		return nil, err
	}
	info := &meta.Info{
		Type:       "vfat",
		Variant:    g.variant.String(),
		Label:      g.bootLabel,
		UUID:       g.uuid(),
		BlockSize:  g.clusterSize,
		Blocks:     int64(g.clusters),
		FreeBlocks: -1,
		Size:       g.fsSize,
		Used:       -1,
		Free:       -1,
	}
	if l, ok := rootLabel(r, g); ok {
		info.Label = l
	}
	if g.fsInfoSector > 0 {
		var fi FSInfo
		buf := make([]byte, 512)
		if _, err := r.ReadAt(buf, g.fsInfoSector*g.sectorSize); err == nil {
			if _, err := binary.Decode(buf, binary.LittleEndian, &fi); err == nil &&
				fi.LeadSig == fsInfoLeadSig && fi.StructSig == fsInfoStrucSig &&
				fi.FreeCount <= g.clusters {
				info.FreeBlocks = int64(fi.FreeCount)
				info.Free = info.FreeBlocks * g.clusterSize
				info.Used = info.Size - info.Free
			}
		}
	}
	return info, nil
}

// rootLabel finds the root directory's volume-label entry by reading
// directly from r, without loading the FAT.
func rootLabel(r io.ReaderAt, g *geometry) (string, bool) {
	buf := make([]byte, g.clusterSize)
	if g.variant != FAT32 {
		buf = make([]byte, g.sectorSize)
		for off, end := g.rootOff, g.rootOff+g.rootEntries*dirEntrySize; off < end; off += g.sectorSize {
			if _, err := r.ReadAt(buf, off); err != nil {
				return "", false
			}
			if l, found, stop := scanLabel(buf); found || stop {
				return l, found
			}
		}
		return "", false
	}
	c := g.rootCluster
	var e [4]byte
	for range min(g.clusters, maxDirEntries*dirEntrySize/uint32(min(g.clusterSize, 1<<20))+1) {
		if _, err := r.ReadAt(buf, g.clusterOff(c)); err != nil {
			return "", false
		}
		if l, found, stop := scanLabel(buf); found || stop {
			return l, found
		}
		if _, err := r.ReadAt(e[:], g.entryOff(c)); err != nil {
			return "", false
		}
		next := binary.LittleEndian.Uint32(e[:]) & 0x0FFFFFFF
		if g.classify(next) != entNext {
			break
		}
		c = next
	}
	return "", false
}

// scanLabel looks for a volume-label entry in a block of directory entries;
// stop is set at the end-of-directory marker.
func scanLabel(b []byte) (label string, found, stop bool) {
	for i := 0; i+dirEntrySize <= len(b); i += dirEntrySize {
		e := b[i : i+dirEntrySize]
		switch {
		case e[0] == 0:
			return "", false, true
		case e[0] == 0xE5:
			continue
		case Attr(e[11])&0x3F == AttrLongName:
			continue
		case Attr(e[11])&(AttrVolumeID|AttrDirectory) == AttrVolumeID:
			return labelString(e[:11]), true, true
		}
	}
	return "", false, false
}

func (f *FS) rootKey() uint32 {
	if f.g.variant == FAT32 {
		return f.g.rootCluster
	}
	return 0
}

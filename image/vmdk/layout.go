package vmdk

// On-disk layout of a hosted sparse extent as described in VMware's
// "Virtual Disk Format 5.0" technical note. All multi-byte fields are
// little-endian.

// Magic is "KDMV" read as a little-endian uint32.
const Magic = 0x564d444b

// Sizes and special values.
const (
	SectorSize     = 512
	HeaderSize     = 512
	MarkerSize     = 16 // a metadata marker: value, size 0, type, then padding to a sector
	GrainHdrSize   = 12 // a compressed grain: LBA and compressed size, then data
	gdAtEnd        = 0xffffffffffffffff
	gteZeroed      = 1 // grain table entry of a zeroed grain (FlagZeroedGTE)
	maxGrainBytes  = 2 << 20
	maxGTEsPerGT   = 1 << 16
	maxDescriptor  = 1 << 20
	descriptorText = "# Disk DescriptorFile"
)

// SparseExtentHeader is the 512-byte header of a hosted sparse extent,
// exactly as on disk (packed: fields are not aligned).
type SparseExtentHeader struct {
	MagicNumber        uint32
	Version            uint32 // 1, 2 or 3
	Flags              Flags
	Capacity           uint64 // virtual disk size in sectors
	GrainSize          uint64 // sectors per grain
	DescriptorOffset   uint64 // sector of the embedded descriptor, or 0
	DescriptorSize     uint64 // sectors
	NumGTEsPerGT       uint32 // entries per grain table, 512 in practice
	RGDOffset          uint64 // sector of the redundant grain directory
	GDOffset           uint64 // sector of the grain directory; all ones: see the footer
	OverHead           uint64 // sectors of metadata before the first grain
	UncleanShutdown    uint8
	SingleEndLineChar  byte // '\n'
	NonEndLineChar     byte // ' '
	DoubleEndLineChar1 byte // '\r'
	DoubleEndLineChar2 byte // '\n'
	CompressAlgorithm  CompressAlgorithm
	Pad                [433]byte
}

// Marker is a metadata marker of a stream-optimized extent, exactly as on
// disk; it fills a sector whose remainder is zero.
type Marker struct {
	Value uint64 // sectors of metadata that follow (grain table, directory)
	Size  uint32 // always 0 for metadata markers
	Type  MarkerType
}

// GrainHeader starts a compressed grain, exactly as on disk.
type GrainHeader struct {
	LBA  uint64 // first sector of the grain in the virtual disk
	Size uint32 // bytes of compressed data that follow
}

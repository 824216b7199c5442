package vhd

// On-disk layout of a VHD (Virtual Hard Disk) image as described in
// Microsoft's "Virtual Hard Disk Image Format Specification" (version 1.0,
// 2006). All multi-byte fields are big-endian.

// Cookies and fixed sizes.
const (
	FooterCookie        = "conectix"
	DynamicCookie       = "cxsparse"
	FooterSize          = 512
	DynamicHeaderSize   = 1024
	SectorSize          = 512
	unusedBAT           = 0xffffffff
	noDataOffset        = 0xffffffffffffffff
	maxBlockSize        = 256 << 20
	parentNameSize      = 512
	numParentLocators   = 8
	footerChecksumOff   = 64
	dynamicChecksumOff  = 36
	dynamicTableOffOff  = 16
	footerDataOffsetOff = 16
)

// Geometry is the cylinder/head/sector geometry of the footer.
type Geometry struct {
	Cylinders       uint16
	Heads           uint8
	SectorsPerTrack uint8
}

// Footer is the 512-byte hard disk footer, exactly as on disk. It ends every
// VHD file; dynamic and differencing disks also keep a copy at offset 0.
type Footer struct {
	Cookie             [8]byte // FooterCookie
	Features           uint32
	FileFormatVersion  uint32 // 0x00010000
	DataOffset         uint64 // dynamic header offset; all ones for fixed disks
	TimeStamp          uint32 // seconds since 2000-01-01 00:00:00 UTC
	CreatorApplication [4]byte
	CreatorVersion     uint32
	CreatorHostOS      uint32
	OriginalSize       uint64
	CurrentSize        uint64 // virtual disk size in bytes
	Geometry           Geometry
	DiskType           DiskType
	Checksum           uint32 // one's complement of the byte sum, this field as zero
	UniqueID           [16]byte
	SavedState         uint8
	Reserved           [427]byte
}

// ParentLocator is one platform-specific pointer to a differencing disk's
// parent, exactly as on disk.
type ParentLocator struct {
	PlatformCode       uint32
	PlatformDataSpace  uint32
	PlatformDataLength uint32
	Reserved           uint32
	PlatformDataOffset uint64
}

// DynamicHeader is the 1024-byte dynamic disk header, exactly as on disk.
type DynamicHeader struct {
	Cookie            [8]byte // DynamicCookie
	DataOffset        uint64  // unused, all ones
	TableOffset       uint64  // byte offset of the block allocation table
	HeaderVersion     uint32  // 0x00010000
	MaxTableEntries   uint32
	BlockSize         uint32 // bytes of data per block, 2 MiB by default
	Checksum          uint32
	ParentUniqueID    [16]byte
	ParentTimeStamp   uint32
	Reserved1         uint32
	ParentUnicodeName [parentNameSize]byte // UTF-16 big-endian
	ParentLocators    [numParentLocators]ParentLocator
	Reserved2         [256]byte
}

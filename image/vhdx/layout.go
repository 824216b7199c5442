package vhdx

// On-disk layout of a VHDX image as described in Microsoft's [MS-VHDX]
// "Virtual Hard Disk v2 (VHDX) File Format" specification. All multi-byte
// fields are little-endian; GUIDs are stored as Windows lays them out
// (first three fields little-endian).

// Signatures and fixed offsets.
const (
	FileSignature     = "vhdxfile"
	HeaderSignature   = 0x64616568 // "head"
	RegionSignature   = 0x69676572 // "regi"
	MetadataSignature = "metadata"

	Header1Offset      = 64 << 10
	Header2Offset      = 128 << 10
	HeaderSize         = 4 << 10
	RegionTable1Offset = 192 << 10
	RegionTable2Offset = 256 << 10
	RegionTableSize    = 64 << 10
	MetadataTableSize  = 64 << 10
	maxRegionEntries   = 2047
	maxMetadataEntries = 2047
	mib                = 1 << 20
	maxVirtualSize     = 64 << 40
)

// GUID is a GUID in its on-disk byte order.
type GUID [16]byte

// FileIdentifier starts the file.
type FileIdentifier struct {
	Signature [8]byte   // "vhdxfile"
	Creator   [512]byte // UTF-16 little-endian, optional
}

// Header is one of the two 4 KiB headers, exactly as on disk.
type Header struct {
	Signature      uint32 // "head"
	Checksum       uint32 // CRC-32C of the 4 KiB header, this field as zero
	SequenceNumber uint64 // the valid header with the larger number is current
	FileWriteGUID  GUID
	DataWriteGUID  GUID
	LogGUID        GUID // zero when the log is empty
	LogVersion     uint16
	Version        uint16 // 1
	LogLength      uint32
	LogOffset      uint64
	Reserved       [4016]byte
}

// RegionTableHeader starts each 64 KiB region table, exactly as on disk.
type RegionTableHeader struct {
	Signature  uint32 // "regi"
	Checksum   uint32 // CRC-32C of the 64 KiB table, this field as zero
	EntryCount uint32
	Reserved   uint32
}

// RegionTableEntry is one region, exactly as on disk.
type RegionTableEntry struct {
	GUID       GUID
	FileOffset uint64
	Length     uint32
	Required   uint32 // bit 0
}

// MetadataTableHeader starts the metadata region, exactly as on disk.
type MetadataTableHeader struct {
	Signature  [8]byte // "metadata"
	Reserved   uint16
	EntryCount uint16
	Reserved2  [20]byte
}

// MetadataTableEntry is one metadata item, exactly as on disk.
type MetadataTableEntry struct {
	ItemID   GUID
	Offset   uint32 // from the start of the metadata region
	Length   uint32
	Flags    uint32 // bit 0 user, bit 1 virtual disk, bit 2 required
	Reserved uint32
}

// FileParameters is the file parameters metadata item.
type FileParameters struct {
	BlockSize uint32
	Flags     uint32 // bit 0 leave blocks allocated, bit 1 has parent
}

// Block allocation table entry fields.
const (
	batStateMask  = 0x7
	batOffsetMask = ^uint64(0xfffff) // file offset in MiB, in bits 20-63
)

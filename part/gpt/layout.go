package gpt

// On-disk layout of the GUID Partition Table (UEFI Specification 2.10,
// section 5.3). All integers are little-endian.

// Sizes and limits.
const (
	HeaderSize        = 92         // bytes of the header that the CRC covers by default
	MinEntrySize      = 128        // the smallest (and usual) partition entry size
	MaxEntrySize      = 4096       // largest entry size accepted
	MaxArrayBytes     = 4 << 20    // largest partition entry array accepted (count × size)
	DefaultEntries    = 128        // entries in an array made by the usual tools
	Revision1         = 0x00010000 // revision 1.0
	nameUnits         = 36         // UTF-16 code units in a partition name
	protectiveMaxLBAs = 0xFFFFFFFF // the largest size an MBR entry can express
)

// Signature is the 8-byte header signature, "EFI PART".
var Signature = [8]byte{'E', 'F', 'I', ' ', 'P', 'A', 'R', 'T'}

// Header is the GPT header exactly as on disk (the first 92 bytes of its
// sector; the rest of the sector is reserved and zero).
type Header struct {
	Signature                [8]byte
	Revision                 uint32
	HeaderSize               uint32 // 92 ≤ HeaderSize ≤ sector size
	HeaderCRC32              uint32 // CRC32 of the first HeaderSize bytes with this field zero
	Reserved                 uint32
	MyLBA                    uint64 // the sector holding this header
	AlternateLBA             uint64 // the sector holding the other header
	FirstUsableLBA           uint64
	LastUsableLBA            uint64
	DiskGUID                 GUID
	PartitionEntryLBA        uint64 // first sector of the entry array
	NumberOfPartitionEntries uint32
	SizeOfPartitionEntry     uint32 // 128 × 2^n
	PartitionEntryArrayCRC32 uint32
}

// Entry is one partition entry exactly as on disk (the first 128 bytes of
// an entry; larger entries have reserved bytes after it).
type Entry struct {
	PartitionTypeGUID   GUID
	UniquePartitionGUID GUID
	StartingLBA         uint64
	EndingLBA           uint64 // inclusive
	Attributes          Attributes
	PartitionName       [nameUnits]uint16 // UTF-16LE, NUL-padded
}

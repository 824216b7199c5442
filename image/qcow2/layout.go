package qcow2

// On-disk layout of a qcow2 image as described in QEMU's
// docs/interop/qcow2.txt. All multi-byte fields are big-endian.

// Magic is the first four bytes of every qcow2 image: "QFI\xfb".
const Magic = 0x514649fb

// Header sizes and cluster size bounds.
const (
	HeaderV2Size   = 72  // size of a version 2 header
	HeaderV3Size   = 104 // minimum header_length of a version 3 header
	MinClusterBits = 9   // 512-byte clusters
	MaxClusterBits = 21  // 2 MiB clusters
	maxL1Bytes     = 32 << 20
	maxBackingName = 1023
)

// HeaderV2 is the version 2 header, exactly as on disk. A version 3 header
// starts with the same fields.
type HeaderV2 struct {
	Magic                 uint32
	Version               uint32
	BackingFileOffset     uint64
	BackingFileSize       uint32
	ClusterBits           uint32
	Size                  uint64 // virtual disk size in bytes
	CryptMethod           uint32 // 0 none, 1 AES, 2 LUKS
	L1Size                uint32 // entries in the active L1 table
	L1TableOffset         uint64
	RefcountTableOffset   uint64
	RefcountTableClusters uint32
	NbSnapshots           uint32
	SnapshotsOffset       uint64
}

// HeaderV3 is the version 3 header with its optional compression type
// field (present when HeaderLength > 104), exactly as on disk.
type HeaderV3 struct {
	HeaderV2
	IncompatibleFeatures uint64
	CompatibleFeatures   uint64
	AutoclearFeatures    uint64
	RefcountOrder        uint32
	HeaderLength         uint32
	CompressionType      CompressionType
	Padding              [7]byte
}

// ExtensionHeader starts every header extension; Length bytes of data
// follow, padded to a multiple of 8.
type ExtensionHeader struct {
	Type   uint32
	Length uint32
}

// Header extension types.
const (
	ExtEnd              = 0x00000000
	ExtBackingFormat    = 0xe2792aca
	ExtFeatureNameTable = 0x6803f857
	ExtBitmaps          = 0x23852875
	ExtFullDiskCrypto   = 0x0537be77
	ExtDataFile         = 0x44415441
)

// Fields of L1 and L2 table entries.
const (
	entryCopied     = uint64(1) << 63
	entryCompressed = uint64(1) << 62
	entryZero       = uint64(1) // v3 "reads as zeros" flag of a standard L2 entry
	offsetMask      = uint64(0x00fffffffffffe00)
	l1Reserved      = uint64(0x7f000000000001ff)
	l2StdReserved   = uint64(0x3f000000000001fe)
)

package ext4

// On-disk structures of ext2/3/4, field for field as in the kernel's
// Documentation/filesystems/ext4 and e2fsprogs' ext2_fs.h. Everything is
// little-endian except the jbd2 journal superblock, which is big-endian.
// Field names follow the C names without their prefix; 64-bit quantities
// split on disk keep their Lo/Hi halves.

// Magic numbers and fixed sizes.
const (
	SuperblockOffset = 1024   // byte offset of the primary superblock
	SuperblockSize   = 1024   // bytes
	SuperMagic       = 0xEF53 // Superblock.Magic
	ExtentMagic      = 0xF30A // ExtentHeader.Magic
	XattrMagic       = 0xEA020000
	JournalMagic     = 0xC03B3998 // JournalSuperblock.Magic (big-endian)
	GoodOldInodeSize = 128        // inode size of revision 0 filesystems
	GoodOldFirstIno  = 11
	RootIno          = 2 // inode number of the root directory
	JournalIno       = 8
	DirTailFileType  = 0xDE // DirTail.ReservedFt
	MaxExtentDepth   = 5
	NDirBlocks       = 12 // direct block pointers in a block-mapped inode
	NBlocks          = 15 // 32-bit words in Inode.Block
)

// Superblock is the 1024-byte ext2/3/4 superblock (struct ext4_super_block),
// found at byte 1024 of the filesystem.
type Superblock struct {
	InodesCount       uint32
	BlocksCountLo     uint32
	RBlocksCountLo    uint32
	FreeBlocksCountLo uint32
	FreeInodesCount   uint32
	FirstDataBlock    uint32
	LogBlockSize      uint32
	LogClusterSize    uint32
	BlocksPerGroup    uint32
	ClustersPerGroup  uint32
	InodesPerGroup    uint32
	Mtime             uint32
	Wtime             uint32
	MntCount          uint16
	MaxMntCount       uint16
	Magic             uint16
	State             uint16
	Errors            uint16
	MinorRevLevel     uint16
	LastCheck         uint32
	CheckInterval     uint32
	CreatorOS         uint32
	RevLevel          uint32
	DefResUID         uint16
	DefResGID         uint16
	FirstIno          uint32
	InodeSize         uint16
	BlockGroupNr      uint16
	FeatureCompat     CompatFeature
	FeatureIncompat   IncompatFeature
	FeatureROCompat   ROCompatFeature
	UUID              [16]byte
	VolumeName        [16]byte
	LastMounted       [64]byte
	AlgorithmUsage    uint32
	PreallocBlocks    uint8
	PreallocDirBlocks uint8
	ReservedGDTBlocks uint16
	JournalUUID       [16]byte
	JournalInum       uint32
	JournalDev        uint32
	LastOrphan        uint32
	HashSeed          [4]uint32
	DefHashVersion    uint8
	JnlBackupType     uint8
	DescSize          uint16
	DefaultMountOpts  uint32
	FirstMetaBg       uint32
	MkfsTime          uint32
	JnlBlocks         [17]uint32
	BlocksCountHi     uint32
	RBlocksCountHi    uint32
	FreeBlocksCountHi uint32
	MinExtraIsize     uint16
	WantExtraIsize    uint16
	Flags             uint32
	RaidStride        uint16
	MMPInterval       uint16
	MMPBlock          uint64
	RaidStripeWidth   uint32
	LogGroupsPerFlex  uint8
	ChecksumType      uint8
	EncryptionLevel   uint8
	ReservedPad       uint8
	KbytesWritten     uint64
	SnapshotInum      uint32
	SnapshotID        uint32
	SnapshotRBlocks   uint64
	SnapshotList      uint32
	ErrorCount        uint32
	FirstErrorTime    uint32
	FirstErrorIno     uint32
	FirstErrorBlock   uint64
	FirstErrorFunc    [32]byte
	FirstErrorLine    uint32
	LastErrorTime     uint32
	LastErrorIno      uint32
	LastErrorLine     uint32
	LastErrorBlock    uint64
	LastErrorFunc     [32]byte
	MountOpts         [64]byte
	UsrQuotaInum      uint32
	GrpQuotaInum      uint32
	OverheadClusters  uint32
	BackupBgs         [2]uint32
	EncryptAlgos      [4]uint8
	EncryptPwSalt     [16]byte
	LpfIno            uint32
	PrjQuotaInum      uint32
	ChecksumSeed      uint32
	WtimeHi           uint8
	MtimeHi           uint8
	MkfsTimeHi        uint8
	LastCheckHi       uint8
	FirstErrorTimeHi  uint8
	LastErrorTimeHi   uint8
	FirstErrorErrcode uint8
	LastErrorErrcode  uint8
	Encoding          uint16
	EncodingFlags     uint16
	OrphanFileInum    uint32
	Reserved          [94]uint32
	Checksum          uint32
}

// Superblock.State bits.
const (
	StateValid  = 0x0001 // cleanly unmounted
	StateErrors = 0x0002 // errors detected
	StateOrphan = 0x0004 // orphans being recovered
)

// GroupDesc32 is the 32-byte block group descriptor used without the
// 64bit feature (struct ext4_group_desc, first half).
type GroupDesc32 struct {
	BlockBitmapLo     uint32
	InodeBitmapLo     uint32
	InodeTableLo      uint32
	FreeBlocksCountLo uint16
	FreeInodesCountLo uint16
	UsedDirsCountLo   uint16
	Flags             uint16
	ExcludeBitmapLo   uint32
	BlockBitmapCsumLo uint16
	InodeBitmapCsumLo uint16
	ItableUnusedLo    uint16
	Checksum          uint16
}

// GroupDesc64 is the 64-byte block group descriptor of 64bit filesystems.
// Descriptors larger than 64 bytes (s_desc_size) carry unused padding.
type GroupDesc64 struct {
	GroupDesc32
	BlockBitmapHi     uint32
	InodeBitmapHi     uint32
	InodeTableHi      uint32
	FreeBlocksCountHi uint16
	FreeInodesCountHi uint16
	UsedDirsCountHi   uint16
	ItableUnusedHi    uint16
	ExcludeBitmapHi   uint32
	BlockBitmapCsumHi uint16
	InodeBitmapCsumHi uint16
	Reserved          uint32
}

// GroupDesc32.Flags bits.
const (
	BgInodeUninit = 0x0001 // inode table and bitmap not initialised
	BgBlockUninit = 0x0002 // block bitmap not initialised
	BgInodeZeroed = 0x0004 // inode table zeroed
)

// Inode is struct ext4_inode: the 128-byte base inode followed by the
// fields of the extra area (valid up to 128+ExtraIsize). Inodes on disk are
// s_inode_size bytes; bytes after the extra fields hold in-inode xattrs.
type Inode struct {
	Mode         uint16
	UIDLo        uint16
	SizeLo       uint32
	Atime        uint32
	Ctime        uint32
	Mtime        uint32
	Dtime        uint32
	GIDLo        uint16
	LinksCount   uint16
	BlocksLo     uint32
	Flags        uint32
	Version      uint32 // osd1 (Linux: l_i_version)
	Block        [NBlocks]uint32
	Generation   uint32
	FileACLLo    uint32
	SizeHigh     uint32
	ObsoFaddr    uint32
	BlocksHigh   uint16 // osd2 (Linux layout) from here
	FileACLHigh  uint16
	UIDHigh      uint16
	GIDHigh      uint16
	ChecksumLo   uint16
	OSD2Reserved uint16
	ExtraIsize   uint16 // extra area from here
	ChecksumHi   uint16
	CtimeExtra   uint32
	MtimeExtra   uint32
	AtimeExtra   uint32
	Crtime       uint32
	CrtimeExtra  uint32
	VersionHi    uint32
	Projid       uint32
}

// Byte offsets of extra-area fields, used to check ExtraIsize covers them.
const (
	inodeOffChecksumHi = 0x82
	inodeOffCtimeExtra = 0x84
	inodeOffCrtime     = 0x90
	inodeOffCrtimeX    = 0x94
	inodeOffChecksumLo = 0x7C
	inodeStructSize    = 0xA0
)

// Inode.Flags bits (i_flags).
const (
	InodeSecrmFl      = 0x00000001
	InodeImmutableFl  = 0x00000010
	InodeAppendFl     = 0x00000020
	InodeIndexFl      = 0x00001000 // hashed directory
	InodeHugeFileFl   = 0x00040000 // i_blocks in filesystem blocks
	InodeExtentsFl    = 0x00080000
	InodeVerityFl     = 0x00100000
	InodeEAInodeFl    = 0x00200000
	InodeEncryptFl    = 0x00000800
	InodeInlineDataFl = 0x10000000
	InodeCasefoldFl   = 0x40000000
)

// Unix file type bits of Inode.Mode.
const (
	SIFMT   = 0xF000
	SIFSOCK = 0xC000
	SIFLNK  = 0xA000
	SIFREG  = 0x8000
	SIFBLK  = 0x6000
	SIFDIR  = 0x4000
	SIFCHR  = 0x2000
	SIFIFO  = 0x1000
	SISUID  = 0x0800
	SISGID  = 0x0400
	SISVTX  = 0x0200
)

// ExtentHeader starts every extent tree node (in i_block or in a block).
type ExtentHeader struct {
	Magic      uint16
	Entries    uint16
	Max        uint16
	Depth      uint16
	Generation uint32
}

// ExtentIdx is an interior node entry of an extent tree.
type ExtentIdx struct {
	Block  uint32 // first logical block covered
	LeafLo uint32
	LeafHi uint16
	Unused uint16
}

// Extent is a leaf entry of an extent tree. Len > 32768 marks an
// uninitialised extent of Len-32768 blocks.
type Extent struct {
	Block   uint32 // first logical block
	Len     uint16
	StartHi uint16
	StartLo uint32
}

// ExtentTail follows the last possible entry (Max) of an extent block.
type ExtentTail struct {
	Checksum uint32
}

// maxInitExtentLen is the longest initialised extent; longer Len values
// mean an uninitialised extent.
const maxInitExtentLen = 32768

// DirEntry2 is the fixed head of a directory entry (struct
// ext4_dir_entry_2); NameLen name bytes follow, padded to RecLen.
type DirEntry2 struct {
	Inode    uint32
	RecLen   uint16
	NameLen  uint8
	FileType uint8
}

// dirEntryHeadSize is binary.Size(DirEntry2{}).
const dirEntryHeadSize = 8

// Directory entry file types (DirEntry2.FileType with the filetype feature).
const (
	FtUnknown = 0
	FtRegFile = 1
	FtDir     = 2
	FtChrdev  = 3
	FtBlkdev  = 4
	FtFifo    = 5
	FtSock    = 6
	FtSymlink = 7
)

// DirTail is the fake entry at the end of a leaf directory block on
// metadata_csum filesystems, holding the block's checksum.
type DirTail struct {
	ReservedZero1 uint32
	RecLen        uint16 // 12
	ReservedZero2 uint8
	ReservedFt    uint8 // 0xDE
	Checksum      uint32
}

// DxRoot is the start of block 0 of a hashed (htree) directory: the "."
// and ".." entries, the root info, then Limit/Count/Block and DxEntry
// values.
type DxRoot struct {
	DotInode       uint32
	DotRecLen      uint16
	DotNameLen     uint8
	DotFileType    uint8
	DotName        [4]byte
	DotDotInode    uint32
	DotDotRecLen   uint16
	DotDotNameLen  uint8
	DotDotFileType uint8
	DotDotName     [4]byte
	ReservedZero   uint32
	HashVersion    uint8
	InfoLength     uint8
	IndirectLevels uint8
	UnusedFlags    uint8
	Limit          uint16
	Count          uint16
	Block          uint32
}

// DxNode is the start of an interior htree block: an empty directory entry
// spanning the block, then Limit/Count/Block and DxEntry values.
type DxNode struct {
	FakeInode    uint32
	FakeRecLen   uint16
	FakeNameLen  uint8
	FakeFileType uint8
	Limit        uint16
	Count        uint16
	Block        uint32
}

// DxEntry maps a hash to a directory block.
type DxEntry struct {
	Hash  uint32
	Block uint32
}

// DxTail follows the Limit entries of an htree block on metadata_csum
// filesystems.
type DxTail struct {
	Reserved uint32
	Checksum uint32
}

// XattrHeader starts an external extended-attribute block.
type XattrHeader struct {
	Magic    uint32
	Refcount uint32
	Blocks   uint32
	Hash     uint32
	Checksum uint32
	Reserved [3]uint32
}

// XattrIbodyHeader starts the in-inode extended-attribute area.
type XattrIbodyHeader struct {
	Magic uint32
}

// XattrEntry is the fixed head of an extended attribute entry; NameLen name
// bytes follow, the entry padded to 4 bytes.
type XattrEntry struct {
	NameLen   uint8
	NameIndex uint8
	ValueOffs uint16
	ValueInum uint32
	ValueSize uint32
	Hash      uint32
}

// xattrEntryHeadSize is binary.Size(XattrEntry{}).
const xattrEntryHeadSize = 16

// JournalHeader starts every jbd2 metadata block (big-endian).
type JournalHeader struct {
	Magic     uint32
	BlockType uint32
	Sequence  uint32
}

// JournalSuperblock is the jbd2 journal superblock (journal_superblock_t),
// big-endian, in the first block of the journal.
type JournalSuperblock struct {
	Header          JournalHeader
	BlockSize       uint32
	MaxLen          uint32
	First           uint32
	Sequence        uint32
	Start           uint32 // 0: the journal is empty (nothing to replay)
	Errno           int32
	FeatureCompat   uint32
	FeatureIncompat uint32
	FeatureROCompat uint32
	UUID            [16]byte
	NrUsers         uint32
	DynSuper        uint32
	MaxTransaction  uint32
	MaxTransData    uint32
	ChecksumType    uint8
	Padding2        [3]uint8
	NumFCBlocks     uint32
	Head            uint32
	Padding         [40]uint32
	Checksum        uint32
	Users           [16 * 48]byte
}

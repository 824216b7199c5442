package mbr

// On-disk layout of the Master Boot Record and of an Extended Boot Record,
// as the IBM PC BIOS and every later implementation read them. All
// multi-byte fields are little-endian.

// Offsets and sizes inside the boot sector.
const (
	BootCodeSize      = 440 // bytes of boot code at the start of the sector
	DiskSignatureOff  = 440 // offset of the 32-bit disk signature (Linux "disk identifier")
	EntriesOff        = 446 // offset of the first of the four partition entries
	EntrySize         = 16  // size of one partition entry
	NumEntries        = 4   // partition entries in an MBR or EBR
	BootSignatureOff  = 510 // offset of the 0x55 0xAA signature
	BootSignature     = 0xAA55
	MinSectorSize     = 512  // the record is always 512 bytes, even on 4096-byte disks
	StatusActive      = 0x80 // "bootable" status
	StatusInactive    = 0x00
	maxChainLength    = 256 // EBRs followed before the chain is declared too long
	maxCylinders      = 1024
	defaultHeads      = 255 // geometry sfdisk assumes for image files
	defaultSectorsPer = 63
)

// CHS is a packed cylinder-head-sector address: head, then sector (bits
// 0–5) with cylinder bits 8–9 in bits 6–7, then cylinder bits 0–7.
type CHS [3]byte

// RawEntry is one 16-byte partition entry exactly as on disk.
type RawEntry struct {
	Status   uint8  // 0x80 bootable, 0x00 not; anything else is invalid
	FirstCHS CHS    // CHS address of the first sector
	Type     Type   // partition type
	LastCHS  CHS    // CHS address of the last sector
	StartLBA uint32 // first sector (MBR: absolute; EBR: relative, see Table)
	Sectors  uint32 // number of sectors
}

// RawMBR is the 512-byte boot sector exactly as on disk. An EBR has the same
// layout; only its first two entries are used.
type RawMBR struct {
	BootCode      [BootCodeSize]byte
	DiskSignature uint32
	Reserved      uint16 // 0x0000, or 0x5A5A for a copy-protected disk
	Entries       [NumEntries]RawEntry
	Signature     uint16 // BootSignature
}

// IsEmpty reports whether the entry describes no partition (type 0 or no
// sectors), as Linux treats it.
func (e RawEntry) IsEmpty() bool { return e.Type == Empty || e.Sectors == 0 }

package fat

import "encoding/binary"

// This file holds the on-disk structures of FAT12/16/32 exactly as the
// Microsoft FAT specification (fatgen103, "FAT: General Overview of On-Disk
// Format", 2000) lays them out. All fields are little-endian.

// BPB is the BIOS Parameter Block common to all FAT variants: the first 36
// bytes of the boot sector (sector 0 of the volume).
type BPB struct {
	Jump              [3]byte // BS_jmpBoot: EB xx 90 or E9 xx xx
	OEMName           [8]byte // BS_OEMName
	BytesPerSector    uint16  // BPB_BytsPerSec: 512, 1024, 2048 or 4096
	SectorsPerCluster uint8   // BPB_SecPerClus: a power of two, 1 to 128
	ReservedSectors   uint16  // BPB_RsvdSecCnt: sectors before the first FAT
	NumFATs           uint8   // BPB_NumFATs: usually 2
	RootEntries       uint16  // BPB_RootEntCnt: FAT12/16 root directory entries; 0 on FAT32
	TotalSectors16    uint16  // BPB_TotSec16: 0 when TotalSectors32 is used
	Media             uint8   // BPB_Media: 0xF0 or 0xF8 to 0xFF
	FATSize16         uint16  // BPB_FATSz16: sectors per FAT; 0 on FAT32
	SectorsPerTrack   uint16  // BPB_SecPerTrk
	NumHeads          uint16  // BPB_NumHeads
	HiddenSectors     uint32  // BPB_HiddSec: sectors before the partition
	TotalSectors32    uint32  // BPB_TotSec32
}

// EBPB16 is the extended boot record of FAT12 and FAT16, at byte 36 of the
// boot sector.
type EBPB16 struct {
	DriveNumber uint8    // BS_DrvNum
	Reserved1   uint8    // BS_Reserved1
	BootSig     uint8    // BS_BootSig: 0x29 when the three fields below are present
	VolumeID    uint32   // BS_VolID
	VolumeLabel [11]byte // BS_VolLab, space padded; "NO NAME    " when unset
	FSType      [8]byte  // BS_FilSysType: informative only ("FAT12   ")
}

// EBPB32 is the extended boot record of FAT32, at byte 36 of the boot
// sector.
type EBPB32 struct {
	FATSize32        uint32   // BPB_FATSz32: sectors per FAT
	ExtFlags         uint16   // BPB_ExtFlags: bit 7 set = only FAT (bits 0-3) is active
	FSVersion        uint16   // BPB_FSVer: 0.0
	RootCluster      uint32   // BPB_RootClus: first cluster of the root directory
	FSInfoSector     uint16   // BPB_FSInfo: sector of the FSInfo structure
	BackupBootSector uint16   // BPB_BkBootSec
	Reserved         [12]byte // BPB_Reserved
	DriveNumber      uint8    // BS_DrvNum
	Reserved1        uint8    // BS_Reserved1
	BootSig          uint8    // BS_BootSig
	VolumeID         uint32   // BS_VolID
	VolumeLabel      [11]byte // BS_VolLab
	FSType           [8]byte  // BS_FilSysType ("FAT32   ")
}

// FSInfo is the FAT32 file-system information sector. Its counters are
// hints only: the specification says they may be wrong.
type FSInfo struct {
	LeadSig   uint32 // FSI_LeadSig: 0x41615252
	Reserved1 [480]byte
	StructSig uint32 // FSI_StrucSig: 0x61417272
	FreeCount uint32 // FSI_Free_Count: free clusters, 0xFFFFFFFF when unknown
	NextFree  uint32 // FSI_Nxt_Free: hint for the allocator
	Reserved2 [12]byte
	TrailSig  uint32 // FSI_TrailSig: 0xAA550000
}

// DirEntry is a 32-byte short (8.3) directory entry.
type DirEntry struct {
	Name         [11]byte // DIR_Name: 8 base + 3 extension bytes, space padded
	Attr         uint8    // DIR_Attr: see the Attr constants
	NTRes        uint8    // DIR_NTRes: 0x08 base and 0x10 extension are lower case
	CrtTimeTenth uint8    // DIR_CrtTimeTenth: 0 to 199, units of 10 ms
	CrtTime      uint16   // DIR_CrtTime
	CrtDate      uint16   // DIR_CrtDate
	LstAccDate   uint16   // DIR_LstAccDate
	FstClusHI    uint16   // DIR_FstClusHI: high 16 bits of the first cluster (FAT32)
	WrtTime      uint16   // DIR_WrtTime
	WrtDate      uint16   // DIR_WrtDate
	FstClusLO    uint16   // DIR_FstClusLO
	FileSize     uint32   // DIR_FileSize
}

// LFNEntry is a 32-byte long-file-name entry. A long name is stored in
// 13-character UTF-16 pieces in entries placed, last piece first, just
// before the short entry that they name.
type LFNEntry struct {
	Ord       uint8     // LDIR_Ord: sequence number 1-20; 0x40 marks the last piece
	Name1     [5]uint16 // LDIR_Name1: characters 1-5
	Attr      uint8     // LDIR_Attr: AttrLongName
	Type      uint8     // LDIR_Type: 0
	Checksum  uint8     // LDIR_Chksum: of the short name
	Name2     [6]uint16 // LDIR_Name2: characters 6-11
	FstClusLO uint16    // LDIR_FstClusLO: 0
	Name3     [2]uint16 // LDIR_Name3: characters 12-13
}

// Attr is the attribute byte of a directory entry.
type Attr uint8

// Attribute bits of DirEntry.Attr.
const (
	AttrReadOnly  Attr = 0x01
	AttrHidden    Attr = 0x02
	AttrSystem    Attr = 0x04
	AttrVolumeID  Attr = 0x08
	AttrDirectory Attr = 0x10
	AttrArchive   Attr = 0x20
	// AttrLongName marks a long-file-name entry (LFNEntry).
	AttrLongName Attr = AttrReadOnly | AttrHidden | AttrSystem | AttrVolumeID
)

// String lists the set bits, e.g. "RO|DIR".
func (a Attr) String() string {
	if a&0x3F == AttrLongName {
		return "LFN"
	}
	names := []string{"RO", "HIDDEN", "SYSTEM", "VOLUME", "DIR", "ARCHIVE", "0x40", "0x80"}
	s := ""
	for i, n := range names {
		if a&(1<<i) != 0 {
			if s != "" {
				s += "|"
			}
			s += n
		}
	}
	if s == "" {
		return "0"
	}
	return s
}

// Sizes and signatures.
const (
	dirEntrySize   = 32
	bootSigOff     = 510 // 0x55 0xAA
	fsInfoLeadSig  = 0x41615252
	fsInfoStrucSig = 0x61417272
	fsInfoTrailSig = 0xAA550000
	ntLowerBase    = 0x08 // DIR_NTRes: base name is lower case
	ntLowerExt     = 0x10 // DIR_NTRes: extension is lower case
	lfnLast        = 0x40 // LDIR_Ord flag of the last (first stored) piece
	lfnMaxOrd      = 20   // 20 × 13 = 260 characters ≥ the 255 allowed
	lfnChars       = 13
	maxDirEntries  = 65536 // the specification's limit per directory
)

func decodeDirEntry(b []byte) DirEntry {
	le := binary.LittleEndian
	var d DirEntry
	copy(d.Name[:], b[0:11])
	d.Attr = b[11]
	d.NTRes = b[12]
	d.CrtTimeTenth = b[13]
	d.CrtTime = le.Uint16(b[14:])
	d.CrtDate = le.Uint16(b[16:])
	d.LstAccDate = le.Uint16(b[18:])
	d.FstClusHI = le.Uint16(b[20:])
	d.WrtTime = le.Uint16(b[22:])
	d.WrtDate = le.Uint16(b[24:])
	d.FstClusLO = le.Uint16(b[26:])
	d.FileSize = le.Uint32(b[28:])
	return d
}

// lfnName returns the 13 UTF-16 code units of a long-name entry in order.
func lfnName(b []byte) [lfnChars]uint16 {
	le := binary.LittleEndian
	var u [lfnChars]uint16
	j := 0
	for _, r := range [][2]int{{1, 11}, {14, 26}, {28, 32}} {
		for o := r[0]; o < r[1]; o += 2 {
			u[j] = le.Uint16(b[o:])
			j++
		}
	}
	return u
}

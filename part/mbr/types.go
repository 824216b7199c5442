package mbr

import "fmt"

// Type is an MBR partition type byte.
type Type uint8

// Common partition types.
const (
	Empty        Type = 0x00
	FAT12        Type = 0x01
	FAT16Small   Type = 0x04
	ExtendedCHS  Type = 0x05
	FAT16        Type = 0x06
	NTFS         Type = 0x07 // also HPFS and exFAT
	FAT32CHS     Type = 0x0b
	FAT32LBA     Type = 0x0c
	FAT16LBA     Type = 0x0e
	ExtendedLBA  Type = 0x0f
	HiddenFAT32  Type = 0x1c
	LinuxSwap    Type = 0x82
	Linux        Type = 0x83
	LinuxExt     Type = 0x85
	LinuxLVM     Type = 0x8e
	FreeBSD      Type = 0xa5
	OpenBSD      Type = 0xa6
	NetBSD       Type = 0xa9
	AppleHFS     Type = 0xaf
	GPTProtect   Type = 0xee
	EFISystem    Type = 0xef
	LinuxRAID    Type = 0xfd
	LinuxExtBoot Type = 0xea
)

var typeNames = map[Type]string{
	0x00: "Empty",
	0x01: "FAT12",
	0x04: "FAT16 <32M",
	0x05: "Extended",
	0x06: "FAT16",
	0x07: "HPFS/NTFS/exFAT",
	0x0b: "W95 FAT32",
	0x0c: "W95 FAT32 (LBA)",
	0x0e: "W95 FAT16 (LBA)",
	0x0f: "W95 Ext'd (LBA)",
	0x11: "Hidden FAT12",
	0x12: "Compaq diagnostics",
	0x14: "Hidden FAT16 <32M",
	0x16: "Hidden FAT16",
	0x17: "Hidden HPFS/NTFS",
	0x1b: "Hidden W95 FAT32",
	0x1c: "Hidden W95 FAT32 (LBA)",
	0x1e: "Hidden W95 FAT16 (LBA)",
	0x27: "Hidden NTFS WinRE",
	0x42: "SFS",
	0x80: "Old Minix",
	0x81: "Minix / old Linux",
	0x82: "Linux swap / Solaris",
	0x83: "Linux",
	0x85: "Linux extended",
	0x86: "NTFS volume set",
	0x87: "NTFS volume set",
	0x88: "Linux plaintext",
	0x8e: "Linux LVM",
	0x93: "Amoeba",
	0xa5: "FreeBSD",
	0xa6: "OpenBSD",
	0xa8: "Darwin UFS",
	0xa9: "NetBSD",
	0xab: "Darwin boot",
	0xaf: "HFS / HFS+",
	0xbe: "Solaris boot",
	0xbf: "Solaris",
	0xda: "Non-FS data",
	0xea: "Linux extended boot",
	0xee: "GPT",
	0xef: "EFI (FAT-12/16/32)",
	0xf0: "Linux/PA-RISC boot",
	0xfb: "VMware VMFS",
	0xfc: "VMware VMKCORE",
	0xfd: "Linux raid autodetect",
}

// String returns the name fdisk gives the type, or "0xNN" when it is not
// one of the common types.
func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("0x%02x", uint8(t))
}

// Hex returns the type as "0xNN".
func (t Type) Hex() string { return fmt.Sprintf("0x%02x", uint8(t)) }

// IsExtended reports whether the type marks an extended partition (a
// container of logical partitions): 0x05, 0x0f or 0x85.
func (t Type) IsExtended() bool {
	return t == ExtendedCHS || t == ExtendedLBA || t == LinuxExt
}

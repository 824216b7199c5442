package gpt

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// GUID is a GUID in its on-disk mixed-endian form: the first three fields
// little-endian, the last two as bytes.
type GUID [16]byte

// String returns the canonical lowercase form,
// "c12a7328-f81f-11d2-ba4b-00a0c93ec93b".
func (g GUID) String() string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(g[0:4]), binary.LittleEndian.Uint16(g[4:6]),
		binary.LittleEndian.Uint16(g[6:8]), g[8:10], g[10:16])
}

// IsZero reports whether g is all zeros (an unused entry's type).
func (g GUID) IsZero() bool { return g == GUID{} }

// Name returns the well-known name of a partition type GUID as util-linux
// names it ("Linux filesystem", "EFI System", …), or "" when unknown.
func (g GUID) Name() string { return typeNames[g] }

// ParseGUID parses the canonical form (either case, with or without
// braces).
func ParseGUID(s string) (GUID, error) {
	var g GUID
	t := strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")
	if len(t) != 36 || t[8] != '-' || t[13] != '-' || t[18] != '-' || t[23] != '-' {
		return g, fmt.Errorf("gpt: malformed GUID %q", s)
	}
	b, err := hex.DecodeString(t[0:8] + t[9:13] + t[14:18] + t[19:23] + t[24:])
	if err != nil {
		return g, fmt.Errorf("gpt: malformed GUID %q: %w", s, err)
	}
	binary.LittleEndian.PutUint32(g[0:4], binary.BigEndian.Uint32(b[0:4]))
	binary.LittleEndian.PutUint16(g[4:6], binary.BigEndian.Uint16(b[4:6]))
	binary.LittleEndian.PutUint16(g[6:8], binary.BigEndian.Uint16(b[6:8]))
	copy(g[8:], b[8:])
	return g, nil
}

func mustGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// Well-known partition type GUIDs.
var (
	TypeUnused            = GUID{}
	TypeEFISystem         = mustGUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
	TypeBIOSBoot          = mustGUID("21686148-6449-6e6f-744e-656564454649")
	TypeMicrosoftBasic    = mustGUID("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7")
	TypeMicrosoftReserved = mustGUID("e3c9e316-0b5c-4db8-817d-f92df00215ae")
	TypeLinuxFilesystem   = mustGUID("0fc63daf-8483-4772-8e79-3d69d8477de4")
	TypeLinuxSwap         = mustGUID("0657fd6d-a4ab-43c4-84e5-0933c84b4f4f")
	TypeLinuxLVM          = mustGUID("e6d6d379-f507-44c2-a23c-238f2a3df928")
	TypeLinuxRAID         = mustGUID("a19d880f-05fc-4d3b-a006-743f0f84911e")
	TypeLinuxRootX86_64   = mustGUID("4f68bce3-e8cd-4db1-96e7-fbcaf984b709")
	TypeLinuxRootARM64    = mustGUID("b921b045-1df0-41c3-af44-4c6f280d3fae")
	TypeChromeOSKernel    = mustGUID("fe3a2a5d-4f32-41a7-b725-accc3285a309")
	TypeChromeOSRoot      = mustGUID("3cb8e202-3b7e-47dd-8a3c-7ff2a13cfcec")
)

var typeNames = map[GUID]string{
	TypeEFISystem:         "EFI System",
	TypeBIOSBoot:          "BIOS boot",
	TypeMicrosoftBasic:    "Microsoft basic data",
	TypeMicrosoftReserved: "Microsoft reserved",
	TypeLinuxFilesystem:   "Linux filesystem",
	TypeLinuxSwap:         "Linux swap",
	TypeLinuxLVM:          "Linux LVM",
	TypeLinuxRAID:         "Linux RAID",
	TypeLinuxRootX86_64:   "Linux root (x86-64)",
	TypeLinuxRootARM64:    "Linux root (ARM-64)",
	TypeChromeOSKernel:    "ChromeOS kernel",
	TypeChromeOSRoot:      "ChromeOS root fs",

	mustGUID("2e0a753d-9e48-43b0-8337-b15192cb1b5e"): "ChromeOS reserved",
	mustGUID("44479540-f297-41b2-9af7-d131d5f0458a"): "Linux root (x86)",
	mustGUID("69dad710-2ce4-4e3c-b16c-21a1d49abed3"): "Linux root (ARM)",
	mustGUID("72ec70a6-cf74-40e6-bd49-4bda08e8f224"): "Linux root (RISC-V-64)",
	mustGUID("8484680c-9521-48c6-9c11-b0720656f69e"): "Linux usr (x86-64)",
	mustGUID("b0e01050-ee5f-4390-949a-9101b17104e9"): "Linux usr (ARM-64)",
	mustGUID("933ac7e1-2eb4-4f13-b844-0e14e2aef915"): "Linux home",
	mustGUID("3b8f8425-20e0-4f3b-907f-1a25a76f98e8"): "Linux server data",
	mustGUID("4d21b016-b534-45c2-a9fb-5c16e091fd2d"): "Linux variable data",
	mustGUID("7ec6f557-3bc5-4aca-b293-16ef5df639d1"): "Linux temporary data",
	mustGUID("bc13c2ff-59e6-4262-a352-b275fd6f7172"): "Linux extended boot",
	mustGUID("8da63339-0007-60c0-c436-083ac8230908"): "Linux reserved",
	mustGUID("ca7d7ccb-63ed-4c53-861c-1742536059cc"): "Linux LUKS",
	mustGUID("7ffec5c9-2d00-49b7-8941-3ea10a5586b7"): "Linux plain dm-crypt",
	mustGUID("de94bba4-06d1-4d40-a16a-bfd50179d6ac"): "Windows recovery environment",
	mustGUID("5808c8aa-7e8f-42e0-85d2-e1e90434cfb3"): "Microsoft LDM metadata",
	mustGUID("af9b60a0-1431-4f62-bc68-3311714a69ad"): "Microsoft LDM data",
	mustGUID("48465300-0000-11aa-aa11-00306543ecac"): "Apple HFS/HFS+",
	mustGUID("7c3457ef-0000-11aa-aa11-00306543ecac"): "Apple APFS",
	mustGUID("426f6f74-0000-11aa-aa11-00306543ecac"): "Apple boot",
	mustGUID("516e7cb4-6ecf-11d6-8ff8-00022d09712b"): "FreeBSD data",
	mustGUID("83bd6b9d-7f41-11dc-be0b-001560b84f0f"): "FreeBSD boot",
	mustGUID("516e7cb6-6ecf-11d6-8ff8-00022d09712b"): "FreeBSD UFS",
	mustGUID("516e7cba-6ecf-11d6-8ff8-00022d09712b"): "FreeBSD ZFS",
	mustGUID("6a898cc3-1dd2-11b2-99a6-080020736631"): "Solaris /usr & Apple ZFS",
	mustGUID("024dee41-33e7-11d3-9d69-0008c781f39f"): "MBR partition scheme",
	mustGUID("d3bfe2de-3daf-11df-ba40-e3a556d89593"): "Intel Fast Flash",
	mustGUID("9e1a2d38-c612-4316-aa26-8b49521e5a8b"): "PowerPC PReP boot",
	mustGUID("09845860-705f-4bb5-b16c-8a8a099caf52"): "Microsoft Storage Spaces",
	mustGUID("cafecafe-9b03-4f30-b4c6-b4b80ceff106"): "Ceph block",
}

// Attributes are the 64 attribute bits of a partition entry.
type Attributes uint64

// Attribute bits defined by the UEFI specification.
const (
	AttrRequired       Attributes = 1 << 0 // platform-required partition
	AttrNoBlockIO      Attributes = 1 << 1 // no EFI_BLOCK_IO_PROTOCOL
	AttrLegacyBootable Attributes = 1 << 2 // legacy BIOS bootable
)

// TypeSpecific returns bits 48–63, whose meaning depends on the partition
// type (read-only, hidden, no-automount for Microsoft basic data; priority
// and tries for ChromeOS kernels).
func (a Attributes) TypeSpecific() uint16 { return uint16(a >> 48) }

// String lists the set bits as sgdisk names them, comma-separated, with
// other bits as "bitN"; "" when none is set.
func (a Attributes) String() string {
	var s []string
	for bit := 0; bit < 64; bit++ {
		if a&(1<<bit) == 0 {
			continue
		}
		switch Attributes(1 << bit) {
		case AttrRequired:
			s = append(s, "required")
		case AttrNoBlockIO:
			s = append(s, "no-block-io")
		case AttrLegacyBootable:
			s = append(s, "legacy-bios-bootable")
		default:
			s = append(s, fmt.Sprintf("bit%d", bit))
		}
	}
	return strings.Join(s, ",")
}

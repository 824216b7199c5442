package gpt

import (
	"encoding/binary"
	"testing"
)

func TestLayoutSizes(t *testing.T) {
	if n := binary.Size(Header{}); n != HeaderSize {
		t.Errorf("Header is %d bytes, want %d", n, HeaderSize)
	}
	if n := binary.Size(Entry{}); n != MinEntrySize {
		t.Errorf("Entry is %d bytes, want %d", n, MinEntrySize)
	}
	if n := binary.Size(GUID{}); n != 16 {
		t.Errorf("GUID is %d bytes", n)
	}
}

func TestGUID(t *testing.T) {
	// The EFI System type as its on-disk bytes (UEFI spec, mixed-endian).
	disk := GUID{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}
	if s := disk.String(); s != "c12a7328-f81f-11d2-ba4b-00a0c93ec93b" {
		t.Errorf("String: %s", s)
	}
	if disk != TypeEFISystem || disk.Name() != "EFI System" {
		t.Errorf("parsed EFI System GUID differs")
	}
	g, err := ParseGUID("{0FC63DAF-8483-4772-8E79-3D69D8477DE4}")
	if err != nil || g.Name() != "Linux filesystem" {
		t.Errorf("ParseGUID: %v %v", g, err)
	}
	for _, bad := range []string{"", "0fc63daf-8483-4772-8e79-3d69d8477de", "0fc63daf+8483-4772-8e79-3d69d8477de4", "zfc63daf-8483-4772-8e79-3d69d8477de4"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) succeeded", bad)
		}
	}
}

func TestAttributes(t *testing.T) {
	a := AttrRequired | AttrLegacyBootable | 1<<63
	if a.String() != "required,legacy-bios-bootable,bit63" || a.TypeSpecific() != 0x8000 {
		t.Errorf("%s %x", a, a.TypeSpecific())
	}
}

func TestNames(t *testing.T) {
	for _, s := range []string{"", "root", "rööt ✓", "𝄞 clef", "123456789012345678901234567890123456"} {
		u, err := encodeName(s)
		if err != nil || decodeName(u[:]) != s {
			t.Errorf("%q: %v %q", s, err, decodeName(u[:]))
		}
	}
	if _, err := encodeName("1234567890123456789012345678901234567"); err == nil {
		t.Errorf("37-unit name accepted")
	}
}

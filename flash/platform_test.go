package flash

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

func TestDiskutilPlist(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "diskutil", "list.plist"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	devs, err := diskutilDisks(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 || devs[0].Path != "/dev/disk4" || devs[0].Size != 31914983424 || len(devs[0].Partitions) != 2 {
		t.Fatalf("got %+v", devs)
	}
	p := devs[0].Partitions
	if p[0].Path != "/dev/disk4s1" || p[0].Size != 536870912 || len(p[0].Mounts) != 1 || p[0].Mounts[0].Point != "/Volumes/bootfs" || len(p[1].Mounts) != 0 {
		t.Errorf("partitions %+v", p)
	}
	info, err := os.Open(filepath.Join("testdata", "diskutil", "info-disk4.plist"))
	if err != nil {
		t.Fatal(err)
	}
	defer info.Close()
	d := devs[0]
	if err := applyDiskutilInfo(&d, info); err != nil {
		t.Fatal(err)
	}
	if d.Transport != TransportMMC || !d.Removable || d.ReadOnly || d.Model != "SD32G" || d.SectorSize != 512 {
		t.Errorf("got %+v", d)
	}
	if sys, why := IsSystemDisk(d); sys {
		t.Errorf("a card mounted under /Volumes is a system disk: %s", why)
	}
}

func TestStorageDescriptor(t *testing.T) {
	b := make([]byte, 128)
	binary.LittleEndian.PutUint32(b[0:], 1)
	binary.LittleEndian.PutUint32(b[4:], 128)
	b[10] = 1 // RemovableMedia
	put := func(at, off int, s string) {
		binary.LittleEndian.PutUint32(b[at:], uint32(off))
		copy(b[off:], s+"\x00")
	}
	put(12, 40, "Generic ")
	put(16, 60, "STORAGE DEVICE  ")
	put(24, 90, "000000001206")
	binary.LittleEndian.PutUint32(b[28:], 7) // BusTypeUsb
	si, ok := parseStorageDescriptor(b)
	if !ok || si.vendor != "Generic" || si.product != "STORAGE DEVICE" || si.serial != "000000001206" || !si.removable || si.transport != TransportUSB {
		t.Errorf("got %+v", si)
	}
	if _, ok := parseStorageDescriptor(b[:20]); ok {
		t.Error("a short descriptor was accepted")
	}
	binary.LittleEndian.PutUint32(b[24:], 5000) // serial offset out of range
	if si, _ := parseStorageDescriptor(b); si.serial != "" {
		t.Errorf("serial from outside the buffer: %q", si.serial)
	}
}

func TestTransportText(t *testing.T) {
	for tr := TransportUnknown; tr <= TransportLoop; tr++ {
		b, _ := tr.MarshalText()
		var back Transport
		if err := back.UnmarshalText(b); err != nil || back != tr {
			t.Errorf("%v: round trip gave %v, %v", tr, back, err)
		}
	}
	if TransportNVMe.String() != "nvme" || Transport(200).String() != "unknown" {
		t.Error("String")
	}
}

package ext4

import (
	"encoding/binary"
	"hash/crc32"
	"testing"
)

func TestLayoutSizes(t *testing.T) {
	for _, c := range []struct {
		name string
		v    any
		size int
	}{
		{"Superblock", Superblock{}, 1024},
		{"GroupDesc32", GroupDesc32{}, 32},
		{"GroupDesc64", GroupDesc64{}, 64},
		{"Inode", Inode{}, inodeStructSize},
		{"ExtentHeader", ExtentHeader{}, 12},
		{"ExtentIdx", ExtentIdx{}, 12},
		{"Extent", Extent{}, 12},
		{"ExtentTail", ExtentTail{}, 4},
		{"DirEntry2", DirEntry2{}, dirEntryHeadSize},
		{"DirTail", DirTail{}, 12},
		{"DxRoot", DxRoot{}, 40},
		{"DxNode", DxNode{}, 16},
		{"DxEntry", DxEntry{}, 8},
		{"DxTail", DxTail{}, 8},
		{"XattrHeader", XattrHeader{}, 32},
		{"XattrIbodyHeader", XattrIbodyHeader{}, 4},
		{"XattrEntry", XattrEntry{}, xattrEntryHeadSize},
		{"JournalHeader", JournalHeader{}, 12},
		{"JournalSuperblock", JournalSuperblock{}, 1024},
	} {
		if got := binary.Size(c.v); got != c.size {
			t.Errorf("binary.Size(%s) = %d, want %d", c.name, got, c.size)
		}
	}
}

// TestDecodeInodeMatchesBinary checks the hand-written inode decoder
// against encoding/binary.
func TestDecodeInodeMatchesBinary(t *testing.T) {
	b := make([]byte, inodeStructSize)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	var want Inode
	if _, err := binary.Decode(b, binary.LittleEndian, &want); err != nil {
		t.Fatal(err)
	}
	if got := decodeInode(b); got != want {
		t.Errorf("decodeInode = %+v\nwant %+v", got, want)
	}
}

func TestFeatureStrings(t *testing.T) {
	if s := (CompatHasJournal | CompatDirIndex).String(); s != "has_journal dir_index" {
		t.Errorf("compat: %q", s)
	}
	if s := (IncompatExtents | Incompat64bit | IncompatFeature(1<<31)).String(); s != "extent 64bit FEATURE_I31" {
		t.Errorf("incompat: %q", s)
	}
	if s := (ROCompatMetadataCsum | ROCompatHugeFile).String(); s != "huge_file metadata_csum" {
		t.Errorf("ro_compat: %q", s)
	}
}

func TestChecksumPrimitives(t *testing.T) {
	// CRC-16/ARC check value; gdt_csum uses the same polynomial.
	if c := crc16(0, []byte("123456789")); c != 0xBB3D {
		t.Errorf("crc16 = %#x", c)
	}
	// crc32c without final inversion is the complement of the standard
	// CRC-32C when seeded with ~0.
	p := []byte("123456789")
	if c := crc32c(^uint32(0), p); c != ^crc32.Checksum(p, castagnoli()) {
		t.Errorf("crc32c = %#x", c)
	}
}

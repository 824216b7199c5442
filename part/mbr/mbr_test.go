package mbr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestLayoutSizes(t *testing.T) {
	if n := binary.Size(RawEntry{}); n != EntrySize {
		t.Errorf("RawEntry is %d bytes, want %d", n, EntrySize)
	}
	if n := binary.Size(RawMBR{}); n != MinSectorSize {
		t.Errorf("RawMBR is %d bytes, want 512", n)
	}
	if n := binary.Size(CHS{}); n != 3 {
		t.Errorf("CHS is %d bytes", n)
	}
}

func TestTypeString(t *testing.T) {
	for typ, want := range map[Type]string{0x0c: "W95 FAT32 (LBA)", 0x83: "Linux", 0x82: "Linux swap / Solaris",
		0x05: "Extended", 0xee: "GPT", 0x8e: "Linux LVM", 0x42: "SFS", 0x99: "0x99"} {
		if typ.String() != want {
			t.Errorf("%s: %q, want %q", typ.Hex(), typ.String(), want)
		}
	}
}

// The expected values are the CHS bytes sfdisk wrote for these sectors
// (see the logical-partition fixture of package part).
func TestCHSOf(t *testing.T) {
	for lba, want := range map[uint64]CHS{2048: {0x20, 0x21, 0x00}, 4096: {0x41, 0x02, 0x00}, 12287: {0xc3, 0x03, 0x00},
		34815: {0x2a, 0x28, 0x02}, 1 << 30: {0xfe, 0xff, 0xff}, 0: {0, 1, 0}} {
		if got := CHSOf(lba); got != want {
			t.Errorf("CHSOf(%d) = %x, want %x", lba, got, want)
		}
	}
}

// chainImage builds a small image with one primary, an extended partition
// and n logical partitions, using Write.
func chainImage(t testing.TB, n int) []byte {
	img := &mem{b: make([]byte, (24+8*n)*512)}
	tb := &Table{SectorSize: 512, DiskID: 0x1234abcd, Partitions: []Partition{
		{Number: 1, Status: StatusActive, Type: FAT32LBA, Start: 2, Sectors: 6},
		{Number: 2, Type: ExtendedLBA, Start: 8, Sectors: uint64(8 + 8*n)},
	}}
	for i := 0; i < n; i++ {
		ebr := uint64(8 + i*8)
		tb.Partitions = append(tb.Partitions, Partition{Number: 5 + i, Type: Linux, Start: ebr + 2, Sectors: 5, Logical: true, EBR: ebr})
	}
	if err := tb.Write(img); err != nil {
		t.Fatal(err)
	}
	return img.b
}

type mem struct{ b []byte }

func (m *mem) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, errors.New("out of range")
	}
	return copy(m.b[off:], p), nil
}

func TestChainRoundTrip(t *testing.T) {
	b := chainImage(t, 4)
	tb, err := Read(bytes.NewReader(b), int64(len(b)), 512)
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Partitions) != 6 || tb.Partitions[5].Number != 8 || tb.Partitions[5].Start != 34 || len(tb.Warnings) != 0 {
		t.Fatalf("%+v %q", tb.Partitions, tb.Warnings)
	}
}

func TestChainLoop(t *testing.T) {
	b := chainImage(t, 3)
	// Point the link of the third EBR (sector 24) back at the first.
	e := 24*512 + EntriesOff + EntrySize
	b[e+4] = byte(ExtendedCHS)
	binary.LittleEndian.PutUint32(b[e+8:], 0)
	binary.LittleEndian.PutUint32(b[e+12:], 10)
	tb, err := Read(bytes.NewReader(b), int64(len(b)), 512)
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Partitions) != 5 || len(tb.Warnings) != 1 {
		t.Errorf("partitions %+v, warnings %q", tb.Partitions, tb.Warnings)
	}
}

func TestNotPartitionTable(t *testing.T) {
	b := make([]byte, 4096)
	b[510], b[511] = 0x55, 0xaa
	b[446] = 0x12 // invalid status
	if _, err := Read(bytes.NewReader(b), 4096, 512); !errors.Is(err, ErrNotPartitionTable) {
		t.Errorf("bad status: %v", err)
	}
	var fe *FormatError
	if _, err := Read(bytes.NewReader(make([]byte, 4096)), 4096, 512); !errors.Is(err, ErrNoSignature) || !errors.As(err, &fe) || fe.Off != 510 {
		t.Errorf("no signature: %v", err)
	}
}

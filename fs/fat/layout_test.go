package fat

import (
	"encoding/binary"
	"testing"
	"unicode/utf16"
)

func TestLayoutSizes(t *testing.T) {
	for _, c := range []struct {
		v    any
		size int
	}{
		{BPB{}, 36}, {EBPB16{}, 26}, {EBPB32{}, 54}, {FSInfo{}, 512}, {DirEntry{}, 32}, {LFNEntry{}, 32},
	} {
		if got := binary.Size(c.v); got != c.size {
			t.Errorf("binary.Size(%T) = %d, want %d", c.v, got, c.size)
		}
	}
}

// TestDecodeDirEntry checks the hand-written decoder against
// encoding/binary.
func TestDecodeDirEntry(t *testing.T) {
	b := make([]byte, 32)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	var want DirEntry
	if _, err := binary.Decode(b, binary.LittleEndian, &want); err != nil {
		t.Fatal(err)
	}
	if got := decodeDirEntry(b); got != want {
		t.Errorf("decodeDirEntry = %+v, want %+v", got, want)
	}
	var l LFNEntry
	if _, err := binary.Decode(b, binary.LittleEndian, &l); err != nil {
		t.Fatal(err)
	}
	u := lfnName(b)
	if want := append(append(l.Name1[:], l.Name2[:]...), l.Name3[:]...); string(utf16.Decode(u[:])) != string(utf16.Decode(want)) {
		t.Errorf("lfnName = %v, want %v", u, want)
	}
}

// short builds a short entry.
func short(name string, attr Attr, ntres uint8, cluster uint32, size uint32) []byte {
	var e DirEntry
	copy(e.Name[:], name)
	e.Attr, e.NTRes = uint8(attr), ntres
	e.FstClusHI, e.FstClusLO = uint16(cluster>>16), uint16(cluster)
	e.FileSize = size
	b, _ := binary.Append(nil, binary.LittleEndian, &e)
	return b
}

// long builds the long-name entries for name, last piece first, as the
// specification stores them, with the checksum of the short name sn.
func long(name string, sn string) []byte {
	var raw [11]byte
	copy(raw[:], sn)
	sum := checksum(raw)
	u := utf16.Encode([]rune(name))
	if len(u)%lfnChars != 0 {
		u = append(u, 0)
	}
	for len(u)%lfnChars != 0 {
		u = append(u, 0xFFFF)
	}
	n := len(u) / lfnChars
	var out []byte
	for i := n; i >= 1; i-- {
		p := u[(i-1)*lfnChars : i*lfnChars]
		e := LFNEntry{Ord: uint8(i), Attr: uint8(AttrLongName), Checksum: sum}
		if i == n {
			e.Ord |= lfnLast
		}
		copy(e.Name1[:], p[0:5])
		copy(e.Name2[:], p[5:11])
		copy(e.Name3[:], p[11:13])
		out, _ = binary.Append(out, binary.LittleEndian, &e)
	}
	return out
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// TestParseEntries checks the directory parser on hand-built entries, per
// the rules of fatgen103 section 6 and 7.
func TestParseEntries(t *testing.T) {
	badSum := long("Wrong Checksum.txt", "OTHER   TXT")
	orphan := long("Orphan piece name.txt", "ORPHAN~1TXT")[32:] // without its last piece
	e5 := short("\x05BC     TXT", 0, 0, 9, 1)
	dir := cat(
		short(".          ", AttrDirectory, 0, 7, 0),
		short("..         ", AttrDirectory, 0, 5, 0),
		short("MYLABEL    ", AttrVolumeID|AttrArchive, 0, 0, 0),
		long("A long name.txt", "ALONGN~1TXT"), short("ALONGN~1TXT", AttrArchive, 0, 10, 100),
		long("smile-🙂-ünï.txt", "SMILE-~1TXT"), short("SMILE-~1TXT", 0, 0, 11, 1),
		short("README  TXT", 0, ntLowerBase|ntLowerExt, 12, 2),
		short("MAKEFILE   ", 0, ntLowerBase, 13, 3),
		short("NAME    EXT", 0, ntLowerExt, 14, 3),
		badSum, short("WRONGC~1TXT", 0, 0, 15, 4),
		orphan, short("ORPHAN~1TXT", 0, 0, 16, 5),
		e5,
		func() []byte { b := short("DELETED TXT", 0, 0, 17, 6); b[0] = 0xE5; return b }(),
		short("SUBDIR     ", AttrDirectory, 0, 18, 99),
		short("SUBDIR2    ", AttrDirectory, 0, 18, 0),
		make([]byte, 32), // end of directory
		short("AFTER   END", 0, 0, 19, 7),
	)
	p := newDirParser(7)
	p.feed(dir, 1000)
	d := p.d
	var names []string
	for _, n := range d.entries {
		names = append(names, n.name)
	}
	want := []string{"A long name.txt", "smile-🙂-ünï.txt", "readme.txt", "makefile", "NAME.ext",
		"WRONGC~1.TXT", "ORPHAN~1.TXT", "σBC.TXT", "SUBDIR", "SUBDIR2"}
	if len(names) != len(want) {
		t.Fatalf("names %q, want %q", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Errorf("entry %d: %q, want %q", i, names[i], want[i])
		}
	}
	if !d.hasLabel || d.label != "MYLABEL" || !d.hasDotdot || d.dotdot != 5 {
		t.Errorf("label %q %v, dotdot %d %v", d.label, d.hasLabel, d.dotdot, d.hasDotdot)
	}
	if n := d.entries[0]; n.cluster != 10 || n.size != 100 || n.off != 1000+5*32 {
		t.Errorf("entry 0 = %+v", n)
	}
	if d.entries[8].size != 0 || d.entries[8].dup || !d.entries[9].dup {
		t.Errorf("subdirectories: %+v %+v", d.entries[8], d.entries[9])
	}
	if n := d.lookup("ALONGN~1.TXT"); n == nil || n.name != "A long name.txt" {
		t.Errorf("lookup by short alias = %v", n)
	}
	if n := d.lookup("a LONG name.TXT"); n == nil || n.cluster != 10 {
		t.Errorf("case-insensitive lookup = %v", n)
	}
}

func TestChecksum(t *testing.T) {
	// The checksum of fatgen103 section 7, computed by its definition:
	// rotate right by one, then add the next byte, over the 11 bytes.
	var raw [11]byte
	copy(raw[:], "FOO     BAR")
	var want uint8
	for _, c := range raw {
		want = ((want & 1) << 7) + (want >> 1) + c
	}
	if got := checksum(raw); got != want {
		t.Errorf("checksum = %#x, want %#x", got, want)
	}
}

func TestFatTime(t *testing.T) {
	// 2011-03-04 05:06:08 and 1.5 s of tenths.
	date := uint16(31<<9 | 3<<5 | 4)
	tm := uint16(5<<11 | 6<<5 | 4)
	got := fatTime(date, tm, 150)
	if want := "2011-03-04 05:06:09.5 +0000 UTC"; got.String() != want {
		t.Errorf("fatTime = %v, want %v", got, want)
	}
}

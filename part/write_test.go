package part_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/internal/testimg"
	"imgtool/part"
	"imgtool/part/gpt"
)

func readAll(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openRW(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// sfdiskDump is `sfdisk -d` without the device line, which names the file.
func sfdiskDump(t *testing.T, img string) string {
	out := testimg.Run(t, "sfdisk", "-d", img)
	return strings.ReplaceAll(out, img, "IMG")
}

func TestMBRWriteRoundTrip(t *testing.T) {
	testimg.NeedTools(t, "sfdisk")
	dir := t.TempDir()
	for _, name := range []string{"pi", "logical"} {
		t.Run(name, func(t *testing.T) {
			var img string
			if name == "pi" {
				img = testimg.PiImage(t, t.TempDir(), testimg.PiOptions{Size: 100 * mib, BootSize: 40 * mib})
			} else {
				img = logicalImage(t, dir)
			}
			// Give the boot code area recognisable bytes that Write must keep.
			f := openRW(t, img)
			code := bytes.Repeat([]byte{0xfa, 0x33, 0xc0}, 100)
			if _, err := f.WriteAt(code, 0); err != nil {
				t.Fatal(err)
			}
			tbl := readImage(t, img)
			orig := readAll(t, img)

			cp := filepath.Join(t.TempDir(), "copy.img")
			copyFile(t, img, cp)
			// Wipe the MBR and every EBR of the copy, then write them back.
			g := openRW(t, cp)
			sectors := []int64{0}
			for _, p := range tbl.MBR.Partitions {
				if p.Logical {
					sectors = append(sectors, int64(p.EBR)*512)
				}
			}
			for _, off := range sectors {
				if _, err := g.WriteAt(make([]byte, 512), off); err != nil {
					t.Fatal(err)
				}
			}
			if err := tbl.Write(g, int64(len(orig))); err != nil {
				t.Fatal(err)
			}
			got := readAll(t, cp)
			for _, off := range sectors {
				if !bytes.Equal(got[off:off+512], orig[off:off+512]) {
					t.Errorf("sector at byte %d differs after the round trip:\n got %x\nwant %x", off, got[off+440:off+512], orig[off+440:off+512])
				}
			}
			if !bytes.Equal(got, orig) {
				t.Errorf("other bytes of the image changed")
			}
			if a, b := sfdiskDump(t, img), sfdiskDump(t, cp); a != b {
				t.Errorf("sfdisk -d differs:\n%s\n%s", a, b)
			}
		})
	}
}

// TestMBRWriteShrink shrinks the last logical partition, as imgtool shrink
// does, and checks the result with sfdisk.
func TestMBRWriteShrink(t *testing.T) {
	testimg.NeedTools(t, "sfdisk")
	img := logicalImage(t, t.TempDir())
	tbl := readImage(t, img)
	m := tbl.MBR
	last := &m.Partitions[len(m.Partitions)-1]
	last.Sectors = 4096
	for i := range m.Partitions {
		if m.Partitions[i].Extended() {
			m.Partitions[i].Sectors = last.End() - m.Partitions[i].Start
		}
	}
	if err := tbl.Write(openRW(t, img), 32*mib); err != nil {
		t.Fatal(err)
	}
	sf := sfdiskJSON(t, img)
	ps := sf.PartitionTable.Partitions
	if ps[len(ps)-1].Size != 4096 || ps[1].Size != int64(last.End())-4096 {
		t.Errorf("sfdisk sees %+v", ps)
	}
	compareSfdisk(t, readImage(t, img), sf)
}

// resize copies img to a file of the given size (truncating or extending
// it) and writes the table read from img onto it.
func resize(t *testing.T, img string, tbl *part.Table, size int64) (string, error) {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "resized.img")
	copyFile(t, img, cp)
	if err := os.Truncate(cp, size); err != nil {
		t.Fatal(err)
	}
	return cp, tbl.Write(openRW(t, cp), size)
}

func checkSameGPT(t *testing.T, want *part.Table, img string) {
	t.Helper()
	sgdiskVerify(t, img)
	got := readImage(t, img)
	if got.DiskID != want.DiskID || len(got.Partitions) != len(want.Partitions) || len(got.Warnings) != 0 {
		t.Fatalf("disk %s, %d partitions, warnings %q; want disk %s, %d partitions", got.DiskID, len(got.Partitions), got.Warnings, want.DiskID, len(want.Partitions))
	}
	compareSgdisk(t, want, img) // the original partitions, as sgdisk reads the new image
	compareSfdisk(t, got, sfdiskJSON(t, img))
	out := testimg.Run(t, "sgdisk", "-p", img)
	if !strings.Contains(strings.ToLower(out), want.DiskID) {
		t.Errorf("sgdisk -p does not show disk GUID %s:\n%s", want.DiskID, out)
	}
}

func TestGPTWriteResize(t *testing.T) {
	testimg.NeedTools(t, "sgdisk", "sfdisk")
	img := gptImage(t, t.TempDir())
	tbl := readImage(t, img)
	for _, size := range []int64{64 * mib, 12 * mib} {
		cp, err := resize(t, img, tbl, size)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		checkSameGPT(t, tbl, cp)
		mb := readImage(t, cp).MBR
		if p := mb.Partitions[0]; p.Start != 1 || p.Sectors != uint64(size/512-1) {
			t.Errorf("protective entry %+v for %d bytes", p, size)
		}
	}
	// Too short: partition 4 ends at 7 MiB, where the backup array must go.
	if _, err := resize(t, img, tbl, 7*mib); !errors.Is(err, gpt.ErrDoesNotFit) {
		t.Errorf("writing onto 7 MiB: %v, want ErrDoesNotFit", err)
	}
}

func TestGPTWriteCorruptPrimary(t *testing.T) {
	// A table read from the backup is written back whole.
	img := gptImage(t, t.TempDir())
	want := readImage(t, img)
	corrupt(t, img, 512+24, 8)
	tbl := readImage(t, img)
	if err := tbl.Write(openRW(t, img), 16*mib); err != nil {
		t.Fatal(err)
	}
	checkSameGPT(t, want, img)
}

func TestHybridWriteResize(t *testing.T) {
	testimg.NeedTools(t, "sgdisk", "sfdisk")
	img := gptImage(t, t.TempDir())
	testimg.Run(t, "sgdisk", "-h", "1", img)
	tbl := readImage(t, img)
	cp, err := resize(t, img, tbl, 24*mib)
	if err != nil {
		t.Fatal(err)
	}
	checkSameGPT(t, tbl, cp)
	if got := readAll(t, cp)[:512]; !bytes.Equal(got, readAll(t, img)[:512]) {
		t.Errorf("hybrid MBR changed:\n%x\n%x", got[446:], readAll(t, img)[446:512])
	}
	if !readImage(t, cp).Hybrid {
		t.Errorf("no longer hybrid")
	}
}

func TestGPT4096WriteResize(t *testing.T) {
	img, _ := gpt4096Image(t, t.TempDir())
	tbl := readImage(t, img)
	for _, size := range []int64{32 * mib, 12 * mib} {
		cp, err := resize(t, img, tbl, size)
		if err != nil {
			t.Fatal(err)
		}
		dev := loopDevice(t, cp, 4096)
		sgdiskVerify(t, dev)
		compareSgdisk(t, tbl, dev)
		got := readImage(t, cp)
		compareSfdisk(t, got, sfdiskJSON(t, dev))
		if len(got.Warnings) != 0 || got.SectorSize != 4096 {
			t.Errorf("warnings %q, sector size %d", got.Warnings, got.SectorSize)
		}
	}
}

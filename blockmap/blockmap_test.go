package blockmap

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"imgtool/image"
	"imgtool/internal/testimg"
)

// TestDataOnlyCopyIsIntact zeroes everything the map calls free in a copy of
// a Pi-like image (whose free blocks hold stale data) and checks with
// e2fsck, fsck.vfat, debugfs and mtools that nothing that matters was lost.
func TestDataOnlyCopyIsIntact(t *testing.T) {
	testimg.NeedTools(t, "e2fsck", "fsck.vfat", "debugfs", "mtype")
	dir := t.TempDir()
	boot, root := filepath.Join(dir, "bootsrc"), filepath.Join(dir, "rootsrc")
	os.MkdirAll(boot, 0o755)
	os.MkdirAll(filepath.Join(root, "data"), 0o755)
	files := map[string][]byte{}
	for i := 0; i < 20; i++ {
		b := make([]byte, 1000+i*37000)
		rand.Read(b)
		name := fmt.Sprintf("f%02d.bin", i)
		files[name] = b
		os.WriteFile(filepath.Join(root, "data", name), b, 0o644)
		if i < 5 {
			os.WriteFile(filepath.Join(boot, name), b, 0o644)
		}
	}
	img := testimg.PiImage(t, dir, testimg.PiOptions{Size: 160 << 20, BootFiles: boot, RootFiles: root})
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src := image.NewReader(f, 160<<20)

	// Stale data: fill the free blocks of the root filesystem by writing a
	// large file and deleting it.
	stale := filepath.Join(dir, "stale")
	junk := bytes.Repeat([]byte("STALE DATA "), 2<<20)
	os.WriteFile(stale, junk, 0o644)
	rootOff := int64(68 << 20)
	testimg.Run(t, "debugfs", "-w", "-R", "write "+stale+" stale", fmt.Sprintf("%s?offset=%d", img, rootOff))
	testimg.Run(t, "debugfs", "-w", "-R", "rm stale", fmt.Sprintf("%s?offset=%d", img, rootOff))

	m, err := Compute(src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var pos int64
	for _, e := range m.Extents {
		if e.Off != pos || e.Len <= 0 {
			t.Fatalf("extents not contiguous at %d: %+v", pos, e)
		}
		pos = e.End()
	}
	if pos != m.Size {
		t.Fatalf("extents end at %d, image is %d", pos, m.Size)
	}
	if len(m.Partitions) != 2 || m.Partitions[0].Whole || m.Partitions[1].Whole {
		t.Fatalf("partitions %+v", m.Partitions)
	}
	if m.DataBytes() > 40<<20 {
		t.Errorf("map keeps %d bytes; the files are about 7 MiB", m.DataBytes())
	}

	// The copy: Data ranges from the image, zeros elsewhere.
	cp := filepath.Join(dir, "copy.img")
	testimg.Sparse(t, cp, m.Size)
	out, _ := os.OpenFile(cp, os.O_RDWR, 0)
	buf := make([]byte, 1<<20)
	for _, e := range m.Extents {
		if e.Kind != image.Data {
			continue
		}
		for off := e.Off; off < e.End(); off += int64(len(buf)) {
			n := min(int64(len(buf)), e.End()-off)
			if _, err := f.ReadAt(buf[:n], off); err != nil {
				t.Fatal(err)
			}
			out.WriteAt(buf[:n], off)
		}
	}
	out.Close()
	cpData, _ := os.ReadFile(cp)
	if bytes.Contains(cpData, []byte("STALE DATA STALE DATA")) {
		t.Errorf("stale data from free blocks was kept")
	}

	testimg.Run(t, "e2fsck", "-fn", fmt.Sprintf("%s?offset=%d", cp, rootOff))
	bootPart := filepath.Join(dir, "boot.part")
	os.WriteFile(bootPart, cpData[4<<20:68<<20], 0o644)
	testimg.Run(t, "fsck.vfat", "-n", bootPart)
	for name, want := range files {
		got := testimg.Run(t, "debugfs", "-R", "cat /data/"+name, fmt.Sprintf("%s?offset=%d", cp, rootOff))
		if got != string(want) {
			t.Errorf("root:/data/%s differs in the data-only copy", name)
		}
	}
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("f%02d.bin", i)
		if got := testimg.Run(t, "mtype", "-i", bootPart, "::/"+name); got != string(files[name]) {
			t.Errorf("boot:/%s differs in the data-only copy", name)
		}
	}
}

func TestUnknownPartitionKeptWhole(t *testing.T) {
	testimg.NeedTools(t, "sfdisk")
	dir := t.TempDir()
	img := filepath.Join(dir, "x.img")
	testimg.Sparse(t, img, 8<<20)
	testimg.RunIn(t, []byte("label: dos\n2048,4096,83\n"), "sfdisk", "-q", img)
	f, _ := os.OpenFile(img, os.O_RDWR, 0)
	defer f.Close()
	f.WriteAt(bytes.Repeat([]byte{0xAB}, 4096), 2048*512+100000)
	m, err := Compute(image.NewReader(f, 8<<20), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Partitions[0].Whole {
		t.Errorf("unknown partition not kept whole: %+v", m.Partitions[0])
	}
	// Everything up to the partition's end is Data (the image reader knows
	// no holes); the tail after it is Zero.
	if len(m.Extents) != 2 || m.Extents[0].Kind != image.Data || m.Extents[0].End() != (2048+4096)*512 {
		t.Errorf("extents %+v", m.Extents)
	}
}

func TestZeroHolesOption(t *testing.T) {
	testimg.NeedTools(t, "sfdisk")
	img := filepath.Join(t.TempDir(), "holes.img")
	testimg.Sparse(t, img, 8<<20)
	testimg.RunIn(t, []byte("label: dos\n2048,8192,83\n"), "sfdisk", "-q", img)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(bytes.Repeat([]byte{0xAB}, 4096), 2048*512) // data at the partition start only
	f.Close()
	src, err := image.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	partEnd := int64(2048+8192) * 512
	dataUpTo := func(m *Map) int64 {
		var n int64
		for _, e := range m.Extents {
			if e.Kind == image.Data && e.Off < partEnd {
				n += min(e.End(), partEnd) - e.Off
			}
		}
		return n
	}
	// Without ZeroHoles the unknown partition is Data whole, holes or not:
	// a card's old contents there must be overwritten.
	m, err := Compute(src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := dataUpTo(m); got != partEnd {
		t.Errorf("without ZeroHoles: %d data bytes before the partition end, want %d", got, partEnd)
	}
	// With it, the holes are Zero: only the sectors that hold bytes remain.
	mz, err := Compute(src, Options{ZeroHoles: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := dataUpTo(mz); got >= partEnd/2 || got < 4096 {
		t.Errorf("with ZeroHoles: %d data bytes, want only the written blocks", got)
	}
}

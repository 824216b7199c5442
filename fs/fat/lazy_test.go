package fat

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"imgtool/internal/testimg"
)

// countingReader counts the bytes read through it and fails reads that
// touch [failLo, failHi).
type countingReader struct {
	r              io.ReaderAt
	n              atomic.Int64
	failLo, failHi int64
}

var errInjected = errors.New("injected read error")

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	if off < c.failHi && off+int64(len(p)) > c.failLo {
		return 0, errInjected
	}
	c.n.Add(int64(len(p)))
	return c.r.ReadAt(p, off)
}

// TestLazyFAT checks that reading one small file of a large FAT32
// filesystem reads a small part of its FAT, that usage still counts the
// whole FAT, and that an unreadable part of the FAT is an error.
func TestLazyFAT(t *testing.T) {
	testimg.NeedTools(t, "mkfs.vfat", "mcopy")
	dir := t.TempDir()
	img := filepath.Join(dir, "fat32.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(512 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	testimg.Run(t, "mkfs.vfat", "-F", "32", "-s", "1", img)
	src := filepath.Join(dir, "config.txt")
	if err := os.WriteFile(src, []byte("arm_64bit=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testimg.RunEnv(t, []string{"MTOOLS_SKIP_CHECK=1"}, "mcopy", "-i", img, src, "::config.txt")

	file, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	cr := &countingReader{r: file}
	fsys, err := New(cr, 512<<20)
	if err != nil {
		t.Fatal(err)
	}
	fatBytes := fsys.g.fatBytes()
	if fatBytes < 1<<20 {
		t.Fatalf("the FAT is %d bytes; the test needs a large one", fatBytes)
	}
	b, err := fsys.ReadFile("config.txt")
	if err != nil || string(b) != "arm_64bit=1\n" {
		t.Fatalf("ReadFile: %q, %v", b, err)
	}
	if n := cr.n.Load(); n > fatBytes/4 {
		t.Errorf("reading one small file read %d bytes; the FAT alone is %d", n, fatBytes)
	}
	u, err := fsys.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if u.Free <= 0 || u.Free >= u.Total {
		t.Errorf("usage %+v", u)
	}
	if n := cr.n.Load(); n < fatBytes {
		t.Errorf("usage read %d bytes in all; the FAT is %d", n, fatBytes)
	}

	// The FAT's second half cannot be read: opening and reading the file
	// (whose clusters lie at the start) works, usage fails with the cause.
	bad := &countingReader{r: file, failLo: fsys.g.fatOff + fatBytes/2, failHi: fsys.g.fatOff + fatBytes}
	fsys2, err := New(bad, 512<<20)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fsys2.ReadFile("config.txt"); err != nil || string(b) != "arm_64bit=1\n" {
		t.Errorf("ReadFile with a damaged FAT end: %q, %v", b, err)
	}
	if _, err := fsys2.Usage(); !errors.Is(err, errInjected) {
		t.Errorf("Usage over an unreadable FAT: %v, want the read error", err)
	}
	if _, err := fsys2.Allocated(); !errors.Is(err, errInjected) {
		t.Errorf("Allocated over an unreadable FAT: %v, want the read error", err)
	}
	// A cluster whose entry cannot be read ends a chain with an error.
	last := uint32(fsys2.g.clusters) + firstCluster - 1
	if v := fsys2.fat.get(last); fsys2.g.classify(v) != entInvalid {
		t.Errorf("unreadable entry of cluster %d reads %#x, want an invalid value", last, v)
	}
}

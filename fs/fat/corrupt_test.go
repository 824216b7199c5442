package fat

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"imgtool/internal/testimg"
)

// walkAll opens every directory and reads every regular file of fsys,
// ignoring errors, and returns how many files it read.
func walkAll(fsys iofs.FS) (files int) {
	iofs.WalkDir(fsys, ".", func(p string, d iofs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		d.Info()
		f, err := fsys.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		io.Copy(io.Discard, f)
		files++
		return nil
	})
	return files
}

var (
	corpusMu    sync.Mutex
	corpusCache []string
)

// corpusImages decompresses the dosfstools corpus once per test binary into
// sparse files and returns their paths.
func corpusImages(t *testing.T) []string {
	t.Helper()
	dir := testimg.CorpusDir(t, "dosfstools")
	corpusMu.Lock()
	defer corpusMu.Unlock()
	if corpusCache != nil {
		return corpusCache
	}
	paths, err := filepath.Glob(filepath.Join(dir, "dosfs-*.img.gz"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no images in %s: %v", dir, err)
	}
	out := filepath.Join(fixtureDir, "corpus")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	var raws []string
	for _, p := range paths {
		raw := filepath.Join(out, strings.TrimSuffix(filepath.Base(p), ".gz"))
		if err := gunzipSparse(p, raw); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		raws = append(raws, raw)
	}
	corpusCache = raws
	return raws
}

// gunzipSparse decompresses src into dst, leaving holes for zero blocks.
func gunzipSparse(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	buf := make([]byte, 64<<10)
	zero := make([]byte, len(buf))
	var off int64
	for {
		n, err := io.ReadFull(zr, buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, err := out.WriteAt(buf[:n], off); err != nil {
				return err
			}
		}
		off += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	return out.Truncate(off)
}

// TestCorpus opens the corrupted images of the dosfstools test suite: each
// either fails to open or can be walked and read, quickly and within a
// memory budget, without panicking.
func TestCorpus(t *testing.T) {
	for _, p := range corpusImages(t) {
		t.Run(strings.TrimSuffix(filepath.Base(p), ".img"), func(t *testing.T) {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			size := st.Size()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			fsys, err := New(f, size)
			files := 0
			if err != nil {
				t.Logf("New: %v", err)
			} else {
				files = walkAll(fsys)
				fsys.Usage()
				fsys.Allocated()
				fsys.Label()
			}
			Identify(f, size)
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d files read in %v, %d bytes allocated", files, elapsed, alloc)
			if elapsed > 10*time.Second {
				t.Errorf("took %v", elapsed)
			}
			if limit := uint64(64<<20 + 8*size); alloc > limit {
				t.Errorf("allocated %d bytes, limit %d", alloc, limit)
			}
		})
	}
}

// TestCorpusBlkid compares Identify with blkid on the corpus images that
// blkid calls vfat (some hold their label only in the boot sector, some
// only in the root directory).
func TestCorpusBlkid(t *testing.T) {
	testimg.NeedTools(t, "blkid")
	checked := 0
	for _, p := range corpusImages(t) {
		b := blkid(t, p)
		if b["TYPE"] != "vfat" {
			continue
		}
		checked++
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		info, err := Identify(f, st.Size())
		f.Close()
		if err != nil {
			t.Errorf("%s: Identify: %v (blkid: %v)", filepath.Base(p), err, b)
			continue
		}
		// blkid calls the root-directory label LABEL and the boot
		// sector's LABEL_FATBOOT; Identify prefers the first.
		label := b["LABEL"]
		if label == "" {
			label = b["LABEL_FATBOOT"]
		}
		if info.Variant != b["VERSION"] || info.Label != label || info.UUID != b["UUID"] {
			t.Errorf("%s: Identify = %s %q %q, blkid %v", filepath.Base(p), info.Variant, info.Label, info.UUID, b)
		}
	}
	if checked == 0 {
		t.Error("blkid recognised no corpus image")
	}
}

// smallImage builds a FAT16 image with a few folders and files and returns
// its bytes and the parsed filesystem.
func smallImage(t *testing.T) ([]byte, *FS) {
	t.Helper()
	testimg.NeedTools(t, "mkfs.vfat", "mcopy")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for _, p := range []string{"a/b/c", "x"} {
		os.MkdirAll(filepath.Join(src, p), 0o755)
	}
	os.WriteFile(filepath.Join(src, "a/b/c/file.txt"), bytes.Repeat([]byte("data"), 1000), 0o644)
	os.WriteFile(filepath.Join(src, "x/y.bin"), bytes.Repeat([]byte{7}, 5000), 0o644)
	img := filepath.Join(dir, "fs.img")
	testimg.Sparse(t, img, 20<<20)
	testimg.Run(t, "mkfs.vfat", "-F", "16", "-s", "2", img)
	testimg.Run(t, "mcopy", "-s", "-i", img, filepath.Join(src, "a"), filepath.Join(src, "x"), "::/")
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := New(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return b, fsys
}

// entryOf returns the byte offset of the short entry of a path.
func entryOf(t *testing.T, fsys *FS, name string) (off int64, cluster uint32) {
	t.Helper()
	tg, err := fsys.resolve("test", name)
	if err != nil || tg.n == nil {
		t.Fatalf("resolve %s: %v", name, err)
	}
	return tg.n.off, tg.n.cluster
}

func setFAT16(img []byte, fsys *FS, c, v uint32) {
	for i := range fsys.g.numFATs {
		binary.LittleEndian.PutUint16(img[fsys.g.reserved*fsys.g.sectorSize+i*fsys.g.fatSectors*fsys.g.sectorSize+int64(2*c):], uint16(v))
	}
}

// TestCorruptions damages a good image in known ways and checks that each
// damage is reported as a *FormatError and that nothing hangs.
func TestCorruptions(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, img []byte, fsys *FS)
		open   string // the path whose opening must fail
	}{
		{"file chain loops", func(t *testing.T, img []byte, fsys *FS) {
			_, c := entryOf(t, fsys, "a/b/c/file.txt")
			setFAT16(img, fsys, c+1, c) // second cluster back to the first
		}, "a/b/c/file.txt"},
		{"file chain too short", func(t *testing.T, img []byte, fsys *FS) {
			_, c := entryOf(t, fsys, "x/y.bin")
			setFAT16(img, fsys, c, 0xFFFF)
		}, "x/y.bin"},
		{"file chain into free cluster", func(t *testing.T, img []byte, fsys *FS) {
			_, c := entryOf(t, fsys, "x/y.bin")
			setFAT16(img, fsys, c, 3000)
		}, "x/y.bin"},
		{"file chain hits bad cluster", func(t *testing.T, img []byte, fsys *FS) {
			_, c := entryOf(t, fsys, "x/y.bin")
			setFAT16(img, fsys, c, 0xFFF7)
		}, "x/y.bin"},
		{"file cluster out of range", func(t *testing.T, img []byte, fsys *FS) {
			off, _ := entryOf(t, fsys, "x/y.bin")
			binary.LittleEndian.PutUint16(img[off+26:], 0xFFF0)
		}, "x/y.bin"},
		{"directory chain loops", func(t *testing.T, img []byte, fsys *FS) {
			_, c := entryOf(t, fsys, "a/b")
			setFAT16(img, fsys, c, c)
			// No end marker: fill the cluster with deleted entries.
			co := fsys.g.clusterOff(c)
			for o := co + 64; o < co+fsys.g.clusterSize; o += 32 {
				img[o] = 0xE5
			}
		}, "a/b/c"},
		{"subdirectory is its grandparent", func(t *testing.T, img []byte, fsys *FS) {
			_, ca := entryOf(t, fsys, "a")
			off, _ := entryOf(t, fsys, "a/b/c")
			binary.LittleEndian.PutUint16(img[off+26:], uint16(ca))
		}, "a/b/c"},
		{"subdirectory is the root", func(t *testing.T, img []byte, fsys *FS) {
			off, _ := entryOf(t, fsys, "a/b")
			binary.LittleEndian.PutUint16(img[off+26:], 0)
		}, "a/b"},
		{"two entries for one directory", func(t *testing.T, img []byte, fsys *FS) {
			_, ca := entryOf(t, fsys, "a")
			off, _ := entryOf(t, fsys, "x")
			binary.LittleEndian.PutUint16(img[off+26:], uint16(ca))
		}, "x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img, fsys := smallImage(t)
			tc.damage(t, img, fsys)
			fsys, err := New(bytes.NewReader(img), int64(len(img)))
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan int)
			go func() { done <- walkAll(fsys) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("walk does not finish")
			}
			f, err := fsys.Open(tc.open)
			if err == nil {
				if rd, ok := f.(iofs.ReadDirFile); ok {
					_, err = rd.ReadDir(-1)
				} else {
					_, err = io.ReadAll(f)
				}
			}
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open(%s) = %v, want a *FormatError", tc.open, err)
			}
			t.Logf("%v", err)
		})
	}
}

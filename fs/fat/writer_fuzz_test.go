package fat

import (
	"bytes"
	"flag"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"imgtool/internal/testimg"
)

// wtMem is an image in memory.
type wtMem []byte

func (m wtMem) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(m)) {
		return 0, io.EOF
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m wtMem) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m)) {
		return 0, io.ErrShortWrite
	}
	return copy(m[off:], p), nil
}

// wtFuzzNames are the paths the fuzzer combines: names that differ in case
// only, long, unicode and 8.3 names, nested directories.
var wtFuzzNames = []string{
	"a.txt", "A.TXT", "config.txt", "Long name number one.txt", "ünïcödé.txt",
	"d", "D/e", "d/f.bin", "d/e/g", "d/e/long file name in a subdirectory.dat",
	strings.Repeat("x", 200), "d/" + strings.Repeat("y", 100), "e", "e/1", "e/2",
}

// FuzzWriter applies random sequences of operations to small FAT12 and
// FAT16 images. After each one our reader must read the whole tree, agree
// with a model of what succeeded and with the Writer's free count; a
// failed operation must leave the image unchanged. In the seed run (not
// under -fuzz), fsck.vfat must also find the image clean after every
// operation.
func FuzzWriter(f *testing.F) {
	testimg.NeedTools(f, "mkfs.vfat")
	dir := f.TempDir()
	var bases []wtMem
	for _, c := range []struct{ variant, size string }{{"12", "262144"}, {"16", "2252800"}} {
		img := filepath.Join(dir, "fat"+c.variant+".img")
		testimg.Run(f, "truncate", "-s", c.size, img)
		testimg.Run(f, "mkfs.vfat", "-F", c.variant, "-s", "1", "-r", "64", img)
		b, err := os.ReadFile(img)
		if err != nil {
			f.Fatal(err)
		}
		bases = append(bases, b)
	}
	seedRun := flag.Lookup("test.fuzz") == nil || flag.Lookup("test.fuzz").Value.String() == ""
	fsck := ""
	if p, err := testimg.LookPath("fsck.vfat"); err == nil && seedRun {
		fsck = p
	}
	f.Add([]byte{0, 0, 10, 1, 0, 1, 20, 2, 4, 0, 0, 0})
	f.Add([]byte{1, 2, 5, 3, 0, 5, 0, 0, 0, 7, 40, 7, 6, 9, 0, 0, 2, 5, 1, 1, 5, 5, 0, 0})
	f.Add([]byte{3, 13, 0, 0, 0, 14, 255, 7, 6, 10, 200, 7, 1, 14, 9, 3, 4, 13, 0, 0, 5, 12, 0, 0})
	f.Add([]byte{0, 3, 255, 7, 0, 2, 255, 7, 0, 4, 255, 7, 0, 10, 255, 7, 0, 11, 255, 7, 4, 3, 0, 0, 0, 0, 255, 7})
	f.Add([]byte{129, 1, 3, 0, 2, 0, 0, 0, 0, 9, 1, 1, 3, 8, 0, 0, 0, 1, 4, 4, 1, 1, 0, 0})
	mtime := time.Date(2020, 1, 2, 3, 4, 6, 0, time.UTC)
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) < 1 {
			return
		}
		img := append(wtMem(nil), bases[int(ops[0]>>7)%len(bases)]...)
		w, err := OpenWriter(img, int64(len(img)))
		if err != nil {
			t.Fatal(err)
		}
		w.Clock = func() time.Time { return mtime }
		files := map[string][]byte{} // by lower-case path
		dirs := map[string]bool{}
		under := func(p string) {
			for k := range files {
				if k == p || strings.HasPrefix(k, p+"/") {
					delete(files, k)
				}
			}
			for k := range dirs {
				if k == p || strings.HasPrefix(k, p+"/") {
					delete(dirs, k)
				}
			}
		}
		var fsckPath string
		if fsck != "" {
			fsckPath = filepath.Join(t.TempDir(), "fs.img")
		}
		for i := 0; i+4 <= len(ops) && i < 4*32; i += 4 {
			p := wtFuzzNames[int(ops[i+1])%len(wtFuzzNames)]
			key := strings.ToLower(p)
			size := int(ops[i+2]) * (1 + int(ops[i+3]%8)*97)
			before := append([]byte(nil), img...)
			var err error
			switch op := ops[i] % 7; op {
			case 0, 6:
				data := bytes.Repeat([]byte{ops[i+2], byte(i)}, size/2)
				mode := iofs.FileMode(0o644)
				if op == 6 {
					mode = 0o444
				}
				if err = w.WriteFile(p, data, mode, mtime); err == nil {
					files[key] = data
				}
			case 1:
				if err = w.Truncate(p, int64(size)); err == nil {
					nb := make([]byte, size)
					copy(nb, files[key])
					files[key] = nb
				}
			case 2:
				if err = w.Mkdir(p); err == nil {
					dirs[key] = true
				}
			case 3:
				if err = w.MkdirAll(p); err == nil {
					for d := key; d != "."; d = filepath.ToSlash(filepath.Dir(d)) {
						dirs[d] = true
					}
				}
			case 4:
				if err = w.Remove(p); err == nil {
					under(key)
				}
			case 5:
				if err = w.RemoveAll(p); err == nil {
					under(key)
				}
			}
			if err != nil && !bytes.Equal(before, img) {
				t.Fatalf("op %d on %q failed (%v) but changed the image", ops[i]%7, p, err)
			}
			wtFuzzCheck(t, img, w, files, dirs)
			if fsckPath != "" {
				if err := os.WriteFile(fsckPath, img, 0o644); err != nil {
					t.Fatal(err)
				}
				wtFsck(t, fsckPath)
			}
		}
	})
}

// wtFuzzCheck reads the image back with our reader and compares it with
// the model.
func wtFuzzCheck(t *testing.T, img wtMem, w *Writer, files map[string][]byte, dirs map[string]bool) {
	t.Helper()
	fsys, err := New(img, int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	nf, nd := 0, 0
	err = iofs.WalkDir(fsys, ".", func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if d.IsDir() {
			nd++
			if !dirs[strings.ToLower(p)] {
				t.Fatalf("unexpected directory %q", p)
			}
			return nil
		}
		nf++
		want, ok := files[strings.ToLower(p)]
		if !ok {
			t.Fatalf("unexpected file %q", p)
		}
		b, err := fsys.ReadFile(p)
		if err != nil || !bytes.Equal(b, want) {
			t.Fatalf("%s: %v, %d bytes, want %d", p, err, len(b), len(want))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk: %v", err)
	}
	if nf != len(files) || nd != len(dirs) {
		t.Fatalf("found %d files and %d directories, want %d and %d", nf, nd, len(files), len(dirs))
	}
	u, err := fsys.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if free, cs := w.Free(); u.Free != free*cs {
		t.Fatalf("free: reader %d bytes, writer %d clusters", u.Free, free)
	}
}

package ext4

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"imgtool/fs/meta"
	"imgtool/internal/testimg"
)

// treeOpts selects optional parts of the source tree.
type treeOpts struct {
	manyFiles   int   // files in many/ (htree when large)
	bigFile     int64 // size of big.bin (random)
	holeyBlocks int   // blocks of holey.bin with a hole every other block
	holeyBS     int   // block size for holey.bin
	hugeSparse  int64 // size of huge.sparse (1 GiB sparse) when > 0
	noSparse    bool  // leave out sparse.bin
	noDangling  bool  // leave out the dangling symlink (fstest follows all)
}

var testTime = time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)

func writeFile(t testing.TB, name string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, mode); err != nil {
		t.Fatal(err)
	}
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// makeTree writes the source tree of a fixture into dir.
func makeTree(t testing.TB, dir string, o treeOpts) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	for i, n := range []int{0, 1, 59, 60, 61, 100, 1023, 1024, 1025, 4095, 4096, 4097, 65543, 1<<20 + 123} {
		writeFile(t, filepath.Join(dir, "files", fmt.Sprintf("f%02d_%d", i, n)), randBytes(r, n), 0o644)
	}
	writeFile(t, filepath.Join(dir, "etc", "hostname"), []byte("raspberrypi\n"), 0o644)
	if o.bigFile > 0 {
		writeFile(t, filepath.Join(dir, "big.bin"), randBytes(r, int(o.bigFile)), 0o600)
	}
	deep := filepath.Join(dir, "deep")
	for i := range 20 {
		deep = filepath.Join(deep, fmt.Sprintf("d%d", i))
	}
	writeFile(t, filepath.Join(deep, "bottom.txt"), []byte("bottom\n"), 0o640)
	for i := range o.manyFiles {
		writeFile(t, filepath.Join(dir, "many", fmt.Sprintf("file-with-a-longish-name-%05d", i)), []byte(fmt.Sprint(i)), 0o644)
	}
	// Symbolic links: short, long (> 60 bytes), absolute, to a directory,
	// dangling.
	long := strings.Repeat("./", 40) + "files/f01_1"
	links := map[string]string{
		"ln_short": "files/f01_1", "ln_long": long, "ln_abs": "/files/f05_100",
		"ln_dir": "deep/d0", "sub/ln_up": "../files/f02_59",
	}
	if !o.noDangling {
		links["ln_dangling"] = "nowhere/" + strings.Repeat("y", 70)
	}
	for name, target := range links {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	// Hard links.
	writeFile(t, filepath.Join(dir, "hard", "one"), []byte("linked content\n"), 0o644)
	if err := os.Link(filepath.Join(dir, "hard", "one"), filepath.Join(dir, "hard", "two")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Special modes.
	writeFile(t, filepath.Join(dir, "modes", "setuid"), []byte("#!/bin/sh\n"), 0o755)
	os.Chmod(filepath.Join(dir, "modes", "setuid"), 0o4755)
	os.Mkdir(filepath.Join(dir, "modes", "sticky"), 0o755)
	os.Chmod(filepath.Join(dir, "modes", "sticky"), 0o1777)
	os.Mkdir(filepath.Join(dir, "modes", "setgid"), 0o755)
	os.Chmod(filepath.Join(dir, "modes", "setgid"), 0o2755)
	// Extended attributes: a small one (in the inode) and a large one (in
	// an external block).
	writeFile(t, filepath.Join(dir, "xattr", "small"), []byte("x"), 0o644)
	writeFile(t, filepath.Join(dir, "xattr", "large"), []byte("y"), 0o644)
	if _, err := testimg.LookPath("setfattr"); err == nil {
		testimg.Run(t, "setfattr", "-n", "user.color", "-v", "blue", filepath.Join(dir, "xattr", "small"))
		testimg.Run(t, "setfattr", "-n", "user.big", "-v", strings.Repeat("z", 700), filepath.Join(dir, "xattr", "large"))
		testimg.Run(t, "setfattr", "-n", "user.other", "-v", "0x00ff10", filepath.Join(dir, "xattr", "large"))
	}
	if !o.noSparse {
		// A sparse file: data, hole, data, hole at the end.
		sp := filepath.Join(dir, "sparse.bin")
		fh, err := os.Create(sp)
		if err != nil {
			t.Fatal(err)
		}
		fh.WriteAt(randBytes(r, 5000), 0)
		fh.WriteAt(randBytes(r, 3000), 1<<20)
		fh.Truncate(3 << 20)
		fh.Close()
	}
	if o.holeyBlocks > 0 {
		fh, err := os.Create(filepath.Join(dir, "holey.bin"))
		if err != nil {
			t.Fatal(err)
		}
		blk := randBytes(r, o.holeyBS)
		for i := 0; i < o.holeyBlocks; i += 2 {
			blk[0] = byte(i)
			blk[1] = byte(i >> 8)
			fh.WriteAt(blk, int64(i)*int64(o.holeyBS))
		}
		fh.Truncate(int64(o.holeyBlocks) * int64(o.holeyBS))
		fh.Close()
	}
	if o.hugeSparse > 0 {
		fh, err := os.Create(filepath.Join(dir, "huge.sparse"))
		if err != nil {
			t.Fatal(err)
		}
		fh.WriteAt([]byte("start"), 0)
		fh.WriteAt([]byte("middle"), o.hugeSparse/2+12345)
		fh.WriteAt([]byte("end"), o.hugeSparse-3)
		fh.Close()
	}
	if os.Geteuid() == 0 {
		os.Lchown(filepath.Join(dir, "files", "f01_1"), 1234, 5678)
		os.Lchown(filepath.Join(dir, "hard", "one"), 70000, 80000)
		os.Lchown(filepath.Join(dir, "ln_short"), 4321, 8765)
	}
	// Timestamps with nanoseconds, set last (children first).
	filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
		if err == nil && d.Type()&iofs.ModeSymlink == 0 {
			off := time.Duration(len(p)) * time.Second
			os.Chtimes(p, testTime.Add(off+time.Hour), testTime.Add(off))
		}
		return nil
	})
	os.Chtimes(dir, testTime, testTime)
}

// mkfs builds an ext filesystem image of the given size from src.
func mkfs(t testing.TB, src string, size int64, args ...string) string {
	t.Helper()
	testimg.NeedTools(t, "mkfs.ext4")
	img := filepath.Join(t.TempDir(), "fs.img")
	testimg.Sparse(t, img, size)
	a := append([]string{"-q", "-F", "-L", "testfs", "-U", "0c1d2e3f-4a5b-4c6d-8e9f-a0b1c2d3e4f5", "-E", "root_owner=0:0"}, args...)
	if src != "" {
		a = append(a, "-d", src)
	}
	testimg.Run(t, "mkfs.ext4", append(a, img)...)
	return img
}

// openFile opens an image file with flag and returns it and its size;
// the file closes with the test.
func openFile(t testing.TB, img string, flag int) (*os.File, int64) {
	t.Helper()
	fh, err := os.OpenFile(img, flag, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fh.Close() })
	st, err := fh.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return fh, st.Size()
}

// openImage opens an image file with New.
func openImage(t testing.TB, img string, opts ...Option) *FS {
	t.Helper()
	fh, size := openFile(t, img, os.O_RDONLY)
	f, err := New(fh, size, opts...)
	if err != nil {
		t.Fatalf("New(%s): %v", filepath.Base(img), err)
	}
	return f
}

// openWriter opens an image file with OpenWriter.
func openWriter(t testing.TB, img string) *Writer {
	t.Helper()
	w, err := OpenWriter(openFile(t, img, os.O_RDWR))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// compareTree checks that every file of the source (or mounted) tree src
// appears in fsys with the same type, permissions, owners, size, mtime,
// link count, link target, xattrs and content. With sameIno the inode
// numbers must agree too (src is a mount of the same image).
func compareTree(t *testing.T, fsys *FS, src string, sameIno bool) {
	t.Helper()
	count := 0
	err := filepath.WalkDir(src, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		rel = filepath.ToSlash(rel)
		if rel == "lost+found" && d.IsDir() {
			return filepath.SkipDir
		}
		count++
		want, err := os.Lstat(p)
		if err != nil {
			return err
		}
		got, err := fsys.Lstat(rel)
		if err != nil {
			t.Errorf("Lstat(%q): %v", rel, err)
			return nil
		}
		ws := want.Sys().(*syscall.Stat_t)
		gs := got.Sys().(*meta.Stat)
		if got.Mode() != want.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, got.Mode(), want.Mode())
		}
		if gs.Unix != ws.Mode {
			t.Errorf("%s: raw mode %o, want %o", rel, gs.Unix, ws.Mode)
		}
		if gs.Uid != ws.Uid || gs.Gid != ws.Gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", rel, gs.Uid, gs.Gid, ws.Uid, ws.Gid)
		}
		isRoot := rel == "." && !sameIno // the image root also holds lost+found
		if uint64(gs.Nlink) != uint64(ws.Nlink) && !isRoot {
			t.Errorf("%s: nlink %d, want %d", rel, gs.Nlink, ws.Nlink)
		}
		if sameIno && gs.Ino != ws.Ino {
			t.Errorf("%s: inode %d, want %d", rel, gs.Ino, ws.Ino)
		}
		if !d.IsDir() && got.Size() != want.Size() {
			t.Errorf("%s: size %d, want %d", rel, got.Size(), want.Size())
		}
		if sameIno && gs.Blocks != ws.Blocks {
			t.Errorf("%s: blocks %d, want %d", rel, gs.Blocks, ws.Blocks)
		}
		// mkfs.ext4 -d stores whole seconds; a mount shows what is stored.
		wantM := want.ModTime()
		if !sameIno {
			wantM = wantM.Truncate(time.Second)
		}
		if want.Mode()&iofs.ModeSymlink == 0 && !isRoot && !got.ModTime().Equal(wantM) {
			t.Errorf("%s: mtime %v, want %v", rel, got.ModTime(), want.ModTime())
		}
		if sameIno && !gs.Ctime.Equal(time.Unix(ws.Ctim.Sec, ws.Ctim.Nsec)) {
			t.Errorf("%s: ctime %v", rel, gs.Ctime)
		}
		checkXattrs(t, rel, p, gs.Xattrs)
		switch {
		case want.Mode()&iofs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			if gs.Link != target {
				t.Errorf("%s: Stat link %q, want %q", rel, gs.Link, target)
			}
			if l, err := fsys.ReadLink(rel); err != nil || l != target {
				t.Errorf("ReadLink(%s) = %q, %v; want %q", rel, l, err, target)
			}
		case want.Mode().IsRegular():
			compareFile(t, fsys, rel, p, want)
		case want.IsDir():
			wents, _ := os.ReadDir(p)
			gents, err := fsys.ReadDir(rel)
			if err != nil {
				t.Errorf("ReadDir(%s): %v", rel, err)
				break
			}
			var wn, gn []string
			for _, e := range wents {
				if rel == "." && e.Name() == "lost+found" {
					continue
				}
				wn = append(wn, e.Name()+e.Type().String())
			}
			for _, e := range gents {
				if rel == "." && e.Name() == "lost+found" {
					continue
				}
				gn = append(gn, e.Name()+e.Type().String())
			}
			if strings.Join(wn, "\n") != strings.Join(gn, "\n") {
				t.Errorf("ReadDir(%s): %d entries, want %d", rel, len(gn), len(wn))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count < 10 {
		t.Fatalf("only %d files compared", count)
	}
}

func checkXattrs(t *testing.T, rel, p string, got map[string][]byte) {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := syscall.Listxattr(p, buf)
	if err != nil {
		return // symlinks, unsupported filesystems
	}
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := syscall.Getxattr(p, name, v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[name], v[:m]) {
			t.Errorf("%s: xattr %s = %q, want %q", rel, name, got[name], v[:m])
		}
	}
}

// compareFile reads a file sequentially in odd-sized chunks and compares it
// with the source file without holding either whole.
func compareFile(t *testing.T, fsys *FS, rel, p string, want iofs.FileInfo) {
	t.Helper()
	f, err := fsys.Open(rel)
	if err != nil {
		t.Errorf("Open(%s): %v", rel, err)
		return
	}
	defer f.Close()
	w, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	comparePlaced(t, fsys, f.(*File), rel, p)
	a := make([]byte, min(1<<20+17, want.Size()+1))
	b := make([]byte, len(a))
	var off int64
	for {
		n, errA := io.ReadFull(f, a)
		m, errB := io.ReadFull(w, b)
		if n != m || !bytes.Equal(a[:n], b[:m]) {
			t.Errorf("%s: content differs in the %d bytes after offset %d (got %d, want %d bytes)", rel, len(a), off, n, m)
			return
		}
		off += int64(n)
		if errA != nil || errB != nil {
			if (errA == nil) != (errB == nil) {
				t.Errorf("%s: read errors %v / %v", rel, errA, errB)
			}
			if errA != nil && errA != io.EOF && errA != io.ErrUnexpectedEOF {
				t.Errorf("%s: %v", rel, errA)
			}
			return
		}
	}
}

// comparePlaced rebuilds a file from the runs that Place reports, read from
// the filesystem's device, and compares it with the source file.
func comparePlaced(t *testing.T, fsys *FS, fl *File, rel, p string) {
	t.Helper()
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	dev, size := fl.Device()
	r := dev.(io.ReaderAt)
	var got []byte
	err = fl.Place(0, fl.Size(), func(off, n int64) error {
		if off < 0 {
			got = append(got, make([]byte, n)...)
			return nil
		}
		if off+n > size {
			return fmt.Errorf("run [%d, +%d) beyond the device's %d bytes", off, n, size)
		}
		b := make([]byte, n)
		if _, err := r.ReadAt(b, off); err != nil {
			return err
		}
		got = append(got, b...)
		return nil
	})
	if errors.Is(err, meta.ErrNotPlaced) {
		if !fl.info.in.hasFlag(InodeInlineDataFl) {
			t.Errorf("%s: Place: %v, but the file has no inline data", rel, err)
		}
		return
	}
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s: content from Place (%d bytes, %v) differs from the source (%d bytes)", rel, len(got), err, len(want))
	}
}

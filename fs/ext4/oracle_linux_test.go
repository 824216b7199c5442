package ext4

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"imgtool/fs/meta"
	"imgtool/internal/testimg"
)

// defaultFixture is one default image shared by the oracle tests.
var defaultFixture struct {
	once     sync.Once
	src, img string
	dir      string
}

func defaultImage(t *testing.T) (src, img string) {
	t.Helper()
	testimg.NeedTools(t, "mkfs.ext4")
	d := &defaultFixture
	d.once.Do(func() {
		dir, err := os.MkdirTemp("", "ext4test")
		if err != nil {
			t.Fatal(err)
		}
		d.dir = dir
		d.src = filepath.Join(dir, "src")
		makeTree(t, d.src, treeOpts{manyFiles: 500, bigFile: 3<<20 + 5})
		d.img = filepath.Join(dir, "fs.img")
		testimg.Sparse(t, d.img, 64<<20)
		testimg.Run(t, "mkfs.ext4", "-q", "-F", "-L", "testfs", "-U", "0c1d2e3f-4a5b-4c6d-8e9f-a0b1c2d3e4f5", "-d", d.src, d.img)
	})
	if d.img == "" {
		t.Fatal("default fixture failed")
	}
	return d.src, d.img
}

func TestMain(m *testing.M) {
	code := m.Run()
	if defaultFixture.dir != "" {
		os.RemoveAll(defaultFixture.dir)
	}
	os.Exit(code)
}

func TestFSTest(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src, treeOpts{manyFiles: 40, noDangling: true})
	fsys := openImage(t, mkfs(t, src, 32<<20))
	if err := fstest.TestFS(fsys, "files/f05_100", "many/file-with-a-longish-name-00022", "deep/d0/d1", "etc/hostname", "ln_short", "hard/two"); err != nil {
		t.Fatal(err)
	}
}

// TestReadAtRandom compares random ReadAt slices with the source files,
// across extents, holes and the end of file.
func TestReadAtRandom(t *testing.T) {
	src, img := defaultImage(t)
	fsys := openImage(t, img)
	r := rand.New(rand.NewPCG(3, 4))
	for _, name := range []string{"big.bin", "sparse.bin", "files/f13_1048699", "files/f12_65543", "files/f02_59"} {
		want, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		fl, err := fsys.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		ra := fl.(io.ReaderAt)
		var wg sync.WaitGroup
		for w := range 4 {
			seed := r.Uint64()
			wg.Add(1)
			go func() {
				defer wg.Done()
				rr := rand.New(rand.NewPCG(seed, uint64(w)))
				for range 300 {
					off := rr.Int64N(int64(len(want)) + 10)
					n := rr.IntN(200000)
					buf := make([]byte, n)
					got, err := ra.ReadAt(buf, off)
					end := min(off+int64(n), int64(len(want)))
					wantN := int(max(0, end-off))
					if got != wantN || (got < n) != (err == io.EOF) {
						t.Errorf("%s: ReadAt(%d bytes at %d) = %d, %v; want %d", name, n, off, got, err, wantN)
						return
					}
					if !bytes.Equal(buf[:got], want[off:off+int64(got)]) {
						t.Errorf("%s: ReadAt(%d bytes at %d): content differs", name, n, off)
						return
					}
				}
			}()
		}
		wg.Wait()
		// Seek + Read.
		sk := fl.(io.ReadSeeker)
		if _, err := sk.Seek(int64(len(want)/3), io.SeekStart); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(sk)
		if err != nil || !bytes.Equal(rest, want[len(want)/3:]) {
			t.Errorf("%s: Seek+ReadAll differs: %v", name, err)
		}
		fl.Close()
	}
}

// dumpe2fsFree parses the per-group "Free blocks:" lists of dumpe2fs.
func dumpe2fsFree(t *testing.T, out string) [][2]uint64 {
	var free [][2]uint64
	re := regexp.MustCompile(`(?m)^\s+Free blocks: (.*)$`)
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		for _, part := range strings.Split(m[1], ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			a, b, ok := strings.Cut(part, "-")
			lo, err := strconv.ParseUint(a, 10, 64)
			if err != nil {
				t.Fatalf("dumpe2fs free range %q", part)
			}
			hi := lo
			if ok {
				hi, _ = strconv.ParseUint(b, 10, 64)
			}
			free = append(free, [2]uint64{lo, hi})
		}
	}
	return free
}

func optField(out, name string) string {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `:\s*(.*)$`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(m[1])
}

func headerField(t *testing.T, out, name string) string {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `:\s*(.*)$`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("dumpe2fs: no %q", name)
	}
	return strings.TrimSpace(m[1])
}

// TestUsageAllocated checks Usage against dumpe2fs -h and Allocated
// against the free ranges dumpe2fs lists per group, on several layouts.
func TestUsageAllocated(t *testing.T) {
	testimg.NeedTools(t, "mkfs.ext4", "dumpe2fs")
	for _, v := range []struct {
		name string
		args []string
		size int64
	}{
		{"default", nil, 300 << 20},
		{"flex_bg_1k", []string{"-b", "1024"}, 100 << 20},
		{"ext2_32bit", []string{"-t", "ext2", "-O", "^64bit"}, 200 << 20},
		{"meta_bg", []string{"-O", "meta_bg,^resize_inode"}, 300 << 20},
		{"sparse_super2", []string{"-O", "sparse_super2"}, 300 << 20},
		{"bigalloc", []string{"-O", "bigalloc", "-C", "16384"}, 300 << 20},
		{"64k", []string{"-b", "65536"}, 300 << 20},
	} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			src := filepath.Join(t.TempDir(), "src")
			makeTree(t, src, treeOpts{bigFile: 1 << 20})
			img := mkfs(t, src, v.size, v.args...)
			fsys := openImage(t, img)
			out := testimg.Run(t, "dumpe2fs", img)
			bs, _ := strconv.ParseInt(headerField(t, out, "Block size"), 10, 64)
			nblocks, _ := strconv.ParseUint(headerField(t, out, "Block count"), 10, 64)
			freeBlocks, _ := strconv.ParseInt(headerField(t, out, "Free blocks"), 10, 64)
			first, _ := strconv.ParseUint(headerField(t, out, "First block"), 10, 64)
			u, err := fsys.Usage()
			if err != nil {
				t.Fatal(err)
			}
			if u.Total != int64(nblocks)*bs || u.Free != freeBlocks*bs || u.Used != u.Total-u.Free {
				t.Errorf("Usage = %+v; dumpe2fs: %d blocks of %d, %d free", u, nblocks, bs, freeBlocks)
			}
			// Expected allocation: the complement of the free ranges.
			free := dumpe2fsFree(t, out)
			if cs := optField(out, "Cluster size"); cs != "" {
				// dumpe2fs ends bigalloc free ranges at the first block of the
				// last free cluster.
				c, _ := strconv.ParseInt(cs, 10, 64)
				ratio := uint64(c / bs)
				for i := range free {
					free[i][1] |= ratio - 1
				}
			}
			var want []meta.Range
			next := uint64(0)
			for _, fr := range free {
				if fr[0] > next {
					want = append(want, meta.Range{Off: int64(next) * bs, Len: int64(fr[0]-next) * bs})
				}
				next = fr[1] + 1
			}
			if next < nblocks {
				want = append(want, meta.Range{Off: int64(next) * bs, Len: int64(nblocks-next) * bs})
			}
			_ = first
			got, err := fsys.Allocated()
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("Allocated:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// TestIdentify compares Identify with blkid and dumpe2fs -h.
func TestIdentify(t *testing.T) {
	testimg.NeedTools(t, "mkfs.ext4", "blkid", "dumpe2fs")
	for _, args := range [][]string{nil, {"-t", "ext2"}, {"-t", "ext3"}, {"-L", "", "-O", "^64bit"}} {
		t.Run(strings.Join(args, ""), func(t *testing.T) {
			t.Parallel()
			img := mkfs(t, "", 32<<20, args...)
			fh, _ := os.Open(img)
			defer fh.Close()
			st, _ := fh.Stat()
			info, err := Identify(fh, st.Size())
			if err != nil {
				t.Fatal(err)
			}
			vals := map[string]string{}
			for _, l := range strings.Split(testimg.Run(t, "blkid", "-p", "-o", "export", img), "\n") {
				if k, v, ok := strings.Cut(l, "="); ok {
					vals[k] = v
				}
			}
			if info.Type != vals["TYPE"] || info.Label != vals["LABEL"] || info.UUID != vals["UUID"] {
				t.Errorf("Identify = %s %q %s; blkid = %s %q %s", info.Type, info.Label, info.UUID, vals["TYPE"], vals["LABEL"], vals["UUID"])
			}
			out := testimg.Run(t, "dumpe2fs", "-h", img)
			bs, _ := strconv.ParseInt(headerField(t, out, "Block size"), 10, 64)
			blocks, _ := strconv.ParseInt(headerField(t, out, "Block count"), 10, 64)
			free, _ := strconv.ParseInt(headerField(t, out, "Free blocks"), 10, 64)
			if info.BlockSize != bs || info.Blocks != blocks || info.FreeBlocks != free ||
				info.Size != bs*blocks || info.Free != free*bs || info.Used != (blocks-free)*bs {
				t.Errorf("Identify = %+v; dumpe2fs: bs %d blocks %d free %d", info, bs, blocks, free)
			}
			if got, want := strings.Join(info.Features, " "), headerField(t, out, "Filesystem features"); got != want {
				t.Errorf("features %q, dumpe2fs %q", got, want)
			}
			if info.NeedsRecovery {
				t.Error("NeedsRecovery on a fresh filesystem")
			}
		})
	}
	if _, err := Identify(bytes.NewReader(make([]byte, 4096)), 4096); !errors.Is(err, meta.ErrWrongType) {
		t.Errorf("zeros: %v, want ErrWrongType", err)
	}
}

// debugfsStat runs debugfs stat and returns its fields.
func debugfsStat(t *testing.T, img, path string) map[string]string {
	out := testimg.Run(t, "debugfs", "-R", "stat "+path, img)
	fields := map[string]string{}
	re := regexp.MustCompile(`([A-Za-z ]+?):\s+(0x[0-9a-f]+:[0-9a-f]+|\S+)`)
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		for _, m := range re.FindAllStringSubmatch(sc.Text(), -1) {
			k := strings.TrimSpace(m[1])
			if _, ok := fields[k]; !ok {
				fields[k] = m[2]
			}
		}
	}
	return fields
}

// TestDebugfsStat compares a sample of inodes with debugfs, including
// nanosecond timestamps and epoch bits set with debugfs.
func TestDebugfsStat(t *testing.T) {
	testimg.NeedTools(t, "debugfs")
	_, base := defaultImage(t)
	img := filepath.Join(t.TempDir(), "copy.img")
	testimg.Run(t, "cp", "--sparse=always", base, img)
	// Nanoseconds 123456789 and epoch bits 1 on mtime, 2 on atime.
	testimg.Run(t, "debugfs", "-w", "-R", "sif /files/f05_100 mtime_extra "+strconv.Itoa(123456789<<2|1), img)
	testimg.Run(t, "debugfs", "-w", "-R", "sif /files/f05_100 atime_extra "+strconv.Itoa(987654321<<2|2), img)
	fsys := openImage(t, img)
	for _, p := range []string{"files/f05_100", "files/f13_1048699", "hard/one", "ln_long", "ln_short", "fifo", "modes/setuid", "modes/sticky", "many", "xattr/large", "sparse.bin", "."} {
		fi, err := fsys.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*meta.Stat)
		d := debugfsStat(t, img, "/"+p)
		check := func(name string, got any, key string) {
			if fmt.Sprint(got) != d[key] {
				t.Errorf("%s: %s = %v, debugfs %s = %s", p, name, got, key, d[key])
			}
		}
		check("ino", st.Ino, "Inode")
		check("mode", fmt.Sprintf("%04o", st.Unix&0o7777), "Mode")
		check("uid", st.Uid, "User")
		check("gid", st.Gid, "Group")
		check("size", st.Size, "Size")
		check("links", st.Nlink, "Links")
		check("blocks", st.Blocks, "Blockcount")
		check("flags", fmt.Sprintf("0x%x", st.Flags), "Flags")
		for _, tm := range []struct {
			key string
			v   interface{ Unix() int64 }
			ns  int
		}{{"mtime", st.Mtime, st.Mtime.Nanosecond()}, {"atime", st.Atime, st.Atime.Nanosecond()}, {"ctime", st.Ctime, st.Ctime.Nanosecond()}, {"crtime", st.Crtime, st.Crtime.Nanosecond()}} {
			a, b, _ := strings.Cut(d[tm.key], ":")
			sec, _ := strconv.ParseUint(strings.TrimPrefix(a, "0x"), 16, 32)
			extra, _ := strconv.ParseUint(b, 16, 32)
			want := int64(int32(uint32(sec))) + int64(extra&3)<<32
			if tm.v.Unix() != want || tm.ns != int(extra>>2) {
				t.Errorf("%s: %s = %d.%09d, debugfs %s", p, tm.key, tm.v.Unix(), tm.ns, d[tm.key])
			}
		}
	}
	fi, _ := fsys.Stat("files/f05_100")
	if m := fi.ModTime(); m.Nanosecond() != 123456789 || m.Unix() < 1<<32 {
		t.Errorf("mtime with extra bits = %v", m)
	}
}

func copyImage(t *testing.T, src string) string {
	dst := filepath.Join(t.TempDir(), "copy.img")
	testimg.Run(t, "cp", "--sparse=always", src, dst)
	return dst
}

// inodeOffset returns the byte offset of a file's inode, from debugfs imap.
func inodeOffset(t *testing.T, img, path string) (int64, int64) {
	out := testimg.Run(t, "debugfs", "-R", "imap "+path, img)
	m := regexp.MustCompile(`located at block (\d+), offset (0x[0-9a-f]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("debugfs imap: %s", out)
	}
	blk, _ := strconv.ParseInt(m[1], 10, 64)
	off, _ := strconv.ParseInt(m[2], 0, 64)
	return blk, off
}

func flipByte(t *testing.T, img string, off int64) {
	fh, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b := []byte{0}
	fh.ReadAt(b, off)
	b[0] ^= 0x40
	if _, err := fh.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestChecksums flips bytes of an inode and of a directory block and
// expects errors naming the block, and reads with WithoutVerify.
func TestChecksums(t *testing.T) {
	testimg.NeedTools(t, "debugfs")
	src, base := defaultImage(t)
	want, _ := os.ReadFile(filepath.Join(src, "files/f06_1023"))

	img := copyImage(t, base)
	blk, off := inodeOffset(t, img, "/files/f06_1023")
	fsys := openImage(t, img)
	bs := fsys.blockSize
	flipByte(t, img, blk*bs+off+0x64) // i_generation
	fsys = openImage(t, img)
	_, err := fsys.ReadFile("files/f06_1023")
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), fmt.Sprintf("block %d", blk)) {
		t.Errorf("corrupt inode: %v; want checksum error naming block %d", err, blk)
	}
	if got, err := openImage(t, img, WithoutVerify()).ReadFile("files/f06_1023"); err != nil || !bytes.Equal(got, want) {
		t.Errorf("WithoutVerify: %v", err)
	}

	img = copyImage(t, base)
	out := testimg.Run(t, "debugfs", "-R", "blocks /etc", img)
	dblk, _ := strconv.ParseInt(strings.Fields(out)[0], 10, 64)
	flipByte(t, img, dblk*bs+9) // a name byte of the first entry
	fsys = openImage(t, img)
	if _, err := fsys.ReadDir("etc"); !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), fmt.Sprintf("block %d", dblk)) {
		t.Errorf("corrupt directory block: %v; want checksum error naming block %d", err, dblk)
	}
	if _, err := openImage(t, img, WithoutVerify()).ReadDir("etc"); err != nil {
		t.Errorf("WithoutVerify ReadDir: %v", err)
	}

	// A corrupt superblock checksum refuses New.
	img = copyImage(t, base)
	flipByte(t, img, 1024+0x78) // volume name
	fh, _ := os.Open(img)
	defer fh.Close()
	if _, err := New(fh, 64<<20); !errors.Is(err, ErrChecksum) {
		t.Errorf("corrupt superblock: %v", err)
	}
}

func TestNeedsRecovery(t *testing.T) {
	testimg.NeedTools(t, "debugfs")
	_, base := defaultImage(t)
	img := copyImage(t, base)
	testimg.Run(t, "debugfs", "-w", "-R", "feature needs_recovery", img)
	fsys := openImage(t, img)
	w := strings.Join(fsys.Warnings(), "\n")
	if !strings.Contains(w, "journal needs recovery") {
		t.Errorf("Warnings = %q", w)
	}
	if _, err := fsys.ReadFile("etc/hostname"); err != nil {
		t.Error(err)
	}
	fh, _ := os.Open(img)
	defer fh.Close()
	if info, err := Identify(fh, 64<<20); err != nil || !info.NeedsRecovery {
		t.Errorf("Identify: %+v, %v", info, err)
	}
}

// TestLoopMount compares the reader with the kernel's view of the image.
func TestLoopMount(t *testing.T) {
	testimg.NeedRoot(t)
	testimg.NeedTools(t, "mount", "umount")
	_, img := defaultImage(t)
	mnt := t.TempDir()
	testimg.Run(t, "mount", "-o", "loop,ro", img, mnt)
	t.Cleanup(func() { testimg.Run(t, "umount", mnt) })
	compareTree(t, openImage(t, img), mnt, true)
}

func TestUnsupported(t *testing.T) {
	testimg.NeedTools(t, "mkfs.ext4")
	for _, feat := range []string{"encrypt", "casefold"} {
		img := mkfs(t, "", 16<<20, "-O", feat)
		fh, _ := os.Open(img)
		_, err := New(fh, 16<<20)
		fh.Close()
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), feat) {
			t.Errorf("%s: %v", feat, err)
		}
	}
}

// TestPathCache checks that cached directory resolutions never leak to
// other paths, and that Lstat of a symlink to a directory stays a link.
func TestPathCache(t *testing.T) {
	_, img := defaultImage(t)
	fsys := openImage(t, img)
	for _, p := range []string{"deep", "deep/d0", "deep/d0/d1", "deep/d0/d1/d2", "ln_dir", "ln_dir/d1"} {
		if fi, err := fsys.Stat(p); err != nil || !fi.IsDir() {
			t.Fatalf("Stat(%s) = %v, %v", p, fi, err)
		}
	}
	for _, p := range []string{"d1", "d2", "d0"} {
		if _, err := fsys.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Stat(%s) after resolving deeper paths: %v, want not exist", p, err)
		}
	}
	if fi, err := fsys.Lstat("ln_dir"); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("Lstat(ln_dir) = %v, %v", fi, err)
	}
	if fi, err := fsys.Stat("ln_abs"); err != nil || fi.Size() != 100 {
		t.Errorf("Stat(ln_abs) = %v, %v", fi, err)
	}
	if fi, err := fsys.Stat("sub/ln_up"); err != nil || fi.Size() != 59 {
		t.Errorf("Stat(sub/ln_up) = %v, %v", fi, err)
	}
	if _, err := fsys.Stat("files/f05_100/x"); err == nil {
		t.Error("path through a regular file resolved")
	}
}

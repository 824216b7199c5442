package fusemount_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"imgtool/fs"
	"imgtool/fusemount"
	"imgtool/internal/testimg"
)

// statFormat is what stat prints of every path in both mounts: type and
// mode, owners, size, blocks, links, inode, device numbers, times with
// nanoseconds (birth time too) and the link target.
const statFormat = "%f %u %g %s %b %h %i %t %T %x %y %z %w %N"

// TestRootMatchesKernel mounts the root partition of a Pi-like image and
// compares it with a kernel loop mount of the same partition: content,
// every stat field and extended attributes.
func TestRootMatchesKernel(t *testing.T) {
	img, _, tbl := piImage(t)
	p := tbl.Partitions[1]
	kern := kernelMount(t, img, p.Start, p.Size)
	mp, _ := fuseMount(t, openFS(t, p), fusemount.Options{})

	// Content and links; diff reports every FIFO and device as a
	// difference, so dev/ is left to the stat comparison below.
	cmd := exec.Command("diff", "-r", "--no-dereference", "-x", "dev", kern, mp)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("diff -r --no-dereference: %v\n%s", err, out)
	}

	paths := listPaths(t, kern)
	if got := listPaths(t, mp); strings.Join(got, "\n") != strings.Join(paths, "\n") {
		t.Fatalf("paths differ:\nkernel %d: %q\nfuse %d: %q", len(paths), paths, len(got), got)
	}
	if len(paths) < 150 {
		t.Fatalf("only %d paths: the fixture is incomplete", len(paths))
	}
	args := append([]string{"-c", statFormat, "."}, paths...)
	want := strings.Split(runIn(t, kern, "stat", args...), "\n")
	got := strings.Split(runIn(t, mp, "stat", args...), "\n")
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Errorf("stat differs:\nkernel: %s\nfuse:   %s", want[i], at(got, i))
		}
	}

	// Extended attributes, on every path (with -h: not following links).
	xargs := append([]string{"-h", "-d", "-m", "-", "-e", "hex", "."}, paths...)
	wantX := xattrBlocks(runIn(t, kern, "getfattr", xargs...))
	gotX := xattrBlocks(runIn(t, mp, "getfattr", xargs...))
	if strings.Join(wantX, "\n") != strings.Join(gotX, "\n") {
		t.Errorf("getfattr differs:\nkernel:\n%s\nfuse:\n%s", strings.Join(wantX, "\n"), strings.Join(gotX, "\n"))
	}
	for _, must := range []string{"security.capability=0x0000000202", "user.comment=0x68656c6c6f20776f726c64", "trusted.overlay=0x79", "user.big=0xabab"} {
		if !strings.Contains(strings.Join(gotX, "\n"), must) {
			t.Errorf("getfattr through the mount lacks %s", must)
		}
	}

	// A missing attribute is ENODATA; a size probe gives the size; a
	// buffer too small gives ERANGE.
	name := filepath.Join(mp, "etc/hostname")
	if _, err := syscall.Getxattr(name, "user.missing", make([]byte, 64)); !errors.Is(err, syscall.ENODATA) {
		t.Errorf("getxattr of a missing attribute: %v, want ENODATA", err)
	}
	if n, err := syscall.Getxattr(name, "user.comment", nil); err != nil || n != len("hello world") {
		t.Errorf("getxattr size probe: %d, %v", n, err)
	}
	if _, err := syscall.Getxattr(name, "user.comment", make([]byte, 3)); !errors.Is(err, syscall.ERANGE) {
		t.Errorf("getxattr into 3 bytes: %v, want ERANGE", err)
	}
	if n, err := syscall.Listxattr(name, nil); err != nil || n != len("user.comment\x00user.empty\x00") {
		t.Errorf("listxattr size probe: %d, %v", n, err)
	}
	if _, err := syscall.Listxattr(name, make([]byte, 4)); !errors.Is(err, syscall.ERANGE) {
		t.Errorf("listxattr into 4 bytes: %v, want ERANGE", err)
	}

	// Hard links share one inode; writing is refused.
	var a, b syscall.Stat_t
	must(t, syscall.Lstat(filepath.Join(mp, "usr/bin/tool"), &a))
	must(t, syscall.Lstat(filepath.Join(mp, "etc/tool-hard2"), &b))
	if a.Ino != b.Ino || a.Nlink != 3 {
		t.Errorf("hard links: inodes %d and %d, %d links", a.Ino, b.Ino, a.Nlink)
	}
	if _, err := os.OpenFile(name, os.O_WRONLY, 0); !errors.Is(err, syscall.EROFS) {
		t.Errorf("open for writing: %v, want EROFS", err)
	}
	if err := os.WriteFile(filepath.Join(mp, "new"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("create: %v, want EROFS", err)
	}
	if _, err := os.Stat(filepath.Join(mp, "etc/nothing")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("stat of a missing file: %v, want ENOENT", err)
	}
	if _, err := os.Stat(filepath.Join(mp, "etc/hostname/x")); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("stat through a file: %v, want ENOTDIR", err)
	}

	// statfs comes from the filesystem's own allocation maps.
	u, err := openFS(t, p).Usage()
	must(t, err)
	var sf syscall.Statfs_t
	must(t, syscall.Statfs(mp, &sf))
	if int64(sf.Blocks)*sf.Bsize != u.Total/sf.Bsize*sf.Bsize || int64(sf.Bfree)*sf.Bsize != u.Free/sf.Bsize*sf.Bsize || sf.Blocks == 0 {
		t.Errorf("statfs: %d blocks of %d, %d free; usage %+v", sf.Blocks, sf.Bsize, sf.Bfree, u)
	}
	var ks syscall.Statfs_t
	must(t, syscall.Statfs(kern, &ks))
	if ks.Bfree != sf.Bfree {
		t.Logf("free blocks: kernel %d, fuse %d", ks.Bfree, sf.Bfree)
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(missing)"
}

// xattrBlocks splits getfattr output into one line per file with its
// attributes sorted, as the kernel lists them in on-disk order.
func xattrBlocks(out string) []string {
	var blocks []string
	for _, blk := range strings.Split(strings.TrimSpace(out), "\n\n") {
		lines := strings.Split(strings.TrimSpace(blk), "\n")
		if len(lines) == 0 || lines[0] == "" {
			continue
		}
		attrs := lines[1:]
		sort.Strings(attrs)
		blocks = append(blocks, lines[0]+" "+strings.Join(attrs, " "))
	}
	sort.Strings(blocks)
	return blocks
}

// TestPartitionsLayout mounts a whole image: a folder per filesystem and
// each partition's raw bytes.
func TestPartitionsLayout(t *testing.T) {
	img, src, tbl := piImage(t)
	f, err := os.Open(img)
	must(t, err)
	defer f.Close()
	var parts []fusemount.Partition
	for _, p := range tbl.Partitions {
		sec := p.Section()
		fsys, info, err := fs.Open(sec, sec.Size(), fs.Options{})
		must(t, err)
		parts = append(parts, fusemount.Partition{Number: p.Number, Label: info.Label, FS: fsys, BlockSize: info.BlockSize, Raw: sec, Size: sec.Size()})
	}
	needFUSE(t)
	mp := t.TempDir()
	srv, err := fusemount.MountPartitions(mp, parts, fusemount.Options{})
	must(t, err)
	t.Cleanup(func() { unmountCleanup(t, srv) })

	ents, err := os.ReadDir(mp)
	must(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "1-BOOTFS 2-rootfs p1.img p2.img" {
		t.Fatalf("top level: %s", got)
	}
	for _, p := range tbl.Partitions {
		raw, err := os.ReadFile(filepath.Join(mp, fmt.Sprintf("p%d.img", p.Number)))
		must(t, err)
		want := make([]byte, p.Size)
		_, err = f.ReadAt(want, p.Start)
		must(t, err)
		if !bytes.Equal(raw, want) {
			t.Errorf("p%d.img differs from the partition's bytes (%d vs %d bytes)", p.Number, len(raw), len(want))
		}
		var st syscall.Stat_t
		must(t, syscall.Stat(filepath.Join(mp, fmt.Sprintf("p%d.img", p.Number)), &st))
		if st.Mode != syscall.S_IFREG|0o444 || st.Size != p.Size {
			t.Errorf("p%d.img: mode %o size %d", p.Number, st.Mode, st.Size)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(mp, "1-BOOTFS/config.txt"))
	if err != nil || string(cfg) != "arm_64bit=1\n" {
		t.Errorf("1-BOOTFS/config.txt = %q, %v", cfg, err)
	}
	wantTool, err := os.ReadFile(filepath.Join(src, "usr/bin/tool"))
	must(t, err)
	gotTool, err := os.ReadFile(filepath.Join(mp, "2-rootfs/usr/bin/tool"))
	if err != nil || !bytes.Equal(gotTool, wantTool) {
		t.Errorf("2-rootfs/usr/bin/tool differs: %v", err)
	}
	// The FAT folder holds what was copied in.
	boot := filepath.Join(filepath.Dir(src), "boot")
	if out, err := exec.Command("diff", "-r", boot, filepath.Join(mp, "1-BOOTFS")).CombinedOutput(); err != nil {
		t.Errorf("diff -r of the FAT partition: %v\n%s", err, out)
	}
	// Inode numbers of the two filesystems do not collide.
	var s1, s2 syscall.Stat_t
	must(t, syscall.Stat(filepath.Join(mp, "1-BOOTFS"), &s1))
	must(t, syscall.Stat(filepath.Join(mp, "2-rootfs"), &s2))
	if s1.Ino == s2.Ino || s1.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		t.Errorf("partition roots: inodes %d, %d, mode %o", s1.Ino, s2.Ino, s1.Mode)
	}
	var sf syscall.Statfs_t
	must(t, syscall.Statfs(filepath.Join(mp, "2-rootfs"), &sf))
	if sf.Blocks == 0 || sf.Bfree == 0 || sf.Bfree >= sf.Blocks {
		t.Errorf("statfs of 2-rootfs: %d blocks, %d free", sf.Blocks, sf.Bfree)
	}
}

func TestFolderName(t *testing.T) {
	for _, c := range []struct {
		n     int
		label string
		want  string
	}{
		{1, "bootfs", "1-bootfs"},
		{2, "", "2"},
		{3, "my data/../x", "3-my_data_.._x"},
		{4, "..", "4"},
		{5, " \x00 ", "5"},
		{6, "Données", "6-Données"},
	} {
		if got := fusemount.FolderName(c.n, c.label); got != c.want {
			t.Errorf("FolderName(%d, %q) = %q, want %q", c.n, c.label, got, c.want)
		}
	}
}

// TestConcurrentReaders reads many files from several goroutines at once
// and compares every byte with the source tree.
func TestConcurrentReaders(t *testing.T) {
	_, src, tbl := piImage(t)
	mp, _ := fuseMount(t, openFS(t, tbl.Partitions[1]), fusemount.Options{})
	var names []string
	must(t, filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(src, p)
			names = append(names, rel)
		}
		return err
	}))
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range names {
				name := names[(i*7+w*13)%len(names)]
				want, err := os.ReadFile(filepath.Join(src, name))
				if err != nil {
					errs <- err
					return
				}
				got, err := os.ReadFile(filepath.Join(mp, name))
				if err != nil || !bytes.Equal(got, want) {
					errs <- fmt.Errorf("%s: %d bytes, want %d: %v", name, len(got), len(want), err)
					return
				}
			}
		}()
	}
	// Positioned reads of one big file from many goroutines.
	want, err := os.ReadFile(filepath.Join(src, "usr/lib/deep/er/still/lib.so"))
	must(t, err)
	fl, err := os.Open(filepath.Join(mp, "usr/lib/deep/er/still/lib.so"))
	must(t, err)
	defer fl.Close()
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 7777)
			for off := int64(w * 1000); off < int64(len(want)); off += 50000 {
				n, err := fl.ReadAt(buf, off)
				if (err != nil && err != io.EOF) || !bytes.Equal(buf[:n], want[off:min(off+int64(len(buf)), int64(len(want)))]) {
					errs <- fmt.Errorf("ReadAt %d: %d bytes, %v", off, n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(names) < 100 {
		t.Fatalf("only %d files", len(names))
	}
}

// TestManyFiles mounts a filesystem of 50,000 files: the mount is ready at
// once (nothing is walked) and find sees every file.
func TestManyFiles(t *testing.T) {
	testimg.NeedTools(t, "mkfs.ext4", "find")
	dir := scratchDir(t)
	src := filepath.Join(dir, "src")
	const dirs, per = 500, 100
	for d := range dirs {
		sub := filepath.Join(src, fmt.Sprintf("d%03d", d))
		must(t, os.MkdirAll(sub, 0o755))
		for i := range per {
			must(t, os.WriteFile(filepath.Join(sub, fmt.Sprintf("file-%05d", i)), nil, 0o644))
		}
	}
	img := filepath.Join(dir, "fs.img")
	testimg.Sparse(t, img, 128<<20)
	start := time.Now()
	testimg.Run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-N", "60000", "-E", "nodiscard", "-d", src, img)
	t.Logf("mkfs.ext4 -d: %v", time.Since(start))
	f, err := os.Open(img)
	must(t, err)
	defer f.Close()
	start = time.Now()
	fsys, _, err := fs.Open(f, 128<<20, fs.Options{})
	must(t, err)
	mp, _ := fuseMount(t, fsys, fusemount.Options{})
	mounted := time.Since(start)
	start = time.Now()
	out := runIn(t, mp, "find", ".")
	walked := time.Since(start)
	n := strings.Count(out, "\n")
	// ".", lost+found, the folders and the files.
	if want := 1 + 1 + dirs + dirs*per; n != want {
		t.Errorf("find lists %d paths, want %d", n, want)
	}
	t.Logf("open+mount %v, find of %d paths %v", mounted, n, walked)
	if mounted > time.Second {
		t.Errorf("mounting took %v", mounted)
	}
}

// TestUnmountBusy defines what happens when a program holds a file open:
// Unmount fails with ErrBusy and the mount keeps working; UnmountLazy
// detaches it, the open file stays readable, and the server ends when it
// is closed.
func TestUnmountBusy(t *testing.T) {
	testimg.NeedTools(t, "mkfs.ext4")
	mp, srv := smallMount(t)
	fl, err := os.Open(filepath.Join(mp, "a.txt"))
	must(t, err)
	err = srv.Unmount()
	if !errors.Is(err, fusemount.ErrBusy) || !strings.Contains(err.Error(), "busy") {
		fl.Close()
		t.Fatalf("Unmount with an open file: %v, want ErrBusy", err)
	}
	if err := fusemount.Unmount(mp, false); !errors.Is(err, fusemount.ErrBusy) {
		t.Errorf("fusemount.Unmount with an open file: %v, want ErrBusy", err)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "b.txt")); err != nil || string(b) != "bee\n" {
		t.Errorf("after a busy unmount: %q, %v", b, err)
	}
	must(t, srv.UnmountLazy())
	if _, err := os.Stat(filepath.Join(mp, "a.txt")); err == nil {
		t.Errorf("a.txt still visible after a lazy unmount")
	}
	buf := make([]byte, 10)
	if n, err := fl.ReadAt(buf, 0); err != nil && err != io.EOF || string(buf[:n]) != "alpha\n" {
		t.Errorf("reading the open file after a lazy unmount: %q, %v", buf[:n], err)
	}
	select {
	case <-srv.Done():
		t.Errorf("served ended while a file was still open")
	case <-time.After(100 * time.Millisecond):
	}
	fl.Close()
	select {
	case <-srv.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("server still running after the last file was closed")
	}
	if err := fusemount.Unmount(mp, false); !errors.Is(err, fusemount.ErrNotMounted) {
		t.Errorf("Unmount of an unmounted folder: %v, want ErrNotMounted", err)
	}
}

// TestUnmountRefusesOtherFilesystems: Unmount only unmounts FUSE.
func TestUnmountRefusesOtherFilesystems(t *testing.T) {
	err := fusemount.Unmount("/proc", false)
	if !errors.Is(err, fusemount.ErrNotMounted) || !strings.Contains(err.Error(), "proc") {
		t.Errorf("Unmount(/proc): %v", err)
	}
	if err := fusemount.Unmount(t.TempDir(), false); !errors.Is(err, fusemount.ErrNotMounted) {
		t.Errorf("Unmount of a plain folder: %v", err)
	}
}

func TestMountpointErrors(t *testing.T) {
	fsys := fakeFS{}
	if _, err := fusemount.Mount(filepath.Join(t.TempDir(), "missing"), fsys, fusemount.Options{}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing mount point: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	must(t, os.WriteFile(file, nil, 0o644))
	if _, err := fusemount.Mount(file, fsys, fusemount.Options{}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file as mount point: %v", err)
	}
}

// smallMount mounts a tiny ext4 filesystem with a.txt and b.txt.
func smallMount(t *testing.T) (string, *fusemount.Server) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	must(t, os.MkdirAll(src, 0o755))
	must(t, os.WriteFile(filepath.Join(src, "a.txt"), []byte("alpha\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "b.txt"), []byte("bee\n"), 0o644))
	img := filepath.Join(dir, "fs.img")
	testimg.Sparse(t, img, 8<<20)
	testimg.Run(t, "mkfs.ext4", "-q", "-F", "-d", src, img)
	f, err := os.Open(img)
	must(t, err)
	t.Cleanup(func() { f.Close() })
	fsys, _, err := fs.Open(f, 8<<20, fs.Options{})
	must(t, err)
	return fuseMount(t, fsys, fusemount.Options{})
}

// TestCorrupt damages one file's extent block and another file's inode on
// a copy of the image: those give EIO, the others read fine, and the
// mount stays alive.
func TestCorrupt(t *testing.T) {
	testimg.NeedTools(t, "mkfs.ext4", "debugfs")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	must(t, os.MkdirAll(src, 0o755))
	// Many small extents force an extent tree with a leaf block.
	sf, err := os.Create(filepath.Join(src, "fragmented.bin"))
	must(t, err)
	for i := range 12 {
		_, err := sf.WriteAt(bytes.Repeat([]byte{byte('a' + i)}, 4096), int64(i)*64<<10)
		must(t, err)
	}
	must(t, sf.Close())
	must(t, os.WriteFile(filepath.Join(src, "victim.txt"), []byte("damaged inode\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "good.txt"), []byte("still fine\n"), 0o644))
	img := filepath.Join(dir, "fs.img")
	testimg.Sparse(t, img, 16<<20)
	testimg.Run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", src, img)

	st := testimg.Run(t, "debugfs", "-R", "stat /fragmented.bin", img)
	var leaf int64
	if i := strings.Index(st, "(ETB0):"); i < 0 {
		t.Fatalf("fragmented.bin has no extent block:\n%s", st)
	} else if _, err := fmt.Sscanf(st[i+len("(ETB0):"):], "%d", &leaf); err != nil {
		t.Fatal(err)
	}
	imap := testimg.Run(t, "debugfs", "-R", "imap /victim.txt", img)
	var blk, off int64
	if i := strings.Index(imap, "located at block "); i < 0 {
		t.Fatalf("imap: %s", imap)
	} else if _, err := fmt.Sscanf(imap[i:], "located at block %d, offset 0x%x", &blk, &off); err != nil {
		t.Fatalf("imap %q: %v", imap, err)
	}
	fw, err := os.OpenFile(img, os.O_RDWR, 0)
	must(t, err)
	_, err = fw.WriteAt(bytes.Repeat([]byte{0x5a}, 64), leaf*4096+16)
	must(t, err)
	_, err = fw.WriteAt([]byte{0xff, 0xee, 0xdd, 0xcc}, blk*4096+off+0x28)
	must(t, err)
	must(t, fw.Close())

	f, err := os.Open(img)
	must(t, err)
	defer f.Close()
	fsys, _, err := fs.Open(f, 16<<20, fs.Options{})
	must(t, err)
	var logged bytes.Buffer
	var mu sync.Mutex
	mp, _ := fuseMount(t, fsys, fusemount.Options{Logger: log.New(lockedWriter{&mu, &logged}, "", 0)})

	for _, name := range []string{"fragmented.bin", "victim.txt"} {
		_, err := os.ReadFile(filepath.Join(mp, name))
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("reading damaged %s: %v, want EIO", name, err)
		}
	}
	for range 3 {
		b, err := os.ReadFile(filepath.Join(mp, "good.txt"))
		if err != nil || string(b) != "still fine\n" {
			t.Fatalf("good.txt after errors: %q, %v", b, err)
		}
	}
	if _, err := os.ReadDir(mp); err != nil {
		t.Errorf("listing the root after errors: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logged.String(), "fragmented.bin") {
		t.Errorf("the logger did not get the read error: %q", logged.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// fakeFS is a filesystem that is never read.
type fakeFS struct{}

func (fakeFS) Open(name string) (iofs.File, error) { return nil, os.ErrNotExist }

// TestTruncatedImage cuts the image inside a file's data: reading past
// the cut gives EIO, never a short file, and the start still reads.
func TestTruncatedImage(t *testing.T) {
	testimg.NeedTools(t, "mkfs.ext4", "debugfs")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	must(t, os.MkdirAll(src, 0o755))
	want := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	must(t, os.WriteFile(filepath.Join(src, "big.bin"), want, 0o644))
	img := filepath.Join(dir, "fs.img")
	testimg.Sparse(t, img, 16<<20)
	testimg.Run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", src, img)
	var first int64
	out := testimg.Run(t, "debugfs", "-R", "bmap /big.bin 0", img)
	if _, err := fmt.Sscanf(strings.TrimSpace(out), "%d", &first); err != nil || first == 0 {
		t.Fatalf("bmap: %q %v", out, err)
	}
	f, err := os.Open(img)
	must(t, err)
	defer f.Close()
	cut := (first + 4) * 4096
	fsys, _, err := fs.Open(io.NewSectionReader(f, 0, cut), cut, fs.Options{})
	must(t, err)
	mp, _ := fuseMount(t, fsys, fusemount.Options{})
	fl, err := os.Open(filepath.Join(mp, "big.bin"))
	must(t, err)
	defer fl.Close()
	head := make([]byte, 8192)
	if _, err := io.ReadFull(fl, head); err != nil || !bytes.Equal(head, want[:8192]) {
		t.Errorf("the first blocks: %v", err)
	}
	if _, err := io.ReadAll(fl); !errors.Is(err, syscall.EIO) {
		t.Errorf("reading past the cut: %v, want EIO", err)
	}
}

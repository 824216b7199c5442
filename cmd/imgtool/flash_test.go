package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/blockmap"
	"imgtool/bmap"
	"imgtool/image"
	"imgtool/internal/testimg"
)

const stamp = 0x5a

// flashImage builds a Pi-like image of size bytes whose root filesystem
// holds a few MiB of random files, and returns its path.
func flashImage(t *testing.T, size, rootSize int64) string {
	t.Helper()
	testimg.NeedTools(t, "sfdisk", "mkfs.vfat", "mkfs.ext4")
	dir := t.TempDir()
	files := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(filepath.Join(files, "home"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		b := make([]byte, (i+1)<<20)
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(files, "home", fmt.Sprintf("f%d", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return testimg.PiImage(t, dir, testimg.PiOptions{Size: size, BootSize: 16 * testimg.MiB, RootSize: rootSize, RootFiles: files})
}

// newLoop attaches a loop device to a new sparse file of size bytes with a
// 4 KiB block of 0x5a every 64 KiB (old contents a write may keep), and
// detaches it when the test ends.
func newLoop(t *testing.T, size int64) string {
	t.Helper()
	testimg.NeedRoot(t)
	testimg.NeedTools(t, "losetup")
	backing := filepath.Join(t.TempDir(), "disk.img")
	testimg.Sparse(t, backing, size)
	f, err := os.OpenFile(backing, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	blk := bytes.Repeat([]byte{stamp}, 4096)
	for off := int64(0); off+4096 <= size; off += 64 << 10 {
		if _, err := f.WriteAt(blk, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	dev := strings.TrimSpace(testimg.Run(t, "losetup", "-f", "--show", backing))
	if !strings.HasPrefix(dev, "/dev/loop") {
		t.Fatalf("losetup gave %q", dev)
	}
	t.Cleanup(func() { testimg.Run(t, "losetup", "-d", dev) })
	return dev
}

func readAll(t *testing.T, path string, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return b
}

// dataExtents is the block map of an image (its Data ranges).
func dataExtents(t *testing.T, path string) []image.Extent {
	t.Helper()
	img, err := openImage(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	m, err := blockmap.Compute(img, blockmap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return m.Extents
}

// sameData fails unless got equals want over the Data extents below end.
func sameData(t *testing.T, what string, got, want []byte, ext []image.Extent, end int64) {
	t.Helper()
	var n int64
	for _, e := range ext {
		if e.Kind != image.Data || e.Off >= end {
			continue
		}
		stop := min(e.End(), end)
		if !bytes.Equal(got[e.Off:stop], want[e.Off:stop]) {
			t.Fatalf("%s: data range %d-%d differs from the image", what, e.Off, stop)
		}
		n += stop - e.Off
	}
	if n == 0 {
		t.Fatalf("%s: no data ranges compared", what)
	}
}

// keptStamps counts the 64 KiB-spaced stamps that survived in b.
func keptStamps(b []byte) int {
	blk := bytes.Repeat([]byte{stamp}, 4096)
	n := 0
	for off := 0; off+4096 <= len(b); off += 64 << 10 {
		if bytes.Equal(b[off:off+4096], blk) {
			n++
		}
	}
	return n
}

// failsWith checks an exit status and a one-line message.
func failsWith(t *testing.T, code int, want int, stderr string, parts ...string) {
	t.Helper()
	if code != want {
		t.Fatalf("exit %d, want %d; stderr %q", code, want, stderr)
	}
	if strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("error is not one line: %q", stderr)
	}
	for _, p := range parts {
		if !strings.Contains(stderr, p) {
			t.Errorf("stderr %q does not mention %q", stderr, p)
		}
	}
}

type flashJSON struct {
	ImageSize    int64    `json:"image_size"`
	Size         int64    `json:"size"`
	BlockMap     string   `json:"block_map"`
	BytesWritten int64    `json:"bytes_written"`
	BytesSkipped int64    `json:"bytes_skipped"`
	Verified     bool     `json:"verified"`
	SHA256       string   `json:"sha256"`
	BmapRanges   int      `json:"bmap_ranges_checked"`
	Notices      []string `json:"notices"`
}

func TestFlashLoopBlockMapAndFull(t *testing.T) {
	src := flashImage(t, 64*testimg.MiB, 0)
	want := readAll(t, src, 64*testimg.MiB)
	ext := dataExtents(t, src)

	dev := newLoop(t, 64*testimg.MiB)
	var s flashJSON
	mustJSON(t, &s, "flash", "--yes", src, dev)
	if s.BlockMap != "filesystems" || !s.Verified || s.BytesSkipped == 0 || s.BytesWritten+s.BytesSkipped != s.ImageSize {
		t.Errorf("summary %+v", s)
	}
	if len(s.Notices) == 0 || !strings.Contains(s.Notices[0], "free space is not written") {
		t.Errorf("no notice about unwritten free space: %q", s.Notices)
	}
	got := readAll(t, dev, 64*testimg.MiB)
	sameData(t, dev, got, want, ext, int64(len(want)))
	if keptStamps(got) == 0 {
		t.Errorf("every byte was written: the block map was not used")
	}

	full := newLoop(t, 64*testimg.MiB+4*testimg.MiB)
	mustJSON(t, &s, "flash", "--yes", "--full", src, full)
	if s.BlockMap != "full" || !s.Verified || s.BytesWritten != s.ImageSize || s.SHA256 == "" {
		t.Errorf("--full summary %+v", s)
	}
	if got := readAll(t, full, int64(len(want))); !bytes.Equal(got, want) {
		t.Errorf("--full: the device differs from the image")
	}
}

func TestFlashNeedsYesWithoutTerminal(t *testing.T) {
	src := flashImage(t, 48*testimg.MiB, 0)
	dev := newLoop(t, 48*testimg.MiB)
	_, stderr, code := imgtool(t, "flash", src, dev)
	failsWith(t, code, 1, stderr, "without confirmation", "--yes", dev)
	if got := readAll(t, dev, 4096); got[0] != stamp {
		t.Errorf("the device was written without confirmation")
	}
}

func TestFlashTooSmall(t *testing.T) {
	src := flashImage(t, 64*testimg.MiB, 0)
	dev := newLoop(t, 60*testimg.MiB)
	_, stderr, code := imgtool(t, "flash", "--yes", src, dev)
	failsWith(t, code, 1, stderr, "4.0 MiB (4194304 bytes) larger than "+dev, "imgtool shrink")
	if got := readAll(t, dev, 4096); got[0] != stamp {
		t.Errorf("a refused device was written")
	}
}

func TestFlashPartitionsFit(t *testing.T) {
	// Partitions end at 4 + 16 + 20 = 40 MiB of a 64 MiB image.
	src := flashImage(t, 64*testimg.MiB, 20*testimg.MiB)
	want := readAll(t, src, 64*testimg.MiB)
	end := int64(40 * testimg.MiB)
	dev := newLoop(t, 48*testimg.MiB)
	var s flashJSON
	mustJSON(t, &s, "flash", "--yes", "--full", src, dev)
	if s.Size != end || !s.Verified {
		t.Errorf("summary %+v", s)
	}
	if !strings.Contains(strings.Join(s.Notices, " "), fmt.Sprintf("writing only the first %d bytes", end)) {
		t.Errorf("notices %q do not say that only %d bytes are written", s.Notices, end)
	}
	got := readAll(t, dev, 48*testimg.MiB)
	if !bytes.Equal(got[:end], want[:end]) {
		t.Errorf("the first %d bytes differ from the image", end)
	}
	if keptStamps(got[end:]) != int(8*testimg.MiB/(64<<10)) {
		t.Errorf("bytes past the end of the last partition were written")
	}
}

func TestFlashTwoTargets(t *testing.T) {
	src := flashImage(t, 48*testimg.MiB, 0)
	want := readAll(t, src, 48*testimg.MiB)
	ext := dataExtents(t, src)
	a, b := newLoop(t, 48*testimg.MiB), newLoop(t, 56*testimg.MiB)
	stdout, stderr, code := imgtool(t, "flash", "--yes", src, a, b)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "verified") {
		t.Errorf("summary line %q", stdout)
	}
	for _, dev := range []string{a, b} {
		sameData(t, dev, readAll(t, dev, int64(len(want))), want, ext, int64(len(want)))
	}
}

func TestFlashRefusesMounted(t *testing.T) {
	testimg.NeedTools(t, "mkfs.ext4", "mount", "umount")
	src := flashImage(t, 32*testimg.MiB, 0)
	dev := newLoop(t, 40*testimg.MiB)
	testimg.Run(t, "mkfs.ext4", "-q", "-F", dev)
	// Below /mnt, where removable media are mounted: elsewhere the disk
	// counts as a system disk.
	mnt, err := os.MkdirTemp("/mnt", "imgtool-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(mnt) })
	testimg.Run(t, "mount", dev, mnt)
	mounted := true
	t.Cleanup(func() {
		if mounted {
			testimg.Run(t, "umount", mnt)
		}
	})
	if err := os.WriteFile(filepath.Join(mnt, "note"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}

	_, stderr, code := imgtool(t, "flash", "--yes", src, dev)
	failsWith(t, code, 1, stderr, dev, "mounted", "--unmount")

	// Reading a read-write mounted disk warns, and --json records it.
	var r struct {
		MountedReadWrite []string `json:"mounted_read_write"`
		Warnings         []string `json:"warnings"`
	}
	mustJSON(t, &r, "read", dev, filepath.Join(t.TempDir(), "b.img"))
	if len(r.MountedReadWrite) != 1 || r.MountedReadWrite[0] != mnt || len(r.Warnings) == 0 {
		t.Errorf("read of a mounted disk: %+v", r)
	}

	var s flashJSON
	mustJSON(t, &s, "flash", "--yes", "--unmount", src, dev)
	mounted = false
	if !s.Verified {
		t.Errorf("summary %+v", s)
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(mi), " "+mnt+" ") {
		mounted = true
		t.Errorf("--unmount left %s mounted", mnt)
	}
}

func TestReadRoundTrip(t *testing.T) {
	testimg.NeedTools(t, "e2fsck")
	src := flashImage(t, 64*testimg.MiB, 24*testimg.MiB) // partitions end at 44 MiB
	want := readAll(t, src, 64*testimg.MiB)
	ext := dataExtents(t, src)
	end := int64(44 * testimg.MiB)

	a := newLoop(t, 64*testimg.MiB)
	if _, stderr, code := imgtool(t, "flash", "--yes", "--full", src, a); code != 0 {
		t.Fatalf("flash: %s", stderr)
	}
	backup := filepath.Join(t.TempDir(), "backup.img")
	var r struct {
		Size            int64 `json:"size"`
		Holes           int64 `json:"holes"`
		FilesystemAware bool  `json:"filesystem_aware"`
	}
	mustJSON(t, &r, "read", a, backup)
	fi, err := os.Stat(backup)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size != end || fi.Size() != end || !r.FilesystemAware || r.Holes == 0 {
		t.Errorf("read summary %+v, file size %d; want size %d with holes", r, fi.Size(), end)
	}
	_, stderr, code := imgtool(t, "read", a, backup)
	failsWith(t, code, 1, stderr, "already exists", "--force")

	b := newLoop(t, 48*testimg.MiB)
	if _, stderr, code := imgtool(t, "flash", "--yes", backup, b); code != 0 {
		t.Fatalf("flash back: %s", stderr)
	}
	got := readAll(t, b, end)
	sameData(t, b, got, want, ext, end)

	// The root filesystem on the second device checks clean.
	root := filepath.Join(t.TempDir(), "root.ext4")
	if err := os.WriteFile(root, got[20*testimg.MiB:end], 0o644); err != nil {
		t.Fatal(err)
	}
	testimg.Run(t, "e2fsck", "-fn", root)
}

func TestFlashBmap(t *testing.T) {
	testimg.NeedTools(t, "bmaptool")
	src := flashImage(t, 48*testimg.MiB, 0)
	want := readAll(t, src, 48*testimg.MiB)
	bmapFile := filepath.Join(t.TempDir(), "pi.bmap")
	testimg.Run(t, "bmaptool", "create", "-o", bmapFile, src)
	f, err := os.Open(bmapFile)
	if err != nil {
		t.Fatal(err)
	}
	m, err := bmap.Parse(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}

	dev := newLoop(t, 48*testimg.MiB)
	var s flashJSON
	mustJSON(t, &s, "flash", "--yes", "--bmap", bmapFile, src, dev)
	if s.BlockMap != "bmap" || !s.Verified || s.BmapRanges != len(m.Ranges) || s.BytesWritten != m.MappedBytes() {
		t.Errorf("summary %+v; the bmap has %d ranges, %d bytes", s, len(m.Ranges), m.MappedBytes())
	}
	got := readAll(t, dev, int64(len(want)))
	sameData(t, dev, got, want, m.Extents(), int64(len(want)))
	// Outside the bmap's ranges the old contents stay.
	for _, e := range m.Extents() {
		if e.Kind == image.Zero && e.Len >= 128<<10 {
			if keptStamps(got[(e.Off+0xffff)&^0xffff:e.End()]) == 0 {
				t.Fatalf("unmapped range %d-%d was written", e.Off, e.End())
			}
		}
	}

	// An image that no longer matches its bmap is caught while writing.
	bad := filepath.Join(t.TempDir(), "changed.img")
	changed := bytes.Clone(want)
	r := m.Ranges[len(m.Ranges)-1]
	changed[m.Off(r)+1] ^= 0xff
	if err := os.WriteFile(bad, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := imgtool(t, "flash", "--yes", "--bmap", bmapFile, bad, dev)
	failsWith(t, code, 1, stderr, "do not match their checksum", "incomplete image")
}

func TestDevicesListsLoop(t *testing.T) {
	dev := newLoop(t, 16*testimg.MiB)
	for _, args := range [][]string{{"devices"}, {"devices", "--all"}} {
		var out struct {
			Devices []struct {
				Path   string `json:"path"`
				Size   int64  `json:"size"`
				System bool   `json:"system"`
			} `json:"devices"`
		}
		mustJSON(t, &out, args...)
		found := false
		for _, d := range out.Devices {
			if d.Path == dev {
				found = d.Size == 16*testimg.MiB && !d.System
			}
		}
		if !found {
			t.Errorf("%v does not list %s (16 MiB, not a system disk): %+v", args, dev, out.Devices)
		}
	}
	stdout, _, code := imgtool(t, "devices")
	if code != 0 || !strings.Contains(stdout, dev) || !strings.HasPrefix(stdout, "PATH") {
		t.Errorf("devices table:\n%s", stdout)
	}
}

// The tests below need no root: regular files are valid targets and
// sources.

func TestFlashToFileAndReadFile(t *testing.T) {
	src := flashImage(t, 32*testimg.MiB, 0)
	want := readAll(t, src, 32*testimg.MiB)
	dir := t.TempDir()
	out := filepath.Join(dir, "copy.img")
	var s flashJSON
	mustJSON(t, &s, "flash", "--full", src, out) // no --yes needed for files
	if got := readAll(t, out, int64(len(want))); !bytes.Equal(got, want) || !s.Verified {
		t.Errorf("flash to a file: content differs or not verified (%+v)", s)
	}
	back := filepath.Join(dir, "back.img")
	if _, stderr, code := imgtool(t, "read", out, back); code != 0 {
		t.Fatal(stderr)
	}
	sameData(t, back, readAll(t, back, int64(len(want))), want, dataExtents(t, src), int64(len(want)))
}

func TestFlashReadErrors(t *testing.T) {
	src := flashImage(t, 32*testimg.MiB, 0)
	dir := t.TempDir()
	for _, c := range []struct {
		args  []string
		code  int
		parts []string
	}{
		{[]string{"flash", "--full", "--bmap", "x.bmap", src, filepath.Join(dir, "a.img")}, 2, []string{"--full and --bmap"}},
		{[]string{"flash", src}, 2, []string{"requires at least 2 arg"}},
		{[]string{"flash", src, src}, 2, []string{"the image itself"}},
		{[]string{"flash", src, dir}, 1, []string{"neither a disk nor a regular file"}},
		{[]string{"read", src, src + ".copy"}, 0, nil},
		{[]string{"read", src, src + ".copy"}, 1, []string{"already exists", "--force"}},
	} {
		_, stderr, code := imgtool(t, c.args...)
		t.Run(c.args[0]+c.args[1], func(t *testing.T) { failsWith(t, code, c.code, stderr, c.parts...) })
	}
}

func TestFlashInterrupted(t *testing.T) {
	src := flashImage(t, 32*testimg.MiB, 0)
	out := filepath.Join(t.TempDir(), "copy.img")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"flash", "--json", src, out}, strings.NewReader(""), &stdout, &stderr)
	failsWith(t, code, 1, stderr.String(), "interrupted", out+" now holds an incomplete image")
}

func TestReadShrink(t *testing.T) {
	testimg.NeedTools(t, "e2fsck")
	src := testimg.PiImage(t, t.TempDir(), testimg.PiOptions{Size: 256 << 20})
	dir := t.TempDir()
	for _, name := range []string{"small.img", "small.img.zst"} {
		out := filepath.Join(dir, name)
		var s readSummary
		mustJSON(t, &s, "read", "--shrink", src, out)
		if s.ShrunkSize == 0 || s.ShrunkSize >= 256<<20 {
			t.Fatalf("%s: shrunk size %d", name, s.ShrunkSize)
		}
		raw := out
		if name != "small.img" {
			raw = filepath.Join(dir, "back.img")
			mustJSON(t, new(convertSummary), "convert", out, raw)
		}
		rep := inspectJSON(t, raw)
		if rep.Size != s.ShrunkSize || rep.EndOfLastPartition > rep.Size {
			t.Errorf("%s: size %d, end of last partition %d, shrunk size %d", name, rep.Size, rep.EndOfLastPartition, s.ShrunkSize)
		}
		root := rep.Partitions[len(rep.Partitions)-1]
		testimg.Run(t, "e2fsck", "-fn", fmt.Sprintf("%s?offset=%d", raw, root.Start))
		if _, err := os.Stat(out + ".imgtool-read.img"); err == nil {
			t.Errorf("the temporary raw image was left behind")
		}
	}
}

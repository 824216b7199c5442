package ext4

import (
	"bytes"
	"fmt"
	iofs "io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"imgtool/internal/testimg"
)

// mountImage loop-mounts img on a fresh folder and returns it with its
// unmount function.
func mountImage(t *testing.T, img string) (string, func()) {
	t.Helper()
	dir := t.TempDir()
	testimg.Run(t, "mount", "-o", "loop", img, dir)
	done := false
	umount := func() {
		if !done {
			done = true
			testimg.Run(t, "umount", dir)
		}
	}
	t.Cleanup(umount)
	return dir, umount
}

// kernelFixture fills a filesystem through the kernel so that directories
// spread over the groups (Orlov), then deletes half of it: inodes and
// blocks lie high, the space is fragmented. src receives a copy of what
// remains.
func kernelFixture(t *testing.T, img, src string, bs int) {
	t.Helper()
	mnt, umount := mountImage(t, img)
	r := rand.New(rand.NewPCG(3, 4))
	// A filler keeps the low blocks busy while the rest is written.
	filler := filepath.Join(mnt, "filler")
	writeFile(t, filler, make([]byte, 24<<20), 0o644)
	for d := range 40 {
		for i := range 30 {
			name := fmt.Sprintf("d%02d/f%03d", d, i)
			data := randBytes(r, 1+r.IntN(200<<10))
			writeFile(t, filepath.Join(mnt, name), data, 0o640)
		}
	}
	// A file of many extents: every other block written.
	fh, err := os.Create(filepath.Join(mnt, "holey.bin"))
	if err != nil {
		t.Fatal(err)
	}
	blk := randBytes(r, bs)
	for i := 0; i < 4000; i += 2 {
		blk[0], blk[1] = byte(i), byte(i>>8)
		fh.WriteAt(blk, int64(i*bs))
	}
	fh.Close()
	// Shared xattr blocks: identical large xattrs on several files.
	for i := range 5 {
		p := filepath.Join(mnt, "xattr", fmt.Sprintf("s%d", i))
		writeFile(t, p, []byte("x"), 0o644)
		testimg.Run(t, "setfattr", "-n", "user.big", "-v", strings.Repeat("q", 900), p)
	}
	writeFile(t, filepath.Join(mnt, "hard", "a"), []byte("linked\n"), 0o644)
	os.Link(filepath.Join(mnt, "hard", "a"), filepath.Join(mnt, "hard", "b"))
	os.Symlink("hard/a", filepath.Join(mnt, "link"))
	for d := range 40 {
		for i := 0; i < 30; i += 2 {
			os.Remove(filepath.Join(mnt, fmt.Sprintf("d%02d/f%03d", d, i)))
		}
	}
	os.Remove(filler)
	// Whole-second times: compareTree truncates the source's to seconds.
	filepath.WalkDir(mnt, func(p string, d iofs.DirEntry, err error) error {
		if err == nil && d.Type()&iofs.ModeSymlink == 0 {
			if fi, err := os.Stat(p); err == nil {
				m := fi.ModTime().Truncate(time.Second)
				os.Chtimes(p, m, m)
			}
		}
		return nil
	})
	testimg.Run(t, "cp", "-a", mnt+"/.", src)
	umount()
}

func TestShrinkKernelWritten(t *testing.T) {
	testimg.NeedRoot(t)
	testimg.NeedTools(t, "mkfs.ext4", "e2fsck", "resize2fs", "dumpe2fs", "mount", "umount", "setfattr")
	for _, c := range []struct {
		name string
		bs   int
		args []string
	}{
		{"4k", 4096, []string{"-b", "4096"}},
		{"1k", 1024, []string{"-b", "1024"}},
		{"ext3", 1024, []string{"-t", "ext3", "-b", "1024"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := mkfs(t, "", 256<<20, c.args...)
			src := filepath.Join(t.TempDir(), "src")
			os.MkdirAll(src, 0o755)
			kernelFixture(t, img, src, c.bs)
			shrinkFsck(t, img)
			want, r2 := resize2fsMin(t, img)
			got, ours := shrinkFile(t, img)
			t.Logf("blocks: ours %d, resize2fs -M %d; time: ours %v, e2fsck+resize2fs %v", got, want, ours, r2)
			shrinkFsck(t, img)
			if got > want+want/50+64 {
				t.Errorf("shrunk to %d blocks, resize2fs -M reaches %d", got, want)
			}
			compareTree(t, openImage(t, img), src, false)
			// The kernel mounts the result and writes to it.
			mnt, umount := mountImage(t, img)
			writeFile(t, filepath.Join(mnt, "after-shrink"), []byte("written after the shrink\n"), 0o644)
			umount()
			shrinkFsck(t, img)
			// resize2fs grows it back (after the e2fsck it asks for, since
			// the filesystem was mounted).
			testimg.Run(t, "e2fsck", "-fp", img)
			if err := os.Truncate(img, 256<<20); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("resize2fs", img).CombinedOutput()
			if err != nil {
				t.Fatalf("resize2fs grow: %v\n%s", err, out)
			}
			shrinkFsck(t, img)
		})
	}
}

// TestShrinkBigDirectory shrinks a filesystem holding one directory of
// 50,000 files (an htree made by the kernel, with entries spread over many
// blocks, many of them above the new end).
func TestShrinkBigDirectory(t *testing.T) {
	testimg.NeedRoot(t)
	testimg.NeedTools(t, "mkfs.ext4", "e2fsck", "resize2fs", "mount", "umount")
	const files = 50000
	img := mkfs(t, "", 512<<20, "-N", "65536")
	dir, umount := mountImage(t, img)
	big := filepath.Join(dir, "big")
	if err := os.Mkdir(big, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range files {
		if err := os.WriteFile(filepath.Join(big, fmt.Sprintf("entry-%05d.conf", i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Spread data over the whole filesystem so blocks must move.
	for i := range 40 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("fill-%02d", i)), bytes.Repeat([]byte{byte(i)}, 4<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 40; i += 2 {
		os.Remove(filepath.Join(dir, fmt.Sprintf("fill-%02d", i)))
	}
	umount()
	testimg.Run(t, "e2fsck", "-fy", img) // a kernel mount leaves it needing a check for resize2fs
	if ents, err := openImage(t, img).ReadDir("big"); err != nil || len(ents) != files {
		t.Fatalf("before the shrink: big/: %d entries, %v", len(ents), err)
	}
	want, _ := resize2fsMin(t, img)
	got, took := shrinkFile(t, img)
	shrinkFsck(t, img)
	t.Logf("50,000-entry directory: %d blocks (resize2fs -M %d) in %v", got, want, took)
	if got > want+want/50+64 {
		t.Errorf("shrunk to %d blocks, resize2fs -M reaches %d", got, want)
	}
	fsys := openImage(t, img)
	ents, err := fsys.ReadDir("big")
	if err != nil || len(ents) != files {
		t.Fatalf("big/: %d entries, %v", len(ents), err)
	}
	for _, i := range []int{0, 1, 12345, 49999} {
		b, err := fsys.ReadFile(fmt.Sprintf("big/entry-%05d.conf", i))
		if err != nil || string(b) != fmt.Sprint(i) {
			t.Errorf("big/entry-%05d.conf: %q, %v", i, b, err)
		}
	}
	for i := 1; i < 40; i += 2 {
		b, err := fsys.ReadFile(fmt.Sprintf("fill-%02d", i))
		if err != nil || !bytes.Equal(b, bytes.Repeat([]byte{byte(i)}, 4<<20)) {
			t.Errorf("fill-%02d differs after the shrink (%v)", i, err)
		}
	}
}

package ext4

import (
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

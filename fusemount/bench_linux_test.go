package fusemount_test

import (
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"imgtool/fs"
	"imgtool/fusemount"
	"imgtool/internal/testimg"
)

// BenchmarkFUSESequentialRead reads a 100 MiB file sequentially through
// this package's mount, through fuse2fs (-o ro,fakeroot) of the same
// filesystem image and through a kernel loop mount of it. The image file
// itself stays in the page cache; the mounted file's pages are dropped
// before each read (fadvise DONTNEED), so each pass goes through the
// filesystem driver.
//
//	go test -run XXX -bench FUSESequentialRead -benchtime 5x ./fusemount
func BenchmarkFUSESequentialRead(b *testing.B) {
	testimg.NeedRoot(b)
	testimg.NeedTools(b, "mkfs.ext4", "fuse2fs", "losetup", "mount", "umount")
	const size = 100 << 20
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	must(b, os.MkdirAll(src, 0o755))
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < len(data); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	must(b, os.WriteFile(filepath.Join(src, "big.bin"), data, 0o644))
	img := filepath.Join(dir, "fs.img")
	testimg.Sparse(b, img, 160<<20)
	testimg.Run(b, "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", src, img)
	// Keep the image in the page cache.
	_, err := os.ReadFile(img)
	must(b, err)

	f, err := os.Open(img)
	must(b, err)
	defer f.Close()
	fsys, info, err := fs.Open(f, 160<<20, fs.Options{})
	must(b, err)

	b.Run("imgtool", func(b *testing.B) {
		mp, _ := fuseMount(b, fsys, fusemount.Options{BlockSize: info.BlockSize})
		readLoop(b, filepath.Join(mp, "big.bin"), size)
	})
	b.Run("fuse2fs", func(b *testing.B) {
		mp := b.TempDir()
		testimg.Run(b, "fuse2fs", "-o", "ro,fakeroot", img, mp)
		b.Cleanup(func() { exec.Command("fusermount3", "-u", mp).Run() })
		waitMounted(b, filepath.Join(mp, "big.bin"))
		readLoop(b, filepath.Join(mp, "big.bin"), size)
	})
	b.Run("kernel", func(b *testing.B) {
		mp := kernelMount(b, img, 0, 160<<20)
		readLoop(b, filepath.Join(mp, "big.bin"), size)
	})
}

func waitMounted(b *testing.B, name string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(name); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("%s did not appear", name)
}

// readLoop reads name whole b.N times with 1 MiB reads, dropping its
// cached pages before each pass.
func readLoop(b *testing.B, name string, size int64) {
	buf := make([]byte, 1<<20)
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		fl, err := os.Open(name)
		must(b, err)
		must(b, unix.Fadvise(int(fl.Fd()), 0, 0, unix.FADV_DONTNEED))
		b.StartTimer()
		n, err := io.CopyBuffer(io.Discard, onlyReader{fl}, buf)
		if err != nil || n != size {
			b.Fatalf("read %d bytes: %v", n, err)
		}
		fl.Close()
	}
}

// onlyReader hides WriteTo so that CopyBuffer uses the given buffer.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

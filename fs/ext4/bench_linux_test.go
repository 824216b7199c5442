package ext4

import (
	"fmt"
	"io"
	iofs "io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"imgtool/internal/testimg"
)

var benchImages = map[string]string{}

// benchImage builds (once per benchmark) an image from a tree made by fill.
func benchImage(b *testing.B, key string, size int64, fill func(dir string)) *FS {
	b.Helper()
	testimg.NeedTools(b, "mkfs.ext4")
	img, ok := benchImages[key]
	if _, err := os.Stat(img); !ok || err != nil {
		dir := b.TempDir()
		src := filepath.Join(dir, "src")
		os.MkdirAll(src, 0o755)
		fill(src)
		img = filepath.Join(dir, "fs.img")
		testimg.Sparse(b, img, size)
		testimg.Run(b, "mkfs.ext4", "-q", "-F", "-d", src, img)
		benchImages[key] = img
	}
	return openImage(b, img)
}

func BenchmarkReadLargeFile(b *testing.B) {
	const size = 256 << 20
	fsys := benchImage(b, "large", 320<<20, func(dir string) {
		fh, err := os.Create(filepath.Join(dir, "large.bin"))
		if err != nil {
			b.Fatal(err)
		}
		io.CopyN(fh, rand.NewChaCha8([32]byte{1}), size)
		fh.Close()
	})
	buf := make([]byte, 1<<20)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		fl, err := fsys.Open("large.bin")
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{fl.(io.Reader)}, buf)
		if err != nil || n != size {
			b.Fatalf("read %d bytes: %v", n, err)
		}
		fl.Close()
	}
}

func BenchmarkWalk50k(b *testing.B) {
	fsys := benchImage(b, "walk", 256<<20, func(dir string) {
		for d := range 100 {
			sub := filepath.Join(dir, fmt.Sprintf("dir%03d", d))
			os.MkdirAll(sub, 0o755)
			for i := range 499 {
				os.WriteFile(filepath.Join(sub, fmt.Sprintf("file%04d", i)), nil, 0o644)
			}
		}
	})
	b.ResetTimer()
	for b.Loop() {
		n := 0
		err := iofs.WalkDir(fsys, ".", func(p string, d iofs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			n++
			return nil
		})
		if err != nil || n < 50000 {
			b.Fatalf("walked %d: %v", n, err)
		}
	}
}

func BenchmarkOpenReadSmall(b *testing.B) {
	img := benchImage(b, "small", 64<<20, func(dir string) {
		os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
		os.WriteFile(filepath.Join(dir, "etc", "hostname"), []byte("raspberrypi\n"), 0o644)
	})
	r, size := img.r, img.size
	b.ResetTimer()
	for b.Loop() {
		f, err := New(r, size)
		if err != nil {
			b.Fatal(err)
		}
		if data, err := f.ReadFile("etc/hostname"); err != nil || string(data) != "raspberrypi\n" {
			b.Fatalf("%q, %v", data, err)
		}
	}
}

package fat

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"imgtool/internal/testimg"
)

// benchImage builds a FAT32 image holding config.txt and a 64 MiB file.
func benchImage(b *testing.B) (img string, big []byte) {
	b.Helper()
	testimg.NeedTools(b, "mkfs.vfat", "mcopy")
	dir := b.TempDir()
	big = make([]byte, 64<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i+8 <= len(big); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			big[i+j] = byte(v >> (8 * j))
		}
	}
	os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644)
	os.WriteFile(filepath.Join(dir, "config.txt"), []byte("arm_64bit=1\n"), 0o644)
	img = filepath.Join(dir, "fs.img")
	testimg.Sparse(b, img, 128<<20)
	testimg.Run(b, "mkfs.vfat", "-F", "32", "-s", "2", img)
	testimg.Run(b, "mcopy", "-i", img, filepath.Join(dir, "config.txt"), filepath.Join(dir, "big.bin"), "::/")
	return img, big
}

func BenchmarkReadLargeFile(b *testing.B) {
	img, big := benchImage(b)
	fh, err := os.Open(img)
	if err != nil {
		b.Fatal(err)
	}
	defer fh.Close()
	st, _ := fh.Stat()
	fsys, err := New(fh, st.Size())
	if err != nil {
		b.Fatal(err)
	}
	f, err := fsys.Open("big.bin")
	if err != nil {
		b.Fatal(err)
	}
	ra := f.(io.ReaderAt)
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(big)))
	b.ResetTimer()
	for b.Loop() {
		for off := int64(0); off < int64(len(big)); off += int64(len(buf)) {
			if _, err := ra.ReadAt(buf, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	if _, err := ra.ReadAt(buf, 5<<20); err != nil || !bytes.Equal(buf, big[5<<20:6<<20]) {
		b.Fatal("content differs")
	}
}

func BenchmarkOpenSmallFile(b *testing.B) {
	img, _ := benchImage(b)
	fh, err := os.Open(img)
	if err != nil {
		b.Fatal(err)
	}
	defer fh.Close()
	st, _ := fh.Stat()
	for b.Loop() {
		fsys, err := New(fh, st.Size())
		if err != nil {
			b.Fatal(err)
		}
		data, err := fsys.ReadFile("config.txt")
		if err != nil || string(data) != "arm_64bit=1\n" {
			b.Fatalf("%q, %v", data, err)
		}
	}
}

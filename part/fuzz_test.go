package part_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"imgtool/internal/testimg"
	"imgtool/part"
)

// sparseImage holds head at the start and tail at the end of an image of
// size bytes (head wins where they overlap), zeros in between.
type sparseImage struct {
	head, tail []byte
	size       int64
}

func (s *sparseImage) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= s.size {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > s.size-off {
		n = int(s.size - off)
	}
	clear(p[:n])
	for _, r := range []struct {
		b   []byte
		off int64
	}{{s.tail, s.size - int64(len(s.tail))}, {s.head, 0}} {
		lo, hi := max(off, r.off), min(off+int64(n), r.off+int64(len(r.b)))
		if lo < hi {
			copy(p[lo-off:hi-off], r.b[lo-r.off:hi-r.off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func addImageSeed(f *testing.F, img string, head, tail int) {
	b, err := os.ReadFile(img)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b[:min(head, len(b))], b[len(b)-min(tail, len(b)):], int64(len(b)))
}

func FuzzRead(f *testing.F) {
	f.Add([]byte{}, []byte{}, int64(0))
	f.Add(make([]byte, 512), []byte{}, int64(1<<20))
	dir := f.TempDir()
	if _, err := testimg.LookPath("sfdisk"); err == nil {
		img := filepath.Join(dir, "mbr.img")
		testimg.Sparse(f, img, 2<<20)
		testimg.RunIn(f, []byte("label: dos\nlabel-id: 0x1234abcd\n64,64,c,*\n128,3000,5\n192,256,83\n512,256,82\n1024,,83\n"), "sfdisk", "-q", img)
		addImageSeed(f, img, 1024*512, 0)
	}
	if _, err := testimg.LookPath("sgdisk"); err == nil {
		img := filepath.Join(dir, "gpt.img")
		testimg.Sparse(f, img, 1<<20)
		testimg.Run(f, "sgdisk", "-n", "1:34:+100K", "-c", "1:boot", "-n", "2:0:0", "-A", "2:set:2", img)
		addImageSeed(f, img, 34*512, 33*512)
	}
	if _, err := testimg.LookPath("mkfs.vfat"); err == nil {
		img := filepath.Join(dir, "fat.img")
		testimg.Sparse(f, img, 2<<20)
		testimg.Run(f, "mkfs.vfat", img)
		addImageSeed(f, img, 512, 0)
	}
	f.Fuzz(func(t *testing.T, head, tail []byte, size int64) {
		if size < 0 {
			size = -size
		}
		size = int64(len(head)) + size%(1<<40)
		tbl, err := part.Read(&sparseImage{head: head, tail: tail, size: size}, size)
		if err != nil {
			return
		}
		if tbl.Kind == part.None && len(tbl.Partitions) != 1 {
			t.Fatalf("no table but %d partitions", len(tbl.Partitions))
		}
		last := 0
		for _, p := range tbl.Partitions {
			if p.Start < 0 || p.Size < 0 || p.Number <= last {
				t.Fatalf("partition %+v after number %d", p, last)
			}
			last = p.Number
			sec := p.Section()
			if sec.Size() > p.Size || sec.Size() < 0 || p.Truncated != (p.End() > size) {
				t.Fatalf("partition %+v: section of %d bytes in a %d-byte image", p, sec.Size(), size)
			}
			var b [16]byte
			sec.ReadAt(b[:], 0)
		}
	})
}

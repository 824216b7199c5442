package simg

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/image"
	"imgtool/image/internal/disktest"
	"imgtool/internal/testimg"
)

// writeSimg writes the data-only image of src under ext to the file path,
// or to a bytes.Buffer when path is empty, and returns its bytes.
func writeSimg(t testing.TB, path string, src []byte, ext []image.Extent, opts ...WriterOption) []byte {
	t.Helper()
	return disktest.WriteOut(t, path, src, ext, func(w io.Writer) (io.WriteCloser, error) {
		return NewWriter(w, int64(len(src)), ext, opts...)
	})
}

// readBack opens b with this package's reader and compares it with want.
func readBack(t *testing.T, b, want []byte) (*Image, []image.Extent) {
	t.Helper()
	img, err := New(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("reading the written image: %v", err)
	}
	return img, disktest.CheckImage(t, img, want)
}

// chunkCounts counts the chunks of each type in a sparse image.
func chunkCounts(t *testing.T, b []byte) map[ChunkType]int {
	t.Helper()
	n := map[ChunkType]int{}
	total := binary.LittleEndian.Uint32(b[20:])
	off := HeaderSize
	for range total {
		n[ChunkType(binary.LittleEndian.Uint16(b[off:]))]++
		off += int(binary.LittleEndian.Uint32(b[off+8:]))
	}
	if off != len(b) {
		t.Fatalf("chunks end at %d, file at %d", off, len(b))
	}
	return n
}

// unsparse runs simg2img and returns its output.
func unsparse(t *testing.T, dir string, b []byte) []byte {
	t.Helper()
	in, out := filepath.Join(dir, "in.simg"), filepath.Join(dir, "out.raw")
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	testimg.Run(t, "simg2img", in, out)
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestWriter(t *testing.T) {
	testimg.NeedTools(t, "simg2img")
	dir := t.TempDir()
	size := int64(40<<20 + 3*1024) // a multiple of 1 KiB, not of 4 KiB
	src, ext, want := disktest.WriteFixture(t, dir, size, 14)
	for _, c := range []struct {
		name string
		pipe bool
		opts []WriterOption
		blk  uint32
	}{
		{name: "pipe", pipe: true, blk: 1024},
		{name: "file", blk: 1024},
		{name: "file-4", opts: []WriterOption{WithBlockSize(4)}, blk: 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := ""
			if !c.pipe {
				path = filepath.Join(dir, c.name+".simg")
			}
			if c.blk == 4 {
				// Tiny blocks make many chunks: a smaller disk.
				src, ext, want := src[:1<<20], clip(ext, 1<<20), want[:1<<20]
				b := writeSimg(t, path, src, ext, c.opts...)
				readBack(t, b, want)
				if !bytes.Equal(unsparse(t, dir, b), want) {
					t.Fatal("simg2img output differs")
				}
				return
			}
			b := writeSimg(t, path, src, ext, c.opts...)
			img, got := readBack(t, b, want)
			if img.Header.BlkSz != c.blk {
				t.Fatalf("block size %d, want %d", img.Header.BlkSz, c.blk)
			}
			if !bytes.Equal(unsparse(t, dir, b), want) {
				t.Fatal("simg2img output differs")
			}
			n := chunkCounts(t, b)
			if n[ChunkDontCare] == 0 || n[ChunkRaw] == 0 || (n[ChunkFill] == 0) != c.pipe {
				t.Fatalf("chunks %v", n)
			}
			for _, g := range disktest.DataOnly(got) {
				if !disktest.OverlapsData(ext, g) {
					t.Fatalf("stored %+v lies in Zero extents only", g)
				}
			}
		})
	}
}

// clip cuts extents at size.
func clip(ext []image.Extent, size int64) []image.Extent {
	var out []image.Extent
	for _, e := range ext {
		if e.Off >= size {
			break
		}
		e.Len = min(e.Len, size-e.Off)
		out = append(out, e)
	}
	return out
}

func TestWriterPiImage(t *testing.T) {
	testimg.NeedTools(t, "simg2img")
	dir := t.TempDir()
	path := testimg.PiImage(t, dir, testimg.PiOptions{Size: 64 << 20, BootSize: 32 << 20})
	src, ext := disktest.PiExtents(t, path)
	b := writeSimg(t, filepath.Join(dir, "pi.simg"), src, ext)
	readBack(t, b, src)
	if !bytes.Equal(unsparse(t, dir, b), src) {
		t.Fatal("simg2img output differs")
	}
}

func TestWriterErrors(t *testing.T) {
	var buf bytes.Buffer
	for _, c := range []struct {
		name string
		size int64
		ext  []image.Extent
		opts []WriterOption
	}{
		{"gap", 1 << 20, []image.Extent{{Off: 0, Len: 4096}, {Off: 8192, Len: 1<<20 - 8192}}, nil},
		{"short", 1 << 20, []image.Extent{{Off: 0, Len: 4096}}, nil},
		{"unaligned size", 1001, []image.Extent{{Off: 0, Len: 1001}}, nil},
		{"block size", 1 << 20, []image.Extent{{Off: 0, Len: 1 << 20}}, []WriterOption{WithBlockSize(3000)}},
	} {
		if _, err := NewWriter(&buf, c.size, c.ext, c.opts...); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	ext := []image.Extent{{Off: 0, Len: 4096, Kind: image.Data}, {Off: 4096, Len: 1<<20 - 4096, Kind: image.Zero}}
	sw, err := NewWriter(&buf, 1<<20, ext)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err == nil || !strings.Contains(err.Error(), "100 bytes written") {
		t.Errorf("Close after a short write: %v", err)
	}
	sw, _ = NewWriter(&buf, 1<<20, ext)
	if n, err := sw.Write(make([]byte, 5000)); n != 4096 || !errors.Is(err, errTooMuch) {
		t.Errorf("Write past the Data extents: %d, %v", n, err)
	}
	sw.Close()
}

// TestWriterRandomExtents writes random small disks with random extents,
// block sizes and modes and reads them back.
func TestWriterRandomExtents(t *testing.T) {
	rng := rand.New(rand.NewPCG(45, 45))
	dir := t.TempDir()
	for i := range 30 {
		blk := int64(4) << rng.IntN(11)
		src, ext, want := disktest.RandomFixture(rng, blk)
		opts := []WriterOption{WithBlockSize(blk)}
		path := ""
		if rng.IntN(2) == 0 {
			path = filepath.Join(dir, "r.simg")
		}
		b := writeSimg(t, path, src, ext, opts...)
		if !t.Run("", func(t *testing.T) { readBack(t, b, want) }) {
			t.Fatalf("case %d: size %d, extents %v", i, len(src), ext)
		}
	}
}

package vhd

import (
	"bytes"
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

// writeVHD writes the data-only image of src under ext to the file path,
// or to a bytes.Buffer when path is empty, and returns its bytes.
func writeVHD(t testing.TB, path string, src []byte, ext []image.Extent, opts ...WriterOption) []byte {
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

// qemuAgrees checks the size qemu-img info reports and runs qemu-img
// compare against the raw image raw. QEMU has no consistency check for
// VHD ("qemu-img check" says the format does not support checks).
func qemuAgrees(t *testing.T, path, raw string, size int64) {
	t.Helper()
	if qi := disktest.Info(t, path, "-f", "vpc"); qi.VirtualSize != size || qi.Format != "vpc" {
		t.Fatalf("qemu-img info: %+v, want size %d", qi, size)
	}
	testimg.Run(t, "qemu-img", "compare", "-f", "vpc", "-F", "raw", path, raw)
}

func TestWriter(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	// Not a multiple of the block size, nor of any CHS geometry.
	size := int64(40<<20 + 7*512)
	src, ext, want := disktest.WriteFixture(t, dir, size, 13)
	raw := filepath.Join(dir, "want.raw")
	if err := os.WriteFile(raw, want, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		pipe   bool
		opts   []WriterOption
		sparse bool // all-zero blocks inside Data extents are left unallocated
	}{
		{name: "pipe", pipe: true},
		{name: "file", sparse: true},
		{name: "file-128k", opts: []WriterOption{WithBlockSize(128 << 10)}, sparse: true},
		{name: "fixed-pipe", pipe: true, opts: []WriterOption{WithFixed()}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, c.name+".vhd")
			var b []byte
			if c.pipe {
				b = writeVHD(t, "", src, ext, c.opts...)
				if err := os.WriteFile(out, b, 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				b = writeVHD(t, out, src, ext, c.opts...)
			}
			img, got := readBack(t, b, want)
			qemuAgrees(t, out, raw, size)
			if string(img.Footer.CreatorApplication[:]) != creatorApp || string(b[len(b)-FooterSize:len(b)-FooterSize+8]) != FooterCookie {
				t.Fatalf("footer: %+v", img.Footer)
			}
			if img.Footer.DiskType == DiskFixed {
				if int64(len(b)) != size+FooterSize {
					t.Fatalf("fixed disk of %d bytes, want %d", len(b), size+FooterSize)
				}
				return
			}
			if !bytes.Equal(b[:FooterSize], b[len(b)-FooterSize:]) {
				t.Fatal("footer copy at offset 0 differs from the footer")
			}
			// The sector bitmaps make Zero extents read back as
			// unallocated.
			for _, g := range disktest.DataOnly(got) {
				if g.Off%SectorSize != 0 || !disktest.OverlapsData(ext, g) {
					t.Fatalf("allocated %+v is not made of sectors overlapping Data extents", g)
				}
			}
			for _, e := range ext {
				if e.Kind == image.Zero && e.Len >= 2*SectorSize && disktest.OverlapsData(disktest.DataOnly(got), image.Extent{Off: (e.Off + SectorSize - 1) &^ (SectorSize - 1), Len: SectorSize}) {
					t.Fatalf("Zero extent %+v reads back allocated", e)
				}
			}
			if c.sparse && int64(len(b)) >= int64(len(want)) {
				t.Fatalf("dynamic disk of %d bytes for %d bytes of disk", len(b), len(want))
			}
		})
	}
}

func TestWriterCHS(t *testing.T) {
	for _, c := range []struct {
		sectors int64
		want    Geometry
	}{
		{20480, Geometry{Cylinders: 301, Heads: 4, SectorsPerTrack: 17}},     // 10 MiB
		{8388608, Geometry{Cylinders: 8322, Heads: 16, SectorsPerTrack: 63}}, // 4 GiB
		{1 << 40 / 512, Geometry{Cylinders: 65535, Heads: 16, SectorsPerTrack: 255}},
	} {
		if g := chs(c.sectors); g != c.want {
			t.Errorf("chs(%d) = %+v, want %+v", c.sectors, g, c.want)
		}
	}
}

func TestWriterPiImage(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	path := testimg.PiImage(t, dir, testimg.PiOptions{Size: 64 << 20, BootSize: 32 << 20})
	src, ext := disktest.PiExtents(t, path)
	out := filepath.Join(dir, "pi.vhd")
	b := writeVHD(t, out, src, ext)
	readBack(t, b, src)
	qemuAgrees(t, out, path, int64(len(src)))
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
		{"unaligned size", 1000, []image.Extent{{Off: 0, Len: 1000}}, nil},
		{"block size", 1 << 20, []image.Extent{{Off: 0, Len: 1 << 20}}, []WriterOption{WithBlockSize(3 << 20)}},
		{"too large", 3 << 40, []image.Extent{{Off: 0, Len: 3 << 40, Kind: image.Zero}}, nil},
	} {
		if _, err := NewWriter(&buf, c.size, c.ext, c.opts...); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	ext := []image.Extent{{Off: 0, Len: 4096, Kind: image.Data}, {Off: 4096, Len: 1<<20 - 4096, Kind: image.Zero}}
	vw, err := NewWriter(&buf, 1<<20, ext)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vw.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := vw.Close(); err == nil || !strings.Contains(err.Error(), "100 bytes written") {
		t.Errorf("Close after a short write: %v", err)
	}
	vw, _ = NewWriter(&buf, 1<<20, ext)
	if n, err := vw.Write(make([]byte, 5000)); n != 4096 || !errors.Is(err, errTooMuch) {
		t.Errorf("Write past the Data extents: %d, %v", n, err)
	}
	vw.Close()
}

// TestWriterRandomExtents writes random small disks with random extents,
// block sizes and modes and reads them back.
func TestWriterRandomExtents(t *testing.T) {
	rng := rand.New(rand.NewPCG(44, 44))
	dir := t.TempDir()
	for i := range 30 {
		src, ext, want := disktest.RandomFixture(rng, SectorSize)
		opts := []WriterOption{WithBlockSize(int64(512) << rng.IntN(12))}
		path := ""
		switch rng.IntN(3) {
		case 1:
			path = filepath.Join(dir, "r.vhd")
		case 2:
			opts = append(opts, WithFixed())
		}
		b := writeVHD(t, path, src, ext, opts...)
		if !t.Run("", func(t *testing.T) { readBack(t, b, want) }) {
			t.Fatalf("case %d: size %d, extents %v", i, len(src), ext)
		}
	}
}

package qcow2

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
	"imgtool/image/internal/vdisk"
	"imgtool/internal/testimg"
)

// writeQcow2 writes the data-only image of src under ext to the file
// path, or to a bytes.Buffer when path is empty, and returns its bytes.
func writeQcow2(t testing.TB, path string, src []byte, ext []image.Extent, opts ...WriterOption) []byte {
	t.Helper()
	return disktest.WriteOut(t, path, src, ext, func(w io.Writer) (io.WriteCloser, error) {
		return NewWriter(w, int64(len(src)), ext, opts...)
	})
}

// readBack opens b with this package's reader and compares it with want.
func readBack(t *testing.T, b, want []byte) []image.Extent {
	t.Helper()
	img, err := New(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("reading the written image: %v", err)
	}
	return disktest.CheckImage(t, img, want)
}

func TestWriter(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	src, ext, want := disktest.WriteFixture(t, dir, 40<<20, 11)
	raw := filepath.Join(dir, "want.raw")
	if err := os.WriteFile(raw, want, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		pipe   bool
		opts   []WriterOption
		sparse bool // all-zero clusters inside Data extents are left unallocated
	}{
		{name: "pipe", pipe: true},
		{name: "file", sparse: true},
		{name: "compressed", opts: []WriterOption{WithCompression()}, sparse: true},
		{name: "compressed-4k", opts: []WriterOption{WithCompression(), WithClusterSize(4096), WithWorkers(3)}, sparse: true},
		{name: "pipe-2M", pipe: true, opts: []WriterOption{WithClusterSize(2 << 20)}},
		{name: "file-512", opts: []WriterOption{WithClusterSize(512)}, sparse: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, c.name+".qcow2")
			var b []byte
			if c.pipe {
				b = writeQcow2(t, "", src, ext, c.opts...)
				if err := os.WriteFile(out, b, 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				b = writeQcow2(t, out, src, ext, c.opts...)
			}
			got := readBack(t, b, want)
			disktest.QemuAgrees(t, "qcow2", out, raw)
			if qi := disktest.Info(t, out); qi.VirtualSize != int64(len(want)) || qi.Format != "qcow2" {
				t.Fatalf("qemu-img info: %+v", qi)
			}
			if qm := disktest.QemuData(t, out); !disktest.EqualExtents(disktest.DataOnly(got), qm) {
				t.Fatalf("data extents differ from qemu-img map:\n got %v\nwant %v", disktest.DataOnly(got), qm)
			}
			// Every Zero extent reads back unallocated; every allocated
			// cluster overlaps a Data extent.
			for _, g := range disktest.DataOnly(got) {
				if !disktest.OverlapsData(ext, g) {
					t.Fatalf("allocated %+v lies in Zero extents only", g)
				}
			}
			if c.sparse {
				// The all-zero clusters of the fixture hold no host cluster.
				for _, g := range disktest.DataOnly(got) {
					if vdisk.IsZero(want[g.Off:g.End()]) && g.Len >= 128<<10 {
						t.Fatalf("all-zero range %+v allocated", g)
					}
				}
			}
		})
	}
}

func TestWriterCompressionSmaller(t *testing.T) {
	dir := t.TempDir()
	src, ext, want := disktest.WriteFixture(t, dir, 24<<20, 5)
	plain := writeQcow2(t, filepath.Join(dir, "a.qcow2"), src, ext)
	comp := writeQcow2(t, filepath.Join(dir, "b.qcow2"), src, ext, WithCompression())
	readBack(t, comp, want)
	if len(comp) >= len(plain) {
		t.Fatalf("compressed image %d bytes, uncompressed %d", len(comp), len(plain))
	}
}

func TestWriterPiImage(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	path := testimg.PiImage(t, dir, testimg.PiOptions{Size: 64 << 20, BootSize: 32 << 20})
	src, ext := disktest.PiExtents(t, path)
	for _, opts := range [][]WriterOption{nil, {WithCompression()}} {
		out := filepath.Join(dir, "pi.qcow2")
		b := writeQcow2(t, out, src, ext, opts...)
		readBack(t, b, src)
		disktest.QemuAgrees(t, "qcow2", out, path)
	}
}

// TestWriterOSPipe writes to an *os.File that is a pipe: it must not be
// taken for a file although it has a WriteAt method.
func TestWriterOSPipe(t *testing.T) {
	dir := t.TempDir()
	src, ext, want := disktest.WriteFixture(t, dir, 8<<20, 3)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := NewWriter(w, int64(len(src)), ext, WithCompression()); !errors.Is(err, ErrNeedFile) {
		t.Fatalf("compressed to a pipe: %v, want ErrNeedFile", err)
	}
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		got <- b
	}()
	qw, err := NewWriter(w, int64(len(src)), ext)
	if err != nil {
		t.Fatal(err)
	}
	disktest.Feed(t, qw, src, ext, 1)
	if err := qw.Close(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	readBack(t, <-got, want)
}

func TestWriterErrors(t *testing.T) {
	var buf bytes.Buffer
	if _, err := NewWriter(&buf, 1<<20, []image.Extent{{Off: 0, Len: 1 << 20}}, WithCompression()); !errors.Is(err, ErrNeedFile) || !strings.Contains(err.Error(), "not a pipe") {
		t.Errorf("compressed to a buffer: %v", err)
	}
	for _, c := range []struct {
		name string
		size int64
		ext  []image.Extent
		opts []WriterOption
	}{
		{"gap", 1 << 20, []image.Extent{{Off: 0, Len: 4096}, {Off: 8192, Len: 1<<20 - 8192}}, nil},
		{"short", 1 << 20, []image.Extent{{Off: 0, Len: 4096}}, nil},
		{"beyond", 1 << 20, []image.Extent{{Off: 0, Len: 2 << 20}}, nil},
		{"kind", 1 << 20, []image.Extent{{Off: 0, Len: 1 << 20, Kind: 9}}, nil},
		{"unaligned size", 1000, []image.Extent{{Off: 0, Len: 1000}}, nil},
		{"cluster size", 1 << 20, []image.Extent{{Off: 0, Len: 1 << 20}}, []WriterOption{WithClusterSize(3000)}},
	} {
		if _, err := NewWriter(&buf, c.size, c.ext, c.opts...); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	ext := []image.Extent{{Off: 0, Len: 4096, Kind: image.Data}, {Off: 4096, Len: 1<<20 - 4096, Kind: image.Zero}}
	qw, err := NewWriter(&buf, 1<<20, ext)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qw.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := qw.Close(); err == nil || !strings.Contains(err.Error(), "100 bytes written") {
		t.Errorf("Close after a short write: %v", err)
	}
	qw, _ = NewWriter(&buf, 1<<20, ext)
	if n, err := qw.Write(make([]byte, 5000)); n != 4096 || !errors.Is(err, errTooMuch) {
		t.Errorf("Write past the Data extents: %d, %v", n, err)
	}
	qw.Close()
}

// TestWriterRandomExtents writes random small disks with random extents,
// cluster sizes and modes and reads them back.
func TestWriterRandomExtents(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 42))
	dir := t.TempDir()
	for i := range 24 {
		src, ext, want := disktest.RandomFixture(rng, 512)
		opts := []WriterOption{WithClusterSize(int64(512) << rng.IntN(6))}
		path := ""
		switch rng.IntN(3) {
		case 1:
			path = filepath.Join(dir, "r.qcow2")
		case 2:
			path = filepath.Join(dir, "r.qcow2")
			opts = append(opts, WithCompression())
		}
		b := writeQcow2(t, path, src, ext, opts...)
		if !t.Run("", func(t *testing.T) { readBack(t, b, want) }) {
			t.Fatalf("case %d: size %d, extents %v", i, len(src), ext)
		}
	}
}

func BenchmarkQcow2WriteCompressed(b *testing.B) {
	dir := b.TempDir()
	src, ext, _ := disktest.WriteFixture(b, dir, 64<<20, 9)
	f, err := os.Create(filepath.Join(dir, "bench.qcow2"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if err := f.Truncate(0); err != nil {
			b.Fatal(err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			b.Fatal(err)
		}
		qw, err := NewWriter(f, int64(len(src)), ext, WithCompression())
		if err != nil {
			b.Fatal(err)
		}
		disktest.Feed(b, qw, src, ext, 1)
		if err := qw.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

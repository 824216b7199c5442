package vmdk

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

// writeVMDK writes the data-only image of src under ext to the file path,
// or to a bytes.Buffer when path is empty, and returns its bytes.
func writeVMDK(t testing.TB, path string, src []byte, ext []image.Extent, opts ...WriterOption) []byte {
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
	src, ext, want := disktest.WriteFixture(t, dir, 40<<20, 12)
	raw := filepath.Join(dir, "want.raw")
	if err := os.WriteFile(raw, want, 0o644); err != nil {
		t.Fatal(err)
	}
	// The writer only appends: a buffer (a pipe) gets the same image.
	b := writeVMDK(t, "", src, ext, WithFileName("out.vmdk"))
	out := filepath.Join(dir, "out.vmdk")
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got := readBack(t, b, want)
	disktest.QemuAgrees(t, "vmdk", out, raw)
	if qi := disktest.Info(t, out); qi.VirtualSize != int64(len(want)) || qi.Format != "vmdk" {
		t.Fatalf("qemu-img info: %+v", qi)
	}
	if !strings.Contains(testimg.Run(t, "qemu-img", "info", out), "streamOptimized") {
		t.Fatal("qemu-img info does not report a streamOptimized disk")
	}
	if qm := disktest.QemuData(t, out); !disktest.EqualExtents(disktest.DataOnly(got), qm) {
		t.Fatalf("data extents differ from qemu-img map:\n got %v\nwant %v", disktest.DataOnly(got), qm)
	}
	for _, g := range disktest.DataOnly(got) {
		if !disktest.OverlapsData(ext, g) {
			t.Fatalf("allocated %+v lies in Zero extents only", g)
		}
		if g.Len >= 128<<10 && vdisk.IsZero(want[g.Off:g.End()]) {
			t.Fatalf("all-zero range %+v allocated", g)
		}
	}
	img, err := New(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if img.Header.Flags != FlagValidNewline|FlagCompressed|FlagMarkers || !strings.Contains(img.Descriptor, `RW 81920 SPARSE "out.vmdk"`) {
		t.Fatalf("flags %s, descriptor:\n%s", img.Header.Flags, img.Descriptor)
	}
	if len(b) >= len(want)*3/4 {
		t.Fatalf("%d-byte image for %d bytes of disk: grains not compressed?", len(b), len(want))
	}
}

func TestWriterPiImage(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	path := testimg.PiImage(t, dir, testimg.PiOptions{Size: 64 << 20, BootSize: 32 << 20})
	src, ext := disktest.PiExtents(t, path)
	out := filepath.Join(dir, "pi.vmdk")
	b := writeVMDK(t, out, src, ext, WithWorkers(1))
	readBack(t, b, src)
	disktest.QemuAgrees(t, "vmdk", out, path)
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
		{"name", 1 << 20, []image.Extent{{Off: 0, Len: 1 << 20}}, []WriterOption{WithFileName("a\"b")}},
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

// TestWriterRandomExtents writes random small disks with random extents
// and reads them back.
func TestWriterRandomExtents(t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 43))
	for i := range 24 {
		src, ext, want := disktest.RandomFixture(rng, SectorSize)
		b := writeVMDK(t, "", src, ext, WithWorkers(1+rng.IntN(3)))
		if !t.Run("", func(t *testing.T) { readBack(t, b, want) }) {
			t.Fatalf("case %d: size %d, extents %v", i, len(src), ext)
		}
	}
}

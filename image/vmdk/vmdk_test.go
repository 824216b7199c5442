package vmdk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/image"
	"imgtool/image/internal/disktest"
	"imgtool/internal/testimg"
)

func TestLayoutSizes(t *testing.T) {
	for _, c := range []struct {
		v    any
		want int
	}{
		{SparseExtentHeader{}, HeaderSize},
		{Marker{}, MarkerSize},
		{GrainHeader{}, GrainHdrSize},
	} {
		if got := binary.Size(c.v); got != c.want {
			t.Errorf("binary.Size(%T) = %d, want %d", c.v, got, c.want)
		}
	}
}

func openFile(t testing.TB, path string) *Image {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Probe(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	return img.(*Image)
}

func TestQemuImages(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	src, want := disktest.Source(t, dir, 16<<20+3*4096, 1)
	for _, c := range []struct {
		name string
		opts []string
	}{
		{"monolithicSparse", []string{"-o", "subformat=monolithicSparse"}},
		{"streamOptimized", []string{"-o", "subformat=streamOptimized"}},
		{"monolithicSparse-v6", []string{"-o", "subformat=monolithicSparse,hwversion=6"}},
		{"zeroed-grain", []string{"-o", "subformat=monolithicSparse,zeroed_grain=on"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, c.name+".vmdk")
			testimg.Run(t, "qemu-img", append(append([]string{"convert", "-f", "raw", "-O", "vmdk"}, c.opts...), src, out)...)
			img := openFile(t, out)
			if qi := disktest.Info(t, out); qi.VirtualSize != img.Size() {
				t.Fatalf("Size() = %d, qemu-img info says %d", img.Size(), qi.VirtualSize)
			}
			ext := disktest.CheckImage(t, img, want)
			if got, qm := disktest.DataOnly(ext), disktest.QemuData(t, out); !disktest.EqualExtents(got, qm) {
				t.Fatalf("data extents differ from qemu-img map:\n got %v\nwant %v", got, qm)
			}
		})
	}
}

// TestZeroedGrains writes zeroed grains with qemu-io into an image whose
// header allows them.
func TestZeroedGrains(t *testing.T) {
	testimg.NeedTools(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	p := filepath.Join(dir, "z.vmdk")
	testimg.Run(t, "qemu-img", "create", "-q", "-f", "vmdk", "-o", "zeroed_grain=on", p, "8M")
	testimg.Run(t, "qemu-io", "-f", "vmdk", "-c", "write -P 0xab 0 4M", "-c", "write -z 1M 1M", "-c", "write -z 6M 1M", p)
	want := make([]byte, 8<<20)
	for i := range 4 << 20 {
		want[i] = 0xab
	}
	clear(want[1<<20 : 2<<20])
	img := openFile(t, p)
	if img.Header.Flags&FlagZeroedGTE == 0 {
		t.Fatalf("flags %v lack zeroed-gte", img.Header.Flags)
	}
	ext := disktest.CheckImage(t, img, want)
	if got, qm := disktest.DataOnly(ext), disktest.QemuData(t, p); !disktest.EqualExtents(got, qm) {
		t.Fatalf("data extents differ from qemu-img map:\n got %v\nwant %v", got, qm)
	}
}

func TestPiImage(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	src := testimg.PiImage(t, dir, testimg.PiOptions{Size: 64 << 20, BootSize: 32 << 20})
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "pi.vmdk")
	testimg.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", src, out)
	img, err := image.Open(out, image.WithFormats(Format))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Format() != "vmdk" {
		t.Fatalf("Format() = %q", img.Format())
	}
	disktest.CheckImage(t, img, want)
}

// TestMultiFileRefused makes split and flat VMDKs with qemu-img: their
// descriptor files are refused with a message saying what to do.
func TestMultiFileRefused(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	for _, sub := range []string{"monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat"} {
		p := filepath.Join(dir, sub+".vmdk")
		testimg.Run(t, "qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat="+sub, p, "3G")
		raw, _ := os.ReadFile(p)
		_, err := Probe(bytes.NewReader(raw), int64(len(raw)))
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "qemu-img convert") || !strings.Contains(err.Error(), sub) {
			t.Errorf("%s: err = %v; want ErrUnsupported naming the type and qemu-img convert", sub, err)
		}
		if sub == "twoGbMaxExtentSparse" {
			// An extent file of the set is a sparse extent of its own
			// with no descriptor; opening it alone must not panic.
			ext := filepath.Join(dir, sub+"-s001.vmdk")
			if b, err := os.ReadFile(ext); err == nil {
				New(bytes.NewReader(b), int64(len(b)))
			}
		}
	}
}

func TestWrongType(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("KDM"), make([]byte, 4096), []byte("# Disk"), []byte("conectix")} {
		if _, err := Probe(bytes.NewReader(b), int64(len(b))); !errors.Is(err, image.ErrWrongType) {
			t.Errorf("Probe(%q) = %v, want ErrWrongType", b[:min(len(b), 8)], err)
		}
	}
}

func TestDamaged(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	src, want := disktest.Source(t, dir, 3<<20, 3)
	for _, sub := range []string{"monolithicSparse", "streamOptimized"} {
		p := filepath.Join(dir, sub+".vmdk")
		testimg.Run(t, "qemu-img", "convert", "-O", "vmdk", "-o", "subformat="+sub, src, p)
		orig, _ := os.ReadFile(p)
		errs := 0
		for cut := int64(0); cut < int64(len(orig)); cut += int64(len(orig))/97 + 1 {
			if readAll(orig[:cut], want) != nil {
				errs++
			}
		}
		if errs == 0 {
			t.Errorf("%s: no truncation gave an error", sub)
		}
		rng := rand.New(rand.NewPCG(5, 5))
		for range 300 {
			b := bytes.Clone(orig)
			i := rng.IntN(len(b))
			if rng.IntN(2) == 0 {
				i = rng.IntN(min(len(b), 128<<10))
			}
			b[i] ^= 1 << rng.IntN(8)
			readAll(b, nil)
		}
	}
}

func readAll(b, want []byte) error {
	return disktest.ReadAll(New, b, want, ErrUnsupported)
}

func FuzzVMDK(f *testing.F) {
	testimg.NeedTools(f, "qemu-img")
	dir := f.TempDir()
	src, _ := disktest.Source(f, dir, 16<<10, 9)
	for _, opt := range []string{"subformat=monolithicSparse", "subformat=streamOptimized", "subformat=monolithicSparse,zeroed_grain=on"} {
		p := filepath.Join(dir, "seed.vmdk")
		testimg.Run(f, "qemu-img", "convert", "-O", "vmdk", "-o", opt, src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(disktest.EncodeSparse(b))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sf := disktest.DecodeSparse(b)
		img, err := Probe(sf, sf.Size())
		if err != nil {
			return
		}
		if ext, err := img.Extents(); err == nil {
			var pos int64
			for _, e := range ext {
				if e.Off != pos || e.Len <= 0 {
					t.Fatalf("bad extents %v", ext)
				}
				pos = e.End()
			}
			if pos != img.Size() {
				t.Fatalf("extents end at %d, size %d", pos, img.Size())
			}
		}
		buf := make([]byte, 64<<10)
		for _, off := range []int64{0, img.Size() / 2, img.Size() - 100} {
			img.ReadAt(buf, off)
		}
	})
}

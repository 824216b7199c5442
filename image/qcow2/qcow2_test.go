package qcow2

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

func TestLayoutSizes(t *testing.T) {
	for _, c := range []struct {
		v    any
		want int
	}{
		{HeaderV2{}, HeaderV2Size},
		{HeaderV3{}, 112},
		{ExtensionHeader{}, 8},
	} {
		if got := binary.Size(c.v); got != c.want {
			t.Errorf("binary.Size(%T) = %d, want %d", c.v, got, c.want)
		}
	}
}

func openFile(t testing.TB, path string) (*Image, []byte) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Probe(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	return img.(*Image), raw
}

func TestQemuImages(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	src, want := disktest.Source(t, dir, 16<<20+3*4096, 1)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"v3", nil},
		{"v3-compressed", []string{"-c"}},
		{"v2", []string{"-o", "compat=0.10"}},
		{"v2-compressed", []string{"-c", "-o", "compat=0.10"}},
		{"zstd", []string{"-c", "-o", "compression_type=zstd"}},
		{"cluster4k", []string{"-o", "cluster_size=4096"}},
		{"cluster4k-compressed", []string{"-c", "-o", "cluster_size=4096"}},
		{"cluster2M", []string{"-o", "cluster_size=2M"}},
		{"cluster2M-zstd", []string{"-c", "-o", "cluster_size=2M,compression_type=zstd"}},
		{"cluster512", []string{"-o", "cluster_size=512"}},
		{"extended-l2", []string{"-o", "extended_l2=on,cluster_size=128k"}},
		{"extended-l2-compressed", []string{"-c", "-o", "extended_l2=on"}},
		{"prealloc-metadata", []string{"-o", "preallocation=metadata"}},
		{"prealloc-metadata-extended-l2", []string{"-o", "preallocation=metadata,extended_l2=on"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, c.name+".qcow2")
			args := append([]string{"convert", "-f", "raw", "-O", "qcow2"}, c.args...)
			testimg.Run(t, "qemu-img", append(args, src, out)...)
			img, _ := openFile(t, out)
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

// TestZeroClusters checks the version 3 zero flag, on clusters with and
// without a preallocated host cluster, written by qemu-io.
func TestZeroClusters(t *testing.T) {
	testimg.NeedTools(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	p := filepath.Join(dir, "z.qcow2")
	testimg.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", p, "8M")
	testimg.Run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 4M", "-c", "write -z 1M 1M", "-c", "write -z -u 2M 64k",
		"-c", "write -z 6M 1M", "-c", "write -P 0x11 7M 4k", p)
	want := make([]byte, 8<<20)
	for i := range 4 << 20 {
		want[i] = 0xab
	}
	clear(want[1<<20 : 2<<20])
	clear(want[2<<20 : 2<<20+64<<10])
	for i := 7 << 20; i < 7<<20+4096; i++ {
		want[i] = 0x11
	}
	img, _ := openFile(t, p)
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
	out := filepath.Join(dir, "pi.qcow2")
	testimg.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", src, out)
	img, err := image.Open(out, image.WithFormats(Format))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Format() != "qcow2" {
		t.Fatalf("Format() = %q", img.Format())
	}
	ext := disktest.CheckImage(t, img, want)
	if got, qm := disktest.DataOnly(ext), disktest.QemuData(t, out); !disktest.EqualExtents(got, qm) {
		t.Fatalf("data extents differ from qemu-img map:\n got %v\nwant %v", got, qm)
	}
}

func TestBackingFileRefused(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	base := filepath.Join(dir, "base-disk.qcow2")
	over := filepath.Join(dir, "overlay.qcow2")
	testimg.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", base, "4M")
	testimg.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", over)
	raw, _ := os.ReadFile(over)
	_, err := New(bytes.NewReader(raw), int64(len(raw)))
	if !errors.Is(err, ErrBackingFile) || !strings.Contains(err.Error(), "base-disk.qcow2") || !strings.Contains(err.Error(), "qemu-img convert") {
		t.Fatalf("New = %v; want ErrBackingFile naming base-disk.qcow2 and qemu-img convert", err)
	}
}

func TestWrongType(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("QFI"), make([]byte, 4096), []byte("conectix")} {
		if _, err := Probe(bytes.NewReader(b), int64(len(b))); !errors.Is(err, image.ErrWrongType) {
			t.Errorf("Probe(%q) = %v, want ErrWrongType", b[:min(len(b), 8)], err)
		}
	}
}

func TestFeaturesRefused(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	p := filepath.Join(dir, "f.qcow2")
	testimg.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", p, "4M")
	orig, _ := os.ReadFile(p)
	for _, c := range []struct {
		bits uint64
		want string
		is   error
	}{
		{uint64(FeatureCorrupt), "corrupt", ErrUnsupported},
		{uint64(FeatureExternalData), "external data file", ErrUnsupported},
		{1 << 9, "bit 9", ErrUnsupported},
		{uint64(FeatureDirty), "", nil},
	} {
		b := bytes.Clone(orig)
		binary.BigEndian.PutUint64(b[72:], c.bits)
		_, err := New(bytes.NewReader(b), int64(len(b)))
		if c.is == nil {
			if err != nil {
				t.Errorf("features %v: %v", Feature(c.bits), err)
			}
			continue
		}
		if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("features %#x: err = %v, want %v naming %q", c.bits, err, c.is, c.want)
		}
	}
	b := bytes.Clone(orig)
	binary.BigEndian.PutUint32(b[32:], 2)
	if _, err := New(bytes.NewReader(b), int64(len(b))); !errors.Is(err, ErrEncrypted) {
		t.Errorf("encrypted: err = %v", err)
	}
}

// TestDamaged truncates and flips bits in a small image: every outcome must
// be an error or correct content, never a panic or a short read.
func TestDamaged(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	src, want := disktest.Source(t, dir, 3<<20, 3)
	for _, opt := range [][]string{{"-o", "cluster_size=4096"}, {"-c", "-o", "cluster_size=4096"}} {
		p := filepath.Join(dir, "d.qcow2")
		testimg.Run(t, "qemu-img", append(append([]string{"convert", "-O", "qcow2"}, opt...), src, p)...)
		orig, _ := os.ReadFile(p)
		errs := 0
		for cut := int64(0); cut < int64(len(orig)); cut += int64(len(orig))/97 + 1 {
			b := orig[:cut]
			if readAll(b, want) != nil {
				errs++
			}
		}
		if errs == 0 {
			t.Errorf("%v: no truncation gave an error", opt)
		}
		rng := rand.New(rand.NewPCG(5, 5))
		for range 300 {
			b := bytes.Clone(orig)
			i := rng.IntN(min(len(b), 3*4096+len(b)/8))
			b[i] ^= 1 << rng.IntN(8)
			readAll(b, nil)
		}
	}
}

// readAll opens b and reads all of it; with want it returns an error when
// the content is wrong without an error reported.
func readAll(b, want []byte) error {
	return disktest.ReadAll(New, b, want, ErrUnsupported, ErrBackingFile, ErrEncrypted)
}

func FuzzQcow2(f *testing.F) {
	testimg.NeedTools(f, "qemu-img")
	dir := f.TempDir()
	src, _ := disktest.Source(f, dir, 48<<10, 9)
	for i, opt := range [][]string{
		{"-o", "cluster_size=512"},
		{"-c", "-o", "cluster_size=512"},
		{"-o", "cluster_size=4096,compat=0.10"},
		{"-c", "-o", "cluster_size=4096,compression_type=zstd"},
		{"-o", "cluster_size=16k,extended_l2=on"},
	} {
		p := filepath.Join(dir, "seed.qcow2")
		testimg.Run(f, "qemu-img", append(append([]string{"convert", "-O", "qcow2"}, opt...), src, p)...)
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) > 1<<20 {
			f.Fatalf("seed %d is %d bytes", i, len(b))
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := New(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		ext, err := img.Extents()
		if err == nil {
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

func BenchmarkQcow2SequentialRead(b *testing.B) {
	testimg.NeedTools(b, "qemu-img")
	dir := b.TempDir()
	src, _ := disktest.Source(b, dir, 64<<20, 11)
	p := filepath.Join(dir, "bench.qcow2")
	testimg.Run(b, "qemu-img", "convert", "-O", "qcow2", src, p)
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	img, err := New(f, st.Size())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(img.Size())
	for b.Loop() {
		for off := int64(0); off < img.Size(); off += int64(len(buf)) {
			if _, err := img.ReadAt(buf, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
	}
}

package vhdx

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
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
		{FileIdentifier{}, 520},
		{Header{}, HeaderSize},
		{RegionTableHeader{}, 16},
		{RegionTableEntry{}, 32},
		{MetadataTableHeader{}, 32},
		{MetadataTableEntry{}, 32},
		{FileParameters{}, 8},
	} {
		if got := binary.Size(c.v); got != c.want {
			t.Errorf("binary.Size(%T) = %d, want %d", c.v, got, c.want)
		}
	}
}

func TestGUID(t *testing.T) {
	if s := RegionBAT.String(); s != "2DC27766-F623-4200-9D64-115E9BFD4A08" {
		t.Errorf("RegionBAT = %s", s)
	}
}

func convert(t testing.TB, dir, src, name string, opts ...string) (string, []byte) {
	t.Helper()
	out := filepath.Join(dir, name+".vhdx")
	testimg.Run(t, "qemu-img", append(append([]string{"convert", "-f", "raw", "-O", "vhdx"}, opts...), src, out)...)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return out, b
}

func TestQemuImages(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	src, want := disktest.Source(t, dir, 16<<20+3*4096, 1)
	for _, c := range []struct {
		name string
		opts []string
	}{
		{"dynamic", nil},
		{"dynamic-1M", []string{"-o", "block_size=1M"}},
		{"fixed", []string{"-o", "subformat=fixed,block_size=2M"}},
		{"log1M", []string{"-o", "block_size=1M,log_size=1M"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, raw := convert(t, dir, src, c.name, c.opts...)
			img, err := Probe(bytes.NewReader(raw), int64(len(raw)))
			if err != nil {
				t.Fatal(err)
			}
			if qi := disktest.Info(t, out); qi.VirtualSize != img.Size() {
				t.Fatalf("Size() = %d, qemu-img info says %d", img.Size(), qi.VirtualSize)
			}
			ext := disktest.CheckImage(t, img, want)
			if c.name == "dynamic-1M" {
				var zero int64
				for _, e := range ext {
					if e.Kind == image.Zero {
						zero += e.Len
					}
				}
				if zero == 0 {
					t.Fatalf("no zero extents: %v", ext)
				}
			}
		})
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
	out, _ := convert(t, dir, src, "pi", "-o", "block_size=1M")
	img, err := image.Open(out, image.WithFormats(Format))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Format() != "vhdx" {
		t.Fatalf("Format() = %q", img.Format())
	}
	disktest.CheckImage(t, img, want)
}

// TestDirtyLog sets a log GUID in the current header (checksum fixed): the
// image must be refused with a message saying to replay the log.
func TestDirtyLog(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	src, _ := disktest.Source(t, dir, 2<<20, 2)
	_, raw := convert(t, dir, src, "log")
	for _, off := range []int{Header1Offset, Header2Offset} {
		h := raw[off : off+HeaderSize]
		h[48] = 1 // LogGUID
		binary.LittleEndian.PutUint32(h[4:], 0)
		binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(h, crc32.MakeTable(crc32.Castagnoli)))
	}
	_, err := New(bytes.NewReader(raw), int64(len(raw)))
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "log") {
		t.Fatalf("err = %v, want ErrUnsupported about the log", err)
	}
}

func TestWrongType(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("vhdx"), make([]byte, 4096)} {
		if _, err := Probe(bytes.NewReader(b), int64(len(b))); !errors.Is(err, image.ErrWrongType) {
			t.Errorf("Probe(%d bytes) = %v, want ErrWrongType", len(b), err)
		}
	}
}

func TestDamaged(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	src, want := disktest.Source(t, dir, 3<<20, 3)
	_, orig := convert(t, dir, src, "d", "-o", "block_size=1M")
	errs := 0
	for cut := int64(0); cut < int64(len(orig)); cut += int64(len(orig))/97 + 1 {
		if readAll(orig[:cut], want) != nil {
			errs++
		}
	}
	if errs == 0 {
		t.Error("no truncation gave an error")
	}
	rng := rand.New(rand.NewPCG(5, 5))
	for range 300 {
		b := bytes.Clone(orig)
		i := rng.IntN(len(b))
		if rng.IntN(2) == 0 {
			i = rng.IntN(min(len(b), 3<<20))
		}
		b[i] ^= 1 << rng.IntN(8)
		readAll(b, nil)
	}
}

func readAll(b, want []byte) error {
	return disktest.ReadAll(New, b, want, ErrUnsupported)
}

func TestSparseSeed(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	src, want := disktest.Source(t, dir, 8<<10, 9)
	_, b := convert(t, dir, src, "seed", "-o", "block_size=1M,log_size=1M")
	enc := disktest.EncodeSparse(b)
	f := disktest.DecodeSparse(enc)
	if f.Size() != int64(len(b)) || len(enc) > 32<<10 {
		t.Fatalf("sparse seed: size %d (want %d), %d bytes encoded", f.Size(), len(b), len(enc))
	}
	img, err := New(f, f.Size())
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, make([]byte, img.Size()-int64(len(want)))...)
	disktest.CheckImage(t, img, want)
}

func FuzzVHDX(f *testing.F) {
	testimg.NeedTools(f, "qemu-img")
	dir := f.TempDir()
	src, _ := disktest.Source(f, dir, 8<<10, 9)
	for _, opt := range []string{"block_size=1M,log_size=1M", "subformat=fixed,block_size=1M,log_size=1M"} {
		_, b := convert(f, dir, src, "seed", "-o", opt)
		f.Add(disktest.EncodeSparse(b))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sf := disktest.DecodeSparse(b)
		img, err := New(sf, sf.Size())
		if err != nil {
			return
		}
		ext, _ := img.Extents()
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
		buf := make([]byte, 64<<10)
		for _, off := range []int64{0, img.Size() / 2, img.Size() - 100} {
			img.ReadAt(buf, off)
		}
	})
}

package vhd

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
		{Footer{}, FooterSize},
		{DynamicHeader{}, DynamicHeaderSize},
		{ParentLocator{}, 24},
		{Geometry{}, 4},
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

// convert makes a vpc image of src and returns it with the disk qemu-img
// reads back from it (qemu rounds the size up to a CHS geometry).
func convert(t *testing.T, dir, src, name string, opts ...string) (string, []byte) {
	t.Helper()
	out := filepath.Join(dir, name+".vhd")
	args := append([]string{"convert", "-f", "raw", "-O", "vpc"}, opts...)
	testimg.Run(t, "qemu-img", append(args, src, out)...)
	back := filepath.Join(dir, name+".raw")
	testimg.Run(t, "qemu-img", "convert", "-f", "vpc", "-O", "raw", out, back)
	want, err := os.ReadFile(back)
	if err != nil {
		t.Fatal(err)
	}
	return out, want
}

func TestQemuImages(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	src, orig := disktest.Source(t, dir, 16<<20+3*4096, 1)
	for _, c := range []struct {
		name string
		opts []string
		typ  DiskType
	}{
		{"dynamic", []string{"-o", "subformat=dynamic"}, DiskDynamic},
		{"fixed", []string{"-o", "subformat=fixed"}, DiskFixed},
		{"dynamic-forcesize", []string{"-o", "subformat=dynamic,force_size=on"}, DiskDynamic},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, want := convert(t, dir, src, c.name, c.opts...)
			img, _ := openFile(t, out)
			if img.Footer.DiskType != c.typ {
				t.Fatalf("disk type %v, want %v", img.Footer.DiskType, c.typ)
			}
			if qi := disktest.Info(t, out, "-f", "vpc"); qi.VirtualSize != img.Size() {
				t.Fatalf("Size() = %d, qemu-img info says %d", img.Size(), qi.VirtualSize)
			}
			if img.Size() < int64(len(orig)) || !bytes.Equal(want[:len(orig)], orig) {
				t.Fatalf("qemu's own reading of the image differs from the source")
			}
			ext := disktest.CheckImage(t, img, want)
			if c.typ == DiskDynamic {
				// Every non-zero byte lies in a Data extent (checked), and
				// zero blocks of the source were left unallocated.
				var zero int64
				for _, e := range ext {
					if e.Kind == image.Zero {
						zero += e.Len
					}
				}
				if zero == 0 {
					t.Fatalf("dynamic disk reports no zero extents: %v", ext)
				}
			}
		})
	}
}

func TestPiImage(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	src := testimg.PiImage(t, dir, testimg.PiOptions{Size: 64 << 20, BootSize: 32 << 20})
	out, want := convert(t, dir, src, "pi")
	img, err := image.Open(out, image.WithFormats(Format))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Format() != "vhd" {
		t.Fatalf("Format() = %q", img.Format())
	}
	disktest.CheckImage(t, img, want)
}

// TestSectorBitmap clears bitmap bits of an allocated block: those sectors
// must read as zeros and be reported as Zero.
func TestSectorBitmap(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	src, _ := disktest.Source(t, dir, 8<<20, 2)
	out, want := convert(t, dir, src, "bm")
	img, raw := openFile(t, out)
	var bi int
	for bi = range img.bat {
		if img.bat[bi] != unusedBAT {
			break
		}
	}
	bmOff := int64(img.bat[bi]) * SectorSize
	raw[bmOff] = 0x0f   // sectors 0-3 of the block unwritten
	raw[bmOff+1] = 0x00 // sectors 8-15 too
	bs := int64(img.Dynamic.BlockSize)
	clear(want[int64(bi)*bs : int64(bi)*bs+4*512]) // what must read as zero
	clear(want[int64(bi)*bs+8*512 : int64(bi)*bs+16*512])
	img2, err := New(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	ext := disktest.CheckImage(t, img2, want)
	found := false
	for _, e := range ext {
		if e.Kind == image.Zero && e.Off <= int64(bi)*bs+8*512 && e.End() >= int64(bi)*bs+16*512 {
			found = true
		}
	}
	if !found {
		t.Fatalf("cleared bitmap bits not reported as a zero extent: %v", ext)
	}
}

func TestChecksumAndDifferencing(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	src, _ := disktest.Source(t, dir, 4<<20, 4)
	out, _ := convert(t, dir, src, "c")
	raw, _ := os.ReadFile(out)
	// A bad footer at the end falls back to the copy at the start.
	b := bytes.Clone(raw)
	b[len(b)-FooterSize+40]++
	if _, err := New(bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatalf("damaged end footer with a good copy: %v", err)
	}
	b[40]++
	var fe *image.FormatError
	if _, err := New(bytes.NewReader(b), int64(len(b))); !errors.As(err, &fe) || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("both footers damaged: err = %v, want a checksum FormatError", err)
	}
	// Make it a differencing disk with a parent name, checksums fixed.
	b = bytes.Clone(raw)
	hoff := int(binary.BigEndian.Uint64(b[footerDataOffsetOff:]))
	name := "parent-disk.vhd"
	for i, c := range name {
		binary.BigEndian.PutUint16(b[hoff+64+2*i:], uint16(c))
	}
	binary.BigEndian.PutUint32(b[hoff+dynamicChecksumOff:], checksum(b[hoff:hoff+DynamicHeaderSize], dynamicChecksumOff))
	for _, fo := range []int{0, len(b) - FooterSize} {
		binary.BigEndian.PutUint32(b[fo+60:], uint32(DiskDifferencing))
		binary.BigEndian.PutUint32(b[fo+footerChecksumOff:], checksum(b[fo:fo+FooterSize], footerChecksumOff))
	}
	_, err := New(bytes.NewReader(b), int64(len(b)))
	if !errors.Is(err, ErrDifferencing) || !strings.Contains(err.Error(), name) {
		t.Fatalf("differencing disk: err = %v, want ErrDifferencing naming %s", err, name)
	}
}

func TestWrongType(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("conectix"), make([]byte, 4096)} {
		if _, err := Probe(bytes.NewReader(b), int64(len(b))); !errors.Is(err, image.ErrWrongType) {
			t.Errorf("Probe(%d bytes) = %v, want ErrWrongType", len(b), err)
		}
	}
}

func TestDamaged(t *testing.T) {
	testimg.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	src, _ := disktest.Source(t, dir, 3<<20, 3)
	for _, sub := range []string{"dynamic", "fixed"} {
		out, want := convert(t, dir, src, "d"+sub, "-o", "subformat="+sub)
		orig, _ := os.ReadFile(out)
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
				i = rng.IntN(4096)
			}
			b[i] ^= 1 << rng.IntN(8)
			readAll(b, nil)
		}
	}
}

func readAll(b, want []byte) error {
	return disktest.ReadAll(New, b, want, ErrDifferencing)
}

func FuzzVHD(f *testing.F) {
	testimg.NeedTools(f, "qemu-img")
	dir := f.TempDir()
	src, _ := disktest.Source(f, dir, 48<<10, 9)
	for _, opt := range []string{"subformat=dynamic", "subformat=fixed"} {
		p := filepath.Join(dir, "seed.vhd")
		testimg.Run(f, "qemu-img", "convert", "-O", "vpc", "-o", opt, src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := New(bytes.NewReader(b), int64(len(b)))
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

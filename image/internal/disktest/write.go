package disktest

// Helpers for the writer tests: a source disk with extents laid over it by
// hand, and a way to feed a writer.

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"imgtool/image"
	"imgtool/image/internal/vdisk"
	"imgtool/internal/testimg"
)

// WriteFixture returns a source disk of random data, text and zero runs,
// extents laid over it by hand (Zero extents over non-zero bytes among
// them, all-zero clusters inside Data extents) and the data-only image the
// extents describe: the source with its Zero extents cleared.
func WriteFixture(t testing.TB, dir string, size int64, seed uint64) (src []byte, ext []image.Extent, want []byte) {
	t.Helper()
	_, src = Source(t, dir, size, seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	for off := int64(0); off < size; {
		var n int64
		switch rng.IntN(5) {
		case 0: // an odd length, to cut clusters and sectors
			n = rng.Int64N(70000) + 1
		case 1:
			n = (rng.Int64N(64) + 1) << 12
		default:
			n = (rng.Int64N(8) + 1) << 19
		}
		n = min(n, size-off)
		k := image.Data
		if rng.IntN(3) == 0 {
			k = image.Zero
		}
		if l := len(ext); l > 0 && ext[l-1].Kind == k {
			ext[l-1].Len += n
		} else {
			ext = append(ext, image.Extent{Off: off, Len: n, Kind: k})
		}
		off += n
	}
	// All-zero runs of 128 KiB, 64 KiB aligned, inside Data extents.
	for _, e := range ext {
		if e.Kind == image.Data && e.Len >= 256<<10 {
			a := (e.Off + 64<<10) &^ (64<<10 - 1)
			clear(src[a : a+128<<10])
		}
	}
	want = bytes.Clone(src)
	nonZero := false
	for _, e := range ext {
		if e.Kind == image.Zero {
			nonZero = nonZero || !vdisk.IsZero(want[e.Off:e.End()])
			clear(want[e.Off:e.End()])
		}
	}
	if !nonZero {
		t.Fatal("fixture has no Zero extent over non-zero bytes")
	}
	return src, ext, want
}

// RandomFixture returns a small disk with random extents for property
// tests: sizes from 512 bytes to 1 MiB, extents of any length.
func RandomFixture(rng *rand.Rand, align int64) (src []byte, ext []image.Extent, want []byte) {
	size := (rng.Int64N(1<<20)/align + 1) * align
	src = make([]byte, size)
	for off := int64(0); off < size; {
		n := min(size-off, rng.Int64N(200000)+1)
		k := image.ExtentKind(rng.IntN(2))
		if rng.IntN(2) == 0 {
			for j := off; j < off+n; j++ {
				src[j] = byte(rng.IntN(4))
			}
		}
		ext = append(ext, image.Extent{Off: off, Len: n, Kind: k})
		off += n
	}
	want = bytes.Clone(src)
	for _, e := range ext {
		if e.Kind == image.Zero {
			clear(want[e.Off:e.End()])
		}
	}
	return src, ext, want
}

// Feed writes the bytes of the Data extents of src to w in chunks of
// random sizes.
func Feed(t testing.TB, w io.Writer, src []byte, ext []image.Extent, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 3))
	for _, e := range ext {
		if e.Kind != image.Data {
			continue
		}
		for off := e.Off; off < e.End(); {
			n := min(e.End()-off, rng.Int64N(200000)+1)
			if k, err := w.Write(src[off : off+n]); err != nil || int64(k) != n {
				t.Fatalf("Write: %d, %v", k, err)
			}
			off += n
		}
	}
}

// WriteOut writes the data-only image of src under ext with the writer
// that start makes, to the file path, or to a bytes.Buffer (not an
// io.WriterAt) when path is empty, and returns the bytes written.
func WriteOut(t testing.TB, path string, src []byte, ext []image.Extent, start func(io.Writer) (io.WriteCloser, error)) []byte {
	t.Helper()
	var w io.Writer
	var buf bytes.Buffer
	var f *os.File
	if path == "" {
		w = &buf
	} else {
		var err error
		if f, err = os.Create(path); err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		w = f
	}
	ww, err := start(w)
	if err != nil {
		t.Fatal(err)
	}
	Feed(t, ww, src, ext, uint64(len(src)))
	if err := ww.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if f == nil {
		return buf.Bytes()
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// OverlapsData reports whether g overlaps a Data extent of ext.
func OverlapsData(ext []image.Extent, g image.Extent) bool {
	for _, e := range ext {
		if e.Kind == image.Data && e.Off < g.End() && g.Off < e.End() {
			return true
		}
	}
	return false
}

// PiExtents returns the content of a Pi-like image and the extents of its
// sparse file.
func PiExtents(t testing.TB, path string) ([]byte, []image.Extent) {
	t.Helper()
	img, err := image.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	ext, err := img.Extents()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return src, ext
}

// QemuAgrees runs qemu-img check on the image at path, of the given
// qemu-img format, and qemu-img compare against the raw image raw.
func QemuAgrees(t *testing.T, format, path, raw string) {
	t.Helper()
	if out := testimg.Run(t, "qemu-img", "check", "-f", format, path); !strings.Contains(out, "No errors were found") {
		t.Fatalf("qemu-img check:\n%s", out)
	}
	testimg.Run(t, "qemu-img", "compare", "-f", format, "-F", "raw", path, raw)
}

package convert

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/bmap"
	"imgtool/image"
	imggzip "imgtool/image/gzip"
	"imgtool/image/xz"
	"imgtool/image/zstd"
	"imgtool/internal/testimg"
)

// synthetic builds an image of random, text-like and zero stretches and
// extents in which some stretches (holding garbage) are Zero: the writers
// must turn those into zeros.
func synthetic(t testing.TB, size int) (raw []byte, ext []image.Extent, want []byte) {
	rng := rand.New(rand.NewPCG(1, 2))
	raw = make([]byte, size)
	words := []string{"root ", "boot ", "kernel ", "lib ", "usr ", "etc\n", "0x1f ", "config=1\n"}
	for off := 0; off < size; {
		n := min(size-off, (1+rng.IntN(12))*256<<10+rng.IntN(5000))
		switch rng.IntN(3) {
		case 0:
			for i := off; i < off+n; i++ {
				raw[i] = byte(rng.Uint32())
			}
		case 1:
			var b strings.Builder
			for b.Len() < n {
				b.WriteString(words[rng.IntN(len(words))])
			}
			copy(raw[off:off+n], b.String())
		}
		kind := image.Data
		if rng.IntN(3) == 0 {
			kind = image.Zero
		}
		ext = append(ext, image.Extent{Off: int64(off), Len: int64(n), Kind: kind})
		off += n
	}
	ext = roundData(ext, int64(size))
	want = make([]byte, size)
	for _, e := range ext {
		if e.Kind == image.Data {
			copy(want[e.Off:e.End()], raw[e.Off:e.End()])
		}
	}
	return raw, ext, want
}

// convertTo writes img through format f with the given extents.
func convertTo(t testing.TB, raw []byte, ext []image.Extent, format string, o Options) []byte {
	t.Helper()
	f, ok := Lookup(format)
	if !ok {
		t.Fatalf("no format %s", format)
	}
	var out bytes.Buffer
	img := image.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err := Copy(context.Background(), img, ext, &out, f, o, &Result{}); err != nil {
		t.Fatalf("%s: %v", format, err)
	}
	return out.Bytes()
}

func readAll(t testing.TB, img image.Image) []byte {
	t.Helper()
	b := make([]byte, img.Size())
	if _, err := img.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatalf("reading back: %v", err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	raw, ext, want := synthetic(t, 40<<20+12345)
	for _, tc := range []struct {
		format string
		o      Options
		open   func(r io.ReaderAt, size int64) (image.Image, error)
	}{
		{"xz", Options{ChunkSize: 4 << 20, Level: 1}, func(r io.ReaderAt, n int64) (image.Image, error) { return xz.New(r, n) }},
		{"gz", Options{}, func(r io.ReaderAt, n int64) (image.Image, error) { return imggzip.New(r, n) }},
		{"zst", Options{}, func(r io.ReaderAt, n int64) (image.Image, error) { return zstd.New(r, n) }},
		{"zst", Options{NoSeekable: true}, func(r io.ReaderAt, n int64) (image.Image, error) { return zstd.New(r, n) }},
		{"raw", Options{}, nil},
	} {
		t.Run(tc.format, func(t *testing.T) {
			out := convertTo(t, raw, ext, tc.format, tc.o)
			var got []byte
			if tc.open == nil {
				got = out
			} else {
				img, err := tc.open(bytes.NewReader(out), int64(len(out)))
				if err != nil {
					t.Fatal(err)
				}
				defer img.Close()
				got = readAll(t, img)
				if x, ok := img.(*xz.Image); ok {
					if x.Blocks() < 5 || !x.Indexed() {
						t.Errorf("xz: %d blocks, indexed %v; want several, indexed", x.Blocks(), x.Indexed())
					}
					// Random access: one block only.
					p := make([]byte, 1000)
					if _, err := x.ReadAt(p, 17<<20+5); err != nil || !bytes.Equal(p, want[17<<20+5:17<<20+1005]) {
						t.Errorf("xz ReadAt in the middle: %v", err)
					}
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: the image read back differs from the data-only image", tc.format)
			}
			t.Logf("%s: %d bytes → %d", tc.format, len(raw), len(out))
		})
	}
}

// TestPeers checks that xz, gzip and zstd accept what we write and
// decompress it to the same bytes.
func TestPeers(t *testing.T) {
	testimg.NeedTools(t, "xz", "gzip", "zstd")
	raw, ext, want := synthetic(t, 24<<20+777)
	dir := t.TempDir()
	for _, tc := range []struct {
		format, ext string
		o           Options
		test, cat   []string
	}{
		{"xz", ".xz", Options{ChunkSize: 2 << 20, Level: 1}, []string{"xz", "-t"}, []string{"xz", "-dc"}},
		{"gz", ".gz", Options{}, []string{"gzip", "-t"}, []string{"gzip", "-dc"}},
		{"zst", ".zst", Options{}, []string{"zstd", "-tq"}, []string{"zstd", "-dcq"}},
	} {
		out := convertTo(t, raw, ext, tc.format, tc.o)
		path := filepath.Join(dir, "img"+tc.ext)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		testimg.Run(t, tc.test[0], append(tc.test[1:], path)...)
		got, err := exec.Command(tc.cat[0], append(tc.cat[1:], path)...).Output()
		if err != nil {
			t.Fatalf("%v: %v", tc.cat, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %s gives other bytes", tc.format, tc.cat[0])
		}
		if tc.format == "xz" {
			list := testimg.Run(t, "xz", "--robot", "-lv", path)
			blocks := strings.Count(list, "\nblock\t")
			if blocks < 5 {
				t.Errorf("xz -l lists %d blocks, want several:\n%s", blocks, list)
			}
		}
	}
}

// TestTruncated checks that a cut output fails to read back.
func TestTruncated(t *testing.T) {
	raw, ext, _ := synthetic(t, 9<<20)
	for _, tc := range []struct {
		format string
		o      Options
		open   func(r io.ReaderAt, size int64) (image.Image, error)
	}{
		{"xz", Options{Level: 1, ChunkSize: 1 << 20}, func(r io.ReaderAt, n int64) (image.Image, error) { return xz.New(r, n) }},
		{"zst", Options{}, func(r io.ReaderAt, n int64) (image.Image, error) { return zstd.New(r, n) }},
		{"gz", Options{}, func(r io.ReaderAt, n int64) (image.Image, error) { return imggzip.New(r, n) }},
	} {
		out := convertTo(t, raw, ext, tc.format, tc.o)
		cut := out[:len(out)*2/3]
		img, err := tc.open(bytes.NewReader(cut), int64(len(cut)))
		if err == nil {
			b := make([]byte, img.Size())
			_, err = img.ReadAt(b, 0)
			s, ok := image.As[interface{ Stream() (io.ReadCloser, error) }](img)
			if err == nil && ok {
				var rc io.ReadCloser
				if rc, err = s.Stream(); err == nil {
					_, err = io.Copy(io.Discard, rc)
					rc.Close()
				}
			}
			img.Close()
		}
		if err == nil {
			t.Errorf("%s: a truncated output reads back without an error", tc.format)
		}
	}
}

func TestBmap(t *testing.T) {
	raw, ext, want := synthetic(t, 6<<20+100)
	var bm bytes.Buffer
	convertTo(t, raw, ext, "zst", Options{Bmap: &bm})
	m, err := bmap.Parse(bytes.NewReader(bm.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != "2.0" || m.ImageSize != int64(len(raw)) || m.BlockSize != 4096 {
		t.Fatalf("bmap header: %+v", m)
	}
	var data int64
	for _, e := range ext {
		if e.Kind == image.Data {
			data += e.Len
		}
	}
	if m.MappedBytes() != data {
		t.Errorf("bmap maps %d bytes, the extents %d", m.MappedBytes(), data)
	}
	for _, r := range m.Ranges {
		sum := sha256.Sum256(want[m.Off(r) : m.Off(r)+m.Len(r)])
		if r.Checksum != string(hexOf(sum[:])) {
			t.Fatalf("range %d-%d: checksum differs", r.First, r.Last)
		}
	}
}

func hexOf(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return out
}

// TestRawHoles checks that a raw file output has holes for Zero extents.
func TestRawHoles(t *testing.T) {
	size := 64 << 20
	raw := make([]byte, size)
	for i := range 1 << 20 {
		raw[i] = byte(i % 251)
	}
	ext := []image.Extent{{Off: 0, Len: 1 << 20, Kind: image.Data}, {Off: 1 << 20, Len: int64(size - 1<<20), Kind: image.Zero}}
	path := filepath.Join(t.TempDir(), "out.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	fm, _ := Lookup("raw")
	img := image.NewReader(bytes.NewReader(raw), int64(size))
	if err := Copy(context.Background(), img, ext, f, fm, Options{}, &Result{}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("raw output differs (%v)", err)
	}
	if used := allocated(t, path); used > 4<<20 {
		t.Errorf("raw output uses %d bytes on disk for 1 MiB of data: no holes", used)
	}
}

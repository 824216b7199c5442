package image_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"imgtool/image"
)

const mib = 1 << 20

// pattern returns n bytes that differ at every offset and contain no zero
// byte, so that a hole read by mistake is noticed.
func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(255) + 1)
	}
	return b
}

// writeSparse creates a file of the given size holding data at the given
// offsets (written with WriteAt after Truncate, so everything else is a
// hole) and returns its expected content.
func writeSparse(t testing.TB, path string, size int64, islands []image.Extent) []byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	var want []byte
	if size <= 64*mib {
		want = make([]byte, size)
	}
	for i, e := range islands {
		b := pattern(uint64(i), int(e.Len))
		if _, err := f.WriteAt(b, e.Off); err != nil {
			t.Fatal(err)
		}
		if want != nil {
			copy(want[e.Off:], b)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

// checkCover checks that ext lists [0, size) in order, without gaps or
// empty extents, with adjacent extents of different kinds.
func checkCover(t *testing.T, ext []image.Extent, size int64) {
	t.Helper()
	var off int64
	for i, e := range ext {
		if e.Off != off {
			t.Fatalf("extent %d %+v starts at %d, want %d (all: %v)", i, e, e.Off, off, ext)
		}
		if e.Len <= 0 {
			t.Fatalf("extent %d %+v is empty", i, e)
		}
		if e.Kind != image.Data && e.Kind != image.Zero {
			t.Fatalf("extent %d %+v has kind %v", i, e, e.Kind)
		}
		if i > 0 && ext[i-1].Kind == e.Kind {
			t.Fatalf("extents %d and %d are adjacent %v extents, not merged: %v", i-1, i, e.Kind, ext)
		}
		off = e.End()
	}
	if off != size {
		t.Fatalf("extents end at %d, size is %d: %v", off, size, ext)
	}
}

func openT(t *testing.T, path string, opts ...image.Option) image.Image {
	t.Helper()
	img, err := image.Open(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

func readAll(t *testing.T, img image.Image) []byte {
	t.Helper()
	b := make([]byte, img.Size())
	if n, err := img.ReadAt(b, 0); n != len(b) || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt whole image: %d bytes, %v", n, err)
	}
	return b
}

func TestSparseExtents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sparse.img")
	const size = 8 * mib
	islands := []image.Extent{{Off: 1 * mib, Len: mib}, {Off: 4 * mib, Len: mib}}
	want := writeSparse(t, path, size, islands)

	img := openT(t, path)
	if img.Format() != "raw" || img.Size() != size {
		t.Fatalf("Format %q Size %d, want raw %d", img.Format(), img.Size(), size)
	}
	ext, err := img.Extents()
	if err != nil {
		t.Fatal(err)
	}
	checkCover(t, ext, size)

	// Every written byte lies in a Data extent.
	for _, is := range islands {
		for _, e := range ext {
			if e.Kind == image.Zero && e.Off < is.End() && is.Off < e.End() {
				t.Fatalf("written range %+v overlaps Zero extent %+v", is, e)
			}
		}
	}
	// Every Zero extent reads as zeros, and the content is what was written.
	got := readAll(t, img)
	if !bytes.Equal(got, want) {
		t.Fatal("content differs from what was written")
	}
	holes := 0
	for _, e := range ext {
		if e.Kind == image.Zero {
			holes++
			if i := bytes.IndexFunc(got[e.Off:e.End()], func(r rune) bool { return r != 0 }); i >= 0 {
				t.Fatalf("Zero extent %+v has data at %d", e, e.Off+int64(i))
			}
		}
	}
	if holes == 0 {
		t.Logf("the filesystem of %s reports no holes; checked coverage only", path)
		return
	}
	exact := []image.Extent{
		{Off: 0, Len: 1 * mib, Kind: image.Zero},
		{Off: 1 * mib, Len: 1 * mib, Kind: image.Data},
		{Off: 2 * mib, Len: 2 * mib, Kind: image.Zero},
		{Off: 4 * mib, Len: 1 * mib, Kind: image.Data},
		{Off: 5 * mib, Len: 3 * mib, Kind: image.Zero},
	}
	if fmt.Sprint(ext) != fmt.Sprint(exact) {
		t.Fatalf("Extents = %v\nwant %v", ext, exact)
	}
}

func TestFullFileOneExtent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "full.img")
	data := pattern(7, 3*mib+123)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	img := openT(t, path)
	ext, err := img.Extents()
	if err != nil {
		t.Fatal(err)
	}
	want := []image.Extent{{Off: 0, Len: int64(len(data)), Kind: image.Data}}
	if fmt.Sprint(ext) != fmt.Sprint(want) {
		t.Fatalf("Extents = %v, want %v", ext, want)
	}
	if !bytes.Equal(readAll(t, img), data) {
		t.Fatal("content differs")
	}
}

func TestEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.img")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	img := openT(t, path)
	ext, err := img.Extents()
	if err != nil || len(ext) != 0 || img.Size() != 0 {
		t.Fatalf("Size %d Extents %v %v, want 0 and none", img.Size(), ext, err)
	}
	if n, err := img.ReadAt(make([]byte, 1), 0); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt = %d, %v; want 0, io.EOF", n, err)
	}
}

func testReadAtEOF(t *testing.T, img image.Image, want []byte) {
	t.Helper()
	size := img.Size()
	buf := make([]byte, 10)
	if n, err := img.ReadAt(buf, size); n != 0 || err != io.EOF {
		t.Errorf("ReadAt(size) = %d, %v; want 0, io.EOF", n, err)
	}
	if n, err := img.ReadAt(buf, size+100); n != 0 || err != io.EOF {
		t.Errorf("ReadAt(size+100) = %d, %v; want 0, io.EOF", n, err)
	}
	n, err := img.ReadAt(buf, size-4)
	if n != 4 || err != io.EOF || !bytes.Equal(buf[:4], want[size-4:]) {
		t.Errorf("ReadAt(size-4) = %d, %v, %x; want 4, io.EOF, %x", n, err, buf[:n], want[size-4:])
	}
	if n, err := img.ReadAt(buf, size-10); n != 10 || (err != nil && err != io.EOF) || !bytes.Equal(buf, want[size-10:]) {
		t.Errorf("ReadAt(size-10) = %d, %v", n, err)
	}
	if _, err := img.ReadAt(buf, -1); err == nil || err == io.EOF {
		t.Errorf("ReadAt(-1) = %v, want an error", err)
	}
}

func TestReadAtEOF(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eof.img")
	data := pattern(3, 5000)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("file", func(t *testing.T) { testReadAtEOF(t, openT(t, path), data) })
	t.Run("NewReader", func(t *testing.T) {
		img := image.NewReader(bytes.NewReader(data), int64(len(data)))
		testReadAtEOF(t, img, data)
		// A reader longer than the size given is cut at that size.
		short := image.NewReader(bytes.NewReader(data), 4000)
		testReadAtEOF(t, short, data[:4000])
		if short.Format() != "raw" || short.Close() != nil {
			t.Error("NewReader: want format raw and a nil Close")
		}
		ext, err := short.Extents()
		if err != nil || fmt.Sprint(ext) != fmt.Sprint([]image.Extent{{Off: 0, Len: 4000, Kind: image.Data}}) {
			t.Errorf("NewReader Extents = %v, %v", ext, err)
		}
	})
}

func TestConcurrentReadAt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conc.img")
	const size = 8 * mib
	want := writeSparse(t, path, size, []image.Extent{{Off: 0, Len: mib}, {Off: 3 * mib, Len: 2 * mib}, {Off: 7 * mib, Len: 4096}})
	img := openT(t, path)

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	stop := make(chan struct{})
	// Extents moves the descriptor's offset; reads must not notice.
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := img.Extents(); err != nil {
				errs <- err
				return
			}
		}
	})
	var readers sync.WaitGroup
	for g := range 16 {
		readers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 2))
			buf := make([]byte, 64*1024)
			for range 200 {
				off := r.Int64N(size)
				n := r.IntN(len(buf)) + 1
				got, err := img.ReadAt(buf[:n], off)
				if err != nil && err != io.EOF {
					errs <- err
					return
				}
				if !bytes.Equal(buf[:got], want[off:off+int64(got)]) {
					errs <- fmt.Errorf("goroutine %d: wrong bytes at %d+%d", g, off, got)
					return
				}
			}
		})
	}
	readers.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// fakeMagic marks a file in the made-up "fake" container: a 512-byte header
// starting with the magic, then the disk.
var fakeMagic = []byte("FAKEIMG1")

var errBadChecksum = errors.New("header checksum mismatch")

// fakeImage is the disk inside a fake container.
type fakeImage struct {
	image.Image
	closed bool
}

func (f *fakeImage) Format() string { return "fake" }
func (f *fakeImage) Close() error   { f.closed = true; return nil }

// fakeFormat recognises fakeMagic and records what it was given.
type fakeFormat struct {
	name   string
	src    io.ReaderAt
	result *fakeImage
}

func (ff *fakeFormat) format() image.Format {
	return image.Format{Name: ff.name, Probe: func(r io.ReaderAt, size int64) (image.Image, error) {
		hdr := make([]byte, len(fakeMagic))
		if _, err := r.ReadAt(hdr, 0); err != nil || !bytes.Equal(hdr, fakeMagic) || size < 512 {
			return nil, fmt.Errorf("%s: no magic: %w", ff.name, image.ErrWrongType)
		}
		ff.src = r
		ff.result = &fakeImage{Image: image.NewReader(io.NewSectionReader(r, 512, size-512), size-512)}
		return ff.result, nil
	}}
}

var wrongType = image.Format{Name: "never", Probe: func(io.ReaderAt, int64) (image.Image, error) {
	return nil, fmt.Errorf("never: bad magic: %w", image.ErrWrongType)
}}

func brokenFormat(name string, err error) image.Format {
	return image.Format{Name: name, Probe: func(io.ReaderAt, int64) (image.Image, error) {
		return nil, fmt.Errorf("reading header at offset 64: %w", err)
	}}
}

func TestOpenFallsBackToRaw(t *testing.T) {
	// The name suggests the fake format; the content decides.
	path := filepath.Join(t.TempDir(), "disk.fake")
	data := pattern(11, 4096)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ff := &fakeFormat{name: "fake"}
	img := openT(t, path, image.WithFormats(wrongType), image.WithFormats(ff.format()))
	if img.Format() != "raw" || img.Size() != int64(len(data)) {
		t.Fatalf("Format %q Size %d, want raw %d", img.Format(), img.Size(), len(data))
	}
	if ff.result != nil {
		t.Fatal("fake prober claimed a file without its magic")
	}
	if !bytes.Equal(readAll(t, img), data) {
		t.Fatal("content differs")
	}
}

func TestOpenUsesRecognisingFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.img")
	payload := pattern(12, 3000)
	data := append(append(append([]byte{}, fakeMagic...), make([]byte, 512-len(fakeMagic))...), payload...)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	first, second := &fakeFormat{name: "fake"}, &fakeFormat{name: "fake2"}
	img, err := image.Open(path, image.WithFormats(wrongType, first.format(), second.format()))
	if err != nil {
		t.Fatal(err)
	}
	if img.Format() != "fake" || img.Size() != int64(len(payload)) {
		t.Fatalf("Format %q Size %d, want fake %d", img.Format(), img.Size(), len(payload))
	}
	if second.result != nil {
		t.Fatal("a later format was tried after one recognised the content")
	}
	if !bytes.Equal(readAll(t, img), payload) {
		t.Fatal("content differs")
	}
	if _, err := first.src.ReadAt(make([]byte, 1), 0); err != nil {
		t.Fatalf("file unreadable before Close: %v", err)
	}
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	if !first.result.closed {
		t.Error("Close did not close the container image")
	}
	if _, err := first.src.ReadAt(make([]byte, 1), 0); !errors.Is(err, os.ErrClosed) {
		t.Errorf("after Close, reading the file gives %v, want os.ErrClosed", err)
	}
}

func TestOpenRealProbeError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, pattern(13, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	errOther := errors.New("unsupported version 9")
	_, err := image.Open(path, image.WithFormats(wrongType, brokenFormat("alpha", errBadChecksum), brokenFormat("beta", errOther)))
	if err == nil {
		t.Fatal("Open fell back to raw after a prober failed")
	}
	msg := err.Error()
	for _, s := range []string{path, "alpha", "header checksum mismatch", "beta", "unsupported version 9"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not mention %q", msg, s)
		}
	}
	if strings.Contains(msg, "never") {
		t.Errorf("error %q mentions a prober that did not recognise the file", msg)
	}
	if !errors.Is(err, errBadChecksum) || !errors.Is(err, errOther) {
		t.Errorf("error %v does not wrap both prober errors", err)
	}
	if errors.Is(err, image.ErrWrongType) {
		t.Errorf("error %v wraps ErrWrongType", err)
	}
}

func TestOpenBadFormatValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, pattern(14, 512), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []image.Format{
		{Name: "noprobe"},
		{Name: "nilimage", Probe: func(io.ReaderAt, int64) (image.Image, error) { return nil, nil }},
	} {
		if _, err := image.Open(path, image.WithFormats(f)); err == nil || !strings.Contains(err.Error(), f.Name) {
			t.Errorf("%s: Open error = %v, want one naming the format", f.Name, err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := image.Open(filepath.Join(dir, "missing.img"))
	if !errors.Is(err, iofs.ErrNotExist) || !strings.Contains(err.Error(), "check the path") {
		t.Errorf("missing file: %v", err)
	}
	_, err = image.Open(dir)
	if !errors.Is(err, image.ErrNotRegular) || !strings.Contains(err.Error(), "directory") {
		t.Errorf("directory: %v", err)
	}
	if image.IsDevice(dir) || image.IsDevice(filepath.Join(dir, "missing.img")) {
		t.Error("IsDevice true for a directory or a missing file")
	}
}

func TestFormatError(t *testing.T) {
	var err error = fmt.Errorf("reading L2 table: %w", &image.FormatError{Format: "qcow2", Off: 0x30000, Msg: "offset beyond end of file"})
	var fe *image.FormatError
	if !errors.As(err, &fe) || fe.Off != 0x30000 {
		t.Fatalf("errors.As failed on %v", err)
	}
	msg := fe.Error()
	for _, s := range []string{"qcow2", "offset beyond end of file", "0x30000", "196608"} {
		if !strings.Contains(msg, s) {
			t.Errorf("%q does not contain %q", msg, s)
		}
	}
}

func BenchmarkExtents(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.img")
	const size = 1 << 30
	const islands = 1000
	var list []image.Extent
	for i := range int64(islands) {
		list = append(list, image.Extent{Off: i * (size / islands) &^ 4095, Len: 4096})
	}
	writeSparse(b, path, size, list)
	img, err := image.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer img.Close()
	var n int
	b.ResetTimer()
	for b.Loop() {
		ext, err := img.Extents()
		if err != nil {
			b.Fatal(err)
		}
		n = len(ext)
	}
	b.ReportMetric(float64(n), "extents")
}

package flash

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"imgtool/image"
)

// randomFile writes size pseudo-random bytes (seeded) to a new file.
func randomFile(t testing.TB, path string, size int64, seed uint64) []byte {
	t.Helper()
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func openImage(t testing.TB, path string) image.Image {
	t.Helper()
	img, err := image.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

func openTargetT(t testing.TB, path string, o OpenOptions) Target {
	t.Helper()
	tg, err := OpenTarget(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// TestWriteFileTarget writes an image whose size is not a multiple of 4 KiB
// into a new file and into a larger existing file.
func TestWriteFileTarget(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	want := randomFile(t, src, 10<<20+1234, 1)
	img := openImage(t, src)

	dst := filepath.Join(dir, "new.img")
	res, err := Write(context.Background(), img, []Target{openTargetT(t, dst, OpenOptions{Create: true})}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dst)
	if !bytes.Equal(got, want) {
		t.Fatal("new file differs from the image")
	}
	if !res.Verified || res.BytesWritten != int64(len(want)) || res.SHA256 != sha(want) {
		t.Errorf("result %+v", res)
	}

	// A larger file keeps its tail.
	big := filepath.Join(dir, "big.img")
	old := randomFile(t, big, 12<<20, 2)
	if _, err := Write(context.Background(), img, []Target{openTargetT(t, big, OpenOptions{})}, Options{ChunkSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(big)
	if !bytes.Equal(got[:len(want)], want) || !bytes.Equal(got[len(want):], old[len(want):]) {
		t.Fatal("larger file: wrong content")
	}
}

// streamImage offers Stream and counts ReadAt calls.
type streamImage struct {
	image.Image
	readAts atomic.Int64
	streams atomic.Int64
}

func (s *streamImage) ReadAt(p []byte, off int64) (int, error) {
	s.readAts.Add(1)
	return s.Image.ReadAt(p, off)
}

func (s *streamImage) Stream() (io.ReadCloser, error) {
	s.streams.Add(1)
	return io.NopCloser(io.NewSectionReader(s.Image, 0, s.Size())), nil
}

func TestWriteUsesStream(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	want := randomFile(t, src, 6<<20+512, 3)
	img := &streamImage{Image: openImage(t, src)}
	dst := filepath.Join(dir, "dst.img")
	res, err := Write(context.Background(), img, []Target{openTargetT(t, dst, OpenOptions{Create: true})}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) {
		t.Fatal("content differs")
	}
	if img.streams.Load() != 1 || img.readAts.Load() != 0 {
		t.Errorf("streams %d, ReadAt calls %d; want 1 and 0", img.streams.Load(), img.readAts.Load())
	}
	if res.SHA256 != sha(want) {
		t.Errorf("SHA256 %s", res.SHA256)
	}
}

// cancelAfter cancels a context after the first progress update.
type cancelAfter struct {
	cancel context.CancelFunc
	n      atomic.Int64
}

func (c *cancelAfter) Phase(string, int64) {}
func (c *cancelAfter) Update(int64) {
	if c.n.Add(1) == 1 {
		c.cancel()
	}
}

func TestWriteCancelled(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	randomFile(t, src, 64<<20, 4)
	img := openImage(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := &cancelAfter{cancel: cancel}
	_, err := Write(ctx, img, []Target{openTargetT(t, filepath.Join(dir, "dst.img"), OpenOptions{Create: true})},
		Options{ChunkSize: 1 << 20, Buffers: 2, Progress: p})
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "incomplete image") {
		t.Fatalf("err = %v", err)
	}
	// Stopped promptly: far fewer than the 64 chunks were completed.
	if n := p.n.Load(); n > 8 {
		t.Errorf("%d chunks done after cancelling", n)
	}
}

func TestWriteDiscardFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	want := randomFile(t, src, 8<<20, 5)
	dst := filepath.Join(dir, "dst.img")
	randomFile(t, dst, 8<<20, 6)
	img := openImage(t, src)
	m := []image.Extent{{Off: 1 << 20, Len: 1 << 20, Kind: image.Data}}
	res, err := Write(context.Background(), img, []Target{openTargetT(t, dst, OpenOptions{})}, Options{BlockMap: m, Unmapped: DiscardUnmapped})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dst)
	exp := make([]byte, len(want))
	copy(exp[1<<20:2<<20], want[1<<20:2<<20])
	if !bytes.Equal(got, exp) {
		t.Error("discarded ranges of a file should read as zeros (punched holes)")
	}
	if res.BytesWritten != 1<<20 || res.BytesSkipped != 7<<20 || res.SHA256 != "" {
		t.Errorf("result %+v", res)
	}
}

func TestCheckFits(t *testing.T) {
	err := CheckFits("/dev/sdz", 1000<<20, 900<<20, 950<<20)
	var ts *TooSmallError
	if !errors.As(err, &ts) || !errors.Is(err, ErrTooSmall) || ts.Shortfall() != 100<<20 {
		t.Fatalf("err = %v", err)
	}
	for _, s := range []string{"100.0 MiB (104857600 bytes) larger than /dev/sdz", "last partition ends at byte 996147200", "imgtool shrink IMAGE"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message %q lacks %q", err, s)
		}
	}
	if err := CheckFits("/dev/sdz", 900<<20, 900<<20, 0); err != nil {
		t.Errorf("exact fit: %v", err)
	}
}

func TestPlan(t *testing.T) {
	img := image.NewReader(bytes.NewReader(make([]byte, 40000)), 40000)
	segs, err := plan(img, Options{BlockMap: []image.Extent{
		{Off: 5000, Len: 10, Kind: image.Data},
		{Off: 8100, Len: 100, Kind: image.Data}, // touches the same 4 KiB block
		{Off: 20000, Len: 100, Kind: image.Zero},
		{Off: 39000, Len: 1000, Kind: image.Data},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []segment{
		{0, 4096, actLeave, false},
		{4096, 8192, actWrite, false},
		{12288, 24576, actLeave, false},
		{36864, 3136, actWrite, false},
	}
	if len(segs) != len(want) {
		t.Fatalf("got %+v", segs)
	}
	for i := range want {
		if segs[i] != want[i] {
			t.Errorf("segment %d = %+v, want %+v", i, segs[i], want[i])
		}
	}
	if _, err := plan(img, Options{BlockMap: []image.Extent{{Off: 39000, Len: 2000}}}); err == nil {
		t.Error("a block map past the end was accepted")
	}
}

func TestWriteNoVerifySkipsTheImageHash(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	want := randomFile(t, src, 3<<20+512, 5)
	dst := filepath.Join(dir, "dst.img")
	res, err := Write(context.Background(), openImage(t, src), []Target{openTargetT(t, dst, OpenOptions{Create: true})}, Options{NoVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) {
		t.Fatal("content differs")
	}
	if res.Verified || res.SHA256 != "" {
		t.Errorf("NoVerify: Verified %v, SHA256 %q; want false and no hash", res.Verified, res.SHA256)
	}
}

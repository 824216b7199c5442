package flash

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"imgtool/image"
)

// seekImage is an image that reports whether it is seekable, records its
// ReadAt calls and counts its Stream and Extents calls.
type seekImage struct {
	image.Image
	seekable bool

	mu      sync.Mutex
	reads   [][2]int64 // offset, length, in call order
	streams atomic.Int64
	extents atomic.Int64
}

func (s *seekImage) Seekable() bool { return s.seekable }

func (s *seekImage) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	s.reads = append(s.reads, [2]int64{off, int64(len(p))})
	s.mu.Unlock()
	return s.Image.ReadAt(p, off)
}

func (s *seekImage) Stream() (io.ReadCloser, error) {
	s.streams.Add(1)
	return io.NopCloser(io.NewSectionReader(s.Image, 0, s.Size())), nil
}

func (s *seekImage) Extents() ([]image.Extent, error) {
	s.extents.Add(1)
	return s.Image.Extents()
}

// randomMap returns sorted, disjoint Data extents within size, 4 KiB
// aligned.
func randomMap(rng *rand.Rand, size int64) []image.Extent {
	var m []image.Extent
	for off := int64(0); off < size; {
		gap := rng.Int64N(12<<20) &^ 4095
		n := (1 + rng.Int64N(3<<20)) &^ 4095
		off += gap
		if off >= size {
			break
		}
		n = max(4096, min(n, size-off))
		m = append(m, image.Extent{Off: off, Len: n, Kind: image.Data})
		off += n
	}
	return m
}

// TestWriteSeekableReadsOnlyMapped writes a seekable image with random
// block maps: it must be read by ReadAt (not streamed), every mapped byte
// must reach the target, and no read may touch a chunk (a frame of a
// seekable zstd file) that holds no mapped byte.
func TestWriteSeekableReadsOnlyMapped(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	const chunk = 1 << 20
	want := randomFile(t, src, 48<<20+4096, 11)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 6 {
		img := &seekImage{Image: openImage(t, src), seekable: true}
		m := randomMap(rng, img.Size())
		dst := filepath.Join(dir, "dst.img")
		os.Remove(dst)
		old := bytes.Repeat([]byte{0xee}, len(want))
		if err := os.WriteFile(dst, old, 0o644); err != nil {
			t.Fatal(err)
		}
		o := Options{BlockMap: m, ChunkSize: chunk, NoVerify: round%2 == 1}
		if _, err := Write(context.Background(), img, []Target{openTargetT(t, dst, OpenOptions{})}, o); err != nil {
			t.Fatal(err)
		}
		if img.streams.Load() != 0 || img.extents.Load() != 0 {
			t.Errorf("round %d: %d streams, %d Extents calls; want ReadAt only", round, img.streams.Load(), img.extents.Load())
		}
		got, _ := os.ReadFile(dst)
		mapped := make([]bool, len(want)/4096+1)
		for _, e := range m {
			for off := e.Off; off < e.End(); off += 4096 {
				mapped[off/4096] = true
			}
			if !bytes.Equal(got[e.Off:e.End()], want[e.Off:e.End()]) {
				t.Fatalf("round %d: mapped range %d+%d differs", round, e.Off, e.Len)
			}
		}
		for off := 0; off < len(want); off += 4096 {
			if !mapped[off/4096] && !bytes.Equal(got[off:off+4096], old[off:off+4096]) {
				t.Fatalf("round %d: unmapped block at %d was written", round, off)
			}
		}
		chunkMapped := func(c int64) bool {
			for off := c * chunk; off < min((c+1)*chunk, int64(len(want))); off += 4096 {
				if mapped[off/4096] {
					return true
				}
			}
			return false
		}
		for _, r := range img.reads {
			if r[0]/chunk != (r[0]+r[1]-1)/chunk {
				t.Errorf("round %d: read %d+%d spans two chunks", round, r[0], r[1])
			}
			if !chunkMapped(r[0] / chunk) {
				t.Errorf("round %d: read %d+%d of a chunk with no mapped byte", round, r[0], r[1])
			}
		}
	}
}

// TestWriteSequentialReadsInOrder checks Options.Sequential: a seekable
// image is then read one piece at a time, front to back.
func TestWriteSequentialReadsInOrder(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	want := randomFile(t, src, 30<<20, 12)
	img := &seekImage{Image: openImage(t, src), seekable: true}
	dst := filepath.Join(dir, "dst.img")
	m := randomMap(rand.New(rand.NewPCG(3, 4)), img.Size())
	o := Options{BlockMap: m, ChunkSize: 512 << 10, Sequential: true}
	if _, err := Write(context.Background(), img, []Target{openTargetT(t, dst, OpenOptions{Create: true})}, o); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dst)
	for _, e := range m {
		if !bytes.Equal(got[e.Off:e.End()], want[e.Off:e.End()]) {
			t.Fatalf("mapped range %d+%d differs", e.Off, e.Len)
		}
	}
	for i := 1; i < len(img.reads); i++ {
		if img.reads[i][0] < img.reads[i-1][0]+img.reads[i-1][1] {
			t.Fatalf("read %d at %d comes before the end of the one before it", i, img.reads[i][0])
		}
	}
}

// TestWriteStreamOnlySkipsExtents checks that an image that is not
// seekable is streamed whole without asking for its extents (which would
// decode it once more), and still verified.
func TestWriteStreamOnlySkipsExtents(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	want := randomFile(t, src, 9<<20+4096, 13)
	clear(want[2<<20 : 6<<20]) // zero chunks: hashed from the cache
	if err := os.WriteFile(src, want, 0o644); err != nil {
		t.Fatal(err)
	}
	img := &seekImage{Image: openImage(t, src)}
	dst := filepath.Join(dir, "dst.img")
	res, err := Write(context.Background(), img, []Target{openTargetT(t, dst, OpenOptions{Create: true})}, Options{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) {
		t.Fatal("content differs")
	}
	if img.streams.Load() != 1 || img.extents.Load() != 0 || len(img.reads) != 0 {
		t.Errorf("streams %d, Extents %d, ReadAt %d: want 1, 0, 0", img.streams.Load(), img.extents.Load(), len(img.reads))
	}
	if !res.Verified || res.SHA256 != sha(want) {
		t.Errorf("result %+v", res)
	}
}

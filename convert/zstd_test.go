package convert

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"

	imgzstd "imgtool/image/zstd"
)

// TestZstdZeroFrames checks that chunks of zeros are written as frames of
// RLE blocks, which the general decoder accepts too, and that the file
// reads back at random offsets exactly.
func TestZstdZeroFrames(t *testing.T) {
	raw, ext, want := synthetic(t, 30<<20+999)
	// A long stretch of zeros (a Zero extent and zeros in a Data one).
	clear(want[8<<20 : 20<<20])
	clear(raw[8<<20 : 20<<20])
	out := convertTo(t, raw, ext, "zst", Options{ChunkSize: 1 << 20})

	zf := zeroFrame(1 << 20)
	if len(zf) > 4+1+4+8*4+4 {
		t.Errorf("zero frame of 1 MiB is %d bytes", len(zf))
	}
	if n := bytes.Count(out, zf); n < 10 {
		t.Errorf("%d RLE zero frames in the output, want at least 10", n)
	}
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	for _, n := range []int{1, 200, 300, 70000, 1 << 20, 3<<20 + 7} {
		got, err := dec.DecodeAll(zeroFrame(n), nil)
		if err != nil || len(got) != n || bytes.Count(got, []byte{0}) != n {
			t.Errorf("zeroFrame(%d): decoder gives %d bytes, %v", n, len(got), err)
		}
	}
	// Everything decodes, frame by frame, to the image.
	got, err := dec.DecodeAll(out, nil)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("whole file: %d bytes, %v", len(got), err)
	}
	img, err := imgzstd.New(bytes.NewReader(out), int64(len(out)))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	rng := rand.New(rand.NewPCG(8, 8))
	for range 200 {
		off := rng.Int64N(int64(len(want)))
		p := make([]byte, min(int64(1+rng.IntN(3<<20)), int64(len(want))-off))
		if n, err := img.ReadAt(p, off); n != len(p) || !bytes.Equal(p, want[off:off+int64(n)]) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v or other bytes", len(p), off, n, err)
		}
	}
}

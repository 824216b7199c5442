package xz

import (
	"bytes"
	"io"
	"testing"

	"imgtool/image/spool"
)

// fuzzSeeds returns small xz files made by the xz tool with several block
// and check settings, and two streams joined with padding.
func fuzzSeeds(f *testing.F) [][]byte {
	data := makeImage(70000, 42)[:70000]
	var seeds [][]byte
	for _, args := range [][]string{
		{"-0"}, {"-0", "--check=none"}, {"-0", "--check=crc32"}, {"-0", "--check=sha256"},
		{"-0", "--block-size=16KiB"}, {"-0", "-T2", "--block-size=20KiB", "--check=sha256"},
	} {
		seeds = append(seeds, compress(f, data, args...))
	}
	a := compress(f, data[:1000], "-0")
	b := compress(f, data[1000:3000], "-0", "--check=crc32")
	seeds = append(seeds, append(append(append([]byte{}, a...), 0, 0, 0, 0), b...))
	seeds = append(seeds, compress(f, nil, "-0"))
	return seeds
}

func FuzzXZIndex(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ix, err := readIndex(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		var off int64
		for _, blk := range ix.blocks {
			if blk.uoff != off || blk.ulen < 0 || blk.off < 0 || blk.off+blk.unpadded > int64(len(b)) {
				t.Fatalf("inconsistent block %+v", blk)
			}
			off += blk.ulen
		}
		if off != ix.size {
			t.Fatalf("blocks add up to %d, size %d", off, ix.size)
		}
	})
}

func FuzzXZ(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	tmp := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := newImage(bytes.NewReader(b), int64(len(b)), 1<<20, []spool.Option{spool.WithDir(tmp), spool.WithMaxSize(8 << 20)})
		if err != nil {
			return
		}
		defer img.Close()
		size := img.Size()
		if size < 0 {
			t.Fatalf("negative size %d", size)
		}
		buf := make([]byte, min(size, 1<<20))
		var first []byte
		if n, err := img.ReadAt(buf, 0); err == nil || (err == io.EOF && int64(n) == size) {
			first = append([]byte{}, buf[:n]...)
		}
		img.ReadAt(buf[:min(len(buf), 4096)], size/2)
		rc, err := img.Stream()
		if err != nil {
			return
		}
		got, err := io.ReadAll(io.LimitReader(rc, 1<<20))
		rc.Close()
		if err == nil && first != nil && !bytes.Equal(got[:min(len(got), len(first))], first[:min(len(got), len(first))]) {
			t.Fatalf("Stream and ReadAt disagree")
		}
	})
}

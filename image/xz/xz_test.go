package xz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"imgtool/image"
	"imgtool/image/spool"
	"imgtool/internal/testimg"
	"imgtool/internal/zero"
)

const mib = 1 << 20

// makeImage returns size bytes mixing zero runs, random data and text, so
// that compressors produce blocks of varied sizes.
func makeImage(size int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, size)
	for off := 0; off < size; off += 256 << 10 {
		chunk := b[off:min(off+256<<10, size)]
		switch (off >> 18) % 5 {
		case 0, 3: // zeros
		case 1: // random
			for i := range chunk {
				chunk[i] = byte(rng.Uint32())
			}
		default: // text
			var s strings.Builder
			for s.Len() < len(chunk) {
				fmt.Fprintf(&s, "line %d value %x\n", rng.IntN(100000), rng.Uint32())
			}
			copy(chunk, s.String())
		}
	}
	return b
}

// compress writes data to a file, runs xz with args on it and returns the
// compressed bytes.
func compress(t testing.TB, data []byte, args ...string) []byte {
	t.Helper()
	testimg.NeedTools(t, "xz")
	dir := t.TempDir()
	src := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	testimg.Run(t, "xz", append(append([]string{"-k", "-q"}, args...), src)...)
	out, err := os.ReadFile(src + ".xz")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkImage compares every way of reading img with want.
func checkImage(t *testing.T, img image.Image, want []byte) {
	t.Helper()
	if img.Format() != "xz" {
		t.Errorf("Format = %q", img.Format())
	}
	if img.Size() != int64(len(want)) {
		t.Fatalf("Size = %d, want %d", img.Size(), len(want))
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < 20; i++ {
		off := rng.Int64N(int64(len(want)))
		n := rng.IntN(mib) + 1
		buf := make([]byte, n)
		got, err := img.ReadAt(buf, off)
		end := min(off+int64(n), int64(len(want)))
		if got != int(end-off) {
			t.Fatalf("ReadAt(%d, %d) = %d bytes, %v", n, off, got, err)
		}
		if err != nil && !(err == io.EOF && end == int64(len(want))) {
			t.Fatalf("ReadAt(%d, %d): %v", n, off, err)
		}
		if !bytes.Equal(buf[:got], want[off:end]) {
			t.Fatalf("ReadAt(%d, %d): content differs", n, off)
		}
	}
	if n, err := img.ReadAt(make([]byte, 1), int64(len(want))); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at Size = %d, %v; want io.EOF", n, err)
	}
	rc, err := img.(spool.Streamer).Stream()
	if err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if !bytes.Equal(all, want) {
		t.Fatalf("Stream: %d bytes, content differs from the %d original bytes", len(all), len(want))
	}
	ext, err := img.Extents()
	if err != nil {
		t.Fatal(err)
	}
	var end int64
	for _, e := range ext {
		if e.Off != end {
			t.Fatalf("extents leave a gap at %d: %v", end, ext)
		}
		if e.Kind == image.Zero && !bytes.Equal(want[e.Off:e.End()], make([]byte, e.Len)) {
			t.Fatalf("zero extent %v holds data", e)
		}
		end = e.End()
	}
	if end != int64(len(want)) {
		t.Fatalf("extents end at %d, want %d", end, len(want))
	}
}

func TestFormats(t *testing.T) {
	data := makeImage(3*mib+12345, 1)
	for _, tc := range []struct {
		name     string
		args     []string
		maxBlock int64
		indexed  bool
		blocks   int
	}{
		{"multiblock", []string{"-0", "-T0", "--block-size=1MiB"}, MaxIndexedBlock, true, 4},
		{"multiblock-sha256", []string{"-0", "-T0", "--block-size=512KiB", "--check=sha256"}, MaxIndexedBlock, true, 7},
		{"multiblock-crc32", []string{"-0", "--block-size=1MiB", "--check=crc32"}, MaxIndexedBlock, true, 4},
		{"single-none", []string{"-0", "--check=none"}, MaxIndexedBlock, true, 1},
		{"single-spooled", []string{"-1"}, 1 * mib, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			xzData := compress(t, data, tc.args...)
			img, err := newImage(bytes.NewReader(xzData), int64(len(xzData)), tc.maxBlock, []spool.Option{spool.WithDir(t.TempDir())})
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if img.Indexed() != tc.indexed || img.Blocks() != tc.blocks {
				t.Errorf("Indexed, Blocks = %v, %d; want %v, %d", img.Indexed(), img.Blocks(), tc.indexed, tc.blocks)
			}
			checkImage(t, img, data)
		})
	}
}

func TestProbe(t *testing.T) {
	data := makeImage(1*mib, 2)
	xzData := compress(t, data, "-0")
	img, err := Probe(bytes.NewReader(xzData), int64(len(xzData)))
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, img, data)
	img.Close()
	for _, other := range [][]byte{nil, []byte("hello"), data[:4096], make([]byte, 64)} {
		if _, err := Probe(bytes.NewReader(other), int64(len(other))); !errors.Is(err, image.ErrWrongType) {
			t.Errorf("Probe(%d bytes of non-xz) = %v, want ErrWrongType", len(other), err)
		}
	}
}

// TestConcatenated joins two xz files with stream padding between and after
// them, as the spec allows.
func TestConcatenated(t *testing.T) {
	a := makeImage(2*mib+100, 3)
	b := makeImage(1*mib+4, 4)
	za := compress(t, a, "-0", "-T0", "--block-size=1MiB")
	zb := compress(t, b, "-0", "--check=sha256")
	file := append(append(append(append([]byte{}, za...), make([]byte, 8)...), zb...), make([]byte, 12)...)
	img, err := New(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Streams() != 2 {
		t.Errorf("Streams = %d, want 2", img.Streams())
	}
	checkImage(t, img, append(append([]byte{}, a...), b...))
}

// TestDecodesOnlyNeededBlocks reads a few small ranges of a multi-block file
// and checks that only the blocks holding them were decoded.
func TestDecodesOnlyNeededBlocks(t *testing.T) {
	data := makeImage(4*mib, 5)
	xzData := compress(t, data, "-0", "-T0", "--block-size=256KiB")
	img, err := New(bytes.NewReader(xzData), int64(len(xzData)))
	if err != nil {
		t.Fatal(err)
	}
	if img.Blocks() != 16 {
		t.Fatalf("Blocks = %d, want 16", img.Blocks())
	}
	for _, off := range []int64{100, 2*mib + 5, 2*mib + 4000, 4*mib - 600} { // the third hits the cache
		buf := make([]byte, 512)
		if _, err := img.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, data[off:off+512]) {
			t.Fatalf("ReadAt at %d differs", off)
		}
	}
	if got := img.blocks.Decoded(); got != 3 {
		t.Errorf("decoded %d blocks for 4 reads in 3 blocks, want 3", got)
	}
}

func TestConcurrentReadAt(t *testing.T) {
	data := makeImage(2*mib, 6)
	xzData := compress(t, data, "-0", "-T0", "--block-size=128KiB")
	img, err := New(bytes.NewReader(xzData), int64(len(xzData)))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			for range 20 {
				off := rng.Int64N(int64(len(data)) - 200000)
				buf := make([]byte, rng.IntN(200000)+1)
				if _, err := img.ReadAt(buf, off); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(buf, data[off:off+int64(len(buf))]) {
					errs <- fmt.Errorf("ReadAt(%d, %d) differs", len(buf), off)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// readAll reads the whole image through ReadAt and through Stream and
// returns the first error; it fails the test on short data without error.
func readAll(t *testing.T, img *Image, want []byte) error {
	t.Helper()
	buf := make([]byte, img.Size())
	n, err := img.ReadAt(buf, 0)
	if err == nil && (n != len(want) || !bytes.Equal(buf, want)) {
		t.Fatalf("damaged file read without error: %d bytes", n)
	}
	rc, serr := img.Stream()
	if serr == nil {
		got, rerr := io.ReadAll(rc)
		rc.Close()
		if rerr == nil && !bytes.Equal(got, want) {
			t.Fatalf("damaged file streamed without error: %d bytes", len(got))
		}
		serr = rerr
	}
	if (err == nil) != (serr == nil) {
		t.Fatalf("ReadAt says %v but Stream says %v", err, serr)
	}
	return err
}

func TestTruncated(t *testing.T) {
	data := makeImage(2*mib, 8)
	for _, args := range [][]string{{"-0", "-T0", "--block-size=256KiB"}, {"-0"}} {
		xzData := compress(t, data, args...)
		for _, cut := range []int{0, 1, 11, 12, 100, len(xzData) / 3, len(xzData) / 2, len(xzData) - 40, len(xzData) - 12, len(xzData) - 4, len(xzData) - 1} {
			b := xzData[:cut]
			img, err := newImage(bytes.NewReader(b), int64(len(b)), MaxIndexedBlock, []spool.Option{spool.WithDir(t.TempDir())})
			if err == nil {
				t.Errorf("%v cut at %d: New succeeded", args, cut)
				img.Close()
				continue
			}
			var fe *image.FormatError
			if !errors.As(err, &fe) {
				t.Errorf("%v cut at %d: error %v is not a FormatError", args, cut, err)
			}
		}
		// Cut out the middle of a block but keep the index: reading must fail.
		b := append([]byte{}, xzData...)
		copy(b[100:], make([]byte, 200))
		img, err := New(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			continue
		}
		if readAll(t, img, data) == nil {
			t.Errorf("%v with zeroed block data: no error", args)
		}
	}
}

func TestBitFlips(t *testing.T) {
	data := makeImage(512<<10, 9)
	for _, args := range [][]string{{"-0", "-T0", "--block-size=128KiB"}, {"-0", "--check=sha256"}} {
		xzData := compress(t, data, args...)
		rng := rand.New(rand.NewPCG(1, 2))
		positions := []int{0, 6, 7, 8, 12, 13, 14, 20, len(xzData) - 1, len(xzData) - 3, len(xzData) - 8, len(xzData) - 12, len(xzData) - 16, len(xzData) - 20}
		for range 15 {
			positions = append(positions, rng.IntN(len(xzData)))
		}
		for _, pos := range positions {
			b := append([]byte{}, xzData...)
			b[pos] ^= 1 << rng.IntN(8)
			img, err := New(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				continue
			}
			if img.Size() == int64(len(data)) {
				if readAll(t, img, data) == nil {
					t.Errorf("%v flip at %d: no error", args, pos)
				}
			}
		}
	}
}

func TestFiltersRefused(t *testing.T) {
	data := makeImage(256<<10, 10)
	for _, tc := range []struct {
		args []string
		name string
	}{
		{[]string{"--x86", "--lzma2=preset=0"}, "x86 BCJ + LZMA2"},
		{[]string{"--delta=dist=4", "--lzma2=preset=0"}, "Delta + LZMA2"},
	} {
		xzData := compress(t, data, tc.args...)
		img, err := New(bytes.NewReader(xzData), int64(len(xzData)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = img.ReadAt(make([]byte, 10), 0)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%v: error %v, want ErrUnsupported naming %q", tc.args, err, tc.name)
		}
		rc, _ := img.Stream()
		if _, err := io.ReadAll(rc); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%v: Stream error %v, want ErrUnsupported", tc.args, err)
		}
	}
}

// TestMemoryBounded reads a 32 MiB multi-block file at random and checks
// that allocation per decoded block and the live heap stay within the cache
// budget plus working buffers.
func TestMemoryBounded(t *testing.T) {
	data := make([]byte, 32*mib)
	copy(data, makeImage(2*mib, 11))
	for off := 2 * mib; off < len(data); off *= 2 {
		copy(data[off:], data[:off]) // keep compression fast
	}
	xzData := compress(t, data, "-0", "-T0", "--block-size=512KiB")
	img, err := New(bytes.NewReader(xzData), int64(len(xzData)))
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rng := rand.New(rand.NewPCG(5, 5))
	buf := make([]byte, 16<<10)
	const reads = 60
	for i := range reads {
		off := rng.Int64N(img.Size() - int64(len(buf)))
		if _, err := img.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, data[off:off+int64(len(buf))]) {
			t.Fatalf("read %d at %d differs", i, off)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	decoded := img.blocks.Decoded()
	if decoded > 2*reads {
		t.Errorf("decoded %d blocks for %d small reads", decoded, reads)
	}
	// Each decode allocates its 512 KiB block, a dictionary no larger than
	// the block and small buffers.
	perBlock := (after.TotalAlloc - before.TotalAlloc) / uint64(max(decoded, 1))
	if perBlock > 2*mib {
		t.Errorf("allocated %d bytes per decoded block, want at most 2 MiB", perBlock)
	}
	// What stays live is the cache: at most 4 blocks of 512 KiB.
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 4*mib {
		t.Errorf("live heap grew by %d bytes, want at most 4 MiB", grown)
	}
	t.Logf("%d reads decoded %d blocks, %d KiB allocated per block, live heap grew %d KiB",
		reads, decoded, perBlock>>10, (int64(after.HeapInuse)-int64(before.HeapInuse))>>10)
}

func TestFooterLayout(t *testing.T) {
	if n := binary.Size(StreamHeader{}); n != headerLen {
		t.Errorf("binary.Size(StreamHeader) = %d, want %d", n, headerLen)
	}
	if n := binary.Size(StreamFooter{}); n != footerLen {
		t.Errorf("binary.Size(StreamFooter) = %d, want %d", n, footerLen)
	}
	for c, want := range map[CheckType]int{CheckNone: 0, CheckCRC32: 4, CheckCRC64: 8, CheckSHA256: 32, 0x0F: 64} {
		if c.Size() != want {
			t.Errorf("%s.Size() = %d, want %d", c, c.Size(), want)
		}
	}
}

func benchFile(b *testing.B) ([]byte, []byte) {
	data := makeImage(16*mib, 12)
	return data, compress(b, data, "-0", "-T0", "--block-size=1MiB")
}

func BenchmarkXZRandomRead(b *testing.B) {
	_, xzData := benchFile(b)
	img, err := New(bytes.NewReader(xzData), int64(len(xzData)))
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := img.ReadAt(buf, rng.Int64N(img.Size()-4096)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkXZStream(b *testing.B) {
	data, xzData := benchFile(b)
	img, err := New(bytes.NewReader(xzData), int64(len(xzData)))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		rc, _ := img.Stream()
		if n, err := io.Copy(io.Discard, rc); err != nil || n != int64(len(data)) {
			b.Fatal(n, err)
		}
	}
}

// TestPiImage compresses a Raspberry Pi–like image (MBR, FAT32, ext4) the
// way Pi OS downloads are made (several blocks) and reads it back.
func TestPiImage(t *testing.T) {
	dir := t.TempDir()
	path := testimg.PiImage(t, dir, testimg.PiOptions{Size: 48 * mib, BootSize: 16 * mib})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	xzData := compress(t, data, "-0", "-T0", "--block-size=4MiB")
	img, err := New(bytes.NewReader(xzData), int64(len(xzData)))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Blocks() != 12 || !img.Indexed() {
		t.Errorf("Blocks, Indexed = %d, %v; want 12, true", img.Blocks(), img.Indexed())
	}
	mbr := make([]byte, 512)
	if _, err := img.ReadAt(mbr, 0); err != nil || mbr[510] != 0x55 || mbr[511] != 0xAA {
		t.Fatalf("MBR: %v, signature % x", err, mbr[510:])
	}
	// The ext4 superblock of the root partition, 1 KiB into it.
	sb := make([]byte, 1024)
	if _, err := img.ReadAt(sb, 20*mib+1024); err != nil || !bytes.Equal(sb, data[20*mib+1024:20*mib+2048]) {
		t.Fatalf("ext4 superblock differs: %v", err)
	}
	if d := img.blocks.Decoded(); d != 2 {
		t.Errorf("decoded %d blocks for two small reads in two blocks", d)
	}
	checkImage(t, img, data)
}

// TestZeroBlocksDecodedOnce checks that blocks byte-identical to one that
// decoded to zeros are not decoded again, that the data read is exact,
// and that a damaged copy of a zero block is still decoded (and fails).
func TestZeroBlocksDecodedOnce(t *testing.T) {
	data := makeImage(4*mib, 9)
	xzData := compress(t, data, "-0", "-T0", "--block-size=256KiB")
	img, err := New(bytes.NewReader(xzData), int64(len(xzData)))
	if err != nil {
		t.Fatal(err)
	}
	zeroBlocks := 0
	for i := 0; i < img.Blocks(); i++ {
		if zero.Is(data[i*256<<10 : (i+1)*256<<10]) {
			zeroBlocks++
		}
	}
	if zeroBlocks < 3 {
		t.Fatalf("%d zero blocks; the test needs several", zeroBlocks)
	}
	// One block at a time, in order, so that the count is exact.
	buf := make([]byte, 256<<10)
	for i := 0; i < img.Blocks(); i++ {
		off := int64(i) * 256 << 10
		if _, err := img.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, data[off:off+256<<10]) {
			t.Fatalf("block %d differs", i)
		}
	}
	if got, want := img.decoded.Load(), int64(img.Blocks()-zeroBlocks+1); got != want {
		t.Errorf("decoded %d blocks, want %d (%d blocks, %d of them zeros)", got, want, img.Blocks(), zeroBlocks)
	}
	checkImage(t, img, data)

	// Damage the compressed data of the last zero block: it no longer
	// matches the known one, so it is decoded and its check fails.
	last := -1
	for i := range img.ix.blocks {
		if zero.Is(data[i*256<<10 : (i+1)*256<<10]) {
			last = i
		}
	}
	bad := bytes.Clone(xzData)
	b := img.ix.blocks[last]
	bad[b.off+b.unpadded-int64(b.check.Size())-3] ^= 0x40
	img2, err := New(bytes.NewReader(bad), int64(len(bad)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := img2.ReadAt(buf, 0); err != nil { // a good zero block first
		t.Fatal(err)
	}
	if _, err := img2.ReadAt(buf, int64(last)*256<<10); err == nil && bytes.Equal(buf, data[int64(last)*256<<10:int64(last+1)*256<<10]) && img2.decoded.Load() < 2 {
		t.Errorf("damaged zero block %d read as zeros without being decoded", last)
	}
}

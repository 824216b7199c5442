package zstd

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"

	"imgtool/image/spool"
	sp "imgtool/image/spool/spooltest"
)

// runs returns data with stretches of zeros and of one repeated non-zero
// byte between random ones: the zstd tool stores the runs as RLE blocks.
func runs(size int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, size)
	for off := 0; off < size; {
		n := min(size-off, 1+rng.IntN(600<<10))
		switch rng.IntN(3) {
		case 0:
			for i := off; i < off+n; i++ {
				b[i] = byte(rng.Uint32())
			}
		case 1:
			fill(b[off:off+n], 0xa5)
		}
		off += n
	}
	return b
}

func decodeAll(t *testing.T, r io.Reader) ([]byte, error) {
	t.Helper()
	dec, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(2))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	return io.ReadAll(dec)
}

// TestRLEAsRaw checks that the rewritten stream decodes to the same bytes,
// for single frames, several frames and skippable frames, and that the
// rewritten stream holds no RLE block.
func TestRLEAsRaw(t *testing.T) {
	data := runs(5*sp.MiB+777, 1)
	for _, tc := range []struct{ name, cmd string }{
		{"one frame", "zstd -q -3 disk.img"},
		{"no checksum", "zstd -q -1 --no-check disk.img"},
		{"from a pipe", "zstd -q -1 < disk.img > disk.img.zst"},
		{"frames", "head -c 1000000 disk.img | zstd -q -1 > disk.img.zst && tail -c +1000001 disk.img | zstd -q -9 >> disk.img.zst"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			zs := sp.Compress(t, data, "disk.img.zst", []string{"zstd", "head", "tail"}, tc.cmd)
			// A skippable frame at the start, as imgtool writes.
			skip := binary.LittleEndian.AppendUint32(nil, skippableMagic|3)
			skip = binary.LittleEndian.AppendUint32(skip, 5)
			zs = append(append(skip, "12345"...), zs...)
			var rewritten bytes.Buffer
			if _, err := io.Copy(&rewritten, newRLEAsRaw(bufio.NewReaderSize(bytes.NewReader(zs), 4096))); err != nil {
				t.Fatal(err)
			}
			got, err := decodeAll(t, bytes.NewReader(rewritten.Bytes()))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("rewritten stream: %d bytes, %v; want the original %d bytes", len(got), err, len(data))
			}
			if rle, _ := countBlocks(rewritten.Bytes()); rle != 0 {
				t.Errorf("%d RLE blocks left", rle)
			}
			if rle, _ := countBlocks(zs); rle == 0 {
				t.Errorf("the zstd tool wrote no RLE block: the test proves nothing")
			}
			// Small reads give the same bytes.
			var small bytes.Buffer
			r := newRLEAsRaw(bufio.NewReaderSize(bytes.NewReader(zs), 16))
			buf := make([]byte, 7)
			for {
				n, err := r.Read(buf)
				small.Write(buf[:n])
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(small.Bytes(), rewritten.Bytes()) {
				t.Error("small reads give another stream")
			}
		})
	}
}

// countBlocks counts the RLE and other blocks of a stream of frames.
func countBlocks(b []byte) (rle, other int) {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint32(b)&^0xF == skippableMagic {
			b = b[8+binary.LittleEndian.Uint32(b[4:]):]
			continue
		}
		h, ok := parseFrameHeader(b)
		if !ok {
			return
		}
		b = b[h.len:]
		for {
			bh := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
			n := int(bh >> 3)
			if int(bh>>1)&3 == blockRLE {
				rle++
				n = 1
			} else {
				other++
			}
			b = b[3+n:]
			if bh&1 != 0 {
				break
			}
		}
		if h.checksum {
			b = b[4:]
		}
	}
	return
}

// TestRLEAsRawDamaged checks that a cut or altered stream still fails, or
// decodes to what the decoder makes of the original damaged stream.
func TestRLEAsRawDamaged(t *testing.T) {
	data := runs(2*sp.MiB, 2)
	zs := sp.Compress(t, data, "disk.img.zst", []string{"zstd"}, "zstd -q -3 disk.img")
	for _, cut := range []int{1, 4, 6, 12, len(zs) / 3, len(zs) / 2, len(zs) - 5, len(zs) - 1} {
		got, err := decodeAll(t, newRLEAsRaw(bufio.NewReader(bytes.NewReader(zs[:cut]))))
		if err == nil && bytes.Equal(got, data) {
			t.Errorf("cut at %d: decoded whole", cut)
		}
		if err == nil {
			t.Errorf("cut at %d: no error", cut)
		}
	}
	rng := rand.New(rand.NewPCG(3, 3))
	for range 200 {
		b := append([]byte{}, zs...)
		b[rng.IntN(len(b))] ^= 1 << rng.IntN(8)
		got, err := decodeAll(t, newRLEAsRaw(bufio.NewReader(bytes.NewReader(b))))
		if err == nil && !bytes.Equal(got, data) {
			want, werr := decodeAll(t, bytes.NewReader(b))
			if werr != nil || !bytes.Equal(got, want) {
				t.Fatalf("damaged stream decoded without error to other bytes")
			}
		}
	}
}

func TestWalkFrames(t *testing.T) {
	data := runs(3*sp.MiB+5, 4)
	for _, tc := range []struct {
		name, cmd string
		known     bool
	}{
		{"file", "zstd -q -3 disk.img", true},
		{"frames", "head -c 1000000 disk.img | zstd -q -1 --stream-size=1000000 > disk.img.zst && tail -c +1000001 disk.img | zstd -q -1 --stream-size=2145733 >> disk.img.zst", true},
		{"pipe", "zstd -q -1 < disk.img > disk.img.zst", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			zs := sp.Compress(t, data, "disk.img.zst", []string{"zstd", "head", "tail"}, tc.cmd)
			n, ok := walkFrames(bytes.NewReader(zs), int64(len(zs)))
			if ok != tc.known || (ok && n != int64(len(data))) {
				t.Errorf("walkFrames = %d, %v; want %d, %v", n, ok, len(data), tc.known)
			}
			if !tc.known {
				return
			}
			// A cut file is not given a size (decoding it reports the cut).
			for _, cut := range []int{10, len(zs) / 2, len(zs) - 1} {
				if _, ok := walkFrames(bytes.NewReader(zs[:cut]), int64(cut)); ok {
					t.Errorf("cut at %d: size reported", cut)
				}
			}
			dir := t.TempDir()
			img, err := New(bytes.NewReader(zs), int64(len(zs)), spool.WithDir(dir))
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if tmp, _ := os.ReadDir(dir); img.Size() != int64(len(data)) || len(tmp) != 0 {
				t.Errorf("Size %d, %d temporary files: want %d without spooling", img.Size(), len(tmp), len(data))
			}
			rc, _ := img.Stream()
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("Stream: %d bytes, %v", len(got), err)
			}
		})
	}
}

// zeroFrameT is a frame of n zeros made of RLE blocks, as convert writes.
func zeroFrameT(n int) []byte {
	b := binary.LittleEndian.AppendUint32(nil, frameMagic)
	b = append(b, 2<<6|1<<5|1<<2)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	for left := n; left > 0; {
		k := min(left, maxBlock)
		left -= k
		h := uint32(k)<<3 | blockRLE<<1
		if left == 0 {
			h |= 1
		}
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 0)
	}
	return binary.LittleEndian.AppendUint32(b, uint32(xxhash.Sum64(make([]byte, n))))
}

// seekableWith writes the frames of data (frame bytes each) as a seekable
// file, zero frames as RLE frames and the others with the encoder.
func seekableWith(t *testing.T, data []byte, frame int) []byte {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var out, table []byte
	frames := 0
	for off := 0; off < len(data); off += frame {
		in := data[off:min(off+frame, len(data))]
		var f []byte
		if bytes.Count(in, []byte{0}) == len(in) {
			f = zeroFrameT(len(in))
		} else {
			f = enc.EncodeAll(in, nil)
		}
		out = append(out, f...)
		table = binary.LittleEndian.AppendUint32(table, uint32(len(f)))
		table = binary.LittleEndian.AppendUint32(table, uint32(len(in)))
		table = binary.LittleEndian.AppendUint32(table, uint32(xxhash.Sum64(in)))
		frames++
	}
	out = binary.LittleEndian.AppendUint32(out, seekTableMagic)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(table)+footerLen))
	out = append(out, table...)
	out = binary.LittleEndian.AppendUint32(out, uint32(frames))
	out = append(out, 0x80)
	return binary.LittleEndian.AppendUint32(out, seekableMagic)
}

// TestZeroFramesRandomReads reads a seekable file with RLE zero frames at
// random offsets from several goroutines (parallel decoding of the frames
// a read covers) and compares with the bytes a sequential stream gives.
func TestZeroFramesRandomReads(t *testing.T) {
	const frame = 256 << 10
	data := make([]byte, 40*frame+1234)
	rng := rand.New(rand.NewPCG(5, 5))
	for i := range 40 {
		switch i % 3 {
		case 0: // zeros
		case 1:
			for j := range frame {
				data[i*frame+j] = byte(rng.Uint32())
			}
		case 2:
			copy(data[i*frame:], bytes.Repeat([]byte("boot config "), frame/12))
		}
	}
	zs := seekableWith(t, data, frame)
	img, err := New(bytes.NewReader(zs), int64(len(zs)))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if !img.Seekable() {
		t.Fatal("not seekable")
	}
	rc, _ := img.Stream()
	seq, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(seq, data) {
		t.Fatalf("stream: %d bytes, %v", len(seq), err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for range 100 {
				off := r.Int64N(int64(len(data)))
				n := 1 + r.IntN(5*frame)
				buf := make([]byte, n)
				k, err := img.ReadAt(buf, off)
				if k != min(n, len(data)-int(off)) || (err != nil && err != io.EOF) || !bytes.Equal(buf[:k], seq[off:off+int64(k)]) {
					t.Errorf("ReadAt(%d, %d) = %d, %v or other bytes", n, off, k, err)
					return
				}
			}
		})
	}
	wg.Wait()

	// A zero frame whose seek table entry has another checksum is damaged.
	bad := append([]byte{}, zs...)
	tableOff := len(bad) - footerLen - 41*12
	binary.LittleEndian.PutUint32(bad[tableOff+8:], 12345)
	img2, err := New(bytes.NewReader(bad), int64(len(bad)))
	if err != nil {
		t.Fatal(err)
	}
	defer img2.Close()
	if _, err := img2.ReadAt(make([]byte, frame), 0); !errors.Is(err, ErrChecksum) {
		t.Errorf("zero frame with a wrong checksum: %v, want ErrChecksum", err)
	}
}

func TestDecodeSimple(t *testing.T) {
	for _, n := range []int{1, 255, 256, 65791, 65792, maxBlock, maxBlock + 1, 3*maxBlock + 5} {
		f := zeroFrameT(n)
		dst := bytes.Repeat([]byte{1}, n)
		sum, has, ok := decodeSimple(f, dst)
		if !ok || !has || sum != contentSum(dst) || bytes.Count(dst, []byte{0}) != n {
			t.Errorf("%d zeros: ok %v, has %v, checksum %x", n, ok, has, sum)
		}
		// The general decoder agrees.
		dec, _ := zstd.NewReader(nil)
		got, err := dec.DecodeAll(f, nil)
		dec.Close()
		if err != nil || !bytes.Equal(got, dst) {
			t.Errorf("%d zeros: the decoder gives %d bytes, %v", n, len(got), err)
		}
		if _, _, ok := decodeSimple(f, make([]byte, n+1)); ok {
			t.Errorf("%d zeros decoded into %d bytes", n, n+1)
		}
		if _, _, ok := decodeSimple(f[:len(f)-1], dst); ok {
			t.Errorf("%d zeros: cut frame accepted", n)
		}
	}
}

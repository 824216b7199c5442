package xz

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ulikunitz/xz/lzma"
)

// rawBlock is the LZMA2 data of one block of an xz file.
type rawBlock struct {
	src  []byte
	ulen int
	dict int64
}

// rawBlocks returns the LZMA2 data of every block of the xz file xzData.
func rawBlocks(t testing.TB, xzData []byte) []rawBlock {
	t.Helper()
	r := bytes.NewReader(xzData)
	ix, err := readIndex(r, int64(len(xzData)))
	if err != nil {
		t.Fatal(err)
	}
	var out []rawBlock
	for _, b := range ix.blocks {
		h, err := readBlockHeader(r, b)
		if err != nil {
			t.Fatal(err)
		}
		off := b.off + h.size
		csize := b.unpadded - h.size - int64(b.check.Size())
		out = append(out, rawBlock{src: xzData[off : off+csize], ulen: int(b.ulen), dict: int64(h.dict)})
	}
	return out
}

// oracleLZMA2 decodes src with the ulikunitz decoder; ok is false when it
// refuses the data, ends early or late, or leaves bytes unread.
func oracleLZMA2(src []byte, size int, dict int64) (out []byte, ok bool) {
	dc := min(dict, max(int64(size), 1), MaxDictSize)
	dc = max(dc, lzma.MinDictCap)
	br := bytes.NewReader(src)
	lz, err := lzma.Reader2Config{DictCap: int(dc)}.NewReader2(br)
	if err != nil {
		return nil, false
	}
	out, err = io.ReadAll(io.LimitReader(lz, int64(size)+1))
	if err != nil || len(out) != size || br.Len() != 0 || !lz.EOS() {
		return out, false
	}
	return out, true
}

// checkRaw decodes every block of xzData with both decoders and compares
// them with want.
func checkRaw(t *testing.T, name string, xzData, want []byte) {
	t.Helper()
	var off int
	for i, rb := range rawBlocks(t, xzData) {
		got := make([]byte, rb.ulen)
		if err := decodeLZMA2(got, rb.src, rb.dict); err != nil {
			t.Fatalf("%s block %d: %v", name, i, err)
		}
		if !bytes.Equal(got, want[off:off+rb.ulen]) {
			t.Fatalf("%s block %d: output differs from the input", name, i)
		}
		ref, ok := oracleLZMA2(rb.src, rb.ulen, rb.dict)
		if !ok || !bytes.Equal(ref, got) {
			t.Fatalf("%s block %d: output differs from the reference decoder's (ok %v)", name, i, ok)
		}
		off += rb.ulen
	}
	if off != len(want) {
		t.Fatalf("%s: blocks hold %d bytes, want %d", name, off, len(want))
	}
}

// textData returns size bytes of log-like text.
func textData(size int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 3))
	words := strings.Fields("the of kernel mount ext4 block inode journal error device usb systemd started stopped service network")
	var s strings.Builder
	for s.Len() < size {
		fmt.Fprintf(&s, "[%8d.%06d] %s %s: %s %d\n", rng.IntN(1e5), rng.IntN(1e6),
			words[rng.IntN(len(words))], words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(1<<16))
	}
	return []byte(s.String()[:size])
}

// metaData returns size bytes resembling ext4 metadata: inode records,
// bitmaps and directory entries.
func metaData(size int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 4))
	b := make([]byte, size)
	for off := 0; off+256 <= size; off += 256 {
		r := b[off : off+256]
		switch off / 4096 % 3 {
		case 0: // inode
			r[0], r[1] = 0xA4, 0x81
			le32(r[4:], uint32(rng.IntN(1<<20)))
			le32(r[8:], 1700000000+uint32(off/256))
			le32(r[12:], 1700000000+uint32(off/256))
			r[40], r[41] = 0x0A, 0xF3 // extent header
			le32(r[60:], uint32(off/256*8+1000))
		case 1: // bitmap
			for i := range r {
				if rng.IntN(8) != 0 {
					r[i] = 0xFF
				} else {
					r[i] = byte(rng.Uint32())
				}
			}
		default: // directory entries
			for p := 0; p+16 <= len(r); p += 16 {
				le32(r[p:], uint32(rng.IntN(1<<16)))
				r[p+4], r[p+6], r[p+7] = 16, 5, 1
				copy(r[p+8:p+13], fmt.Sprintf("f%04d", rng.IntN(10000)))
			}
		}
	}
	return b
}

func le32(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24) }

// mixedData returns size bytes of text, metadata, random data and zeros.
func mixedData(size int) []byte {
	b := make([]byte, size)
	rng := rand.New(rand.NewPCG(9, 9))
	for off := 0; off < size; off += 512 << 10 {
		c := b[off:min(off+512<<10, size)]
		switch off / (512 << 10) % 4 {
		case 0:
			copy(c, textData(len(c), uint64(off)))
		case 1:
			copy(c, metaData(len(c), uint64(off)))
		case 2:
			for i := range c {
				c[i] = byte(rng.Uint32())
			}
		}
	}
	return b
}

func randomData(size int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 5))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestLZMA2Differential(t *testing.T) {
	inputs := map[string][]byte{
		"image":  makeImage(1*mib+777, 3),
		"random": randomData(300<<10, 1),
		"text":   textData(700<<10, 2),
		"zeros":  make([]byte, 2*mib),
		"mixed":  mixedData(2*mib + 1),
	}
	for name, data := range inputs {
		for _, args := range [][]string{{"-0"}, {"-1"}, {"-6"}, {"-9"}, {"-6e"}, {"-0", "-T0", "--block-size=100000"}, {"-6", "--block-size=64KiB"}} {
			checkRaw(t, fmt.Sprint(name, args), compress(t, data, args...), data)
		}
	}
	img := makeImage(3*mib+12345, 1)
	checkRaw(t, "image -T0", compress(t, img, "-1", "-T0", "--block-size=1MiB"), img)
	data := mixedData(256 << 10)
	for lc := 0; lc <= 4; lc++ {
		for lp := 0; lc+lp <= 4; lp++ {
			for pb := 0; pb <= 4; pb++ {
				opt := fmt.Sprintf("--lzma2=preset=1,lc=%d,lp=%d,pb=%d", lc, lp, pb)
				checkRaw(t, opt, compress(t, data, opt), data)
			}
		}
	}
	big := mixedData(3 * mib)
	for _, dict := range []string{"4KiB", "64KiB", "1MiB", "8MiB", "64MiB"} {
		opt := "--lzma2=preset=6,dict=" + dict
		checkRaw(t, opt, compress(t, big, opt), big)
	}
	for _, n := range []int{0, 1, 2, 3, 5, 17, 100, 255, 256, 257, 1000, 4095, 4096, 4097, 5000} {
		checkRaw(t, fmt.Sprint("size ", n), compress(t, img[:n], "-6"), img[:n])
	}
}

// TestLZMA2SmallSizes encodes every size from 0 to 5000 bytes with the
// ulikunitz encoder and decodes it.
func TestLZMA2SmallSizes(t *testing.T) {
	sources := [][]byte{makeImage(300<<10, 4)[256<<10:], textData(5000, 7), randomData(5000, 8), make([]byte, 5000)}
	for si, s := range sources {
		step := 1
		if si >= 2 {
			step = 7 // random data and zeros: every seventh size
		}
		for n := 0; n <= 5000; n += step {
			want := s[:n]
			var buf bytes.Buffer
			w, err := lzma.Writer2Config{DictCap: 1 << 16, Properties: &lzma.Properties{LC: n % 5, LP: (4 - n%5) % 3, PB: n % 5}}.NewWriter2(&buf)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(want)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, n)
			if err := decodeLZMA2(got, buf.Bytes(), 1<<16); err != nil {
				t.Fatalf("source %d size %d: %v", si, n, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("source %d size %d: output differs", si, n)
			}
		}
	}
}

func TestLZMA2Malformed(t *testing.T) {
	data := mixedData(200 << 10)
	src := rawBlocks(t, compress(t, data, "-6"))[0].src
	ok := make([]byte, len(data))
	if err := decodeLZMA2(ok, src, 8<<20); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		dst  int
		src  []byte
		dict int64
	}{
		{"empty", 0, nil, 4096},
		{"short output", len(data) - 1, src, 8 << 20},
		{"long output", len(data) + 1, src, 8 << 20},
		{"truncated", len(data), src[:len(src)/2], 8 << 20},
		{"no end marker", len(data), src[:len(src)-1], 8 << 20},
		{"trailing byte", len(data), append(append([]byte{}, src...), 0), 8 << 20},
		{"small dictionary", len(data), src, 4096},
		{"no dictionary reset", 3, []byte{2, 0, 2, 'a', 'b', 'c', 0}, 4096},
		{"bad control", 3, []byte{3, 0, 2, 'a', 'b', 'c', 0}, 4096},
		{"lc+lp>4", 1, []byte{0xE0, 0, 0, 0, 5, 9*5*0 + 9*3 + 2, 0, 0, 0, 0, 0, 0}, 4096},
		{"pb>4", 1, []byte{0xE0, 0, 0, 0, 5, 225, 0, 0, 0, 0, 0, 0}, 4096},
		{"props needed", 1, []byte{1, 0, 0, 'a', 0xA0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0}, 4096},
		{"match at start", 10, []byte{0xE0, 0, 9, 0, 5, 0x5D, 0, 0xFF, 0xFF, 0xFF, 0xFE, 0}, 4096},
	} {
		dst := make([]byte, tc.dst)
		err := decodeLZMA2(dst, tc.src, tc.dict)
		var le *lzma2Error
		if !errors.As(err, &le) {
			t.Errorf("%s: error %v, want an LZMA2 error", tc.name, err)
		}
	}
}

// FuzzLZMA2 compares the decoder with the ulikunitz decoder on arbitrary
// data.
func FuzzLZMA2(f *testing.F) {
	data := makeImage(300<<10, 6)[250<<10:]
	for _, args := range [][]string{{"-0"}, {"-6"}, {"--lzma2=preset=0,lc=0,lp=4,pb=0"}, {"--lzma2=preset=0,lc=4,lp=0,pb=4"}} {
		for _, n := range []int{0, 1, 100, 1000, 4000} {
			for _, rb := range rawBlocks(f, compress(f, data[:n], args...)) {
				f.Add(rb.src, uint32(rb.dict), uint32(rb.ulen))
			}
		}
	}
	f.Add(textData(3000, 1), uint32(4096), uint32(3000))
	f.Fuzz(func(t *testing.T, src []byte, dict, size uint32) {
		size %= 1 << 17
		d := 4096 + int64(dict%(1<<17))
		got := make([]byte, size)
		err := decodeLZMA2(got, src, d)
		ref, ok := oracleLZMA2(src, int(size), d)
		if err != nil {
			var le *lzma2Error
			if !errors.As(err, &le) {
				t.Fatalf("error of the wrong type: %v", err)
			}
			if le.off < 0 || le.off > len(src) {
				t.Fatalf("error offset %d outside the %d bytes of data", le.off, len(src))
			}
			if ok && le.kind != errStrict {
				t.Fatalf("refused data the reference decoder accepts: %v", err)
			}
			return
		}
		if !ok {
			t.Fatalf("accepted data the reference decoder refuses (%d bytes out)", len(ref))
		}
		if !bytes.Equal(got, ref) {
			t.Fatalf("output differs from the reference decoder's")
		}
	})
}

func benchBlock(b *testing.B) rawBlock {
	data := mixedData(8 * mib)
	blocks := rawBlocks(b, compress(b, data, "-6", "--block-size=8MiB"))
	if len(blocks) != 1 {
		b.Fatalf("%d blocks", len(blocks))
	}
	return blocks[0]
}

func BenchmarkLZMA2Decode(b *testing.B) {
	rb := benchBlock(b)
	dst := make([]byte, rb.ulen)
	b.SetBytes(int64(rb.ulen))
	b.ResetTimer()
	for range b.N {
		if err := decodeLZMA2(dst, rb.src, rb.dict); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLZMA2DecodeUlikunitz(b *testing.B) {
	rb := benchBlock(b)
	dst := make([]byte, rb.ulen)
	b.SetBytes(int64(rb.ulen))
	b.ResetTimer()
	for range b.N {
		lz, err := lzma.Reader2Config{DictCap: int(min(rb.dict, int64(rb.ulen)))}.NewReader2(bytes.NewReader(rb.src))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(lz, dst); err != nil {
			b.Fatal(err)
		}
	}
}

// benchBlockFile returns an xz file holding one 8 MiB block of mixed data.
func benchBlockFile(b *testing.B) (*bytes.Reader, blockInfo) {
	xzData := compress(b, mixedData(8*mib), "-6", "--block-size=8MiB")
	r := bytes.NewReader(xzData)
	ix, err := readIndex(r, int64(len(xzData)))
	if err != nil || len(ix.blocks) != 1 {
		b.Fatal(err)
	}
	return r, ix.blocks[0]
}

// BenchmarkXZBlockDecode decodes the block as ReadAt does: read, decode
// into the buffer, verify the CRC64.
func BenchmarkXZBlockDecode(b *testing.B) {
	r, blk := benchBlockFile(b)
	dst := make([]byte, blk.ulen)
	b.SetBytes(blk.ulen)
	b.ResetTimer()
	for range b.N {
		if ok, err := decodeBlockInto(r, blk, dst); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkXZBlockDecodeUlikunitz decodes the block through openBlock, as
// ReadAt did before.
func BenchmarkXZBlockDecodeUlikunitz(b *testing.B) {
	r, blk := benchBlockFile(b)
	dst := make([]byte, blk.ulen)
	b.SetBytes(blk.ulen)
	b.ResetTimer()
	for range b.N {
		br, err := openBlock(r, blk)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(br, dst); err != nil {
			b.Fatal(err)
		}
		if n, err := br.Read(dst[:1]); n != 0 || err != io.EOF {
			b.Fatal(n, err)
		}
	}
}

// TestLZMA2DictionaryReset joins LZMA2 streams so that dictionary resets
// fall in the middle of the output, at positions that are not multiples of
// 16: positions must count from the reset.
func TestLZMA2DictionaryReset(t *testing.T) {
	a := textData(70001, 11)
	b := mixedData(600<<10 + 3)
	sa := rawBlocks(t, compress(t, a, "-6"))[0].src
	sb := rawBlocks(t, compress(t, b, "--lzma2=preset=6,lc=1,lp=2,pb=4"))[0].src
	for _, tc := range []struct {
		src  []byte
		want []byte
	}{
		{append([]byte{1, 0, 2, 'x', 'y', 'z'}, sb...), append([]byte("xyz"), b...)},
		{append(append([]byte{}, sa[:len(sa)-1]...), sb...), append(append([]byte{}, a...), b...)},
		{append(append([]byte{}, sb[:len(sb)-1]...), sa...), append(append([]byte{}, b...), a...)},
	} {
		got := make([]byte, len(tc.want))
		if err := decodeLZMA2(got, tc.src, 8<<20); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, tc.want) {
			t.Fatal("output differs")
		}
		ref, ok := oracleLZMA2(tc.src, len(tc.want), 8<<20)
		if !ok || !bytes.Equal(ref, got) {
			t.Fatalf("output differs from the reference decoder's (ok %v)", ok)
		}
	}
}

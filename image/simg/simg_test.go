package simg

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/image"
	"imgtool/image/internal/disktest"
	"imgtool/internal/testimg"
)

func TestLayoutSizes(t *testing.T) {
	if got := binary.Size(Header{}); got != HeaderSize {
		t.Errorf("binary.Size(Header) = %d, want %d", got, HeaderSize)
	}
	if got := binary.Size(ChunkHeader{}); got != ChunkHeaderSize {
		t.Errorf("binary.Size(ChunkHeader) = %d, want %d", got, ChunkHeaderSize)
	}
}

// fillSource is source with some blocks holding a repeated 32-bit value,
// which img2simg stores as FILL chunks.
func fillSource(t testing.TB, dir string, size int64, seed uint64) (string, []byte) {
	t.Helper()
	p, b := disktest.Source(t, dir, size, seed)
	for off := int64(1 << 20); off+64<<10 <= size; off += 4 << 20 {
		for i := off; i < off+64<<10; i += 4 {
			binary.LittleEndian.PutUint32(b[i:], 0xdeadbeef)
		}
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b
}

// chunkTypes counts the chunk types of a sparse file.
func chunkTypes(t testing.TB, b []byte) map[ChunkType]int {
	t.Helper()
	var h Header
	binary.Decode(b, binary.LittleEndian, &h)
	m := map[ChunkType]int{}
	pos := int(h.FileHdrSz)
	for range h.TotalChunks {
		m[ChunkType(binary.LittleEndian.Uint16(b[pos:]))]++
		pos += int(binary.LittleEndian.Uint32(b[pos+8:]))
	}
	return m
}

// dontCare rewrites the FILL chunks of value 0 of a sparse file as
// DONT_CARE chunks (img2simg of this version writes no DONT_CARE chunks;
// newer ones do for holes).
func dontCare(b []byte) []byte {
	var h Header
	binary.Decode(b, binary.LittleEndian, &h)
	out := bytes.Clone(b[:h.FileHdrSz])
	pos := int(h.FileHdrSz)
	for range h.TotalChunks {
		total := int(binary.LittleEndian.Uint32(b[pos+8:]))
		c := b[pos : pos+total]
		if ChunkType(binary.LittleEndian.Uint16(c)) == ChunkFill && binary.LittleEndian.Uint32(c[12:]) == 0 {
			c = bytes.Clone(c[:12])
			binary.LittleEndian.PutUint16(c, uint16(ChunkDontCare))
			binary.LittleEndian.PutUint32(c[8:], 12)
		}
		out = append(out, c...)
		pos += total
	}
	return out
}

func convert(t testing.TB, dir, src, name string, args ...string) (string, []byte) {
	t.Helper()
	out := filepath.Join(dir, name+".simg")
	testimg.Run(t, "img2simg", append([]string{src, out}, args...)...)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return out, b
}

func TestImg2simg(t *testing.T) {
	testimg.NeedTools(t, "img2simg", "simg2img")
	dir := t.TempDir()
	src, want := fillSource(t, dir, 16<<20, 1)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"4k", nil},
		{"1k", []string{"1024"}},
		{"64k", []string{"65536"}},
	} {
		for _, dc := range []bool{false, true} {
			name := c.name
			if dc {
				name += "-dontcare"
			}
			t.Run(name, func(t *testing.T) {
				out, raw := convert(t, dir, src, c.name, c.args...)
				if dc {
					raw = dontCare(raw)
					out += ".dc"
					if err := os.WriteFile(out, raw, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				ct := chunkTypes(t, raw)
				if ct[ChunkRaw] == 0 || ct[ChunkFill] == 0 || (dc && ct[ChunkDontCare] == 0) {
					t.Fatalf("chunks %v; the test wants raw, fill and (rewritten) dont-care", ct)
				}
				img, err := Probe(bytes.NewReader(raw), int64(len(raw)))
				if err != nil {
					t.Fatal(err)
				}
				// simg2img's own expansion is the reference for the size.
				back := filepath.Join(dir, name+".raw")
				testimg.Run(t, "simg2img", out, back)
				ref, _ := os.ReadFile(back)
				if !bytes.Equal(ref, want) {
					t.Fatalf("simg2img does not give back the source")
				}
				ext := disktest.CheckImage(t, img, want)
				var zero int64
				for _, e := range ext {
					if e.Kind == image.Zero {
						zero += e.Len
					}
				}
				if zero == 0 {
					t.Fatalf("no zero extents: %v", ext)
				}
			})
		}
	}
}

func TestPiImage(t *testing.T) {
	testimg.NeedTools(t, "img2simg")
	dir := t.TempDir()
	src := testimg.PiImage(t, dir, testimg.PiOptions{Size: 64 << 20, BootSize: 32 << 20})
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := convert(t, dir, src, "pi")
	img, err := image.Open(out, image.WithFormats(Format))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Format() != "simg" {
		t.Fatalf("Format() = %q", img.Format())
	}
	disktest.CheckImage(t, img, want)
}

// withCRC appends a CRC32 chunk holding crc to a sparse file.
func withCRC(b []byte, crc uint32) []byte {
	b = bytes.Clone(b)
	var c [16]byte
	binary.LittleEndian.PutUint16(c[0:], uint16(ChunkCRC32))
	binary.LittleEndian.PutUint32(c[8:], 16)
	binary.LittleEndian.PutUint32(c[12:], crc)
	b = append(b, c[:]...)
	binary.LittleEndian.PutUint32(b[20:], binary.LittleEndian.Uint32(b[20:])+1)
	return b
}

func TestCRC32(t *testing.T) {
	testimg.NeedTools(t, "img2simg", "simg2img")
	dir := t.TempDir()
	src, want := fillSource(t, dir, 6<<20, 2)
	_, raw := convert(t, dir, src, "c")
	raw = dontCare(raw)
	good := withCRC(raw, crc32.ChecksumIEEE(want))
	// simg2img still accepts the file with the extra chunk.
	p := filepath.Join(dir, "crc.simg")
	os.WriteFile(p, good, 0o644)
	testimg.Run(t, "simg2img", p, filepath.Join(dir, "crc.raw"))
	if back, _ := os.ReadFile(filepath.Join(dir, "crc.raw")); !bytes.Equal(back, want) {
		t.Fatal("simg2img of the file with a CRC chunk differs from the source")
	}
	img, err := New(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatalf("correct CRC32 chunk: %v", err)
	}
	disktest.CheckImage(t, img, want)
	bad := withCRC(raw, crc32.ChecksumIEEE(want)^1)
	var fe *image.FormatError
	if _, err := New(bytes.NewReader(bad), int64(len(bad))); !errors.As(err, &fe) || !strings.Contains(err.Error(), "crc32") {
		t.Fatalf("wrong CRC32 chunk: err = %v, want a crc32 FormatError", err)
	}
}

func TestWrongType(t *testing.T) {
	for _, b := range [][]byte{nil, {0x3a, 0xff}, make([]byte, 4096)} {
		if _, err := Probe(bytes.NewReader(b), int64(len(b))); !errors.Is(err, image.ErrWrongType) {
			t.Errorf("Probe(%x) = %v, want ErrWrongType", b[:min(len(b), 8)], err)
		}
	}
}

func TestDamaged(t *testing.T) {
	testimg.NeedTools(t, "img2simg")
	dir := t.TempDir()
	src, want := fillSource(t, dir, 3<<20, 3)
	_, orig := convert(t, dir, src, "d", "1024")
	for cut := int64(0); cut < int64(len(orig)); cut += int64(len(orig))/97 + 1 {
		if readAll(orig[:cut], want) == nil {
			t.Fatalf("file truncated to %d of %d bytes read without error", cut, len(orig))
		}
	}
	rng := rand.New(rand.NewPCG(5, 5))
	for range 500 {
		b := bytes.Clone(orig)
		i := rng.IntN(len(b))
		b[i] ^= 1 << rng.IntN(8)
		readAll(b, nil)
	}
}

func readAll(b, want []byte) error {
	return disktest.ReadAll(New, b, want)
}

func FuzzSimg(f *testing.F) {
	testimg.NeedTools(f, "img2simg")
	dir := f.TempDir()
	src, want := fillSource(f, dir, 48<<10, 9)
	for _, bs := range []string{"4096", "1024"} {
		_, b := convert(f, dir, src, "seed"+bs, bs)
		f.Add(b)
		f.Add(dontCare(b))
		f.Add(withCRC(b, crc32.ChecksumIEEE(want)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := New(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		ext, _ := img.Extents()
		var pos int64
		for _, e := range ext {
			if e.Off != pos || e.Len <= 0 {
				t.Fatalf("bad extents %v", ext)
			}
			pos = e.End()
		}
		if pos != img.Size() {
			t.Fatalf("extents end at %d, size %d", pos, img.Size())
		}
		buf := make([]byte, 64<<10)
		for _, off := range []int64{0, img.Size() / 2, img.Size() - 100} {
			img.ReadAt(buf, off)
		}
	})
}

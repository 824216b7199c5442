package zstd

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	seekable "github.com/SaveTheRbtz/zstd-seekable-format-go/pkg"
	"github.com/klauspost/compress/zstd"

	"imgtool/image"
	"imgtool/image/spool"
	sp "imgtool/image/spool/spooltest"
)

// makeSeekable writes data as a seekable zstd file with frames of frame
// bytes.
func makeSeekable(t testing.TB, data []byte, frame int) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var out bytes.Buffer
	w, err := seekable.NewWriter(&out, enc)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += frame {
		if _, err := w.Write(data[off:min(off+frame, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestFormats(t *testing.T) {
	data := sp.Content(3*sp.MiB+999, 1)
	for _, tc := range []struct{ name, cmd string }{
		{"zstd", "zstd -q -1 disk.img"},
		{"long", "zstd -q -1 --long=27 disk.img"},
		{"multi-frame", "head -c 1000000 disk.img | zstd -q -1 > disk.img.zst && tail -c +1000001 disk.img | zstd -q -1 >> disk.img.zst"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			zs := sp.Compress(t, data, "disk.img.zst", []string{"zstd", "head", "tail"}, tc.cmd)
			img, err := New(bytes.NewReader(zs), int64(len(zs)), spool.WithDir(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if img.Seekable() {
				t.Error("plain zstd file reported as seekable")
			}
			sp.Check(t, img, "zstd", data)
		})
	}
	t.Run("seekable", func(t *testing.T) {
		zs := makeSeekable(t, data, 256<<10)
		img, err := Probe(bytes.NewReader(zs), int64(len(zs)))
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		if !img.(*Image).Seekable() {
			t.Fatal("seekable file not read as seekable")
		}
		sp.Check(t, img, "zstd", data)
	})
	t.Run("seekable-spooled", func(t *testing.T) {
		zs := makeSeekable(t, data, 256<<10)
		img, err := newImage(bytes.NewReader(zs), int64(len(zs)), 64<<10, []spool.Option{spool.WithDir(t.TempDir())})
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		if img.Seekable() {
			t.Fatal("frames above the limit read at random")
		}
		sp.Check(t, img, "zstd", data)
	})
}

func TestSeekableDecodesOnlyNeededFrames(t *testing.T) {
	data := sp.Content(4*sp.MiB, 3)
	zs := makeSeekable(t, data, 256<<10)
	img, err := New(bytes.NewReader(zs), int64(len(zs)))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	for _, off := range []int64{10, 2*sp.MiB + 1, 2*sp.MiB + 5000, 4*sp.MiB - 4096} {
		buf := make([]byte, 4096)
		if _, err := img.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, data[off:off+4096]) {
			t.Fatalf("ReadAt at %d differs", off)
		}
	}
	if d := img.blocks.Decoded(); d != 3 {
		t.Errorf("decoded %d frames for reads in 3 frames, want 3", d)
	}
}

func TestWrongType(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("\xfd7zXZ\x00 xz, not zstd"), make([]byte, 100)} {
		if _, err := Probe(bytes.NewReader(b), int64(len(b))); !errors.Is(err, image.ErrWrongType) {
			t.Errorf("Probe(%q) = %v, want ErrWrongType", b, err)
		}
	}
}

func TestDamaged(t *testing.T) {
	data := sp.Content(700<<10, 2)
	plain := sp.Compress(t, data, "disk.img.zst", []string{"zstd"}, "zstd -q -1 disk.img")
	seek := makeSeekable(t, data, 64<<10)
	for name, zs := range map[string][]byte{"plain": plain, "seekable": seek} {
		for _, cut := range []int{4, 8, 20, len(zs) / 3, len(zs) / 2, len(zs) - 20, len(zs) - 9, len(zs) - 1} {
			b := zs[:cut]
			img, err := New(bytes.NewReader(b), int64(len(b)), spool.WithDir(t.TempDir()))
			if err != nil {
				continue
			}
			err = ReadErrOrFail(t, img, data)
			img.Close()
			var fe *image.FormatError
			if !errors.As(err, &fe) {
				t.Errorf("%s cut at %d: error %v, want a FormatError", name, cut, err)
			}
		}
		rng := rand.New(rand.NewPCG(1, 1))
		for range 25 {
			b := append([]byte{}, zs...)
			b[rng.IntN(len(b))] ^= 1 << rng.IntN(8)
			img, err := New(bytes.NewReader(b), int64(len(b)), spool.WithDir(t.TempDir()))
			if err != nil {
				continue
			}
			sp.ReadErr(t, img, data)
			img.Close()
		}
	}
}

// TestWindowLimit checks that a frame whose window exceeds MaxWindow is
// refused with an error saying so, rather than allocated.
func TestWindowLimit(t *testing.T) {
	data := sp.Content(300<<10, 4)
	zs := sp.Compress(t, data, "disk.img.zst", []string{"zstd"}, "zstd -q -1 --long=28 < disk.img > disk.img.zst")
	img, err := New(bytes.NewReader(zs), int64(len(zs)), spool.WithDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	rc, err := img.Stream()
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	if !errors.Is(err, zstd.ErrWindowSizeExceeded) || !strings.Contains(err.Error(), "--long=31") {
		t.Errorf("window of 256 MiB: %v, want ErrWindowSizeExceeded with advice", err)
	}
}

// ReadErrOrFail is sp.ReadErr for images that must fail.
func ReadErrOrFail(t *testing.T, img image.Image, want []byte) error {
	t.Helper()
	err := sp.ReadErr(t, img, want)
	if err == nil {
		t.Errorf("damaged file read without error")
	}
	return err
}

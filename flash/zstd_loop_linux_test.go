//go:build linux

package flash

import (
	"bytes"
	"context"
	"os"
	"testing"

	"imgtool/convert"
	"imgtool/image"
	"imgtool/image/spool"
	"imgtool/image/zstd"
	"imgtool/internal/testimg"
)

// TestWriteSeekableZstdLoop flashes imgtool's own seekable .zst, with a
// block map, to a loop device: the device must equal the image over the
// mapped ranges and keep its old bytes elsewhere.
func TestWriteSeekableZstdLoop(t *testing.T) {
	dir := t.TempDir()
	src, want := sparseImage(t, dir)
	raw := openImage(t, src)
	ext, err := raw.Extents()
	if err != nil {
		t.Fatal(err)
	}
	var m []image.Extent
	for _, e := range ext {
		if e.Kind == image.Data {
			m = append(m, e)
		}
	}
	var zs bytes.Buffer
	if _, err := convert.Convert(context.Background(), raw, &zs, "zstd", convert.Options{}); err != nil {
		t.Fatal(err)
	}
	z, err := zstd.New(bytes.NewReader(zs.Bytes()), int64(zs.Len()))
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	if !z.Seekable() {
		t.Fatal("convert's .zst is not seekable")
	}
	dev, backing := newLoop(t, 40<<20, 0xa5)
	orig, _ := os.ReadFile(backing)
	tg := openTargetT(t, dev, OpenOptions{})
	res, err := Write(context.Background(), z, []Target{tg}, Options{BlockMap: m})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Verified {
		t.Errorf("result %+v", res)
	}
	got := readDev(t, dev, z.Size())
	inMap := make([]bool, len(want)/4096)
	for _, e := range m {
		for off := e.Off &^ 4095; off < e.End(); off += 4096 {
			inMap[off/4096] = true
		}
	}
	for i, mapped := range inMap {
		off := i * 4096
		exp := want[off : off+4096]
		if !mapped {
			exp = orig[off : off+4096]
		}
		if !bytes.Equal(got[off:off+4096], exp) {
			t.Fatalf("block at %d (mapped %v) differs", off, mapped)
		}
	}
}

// TestWritePlainZstdLoop flashes what the zstd tool writes (one frame, no
// seek table) in full: it is decoded once, while writing, without a
// temporary file.
func TestWritePlainZstdLoop(t *testing.T) {
	testimg.NeedTools(t, "zstd")
	dir := t.TempDir()
	src, want := sparseImage(t, dir)
	testimg.Run(t, "zstd", "-q", "-3", src, "-o", src+".zst")
	zs, err := os.ReadFile(src + ".zst")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	z, err := zstd.New(bytes.NewReader(zs), int64(len(zs)), spool.WithDir(tmp))
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	if z.Seekable() {
		t.Fatal("plain .zst reported seekable")
	}
	dev, _ := newLoop(t, 40<<20, 0xa5)
	res, err := Write(context.Background(), z, []Target{openTargetT(t, dev, OpenOptions{})}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Verified || res.SHA256 != sha(want) {
		t.Errorf("result %+v", res)
	}
	if got := readDev(t, dev, int64(len(want))); !bytes.Equal(got, want) {
		t.Error("device differs from the image")
	}
	if files, _ := os.ReadDir(tmp); len(files) != 0 {
		t.Errorf("%d temporary files: the stream was spooled", len(files))
	}
}

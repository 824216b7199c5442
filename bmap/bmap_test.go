package bmap

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/image"
	"imgtool/internal/testimg"
)

// sparseImage writes a sparse file of size bytes with random data in the
// given 4 KiB blocks and returns its path and content.
func sparseImage(t *testing.T, size int64, blocks ...int64) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	testimg.Sparse(t, path, size)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	content := make([]byte, size)
	for _, b := range blocks {
		blk := make([]byte, 4096)
		rand.Read(blk)
		copy(content[b*4096:], blk)
		if _, err := f.WriteAt(blk, b*4096); err != nil {
			t.Fatal(err)
		}
	}
	return path, content
}

func bmaptoolCreate(t *testing.T, img string) []byte {
	t.Helper()
	testimg.NeedTools(t, "bmaptool")
	return []byte(testimg.Run(t, "bmaptool", "create", img))
}

func TestParseBmaptoolOutput(t *testing.T) {
	img, content := sparseImage(t, 8<<20, 0, 1, 2, 100, 1500, 1501)
	m, err := Parse(bytes.NewReader(bmaptoolCreate(t, img)))
	if err != nil {
		t.Fatal(err)
	}
	if m.ImageSize != 8<<20 || m.BlockSize != 4096 || m.BlocksCount != 2048 || m.ChecksumType != "sha256" {
		t.Fatalf("header: %+v", m)
	}
	var got []string
	for _, r := range m.Ranges {
		got = append(got, fmt.Sprintf("%d-%d", r.First, r.Last))
	}
	if want := "0-2 100-100 1500-1501"; strings.Join(got, " ") != want {
		t.Errorf("ranges %q, want %q", strings.Join(got, " "), want)
	}
	if m.MappedBytes() != 6*4096 {
		t.Errorf("MappedBytes %d", m.MappedBytes())
	}
	ext := m.Extents()
	var pos int64
	for _, e := range ext {
		if e.Off != pos {
			t.Fatalf("extents not contiguous at %d: %+v", pos, ext)
		}
		pos = e.End()
	}
	if pos != m.ImageSize {
		t.Fatalf("extents end at %d", pos)
	}

	// Reading the image front to back checks every range.
	src := Verify(image.NewReader(bytes.NewReader(content), int64(len(content))), m)
	buf := make([]byte, 1<<20)
	for off := int64(0); off < int64(len(content)); off += int64(len(buf)) {
		if _, err := src.ReadAt(buf, off); err != nil && err != io.EOF {
			t.Fatal(err)
		}
	}
	if n, err := Done(src); err != nil || n != 3 {
		t.Errorf("Done = %d, %v; want 3 ranges checked", n, err)
	}
}

func TestVerifyDetectsDamage(t *testing.T) {
	img, content := sparseImage(t, 4<<20, 10, 11, 700)
	m, err := Parse(bytes.NewReader(bmaptoolCreate(t, img)))
	if err != nil {
		t.Fatal(err)
	}
	content[11*4096+17] ^= 0xff
	src := Verify(image.NewReader(bytes.NewReader(content), int64(len(content))), m)
	buf := make([]byte, 64<<10)
	var rerr error
	for off := int64(0); off < int64(len(content)) && rerr == nil; off += int64(len(buf)) {
		_, rerr = src.ReadAt(buf, off)
	}
	var ce *ChecksumError
	if !errors.As(rerr, &ce) || !errors.Is(rerr, ErrChecksum) {
		t.Fatalf("read error %v, want a *ChecksumError", rerr)
	}
	if ce.First != 10 || ce.Last != 11 {
		t.Errorf("damaged range %d-%d, want 10-11", ce.First, ce.Last)
	}
	if _, err := Done(src); !errors.Is(err, ErrChecksum) {
		t.Errorf("Done = %v", err)
	}

	// Skipping part of a range leaves it unchecked, and Done says so.
	src = Verify(image.NewReader(bytes.NewReader(content), int64(len(content))), m)
	if _, err := src.ReadAt(buf[:4096], 700*4096); err != nil {
		t.Fatal(err)
	}
	if _, err := Done(src); err == nil || !strings.Contains(err.Error(), "not read in full") {
		t.Errorf("Done after a partial read = %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	img, _ := sparseImage(t, 1<<20, 3)
	good := bmaptoolCreate(t, img)
	for _, c := range []struct {
		name string
		edit func(string) string
		msg  string
	}{
		{"file checksum", func(s string) string { return strings.Replace(s, "<BlockSize> 4096", "<BlockSize> 4096 ", 1) }, "own checksum"},
		{"version", func(s string) string { return strings.Replace(s, `version="2.0"`, `version="3.0"`, 1) }, "version"},
		{"not xml", func(string) string { return "hello" }, "not a valid"},
	} {
		_, err := Parse(strings.NewReader(c.edit(string(good))))
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: Parse = %v, want ErrFormat mentioning %q", c.name, err, c.msg)
		}
	}
}

// TestParseVersion1 reads a 1.3-style map: SHA-1 range checksums and no
// ChecksumType, built here from the data it describes.
func TestParseVersion1(t *testing.T) {
	data := make([]byte, 3*4096+100)
	rand.Read(data)
	sum := sha1.Sum(data[4096:])
	doc := fmt.Sprintf(`<?xml version="1.0" ?>
<bmap version="1.3">
  <ImageSize> %d </ImageSize>
  <BlockSize> 4096 </BlockSize>
  <BlocksCount> 4 </BlocksCount>
  <MappedBlocksCount> 3 </MappedBlocksCount>
  <BlockMap>
    <Range> 0 </Range>
    <Range sha1="ignored" chksum="%s"> 1-3 </Range>
  </BlockMap>
</bmap>`, len(data), hex.EncodeToString(sum[:]))
	m, err := Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if m.ChecksumType != "sha1" || len(m.Ranges) != 2 || m.Len(m.Ranges[1]) != 2*4096+100 {
		t.Fatalf("map %+v", m)
	}
	src := Verify(image.NewReader(bytes.NewReader(data), int64(len(data))), m)
	if _, err := src.ReadAt(make([]byte, len(data)), 0); err != nil {
		t.Fatal(err)
	}
	if n, err := Done(src); err != nil || n != 1 {
		t.Errorf("Done = %d, %v", n, err)
	}
}

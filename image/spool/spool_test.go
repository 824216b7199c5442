package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"imgtool/image"
)

type counter struct{ last atomic.Int64 }

func (c *counter) Update(n int64) { c.last.Store(n) }

func content() []byte {
	b := make([]byte, 1<<20+100)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 200 << 10; i < 300<<10; i++ { // data in the middle of zeros
		b[i] = byte(rng.Uint32())
	}
	for i := len(b) - 50; i < len(b); i++ {
		b[i] = 1
	}
	return b
}

func TestSpool(t *testing.T) {
	want := content()
	opens := 0
	stream := func() (io.ReadCloser, error) {
		opens++
		return io.NopCloser(bytes.NewReader(want)), nil
	}
	dir := t.TempDir()
	var prog counter
	img := New("test", stream, WithDir(dir), WithProgress(&prog))
	// Stream must not spool.
	rc, err := img.Stream()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	if !bytes.Equal(got, want) {
		t.Fatal("Stream differs")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("Stream made a temporary file")
	}
	if img.Size() != int64(len(want)) {
		t.Fatalf("Size = %d", img.Size())
	}
	if prog.last.Load() != int64(len(want)) {
		t.Errorf("progress ended at %d, want %d", prog.last.Load(), len(want))
	}
	buf := make([]byte, 300<<10)
	if n, err := img.ReadAt(buf, 100<<10); err != nil || !bytes.Equal(buf[:n], want[100<<10:400<<10]) {
		t.Fatalf("ReadAt: %d, %v", n, err)
	}
	if n, err := img.ReadAt(buf, int64(len(want))-10); n != 10 || err != io.EOF {
		t.Fatalf("ReadAt at the end = %d, %v", n, err)
	}
	ext, err := img.Extents()
	if err != nil {
		t.Fatal(err)
	}
	wantExt := []image.Extent{
		{Off: 0, Len: 192 << 10, Kind: image.Zero},
		{Off: 192 << 10, Len: 128 << 10, Kind: image.Data},
		{Off: 320 << 10, Len: 1<<20 - 320<<10, Kind: image.Zero},
		{Off: 1 << 20, Len: 100, Kind: image.Data},
	}
	if fmt.Sprint(ext) != fmt.Sprint(wantExt) {
		t.Errorf("Extents = %v, want %v", ext, wantExt)
	}
	if opens != 2 {
		t.Errorf("stream opened %d times, want 2 (Stream, then spooling once)", opens)
	}
	if fi, err := os.Stat(img.f.Name()); err != nil || fi.Size() != int64(len(want)) {
		t.Errorf("temporary file: %v, %v", fi, err)
	}
	if blocks := allocated(t, img.f); blocks >= 0 && blocks > 512<<10 {
		t.Errorf("temporary file has %d bytes allocated; zeros were written", blocks)
	}
	// Stream now reads the file.
	rc, _ = img.Stream()
	got, _ = io.ReadAll(rc)
	if !bytes.Equal(got, want) || opens != 2 {
		t.Fatal("Stream after spooling differs or decompressed again")
	}
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("Close left the temporary file")
	}
	if _, err := img.ReadAt(buf, 0); err == nil {
		t.Error("ReadAt after Close succeeded")
	}
}

func TestDeclaredSize(t *testing.T) {
	want := content()
	stream := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(want)), nil }
	for _, size := range []int64{int64(len(want)) - 1, int64(len(want)) + 1, 0} {
		img := New("test", stream, WithSize(size), WithDir(t.TempDir()))
		if img.Size() != size {
			t.Errorf("Size = %d, want the declared %d", img.Size(), size)
		}
		if _, err := img.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrSizeMismatch) {
			t.Errorf("declared %d: %v, want ErrSizeMismatch", size, err)
		}
		img.Close()
	}
	img := New("test", stream, WithMaxSize(1000), WithDir(t.TempDir()))
	if err := img.Spool(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("WithMaxSize: %v, want ErrTooLarge", err)
	}
	if img.Size() != 0 {
		t.Errorf("Size after failed spooling = %d, want 0", img.Size())
	}
}

func TestStreamError(t *testing.T) {
	boom := errors.New("boom")
	stream := func() (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(bytes.NewReader(make([]byte, 100000)), errReader{boom})), nil
	}
	dir := t.TempDir()
	img := New("test", stream, WithDir(dir))
	if _, err := img.ReadAt(make([]byte, 10), 0); !errors.Is(err, boom) {
		t.Errorf("ReadAt: %v, want the stream's error", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("failed spooling left a file")
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestNoSpaceMessage(t *testing.T) {
	err := explain(fmt.Errorf("write: %w", syscall.ENOSPC), "/x/imgtool-gzip-1.img", "gzip", 12345)
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "TMPDIR") || !strings.Contains(err.Error(), "full") {
		t.Errorf("ENOSPC error: %v", err)
	}
}

func TestBlocks(t *testing.T) {
	want := content()
	var list []Block
	for off, i := int64(0), 0; off < int64(len(want)); i++ {
		n := min(int64(10000+i*997), int64(len(want))-off)
		list = append(list, Block{Off: off, Len: n})
		off += n
	}
	if _, err := CheckBlocks(list, 1<<20); err != nil {
		t.Fatal(err)
	}
	bad := errors.New("bad block")
	decode := func(i int, dst []byte) error {
		if i == 7 {
			return bad
		}
		copy(dst, want[list[i].Off:])
		return nil
	}
	b := NewBlocks(list, decode, 40000, 2)
	if b.Size() != int64(len(want)) {
		t.Fatal(b.Size())
	}
	rng := rand.New(rand.NewPCG(3, 3))
	bad7 := list[7]
	for range 300 {
		off := rng.Int64N(int64(len(want)))
		buf := make([]byte, rng.IntN(100000))
		n, err := b.ReadAt(buf, off)
		end := off + int64(len(buf))
		if off < bad7.Off+bad7.Len && end > bad7.Off {
			if !errors.Is(err, bad) {
				t.Fatalf("read over the bad block: %v", err)
			}
			continue
		}
		if err != nil && !(err == io.EOF && end >= int64(len(want))) {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:n], want[off:min(end, int64(len(want)))]) {
			t.Fatalf("ReadAt(%d, %d) differs", len(buf), off)
		}
		b.mu.Lock()
		over := b.bytes > b.budget && b.lru.Len() > 1
		b.mu.Unlock()
		if over {
			t.Fatalf("cache holds %d bytes, budget %d", b.bytes, b.budget)
		}
	}
	// Stream gives the bytes before the bad block, then its error.
	rc := b.Stream()
	got, err := io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, bad) || !bytes.Equal(got, want[:bad7.Off]) {
		t.Errorf("Stream over a bad block: %d bytes, %v", len(got), err)
	}
	good := NewBlocks(list, func(i int, dst []byte) error { copy(dst, want[list[i].Off:]); return nil }, 40000, 3)
	rc = good.Stream()
	got, err = io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("Stream: %d bytes, %v", len(got), err)
	}
	// Closing early stops decoding ahead.
	rc = good.Stream()
	rc.Read(make([]byte, 10))
	rc.Close()
	if _, err := rc.Read(make([]byte, 10)); err == nil {
		t.Error("Read after Close succeeded")
	}
	if _, err := CheckBlocks([]Block{{0, 10}, {11, 5}}, 100); err == nil {
		t.Error("gap between blocks accepted")
	}
}

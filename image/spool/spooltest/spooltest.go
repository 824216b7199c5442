// Package spooltest holds test helpers shared by the compressed image
// formats: test content, compression with the real tools, and a check of
// every way of reading an image against the original bytes.
package spooltest

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"imgtool/image"
	"imgtool/image/spool"
	"imgtool/internal/testimg"
)

// MiB is 1<<20.
const MiB = 1 << 20

// Content returns size bytes of 256 KiB pieces cycling through zeros,
// random bytes, text and zeros again, so that compressors produce frames of
// varied sizes and the spool finds holes.
func Content(size int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, size)
	for off := 0; off < size; off += 256 << 10 {
		chunk := b[off:min(off+256<<10, size)]
		switch (off >> 18) % 5 {
		case 0, 3:
		case 1:
			for i := range chunk {
				chunk[i] = byte(rng.Uint32())
			}
		default:
			var s strings.Builder
			for s.Len() < len(chunk) {
				fmt.Fprintf(&s, "line %d value %x\n", rng.IntN(100000), rng.Uint32())
			}
			copy(chunk, s.String())
		}
	}
	return b
}

// Compress writes data to disk.img in a new temporary folder, runs the
// shell command cmd there (for example "gzip -k disk.img") and returns the
// bytes of the file out it made.
func Compress(t testing.TB, data []byte, out string, tools []string, cmd string) []byte {
	t.Helper()
	testimg.NeedTools(t, append([]string{"sh"}, tools...)...)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "disk.img"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	testimg.Run(t, "sh", "-c", "cd '"+dir+"' && "+cmd)
	b, err := os.ReadFile(filepath.Join(dir, out))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Check compares Size, random ReadAts, concurrent ReadAts, Stream and
// Extents of img with want.
func Check(t *testing.T, img image.Image, format string, want []byte) {
	t.Helper()
	if img.Format() != format {
		t.Errorf("Format = %q, want %q", img.Format(), format)
	}
	if img.Size() != int64(len(want)) {
		t.Fatalf("Size = %d, want %d", img.Size(), len(want))
	}
	// Stream first: it must work without spooling.
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
	if len(want) == 0 {
		return
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for range 10 {
				off := rng.Int64N(int64(len(want)))
				buf := make([]byte, rng.IntN(MiB)+1)
				n, err := img.ReadAt(buf, off)
				end := min(off+int64(len(buf)), int64(len(want)))
				if n != int(end-off) || (err != nil && !(err == io.EOF && end == int64(len(want)))) {
					errs <- fmt.Errorf("ReadAt(%d, %d) = %d, %v", len(buf), off, n, err)
					return
				}
				if !bytes.Equal(buf[:n], want[off:end]) {
					errs <- fmt.Errorf("ReadAt(%d, %d): content differs", len(buf), off)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n, err := img.ReadAt(make([]byte, 1), int64(len(want))); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at Size = %d, %v; want io.EOF", n, err)
	}
	ext, err := img.Extents()
	if err != nil {
		t.Fatal(err)
	}
	var end int64
	for _, e := range ext {
		if e.Off != end || e.Len <= 0 {
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

// ReadErr reads all of img through Stream and, when it did not fail, through
// ReadAt, and returns the first error. A damaged image that reads without
// error must still give the original bytes; otherwise the test fails.
func ReadErr(t *testing.T, img image.Image, want []byte) error {
	t.Helper()
	rc, err := img.(spool.Streamer).Stream()
	if err == nil {
		var got []byte
		got, err = io.ReadAll(rc)
		rc.Close()
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("damaged file streamed without error: %d bytes", len(got))
		}
	}
	if err != nil {
		return err
	}
	size := img.Size()
	if size != int64(len(want)) {
		return fmt.Errorf("size %d", size)
	}
	buf := make([]byte, size)
	n, err := img.ReadAt(buf, 0)
	if err == io.EOF && n == len(buf) {
		err = nil
	}
	if err == nil && !bytes.Equal(buf, want) {
		t.Fatalf("damaged file read without error")
	}
	return err
}

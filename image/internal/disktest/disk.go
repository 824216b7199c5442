// Package disktest holds the test helpers of the VM container packages: a
// source disk with data, text and zero runs, qemu-img info and map, a
// byte-for-byte check of an image against its source, and the fixtures and
// feeding of the writer tests. Only tests import it.
package disktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"imgtool/image"
	"imgtool/internal/testimg"
)

// Source writes a disk of the given size with runs of random data,
// compressible text and zeros, some of them unaligned, and returns its path
// and content.
func Source(t testing.TB, dir string, size int64, seed uint64) (string, []byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, size)
	for off := int64(0); off < size; {
		n := min(size-off, int64(rng.IntN(int(min(3<<20, size/4)))+1))
		switch rng.IntN(4) {
		case 0: // random
			for i := off; i < off+n; i++ {
				b[i] = byte(rng.Uint32())
			}
		case 1: // text
			copy(b[off:off+n], bytes.Repeat([]byte("imgtool qcow2 test line\n"), int(n/24)+1))
		}
		off += n
	}
	p := filepath.Join(dir, "src.img")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b
}

// QInfo is the part of the output of qemu-img info the tests read.
type QInfo struct {
	VirtualSize int64 `json:"virtual-size"`
	Format      string
}

// Info runs qemu-img info; args may name the format ("-f", "vpc").
func Info(t testing.TB, path string, args ...string) QInfo {
	t.Helper()
	var qi QInfo
	args = append(append([]string{"info", "--output=json"}, args...), path)
	if err := json.Unmarshal([]byte(testimg.Run(t, "qemu-img", args...)), &qi); err != nil {
		t.Fatal(err)
	}
	return qi
}

// QemuData returns the ranges qemu-img map reports as allocated data,
// merged.
func QemuData(t testing.TB, path string) []image.Extent {
	t.Helper()
	var m []struct {
		Start, Length int64
		Data          bool
	}
	if err := json.Unmarshal([]byte(testimg.Run(t, "qemu-img", "map", "--output=json", path)), &m); err != nil {
		t.Fatal(err)
	}
	var out []image.Extent
	for _, e := range m {
		if !e.Data {
			continue
		}
		if l := len(out); l > 0 && out[l-1].End() == e.Start {
			out[l-1].Len += e.Length
			continue
		}
		out = append(out, image.Extent{Off: e.Start, Len: e.Length, Kind: image.Data})
	}
	return out
}

// DataOnly returns the Data extents of ext.
func DataOnly(ext []image.Extent) []image.Extent {
	var out []image.Extent
	for _, e := range ext {
		if e.Kind == image.Data {
			out = append(out, e)
		}
	}
	return out
}

// CheckImage compares img with want byte for byte and checks its extents.
func CheckImage(t *testing.T, img image.Image, want []byte) []image.Extent {
	t.Helper()
	if img.Size() != int64(len(want)) {
		t.Fatalf("Size() = %d, want %d", img.Size(), len(want))
	}
	got := make([]byte, len(want))
	for off := 0; off < len(got); off += 1 << 20 {
		n, err := img.ReadAt(got[off:min(off+1<<20, len(got))], int64(off))
		if err != nil && !(err == io.EOF && off+n == len(got)) {
			t.Fatalf("ReadAt(%d): n=%d %v", off, n, err)
		}
	}
	if !bytes.Equal(got, want) {
		i := 0
		for got[i] == want[i] {
			i++
		}
		t.Fatalf("content differs from the source first at byte %d", i)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for range 200 {
		off := rng.Int64N(int64(len(want)))
		n := rng.IntN(300000)
		buf := make([]byte, n)
		m, err := img.ReadAt(buf, off)
		end := min(off+int64(n), int64(len(want)))
		if int64(m) != end-off || (err != nil && err != io.EOF) || (err == io.EOF) != (off+int64(n) > int64(len(want))) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v", n, off, m, err)
		}
		if !bytes.Equal(buf[:m], want[off:end]) {
			t.Fatalf("ReadAt(%d bytes at %d) differs from the source", n, off)
		}
	}
	// Concurrent readers see the same bytes.
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			buf := make([]byte, 200000)
			for range 50 {
				off := rng.Int64N(int64(len(want)))
				m, _ := img.ReadAt(buf, off)
				if !bytes.Equal(buf[:m], want[off:min(off+int64(len(buf)), int64(len(want)))]) {
					errs <- fmt.Sprintf("concurrent ReadAt at %d differs from the source", off)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if n, err := img.ReadAt(make([]byte, 1), img.Size()); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt at Size() = %d, %v; want 0, EOF", n, err)
	}
	ext, err := img.Extents()
	if err != nil {
		t.Fatalf("Extents: %v", err)
	}
	var pos int64
	for i, e := range ext {
		if e.Off != pos || e.Len <= 0 || (i > 0 && ext[i-1].Kind == e.Kind) {
			t.Fatalf("extent %d %+v: not contiguous, empty or not merged", i, e)
		}
		if e.Kind == image.Zero && bytes.ContainsFunc(want[e.Off:e.End()], func(r rune) bool { return r != 0 }) {
			t.Fatalf("zero extent %+v holds non-zero bytes of the source", e)
		}
		pos = e.End()
	}
	if pos != img.Size() {
		t.Fatalf("extents end at %d, size %d", pos, img.Size())
	}
	return ext
}

// EqualExtents reports whether a and b hold the same extents.
func EqualExtents(a, b []image.Extent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"imgtool/fs/meta"
	"imgtool/internal/testimg"
)

// TestCatDirect checks the in-kernel copy of cat against the source files:
// a file with holes (leading, inner and trailing) and a dense one, into a
// regular file and into a pipe, and that it steps aside (writing nothing)
// where it cannot work.
func TestCatDirect(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	must(t, os.MkdirAll(filepath.Join(root, "data"), 0o755))
	dense := make([]byte, 5<<20+77)
	rand.Read(dense)
	must(t, os.WriteFile(filepath.Join(root, "data", "dense.bin"), dense, 0o644))
	// Holes: 1 MiB leading, data, 3 MiB inner, data, 2 MiB trailing.
	sp, err := os.Create(filepath.Join(root, "data", "sparse.bin"))
	must(t, err)
	chunk := make([]byte, 300<<10+5)
	rand.Read(chunk)
	_, err = sp.WriteAt(chunk, 1<<20)
	must(t, err)
	_, err = sp.WriteAt(chunk, 1<<20+int64(len(chunk))+3<<20)
	must(t, err)
	must(t, sp.Truncate(1<<20+2*int64(len(chunk))+3<<20+2<<20))
	must(t, sp.Close())
	must(t, os.WriteFile(filepath.Join(root, "data", "small"), []byte("hi\n"), 0o644))
	boot := filepath.Join(dir, "boot")
	must(t, os.MkdirAll(boot, 0o755))
	must(t, os.WriteFile(filepath.Join(boot, "config.txt"), []byte("arm_64bit=1\n"), 0o644))
	img := testimg.PiImage(t, dir, testimg.PiOptions{BootFiles: boot, RootFiles: root})

	// The sparse file must hold holes for the test to cover them.
	{
		tg, err := openTarget(img, "2", false)
		must(t, err)
		f, err := tg.fsys.Open("data/sparse.bin")
		must(t, err)
		holes := 0
		must(t, f.(meta.PlacedFile).Place(0, 1<<40, func(dev, _ int64) error {
			if dev < 0 {
				holes++
			}
			return nil
		}))
		f.Close()
		tg.Close()
		if holes < 3 {
			t.Fatalf("sparse.bin has %d holes in the image, want 3", holes)
		}
	}

	for _, name := range []string{"dense.bin", "sparse.bin", "small"} {
		want, err := os.ReadFile(filepath.Join(root, "data", name))
		must(t, err)
		tg, err := openTarget(img, "2", false)
		must(t, err)

		// Into a regular file.
		out, err := os.Create(filepath.Join(dir, "out-"+name))
		must(t, err)
		f, err := tg.fsys.Open("data/" + name)
		must(t, err)
		n, err := catDirect(context.Background(), out, f)
		f.Close()
		out.Close()
		if err != nil || n != int64(len(want)) {
			t.Fatalf("%s: direct copy to a file: %d bytes, %v; want %d bytes", name, n, err, len(want))
		}
		got, err := os.ReadFile(filepath.Join(dir, "out-"+name))
		must(t, err)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: direct copy to a file differs from the source", name)
		}

		// Into a pipe, read on the other side.
		pr, pw, err := os.Pipe()
		must(t, err)
		done := make(chan []byte)
		go func() { b, _ := io.ReadAll(pr); done <- b }()
		f, err = tg.fsys.Open("data/" + name)
		must(t, err)
		n, err = catDirect(context.Background(), pw, f)
		f.Close()
		pw.Close()
		got = <-done
		pr.Close()
		if err != nil || n != int64(len(want)) || !bytes.Equal(got, want) {
			t.Errorf("%s: direct copy to a pipe: %d bytes (%d read), %v; want %d bytes equal to the source", name, n, len(got), err, len(want))
		}

		// Not a file: nothing written, the caller copies through memory.
		var buf bytes.Buffer
		f, err = tg.fsys.Open("data/" + name)
		must(t, err)
		n, err = catDirect(context.Background(), &buf, f)
		if !errors.Is(err, errNoDirect) || n != 0 || buf.Len() != 0 {
			t.Errorf("%s: copy to a buffer: %d bytes, %v; want errNoDirect and nothing written", name, n, err)
		}
		// catFile falls back and gives the same bytes.
		must(t, catFile(context.Background(), &buf, f))
		f.Close()
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s: catFile through memory differs from the source", name)
		}
		tg.Close()
	}

	// A FAT file is not placed: catDirect steps aside.
	tg, err := openTarget(img, "1", false)
	must(t, err)
	defer tg.Close()
	f, err := tg.fsys.Open("config.txt")
	must(t, err)
	fatOut, err := os.Create(filepath.Join(dir, "out-fat"))
	must(t, err)
	n, err := catDirect(context.Background(), fatOut, f)
	fatOut.Close()
	f.Close()
	if !errors.Is(err, errNoDirect) || n != 0 {
		t.Errorf("FAT file: %d bytes, %v; want errNoDirect", n, err)
	}

	// A cancelled copy stops with the context's error.
	tg2, err := openTarget(img, "2", false)
	must(t, err)
	defer tg2.Close()
	f, err = tg2.fsys.Open("data/dense.bin")
	must(t, err)
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out, err := os.Create(filepath.Join(dir, "out-cancel"))
	must(t, err)
	defer out.Close()
	if _, err := catDirect(ctx, out, f); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled copy: %v, want context.Canceled", err)
	}
}

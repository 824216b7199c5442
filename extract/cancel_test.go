package extract

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"testing"
)

// progressFunc adapts a function to Progress.
type progressFunc func(files, bytes int64)

func (f progressFunc) Update(files, bytes int64) { f(files, bytes) }

func TestCancelBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dest := filepath.Join(t.TempDir(), "out")
	_, err := Copy(ctx, smallTree(), ".", dest, Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Lstat(dest); !errors.Is(err, iofs.ErrNotExist) {
		t.Fatalf("dest created after cancel: %v", err)
	}
}

func TestCancelWithinLargeFile(t *testing.T) {
	big := &node{name: "big", st: mkFile("", 0o644, "").st}
	big.st.Size = 1 << 40 // far more than the test could write
	big.gen = func(off int64, p []byte) {
		for i := range p {
			p[i] = byte(off+int64(i)) | 1
		}
	}
	fsys := &fakeFS{root: mkDir(".", 0o755, big)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var lastBytes int64
	prog := progressFunc(func(files, bytes int64) {
		lastBytes = bytes
		if bytes > 0 {
			cancel()
		}
	})
	dest := t.TempDir()
	res, err := Copy(ctx, fsys, ".", dest, Options{Progress: prog})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if res.Bytes == 0 || res.Bytes > 4*bufSize || lastBytes != res.Bytes {
		t.Fatalf("copied %d bytes (progress said %d), want a few buffers", res.Bytes, lastBytes)
	}
	if _, err := os.Lstat(filepath.Join(dest, "big")); !errors.Is(err, iofs.ErrNotExist) {
		t.Fatalf("partial file left behind: %v", err)
	}
}

func TestCancelBetweenFiles(t *testing.T) {
	var kids []*node
	for i := 0; i < 50; i++ {
		kids = append(kids, mkFile(fmt.Sprintf("f%02d", i), 0o644, "data"))
	}
	fsys := &fakeFS{root: mkDir(".", 0o755, kids...)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prog := progressFunc(func(files, bytes int64) {
		if files >= 3 {
			cancel()
		}
	})
	dest := t.TempDir()
	res, err := Copy(ctx, fsys, ".", dest, Options{Progress: prog})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	list, _ := os.ReadDir(dest)
	if len(list) == 0 || len(list) >= 50 || len(list) != res.Files {
		t.Fatalf("%d files on disk, Result.Files %d: cancel did not stop the copy between files", len(list), res.Files)
	}
}

func TestProgressTotals(t *testing.T) {
	var files, bytes int64
	prog := progressFunc(func(f, b int64) { files, bytes = f, b })
	res := mustCopy(t, smallTree(), ".", t.TempDir(), Options{Progress: prog})
	want := int64(res.Files + res.Dirs + res.Symlinks + res.HardLinks + res.Special)
	if files != want || bytes != res.Bytes || bytes != 3+29+6 {
		t.Fatalf("last update (%d, %d), result %+v", files, bytes, res)
	}
}

func TestShortFileRemoved(t *testing.T) {
	f := mkFile("short", 0o644, "0123456789")
	f.short = 4
	fsys := &fakeFS{root: mkDir(".", 0o755, f)}
	dest := t.TempDir()
	_, err := Copy(context.Background(), fsys, ".", dest, Options{})
	if err == nil {
		t.Fatal("no error for a file shorter than its size")
	}
	if _, err := os.Lstat(filepath.Join(dest, "short")); !errors.Is(err, iofs.ErrNotExist) {
		t.Fatalf("truncated file left behind: %v", err)
	}
}

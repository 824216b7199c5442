package ext4

import (
	"bytes"
	"errors"
	"io"
	iofs "io/fs"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"imgtool/internal/testimg"
)

// exercise opens an image and touches everything in it: the walk, every
// Stat/Lstat/ReadLink, every regular file read (bounded), usage and
// allocation. Errors are expected on damaged images; panics and hangs are
// not.
func exercise(data []byte, readLimit int64, opts ...Option) (opened bool, files int) {
	r := bytes.NewReader(data)
	if _, err := Identify(r, int64(len(data))); err != nil {
		_ = err
	}
	f, err := New(r, int64(len(data)), opts...)
	if err != nil {
		return false, 0
	}
	f.Warnings()
	f.Usage()
	f.Allocated()
	budget := readLimit
	iofs.WalkDir(f, ".", func(p string, d iofs.DirEntry, err error) error {
		files++
		if files > 100000 {
			return iofs.SkipAll
		}
		if err != nil {
			return nil
		}
		f.Stat(p)
		f.Lstat(p)
		if info, err := d.Info(); err == nil {
			info.Sys()
		}
		if d.Type()&iofs.ModeSymlink != 0 {
			f.ReadLink(p)
		}
		if d.Type().IsRegular() && budget > 0 {
			if fl, err := f.Open(p); err == nil {
				n, _ := io.Copy(io.Discard, io.LimitReader(fl.(io.Reader), budget))
				budget -= n
				runs := 0
				fl.(*File).Place(0, 1<<62, func(int64, int64) error {
					if runs++; runs > 10000 {
						return errors.New("enough")
					}
					return nil
				})
				fl.Close()
			}
		}
		return nil
	})
	return true, files
}

func TestCorpus(t *testing.T) {
	dir := testimg.CorpusDir(t, "e2fsprogs")
	paths, err := filepath.Glob(filepath.Join(dir, "*.img.gz"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no corpus images in %s: %v", dir, err)
	}
	opened := 0
	t.Cleanup(func() { t.Logf("%d of %d images opened", opened, len(paths)) })
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".img.gz")
		data := testimg.Gunzip(t, p)
		t.Run(name, func(t *testing.T) {
			// Not parallel: TotalAlloc is process-wide.
			for _, opts := range [][]Option{nil, {WithoutVerify()}} {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				done := make(chan bool, 1)
				start := time.Now()
				go func() {
					ok, _ := exercise(data, 4*int64(len(data))+1<<20, opts...)
					done <- ok
				}()
				select {
				case ok := <-done:
					if ok && opts == nil {
						opened++
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("still running after 10 s")
				}
				runtime.ReadMemStats(&after)
				limit := uint64(64<<20 + 8*len(data))
				if a := after.TotalAlloc - before.TotalAlloc; a > limit {
					t.Errorf("allocated %d bytes (limit %d) in %v", a, limit, time.Since(start))
				}
			}
		})
	}
}

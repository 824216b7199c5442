package gzip

import (
	"bytes"
	"io"
	"testing"

	"imgtool/image/spool"
	sp "imgtool/image/spool/spooltest"
)

func FuzzGzip(f *testing.F) {
	data := sp.Content(300000, 9)[:50000]
	f.Add(sp.Compress(f, data, "disk.img.gz", []string{"gzip"}, "gzip -1 -k disk.img"))
	f.Add(sp.Compress(f, data[:500], "disk.img.gz", []string{"gzip"}, "gzip -9 -k disk.img && cat disk.img.gz disk.img.gz > x.gz && mv x.gz disk.img.gz"))
	tmp := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := New(bytes.NewReader(b), int64(len(b)), spool.WithDir(tmp), spool.WithMaxSize(8<<20))
		if err != nil {
			return
		}
		defer img.Close()
		rc, err := img.Stream()
		if err != nil {
			return
		}
		io.Copy(io.Discard, io.LimitReader(rc, 8<<20))
		rc.Close()
		size := img.Size()
		buf := make([]byte, min(size, 1<<20))
		img.ReadAt(buf, 0)
		img.Extents()
	})
}

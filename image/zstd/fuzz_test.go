package zstd

import (
	"bytes"
	"io"
	"testing"

	"imgtool/image/spool"
	sp "imgtool/image/spool/spooltest"
)

func FuzzZstd(f *testing.F) {
	data := sp.Content(300000, 9)[:50000]
	f.Add(sp.Compress(f, data, "disk.img.zst", []string{"zstd"}, "zstd -q -1 disk.img"))
	f.Add(sp.Compress(f, data, "disk.img.zst", []string{"zstd"}, "zstd -q -3 --long=20 disk.img"))
	f.Add(makeSeekable(f, data, 8000))
	f.Add(makeSeekable(f, data[:100], 30))
	tmp := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := newImage(bytes.NewReader(b), int64(len(b)), 1<<20, []spool.Option{spool.WithDir(tmp), spool.WithMaxSize(8 << 20)})
		if err != nil {
			return
		}
		defer img.Close()
		size := img.Size()
		buf := make([]byte, min(max(size, 0), 1<<20))
		img.ReadAt(buf, 0)
		img.ReadAt(buf[:min(len(buf), 4096)], size/2)
		img.Extents()
		rc, err := img.Stream()
		if err != nil {
			return
		}
		io.Copy(io.Discard, io.LimitReader(rc, 8<<20))
		rc.Close()
	})
}

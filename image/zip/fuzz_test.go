package zip

import (
	"bytes"
	"io"
	"testing"

	"imgtool/image/spool"
	sp "imgtool/image/spool/spooltest"
)

func FuzzZip(f *testing.F) {
	data := sp.Content(300000, 9)[:20000]
	f.Add(sp.Compress(f, data, "d.zip", []string{"zip"}, "zip -q -1 d.zip disk.img"))
	f.Add(sp.Compress(f, data, "d.zip", []string{"zip"}, "zip -q -0 d.zip disk.img"))
	f.Add(sp.Compress(f, data[:300], "d.zip", []string{"zip"}, "head -c 10 disk.img > a.txt && zip -q -0 d.zip a.txt disk.img"))
	tmp := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := New(bytes.NewReader(b), int64(len(b)), WithSpool(spool.WithDir(tmp), spool.WithMaxSize(8<<20)))
		if err != nil {
			return
		}
		defer img.Close()
		size := img.Size()
		if size < 0 {
			t.Fatalf("negative size")
		}
		if img.Stored() && size > int64(len(b)) {
			t.Fatalf("stored member of %d bytes in a %d-byte file", size, len(b))
		}
		buf := make([]byte, min(size, 1<<20))
		img.ReadAt(buf, 0)
		img.Extents()
		rc, err := img.Stream()
		if err != nil {
			return
		}
		io.Copy(io.Discard, io.LimitReader(rc, 8<<20))
		rc.Close()
	})
}

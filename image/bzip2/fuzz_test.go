package bzip2

import (
	"bytes"
	"io"
	"testing"

	"imgtool/image/spool"
	sp "imgtool/image/spool/spooltest"
)

func FuzzBzip2(f *testing.F) {
	data := sp.Content(300000, 9)[:50000]
	f.Add(sp.Compress(f, data, "disk.img.bz2", []string{"bzip2"}, "bzip2 -1 -k disk.img"))
	tmp := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := Probe(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		defer img.Close()
		rc, err := img.(interface{ Stream() (io.ReadCloser, error) }).Stream()
		if err != nil {
			return
		}
		io.Copy(io.Discard, io.LimitReader(rc, 8<<20))
		rc.Close()
		si, _ := New(bytes.NewReader(b), int64(len(b)), spool.WithDir(tmp), spool.WithMaxSize(8<<20))
		si.ReadAt(make([]byte, 100), 0)
		si.Close()
	})
}

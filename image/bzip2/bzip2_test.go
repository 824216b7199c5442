package bzip2

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"imgtool/image"
	"imgtool/image/spool"
	sp "imgtool/image/spool/spooltest"
)

func TestFormats(t *testing.T) {
	data := sp.Content(2*sp.MiB+3, 1)
	for _, tc := range []struct{ name, cmd string }{
		{"bzip2", "bzip2 -1 -k disk.img"},
		{"concatenated", "head -c 700000 disk.img | bzip2 -1 > disk.img.bz2 && tail -c +700001 disk.img | bzip2 -1 >> disk.img.bz2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bz := sp.Compress(t, data, "disk.img.bz2", []string{"bzip2", "head", "tail"}, tc.cmd)
			img, err := Probe(bytes.NewReader(bz), int64(len(bz)))
			if err != nil {
				t.Fatal(err)
			}
			img.Close()
			si, err := New(bytes.NewReader(bz), int64(len(bz)), spool.WithDir(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			defer si.Close()
			sp.Check(t, si, "bzip2", data)
		})
	}
}

func TestWrongType(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("BZh0 not bzip2"), []byte("\x1f\x8b\x08 gzip, not bzip2"), make([]byte, 100)} {
		if _, err := Probe(bytes.NewReader(b), int64(len(b))); !errors.Is(err, image.ErrWrongType) {
			t.Errorf("Probe(%q) = %v, want ErrWrongType", b, err)
		}
	}
}

func TestDamaged(t *testing.T) {
	data := sp.Content(600<<10, 2)
	bz := sp.Compress(t, data, "disk.img.bz2", []string{"bzip2"}, "bzip2 -1 -k disk.img")
	for _, cut := range []int{10, 11, 40, len(bz) / 2, len(bz) - 10, len(bz) - 4, len(bz) - 1} {
		b := bz[:cut]
		img, err := New(bytes.NewReader(b), int64(len(b)), spool.WithDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		err = sp.ReadErr(t, img, data)
		img.Close()
		var fe *image.FormatError
		if !errors.As(err, &fe) {
			t.Errorf("cut at %d: error %v, want a FormatError", cut, err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for range 20 {
		b := append([]byte{}, bz...)
		b[rng.IntN(len(b))] ^= 1 << rng.IntN(8)
		img, _ := New(bytes.NewReader(b), int64(len(b)), spool.WithDir(t.TempDir()))
		sp.ReadErr(t, img, data)
		img.Close()
	}
}

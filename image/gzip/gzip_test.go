package gzip

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"imgtool/image"
	"imgtool/image/spool"
	sp "imgtool/image/spool/spooltest"
)

func TestFormats(t *testing.T) {
	data := sp.Content(3*sp.MiB+777, 1)
	for _, tc := range []struct {
		name  string
		tools []string
		cmd   string
	}{
		{"gzip", []string{"gzip"}, "gzip -1 -k disk.img"},
		{"pigz", []string{"pigz"}, "pigz -1 -k -b 128 disk.img"},
		// Two members: the first half and the rest.
		{"multi-member", []string{"gzip", "head", "tail"}, "head -c 1000000 disk.img | gzip -1 > disk.img.gz && tail -c +1000001 disk.img | gzip -1 >> disk.img.gz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gz := sp.Compress(t, data, "disk.img.gz", tc.tools, tc.cmd)
			tmp := t.TempDir()
			img, err := Probe(bytes.NewReader(gz), int64(len(gz)))
			if err != nil {
				t.Fatal(err)
			}
			img.Close()
			si, err := New(bytes.NewReader(gz), int64(len(gz)), spool.WithDir(tmp))
			if err != nil {
				t.Fatal(err)
			}
			sp.Check(t, si, "gzip", data)
			ents, _ := os.ReadDir(tmp)
			if len(ents) != 1 {
				t.Errorf("%d files in the spool folder, want 1", len(ents))
			}
			if err := si.Close(); err != nil {
				t.Fatal(err)
			}
			if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
				t.Errorf("Close left %s", filepath.Join(tmp, ents[0].Name()))
			}
		})
	}
}

func TestWrongType(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("BZh91AY&SY not gzip at all"), make([]byte, 100)} {
		if _, err := Probe(bytes.NewReader(b), int64(len(b))); !errors.Is(err, image.ErrWrongType) {
			t.Errorf("Probe(%q) = %v, want ErrWrongType", b, err)
		}
	}
}

func TestDamaged(t *testing.T) {
	data := sp.Content(600<<10, 2)
	gz := sp.Compress(t, data, "disk.img.gz", []string{"gzip"}, "gzip -1 -k disk.img")
	for _, cut := range []int{10, 30, len(gz) / 2, len(gz) - 9, len(gz) - 1} {
		b := gz[:cut]
		img, err := New(bytes.NewReader(b), int64(len(b)), spool.WithDir(t.TempDir()))
		if err != nil {
			continue
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
		b := append([]byte{}, gz...)
		b[rng.IntN(len(b))] ^= 1 << rng.IntN(8)
		img, err := New(bytes.NewReader(b), int64(len(b)), spool.WithDir(t.TempDir()))
		if err != nil {
			continue
		}
		sp.ReadErr(t, img, data) // fails the test on silently wrong data
		img.Close()
	}
}

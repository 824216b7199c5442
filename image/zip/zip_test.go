package zip

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
	data := sp.Content(3*sp.MiB+5, 1)
	for _, tc := range []struct {
		name   string
		cmd    string
		stored bool
	}{
		{"deflated", "zip -q -1 disk.zip disk.img", false},
		{"stored", "zip -q -0 disk.zip disk.img", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := sp.Compress(t, data, "disk.zip", []string{"zip"}, tc.cmd)
			img, err := Probe(bytes.NewReader(z), int64(len(z)))
			if err != nil {
				t.Fatal(err)
			}
			img.Close()
			zi, err := New(bytes.NewReader(z), int64(len(z)), WithSpool(spool.WithDir(t.TempDir())))
			if err != nil {
				t.Fatal(err)
			}
			defer zi.Close()
			if zi.Stored() != tc.stored || zi.Member() != "disk.img" {
				t.Errorf("Stored, Member = %v, %q", zi.Stored(), zi.Member())
			}
			sp.Check(t, zi, "zip", data)
		})
	}
}

// TestChooseMember puts a larger non-image file and a smaller image into
// one archive.
func TestChooseMember(t *testing.T) {
	data := sp.Content(1*sp.MiB, 2)
	z := sp.Compress(t, data, "a.zip", []string{"zip", "head", "mkdir"},
		"mkdir -p dir && head -c 3000000 /dev/zero > big.bin && head -c 500000 disk.img > dir/small.IMG && "+
			"zip -q -1 a.zip big.bin disk.img dir/small.IMG")
	img, err := New(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		t.Fatal(err)
	}
	if img.Member() != "disk.img" {
		t.Errorf("chose %q, want the largest image, disk.img", img.Member())
	}
	img.Close()
	img, err = New(bytes.NewReader(z), int64(len(z)), WithMember("dir/small.IMG"))
	if err != nil {
		t.Fatal(err)
	}
	sp.Check(t, img, "zip", data[:500000])
	img.Close()
	if _, err := New(bytes.NewReader(z), int64(len(z)), WithMember("nope.img")); !errors.Is(err, ErrNoMember) {
		t.Errorf("missing member: %v, want ErrNoMember", err)
	}
	other := sp.Compress(t, data, "b.zip", []string{"zip", "head"}, "head -c 1000 disk.img > notes.txt && zip -q b.zip notes.txt")
	img, err = New(bytes.NewReader(other), int64(len(other)))
	if err != nil || img.Member() != "notes.txt" {
		t.Fatalf("archive without image: %v, %v", img, err)
	}
}

func TestWrongType(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("PK\x07\x08 not a zip file at all....."), make([]byte, 100)} {
		if _, err := Probe(bytes.NewReader(b), int64(len(b))); !errors.Is(err, image.ErrWrongType) {
			t.Errorf("Probe(%q) = %v, want ErrWrongType", b, err)
		}
	}
}

func TestDamaged(t *testing.T) {
	data := sp.Content(600<<10, 3)
	for _, cmd := range []string{"zip -q -1 d.zip disk.img", "zip -q -0 d.zip disk.img"} {
		z := sp.Compress(t, data, "d.zip", []string{"zip"}, cmd)
		for _, cut := range []int{30, 100, len(z) / 2, len(z) - 30, len(z) - 1} {
			b := z[:cut]
			if img, err := New(bytes.NewReader(b), int64(len(b))); err == nil {
				t.Errorf("%s cut at %d: New succeeded", cmd, cut)
				img.Close()
			}
		}
		rng := rand.New(rand.NewPCG(1, 1))
		for range 25 {
			b := append([]byte{}, z...)
			// Damage the member's data, which only the CRC protects.
			b[40+rng.IntN(len(data)/4)] ^= 1 << rng.IntN(8)
			img, err := New(bytes.NewReader(b), int64(len(b)), WithSpool(spool.WithDir(t.TempDir())))
			if err != nil {
				continue
			}
			rc, _ := img.Stream()
			got, err := readAll(rc)
			if err == nil && !bytes.Equal(got, data) {
				t.Errorf("%s: damaged member streamed without error", cmd)
			}
			img.Close()
		}
	}
}

func readAll(rc interface{ Read([]byte) (int, error) }) ([]byte, error) {
	var out bytes.Buffer
	_, err := out.ReadFrom(rc)
	return out.Bytes(), err
}

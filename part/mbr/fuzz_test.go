package mbr

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"imgtool/internal/testimg"
)

// checkRoundTrip reads b, writes the table back onto a copy and checks
// that it reads back the same.
func checkRoundTrip(t *testing.T, b []byte) {
	tb, err := Read(bytes.NewReader(b), int64(len(b)), 512)
	if err != nil {
		return
	}
	if len(tb.Partitions) > NumEntries+maxChainLength {
		t.Fatalf("%d partitions", len(tb.Partitions))
	}
	m := &mem{b: bytes.Clone(b)}
	if err := tb.Write(m); err != nil {
		return
	}
	tb2, err := Read(bytes.NewReader(m.b), int64(len(b)), 512)
	if err != nil {
		t.Fatalf("re-reading a written table: %v", err)
	}
	if len(tb2.Partitions) != len(tb.Partitions) || tb2.DiskID != tb.DiskID {
		t.Fatalf("written table reads back differently:\n%+v\n%+v", tb2.Partitions, tb.Partitions)
	}
	for i, p := range tb.Partitions {
		q := tb2.Partitions[i]
		if p.Number != q.Number || p.Start != q.Start || p.Sectors != q.Sectors || p.Type != q.Type || p.Status != q.Status || p.Logical != q.Logical {
			t.Fatalf("partition %d: %+v, read back %+v", i, p, q)
		}
	}
}

func FuzzMBR(f *testing.F) {
	f.Add(chainImage(f, 0))
	f.Add(chainImage(f, 3))
	if _, err := testimg.LookPath("sfdisk"); err == nil {
		img := filepath.Join(f.TempDir(), "seed.img")
		testimg.Sparse(f, img, 1<<20)
		testimg.RunIn(f, []byte("label: dos\nlabel-id: 0x1234abcd\n1,100,c,*\n200,800,83\n"), "sfdisk", "-q", img)
		if b, err := os.ReadFile(img); err == nil {
			f.Add(b[:4096])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<20 {
			return
		}
		checkRoundTrip(t, b)
		LooksLikeBootSector(b)
	})
}

// FuzzEBRChain keeps a valid MBR whose extended partition covers the
// image and fuzzes the sectors of the chain.
func FuzzEBRChain(f *testing.F) {
	f.Add(chainImage(f, 4)[512:])
	f.Add(chainImage(f, 1)[512:])
	f.Fuzz(func(t *testing.T, chain []byte) {
		if len(chain) > 1<<20 {
			return
		}
		b := make([]byte, 512+len(chain))
		copy(b[512:], chain)
		sectors := uint64(len(b) / 512)
		hdr := RawMBR{DiskSignature: 1, Signature: BootSignature}
		hdr.Entries[0] = entry(0, ExtendedLBA, 8, max(sectors, 9)-8, 0)
		copy(b, hdr.Encode())
		checkRoundTrip(t, b)
	})
}

package cow

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

func TestOverlayReadsItsWrites(t *testing.T) {
	const size = 64*1024 + 123
	base := make([]byte, size)
	for i := range base {
		base[i] = byte(i * 7)
	}
	want := append([]byte(nil), base...)
	o := New(bytes.NewReader(base), size, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		off := r.IntN(size)
		n := r.IntN(min(9000, size-off) + 1)
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		if _, err := o.WriteAt(p, int64(off)); err != nil {
			t.Fatal(err)
		}
		copy(want[off:], p)
	}
	for i := 0; i < 500; i++ {
		off := r.IntN(size)
		n := r.IntN(20000)
		got := make([]byte, n)
		m, err := o.ReadAt(got, int64(off))
		end := min(off+n, size)
		if m != end-off || !bytes.Equal(got[:m], want[off:end]) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v: wrong bytes", off, n, m, err)
		}
		if off+n > size && err != io.EOF {
			t.Fatalf("read past the end without io.EOF: %v", err)
		}
	}
	if !bytes.Equal(base[:100], func() []byte { b := make([]byte, 100); bytes.NewReader(base).ReadAt(b, 0); return b }()) {
		t.Fatal("the base was modified")
	}
}

func TestOverlayLimit(t *testing.T) {
	o := New(bytes.NewReader(make([]byte, 1<<20)), 1<<20, 2*overlayPage)
	if _, err := o.WriteAt(make([]byte, 2*overlayPage), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := o.WriteAt([]byte{1}, 5*overlayPage); err != ErrFull {
		t.Fatalf("write beyond the cap: %v", err)
	}
}

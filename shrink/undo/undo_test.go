package undo

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func TestRollbackRestoresBytes(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "x.img")
	rng := rand.New(rand.NewPCG(3, 4))
	orig := make([]byte, 3<<20)
	for i := range orig[:2<<20] {
		orig[i] = byte(rng.Uint32())
	}
	os.WriteFile(img, orig, 0o644)
	l, err := Begin(img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Begin(img); err == nil {
		t.Fatal("second Begin succeeded")
	}
	for i := 0; i < 50; i++ {
		b := make([]byte, rng.IntN(70000)+1)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if _, err := l.WriteAt(b, rng.Int64N(int64(len(orig)-len(b)))); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Truncate(1<<20, []Range{{Off: 0, Len: 3 << 20}}); err != nil {
		t.Fatal(err)
	}
	// Simulate a crash mid-append: garbage after the last record.
	u, _ := os.OpenFile(Path(img), os.O_WRONLY|os.O_APPEND, 0)
	u.Write([]byte{0x44, 0x52, 0x43, 0x52, 1, 0, 0})
	u.Close()
	st, err := Rollback(img)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Ignored {
		t.Error("incomplete record not reported")
	}
	got, _ := os.ReadFile(img)
	if !bytes.Equal(got, orig) {
		t.Fatal("image differs after rollback")
	}
	if Exists(img) {
		t.Fatal("undo file left")
	}
}

func TestRollbackRefusesOtherImage(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "x.img")
	os.WriteFile(img, bytes.Repeat([]byte{1}, 4096), 0o644)
	l, err := Begin(img)
	if err != nil {
		t.Fatal(err)
	}
	l.WriteAt([]byte{2}, 4000)
	l.undo.Close()
	l.img.Close()
	os.WriteFile(img, bytes.Repeat([]byte{9}, 4096), 0o644)
	if _, err := Rollback(img); err == nil {
		t.Fatal("rollback onto another image succeeded")
	}
	if !Exists(img) {
		t.Fatal("undo file removed after a refused rollback")
	}
}

func TestCommit(t *testing.T) {
	img := filepath.Join(t.TempDir(), "x.img")
	os.WriteFile(img, make([]byte, 8192), 0o644)
	l, _ := Begin(img)
	l.WriteAt([]byte("hello"), 10)
	if err := l.Truncate(4096, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Commit(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(img)
	if len(got) != 4096 || string(got[10:15]) != "hello" || Exists(img) {
		t.Fatalf("after commit: %d bytes, undo %v", len(got), Exists(img))
	}
}

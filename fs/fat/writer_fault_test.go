package fat

import (
	"bytes"
	"errors"
	iofs "io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"imgtool/internal/testimg"
)

// wtFaulty fails its n-th write (counting from 1) and every write after
// it, like a device that went away.
type wtFaulty struct {
	wtMem
	n, count int
}

var errWtInjected = errors.New("injected write failure")

// wtFaultOK matches the fsck.vfat lines allowed after an interrupted
// operation: its banner and summary, clusters no file owns, FAT copies
// that differ (the first being right), a chain longer than its file.
var wtFaultOK = regexp.MustCompile(`^(|fsck\.fat .*|.*: \d+ files, \d+/\d+ clusters|FATs differ but appear to be intact\.|  Using first FAT\.|Reclaimed \d+ unused clusters? \(\d+ bytes\)\.|Leaving filesystem unchanged\.|/DIR/target file\.dat|  File size is \d+ bytes, cluster chain length is > \d+ bytes\.|  Truncating file to \d+ bytes\.)$`)

func (f *wtFaulty) WriteAt(p []byte, off int64) (int, error) {
	f.count++
	if f.count >= f.n {
		return 0, errWtInjected
	}
	return f.wtMem.WriteAt(p, off)
}

// TestWriterFaults stops the device at every write of each kind of
// operation in turn. Whatever the point, the other files must read back
// unchanged, the file operated on must hold its old or its new content,
// and fsck.vfat may at most find clusters that no file owns.
func TestWriterFaults(t *testing.T) {
	sp := wtSpecs[1]
	img := wtImage(t, sp)
	base, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	w, err := OpenWriter(wtMem(base), int64(len(base)))
	if err != nil {
		t.Fatal(err)
	}
	others := map[string][]byte{
		"keep.txt":            []byte("keep me\n"),
		"dir/Another one.bin": wtBytes(1, 10000),
	}
	for p, data := range others {
		if err := w.MkdirAll("dir"); err != nil {
			t.Fatal(err)
		}
		if err := w.WriteFile(p, data, 0o644, mtime); err != nil {
			t.Fatal(err)
		}
	}
	old := wtBytes(2, 5000)
	if err := w.WriteFile("dir/target file.dat", old, 0o644, mtime); err != nil {
		t.Fatal(err)
	}
	neu := wtBytes(3, 9000)
	ops := map[string]struct {
		run      func(w *Writer) error
		old, new []byte // content of the target before and after; nil: absent
	}{
		"create":   {func(w *Writer) error { return w.WriteFile("dir/new file.dat", neu, 0o644, mtime) }, nil, neu},
		"replace":  {func(w *Writer) error { return w.WriteFile("dir/target file.dat", neu, 0o644, mtime) }, old, neu},
		"truncate": {func(w *Writer) error { return w.Truncate("dir/target file.dat", 9000) }, old, append(bytes.Clone(old), make([]byte, 4000)...)},
		"shrink":   {func(w *Writer) error { return w.Truncate("dir/target file.dat", 10) }, old, old[:10]},
		"remove":   {func(w *Writer) error { return w.Remove("dir/target file.dat") }, old, nil},
		"mkdir":    {func(w *Writer) error { return w.Mkdir("dir/a new directory") }, nil, nil},
	}
	fsck, _ := testimg.LookPath("fsck.vfat")
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			for n := 1; n < 100; n++ {
				f := &wtFaulty{wtMem: bytes.Clone(base), n: n}
				w, err := OpenWriter(f, int64(len(base)))
				if err != nil {
					t.Fatal(err)
				}
				err = op.run(w)
				if err == nil {
					if n == 1 {
						t.Fatal("no write happened")
					}
					return
				}
				if !errors.Is(err, errWtInjected) {
					t.Fatalf("write %d: %v", n, err)
				}
				fsys, err := New(f.wtMem, int64(len(base)))
				if err != nil {
					t.Fatal(err)
				}
				for p, data := range others {
					if b, err := fsys.ReadFile(p); err != nil || !bytes.Equal(b, data) {
						t.Fatalf("write %d: %s: %v", n, p, err)
					}
				}
				target := "dir/target file.dat"
				switch name {
				case "create":
					target = "dir/new file.dat"
				case "mkdir":
					target = "dir/a new directory"
				}
				b, err := fsys.ReadFile(target)
				switch {
				case name == "mkdir":
					if _, err := fsys.ReadDir(target); err != nil && !errors.Is(err, iofs.ErrNotExist) {
						t.Fatalf("write %d: %s: %v", n, target, err)
					}
				case errors.Is(err, iofs.ErrNotExist) && (op.old == nil || op.new == nil):
				case err == nil && (bytes.Equal(b, op.old) || bytes.Equal(b, op.new)):
				default:
					t.Fatalf("write %d: %s: %v, %d bytes", n, target, err, len(b))
				}
				if fsck == "" {
					continue
				}
				path := filepath.Join(t.TempDir(), "f.img")
				if err := os.WriteFile(path, f.wtMem, 0o644); err != nil {
					t.Fatal(err)
				}
				out, _ := exec.Command(fsck, "-n", path).CombinedOutput()
				for _, l := range strings.Split(string(out), "\n") {
					if !wtFaultOK.MatchString(l) {
						t.Fatalf("write %d: fsck.vfat: %q in\n%s", n, l, out)
					}
				}
			}
			t.Fatal("operation never completed")
		})
	}
}

package gpt

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"imgtool/internal/testimg"
)

// sparse is an image of size bytes holding head at its start and tail at
// its end (head wins where they overlap) and zeros in between, so that
// fuzz inputs stay small while the GPT backup lives at the end of a larger
// image.
type sparse struct {
	head, tail []byte
	size       int64
}

func (s *sparse) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= s.size {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > s.size-off {
		n = int(s.size - off)
	}
	clear(p[:n])
	overlay(p[:n], off, s.tail, s.size-int64(len(s.tail)))
	overlay(p[:n], off, s.head, 0)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func overlay(dst []byte, off int64, src []byte, srcOff int64) {
	lo, hi := max(off, srcOff), min(off+int64(len(dst)), srcOff+int64(len(src)))
	if lo < hi {
		copy(dst[lo-off:hi-off], src[lo-srcOff:hi-srcOff])
	}
}

type mem struct{ b []byte }

func (m *mem) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, errors.New("out of range")
	}
	return copy(m.b[off:], p), nil
}

// seedTable is a GPT built with Write, for seeds that need no tools.
func seedImage(t testing.TB, ss int, size int64, entries uint32) []byte {
	m := &mem{b: make([]byte, size)}
	tb := &Table{SectorSize: ss, DiskGUID: TypeEFISystem, FirstUsableLBA: 34, NumEntries: entries, EntrySize: 128, PrimaryEntryLBA: 2,
		Partitions: []Partition{
			{Number: 1, Type: TypeEFISystem, GUID: TypeLinuxSwap, FirstLBA: 40, LastLBA: 100, Name: "esp"},
			{Number: 3, Type: TypeLinuxFilesystem, GUID: TypeLinuxLVM, FirstLBA: 101, LastLBA: 120, Attributes: AttrLegacyBootable, Name: "root"},
		}}
	if ss == 4096 {
		tb.FirstUsableLBA = 6
		tb.Partitions[0].FirstLBA = 6
	}
	if err := tb.Write(m, size); err != nil {
		t.Fatal(err)
	}
	return m.b
}

func addSeed(f *testing.F, b []byte, ss, arraySectors int) {
	head := (2 + arraySectors) * ss
	if head > len(b) {
		head = len(b)
	}
	tail := (1 + arraySectors) * ss
	if tail > len(b) {
		tail = len(b)
	}
	f.Add(b[:head], b[len(b)-tail:], int64(len(b)))
}

func FuzzGPT(f *testing.F) {
	addSeed(f, seedImage(f, 512, 1<<20, 128), 512, 32)
	addSeed(f, seedImage(f, 512, 64<<10, 4), 512, 1)
	addSeed(f, seedImage(f, 4096, 2<<20, 32), 4096, 1)
	if p, err := testimg.LookPath("sgdisk"); err == nil {
		img := filepath.Join(f.TempDir(), "seed.img")
		testimg.Sparse(f, img, 1<<20)
		if exec.Command(p, "-n", "1:34:+100K", "-c", "1:a", "-n", "2:0:0", "-h", "1", img).Run() == nil {
			if b, err := os.ReadFile(img); err == nil {
				addSeed(f, b, 512, 32)
			}
		}
	}
	f.Fuzz(func(t *testing.T, head, tail []byte, size int64) {
		if size < 0 {
			size = -size
		}
		size = int64(len(head)) + size%(1<<36)
		img := &sparse{head: head, tail: tail, size: size}
		tb, err := Read(img, size)
		if err != nil {
			return
		}
		if len(tb.Partitions) > int(tb.NumEntries) || (tb.SectorSize != 512 && tb.SectorSize != 4096) {
			t.Fatalf("%d partitions of %d entries, sector size %d", len(tb.Partitions), tb.NumEntries, tb.SectorSize)
		}
		for _, p := range tb.Partitions {
			if p.FirstLBA > p.LastLBA {
				t.Fatalf("partition %+v", p)
			}
		}
		if size > 8<<20 {
			return
		}
		// Written back onto the same image, the table reads the same.
		m := &mem{b: make([]byte, size)}
		img.ReadAt(m.b, 0)
		if err := tb.Write(m, size); err != nil {
			return
		}
		tb2, err := Read(bytes.NewReader(m.b), size)
		if err != nil {
			t.Fatalf("re-reading a written table: %v", err)
		}
		if len(tb2.Partitions) != len(tb.Partitions) || tb2.DiskGUID != tb.DiskGUID || tb2.UsedBackup {
			t.Fatalf("written table reads back differently: %+v\n%+v", tb2, tb)
		}
		for i := range tb.Partitions {
			if tb.Partitions[i] != tb2.Partitions[i] {
				t.Fatalf("partition %d: %+v, read back %+v", i, tb.Partitions[i], tb2.Partitions[i])
			}
		}
	})
}

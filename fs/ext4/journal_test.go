package ext4

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"imgtool/internal/testimg"
)

// sliceRW is an in-memory ReadWriterAt of fixed size.
type sliceRW []byte

func (s sliceRW) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(s)) {
		return 0, io.EOF
	}
	n := copy(p, s[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (s sliceRW) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(s)) {
		return 0, io.ErrShortWrite
	}
	return copy(s[off:], p), nil
}

// repairAll runs what shrink runs, in its order, ignoring errors: only
// panics and hangs are failures.
func repairAll(img []byte) {
	rw := sliceRW(img)
	size := int64(len(img))
	NeedsRecovery(rw, size)
	Replay(rw, size)
	ReleaseOrphans(rw, size)
	if rep, err := Check(rw, size); rep != nil {
		if ce, ok := err.(*CheckError); ok {
			_ = ce.Error()
		}
	}
}

func TestRepairCorpus(t *testing.T) {
	dir := testimg.CorpusDir(t, "e2fsprogs")
	paths, err := filepath.Glob(filepath.Join(dir, "*.img.gz"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no corpus images in %s: %v", dir, err)
	}
	replayed := 0
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".img.gz")
		img := testimg.Gunzip(t, p)
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			done := make(chan struct{})
			var st ReplayStats
			var rerr error
			go func() {
				defer close(done)
				rw := sliceRW(bytes.Clone(img))
				if need, _ := NeedsRecovery(rw, int64(len(rw))); need {
					st, rerr = Replay(rw, int64(len(rw)))
					if rerr == nil {
						replayed++
					}
				}
				ReleaseOrphans(rw, int64(len(rw)))
				if rep, err := Check(rw, int64(len(rw))); rep != nil && err != nil {
					_ = err.Error()
				}
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("still running after 10 s")
			}
			runtime.ReadMemStats(&after)
			if a := after.TotalAlloc - before.TotalAlloc; a > uint64(128<<20+8*len(img)) {
				t.Errorf("allocated %d bytes", a)
			}
			if strings.HasPrefix(name, "j_") {
				t.Logf("replay: %+v %v", st, rerr)
			}
		})
	}
	t.Logf("%d journals replayed", replayed)
}

// fuzzBase returns a small image whose journal holds committed
// transactions: a corpus image when available.
func fuzzBase(tb testing.TB) []byte {
	tb.Helper()
	root, _ := os.Getwd()
	for range 6 {
		p := filepath.Join(root, "..", "shared", "corpus", "e2fsprogs", "j_recover_csum3_64bit.img.gz")
		if b, err := gunzipFile(p); err == nil {
			return b
		}
		root = filepath.Dir(root)
	}
	tb.Skip("j_recover_csum3_64bit.img.gz not found")
	return nil
}

func gunzipFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(zr, 64<<20))
}

// FuzzJournal overwrites the start of the journal's log (and its
// superblock) of an image needing recovery with mutated bytes, then runs
// the repair steps.
func FuzzJournal(f *testing.F) {
	base := fuzzBase(f)
	fsys, err := New(bytes.NewReader(base), int64(len(base)), WithoutVerify())
	if err != nil {
		f.Fatal(err)
	}
	j, err := openJournal(fsys)
	if err != nil {
		f.Fatal(err)
	}
	bs := j.bs
	// The log is contiguous in this image: journal blocks 0..15.
	logOff := int64(j.sbBlock) * bs
	logLen := min(16*bs, int64(len(base))-logOff)
	f.Add(bytes.Clone(base[logOff+bs:logOff+2*bs]), uint16(1))
	f.Add(bytes.Clone(base[logOff:logOff+256]), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, at uint16) {
		img := bytes.Clone(base)
		off := logOff + int64(at%16)*bs
		if off < int64(len(img)) {
			copy(img[off:min(int64(len(img)), logOff+logLen)], data)
		}
		repairAll(img)
	})
}

// FuzzCheck mutates metadata bytes (superblock, descriptors, bitmaps,
// inode tables) of a small image and runs Check and ReleaseOrphans.
func FuzzCheck(f *testing.F) {
	base := fuzzBase(f)
	f.Add(uint32(1024+0xE8), []byte{12, 0, 0, 0}) // s_last_orphan
	f.Add(uint32(2048+0x0C), []byte{0xFF, 0xFF})  // a group's free count
	f.Add(uint32(0), []byte{})
	f.Fuzz(func(t *testing.T, off uint32, data []byte) {
		img := bytes.Clone(base)
		o := int64(off) % int64(len(img))
		copy(img[o:], data)
		repairAll(img)
	})
}

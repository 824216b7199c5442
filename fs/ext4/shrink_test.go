package ext4

import (
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"imgtool/internal/testimg"
)

// memImage is an in-memory ReadWriterAt.
type memImage struct{ b []byte }

func (m *memImage) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memImage) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, io.ErrShortWrite
	}
	return copy(m.b[off:], p), nil
}

// TestShrinkCorpus runs MinSize, PlanShrink and Shrink over the e2fsprogs
// test images (many of them damaged on purpose): they must return errors,
// never panic or hang.
func TestShrinkCorpus(t *testing.T) {
	dir := testimg.CorpusDir(t, "e2fsprogs")
	paths, err := filepath.Glob(filepath.Join(dir, "*.img.gz"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no corpus images in %s: %v", dir, err)
	}
	shrunk := 0
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".img.gz")
		data := testimg.Gunzip(t, p)
		t.Run(name, func(t *testing.T) {
			done := make(chan bool, 1)
			go func() {
				m := &memImage{b: data}
				size := int64(len(data))
				ok := false
				if n, err := MinSize(m, size); err == nil {
					if _, err := PlanShrink(m, size, n); err == nil {
						ok = Shrink(m, size, n, ShrinkOptions{}) == nil
					}
				}
				if sb, _, err := readSuperblock(m, size); err == nil {
					PlanShrink(m, size, uint64(sb.BlocksCountLo)/2)
				}
				done <- ok
			}()
			select {
			case ok := <-done:
				if ok {
					shrunk++
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("still running after 20 s")
			}
		})
	}
	t.Logf("%d of %d images shrunk", shrunk, len(paths))
}

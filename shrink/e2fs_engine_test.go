package shrink

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"imgtool/fs/ext4"
	"imgtool/internal/testimg"
	"imgtool/internal/zero"
)

// e2fsEngine is an Engine made of e2fsprogs (resize2fs, e2fsck, debugfs)
// run on a copy of the partition, whose changed 64 KiB chunks are written
// back through the WriterAt. The tests use it while fs/ext4 has no write
// path of its own, so that everything around the engine (undo log,
// partition tables, truncation, expansion, crash recovery) is tested
// against real tools.
type e2fsEngine struct{ dir string }

// useEngine selects the fs/ext4 engine when it is complete, else the
// e2fsprogs one, and returns its name.
func useEngine(t testing.TB) string {
	t.Helper()
	real := os.Getenv("IMGTOOL_TEST_E2FS_ENGINE") == ""
	for _, tool := range []string{"resize2fs", "e2fsck", "debugfs"} {
		if _, err := lookTool(tool); err != nil {
			testimg.Skip(t, "no %s for the e2fsprogs test engine", tool)
		}
	}
	old := engine
	t.Cleanup(func() { engine = old })
	e2 := e2fsEngine{dir: t.TempDir()}
	if !real {
		engine = e2
		return "e2fsprogs"
	}
	return "fs/ext4"
}

func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

func (e e2fsEngine) run(name string, args ...string) (string, error) {
	p, err := lookTool(name)
	if err != nil {
		return "", err
	}
	out, err := exec.Command(p, args...).CombinedOutput()
	return string(out), err
}

// export copies the partition to a sparse temporary file.
func (e e2fsEngine) export(r io.ReaderAt, size int64) (string, error) {
	f, err := os.CreateTemp(e.dir, "part-*.ext4")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return "", err
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		b := buf[:min(int64(len(buf)), size-off)]
		n, err := r.ReadAt(b, off)
		if n < len(b) && err != nil {
			return "", err
		}
		if !zero.Is(b) {
			if _, err := f.WriteAt(b, off); err != nil {
				return "", err
			}
		}
		off += int64(len(b))
	}
	return f.Name(), nil
}

// importBack writes the 64 KiB chunks of file that differ from w's.
func (e e2fsEngine) importBack(file string, rw ReadWriterAt, size int64) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	const chunk = 64 << 10
	a, b := make([]byte, chunk), make([]byte, chunk)
	for off := int64(0); off < size; off += chunk {
		n := min(chunk, size-off)
		if _, err := f.ReadAt(a[:n], off); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if _, err := rw.ReadAt(b[:n], off); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if !bytes.Equal(a[:n], b[:n]) {
			if _, err := rw.WriteAt(a[:n], off); err != nil {
				return err
			}
		}
	}
	return nil
}

var minRE = regexp.MustCompile(`minimum size of the filesystem: (\d+)`)

func (e e2fsEngine) MinSize(r io.ReaderAt, size int64) (uint64, error) {
	p, err := e.export(r, size)
	if err != nil {
		return 0, err
	}
	defer os.Remove(p)
	out, err := e.run("resize2fs", "-P", p)
	m := minRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("resize2fs -P: %v: %s", err, out)
	}
	return strconv.ParseUint(m[1], 10, 64)
}

func (e e2fsEngine) PlanShrink(io.ReaderAt, int64, uint64) (EnginePlan, error) {
	return EnginePlan{}, nil
}

func (e e2fsEngine) Shrink(rw ReadWriterAt, size int64, newBlocks uint64, _ Progress) error {
	p, err := e.export(rw, size)
	if err != nil {
		return err
	}
	defer os.Remove(p)
	if out, err := e.run("resize2fs", "-f", p, strconv.FormatUint(newBlocks, 10)); err != nil {
		return fmt.Errorf("resize2fs: %v: %s", err, out)
	}
	return e.importBack(p, rw, size)
}

func (e e2fsEngine) NeedsRecovery(r io.ReaderAt, size int64) (bool, error) {
	return ext4.NeedsRecovery(r, size)
}

func (e e2fsEngine) Replay(rw ReadWriterAt, size int64) error {
	_, err := ext4.Replay(rw, size)
	return err
}

func (e e2fsEngine) ReleaseOrphans(ReadWriterAt, int64) (int, error) { return 0, nil }

func (e e2fsEngine) Check(r io.ReaderAt, size int64) error {
	p, err := e.export(r, size)
	if err != nil {
		return err
	}
	defer os.Remove(p)
	if out, err := e.run("e2fsck", "-fn", p); err != nil {
		return fmt.Errorf("e2fsck: %v: %s", err, lastLines(out))
	}
	return nil
}

// MarkClean uses fs/ext4's: e2fsck -n does not write.
func (e e2fsEngine) MarkClean(rw ReadWriterAt, size int64) error { return ext4.MarkClean(rw, size) }

func lastLines(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-3):], " / ")
}

func (e e2fsEngine) OpenWriter(rw ReadWriterAt, size int64) (FileWriter, error) {
	return &debugfsWriter{e: e, rw: rw, size: size}, nil
}

// debugfsWriter queues debugfs commands and runs them on Close.
type debugfsWriter struct {
	e    e2fsEngine
	rw   ReadWriterAt
	size int64
	cmds []string
	n    int
}

func (w *debugfsWriter) WriteFile(path string, data []byte, mode iofs.FileMode, uid, gid uint32) error {
	w.n++
	src := filepath.Join(w.e.dir, fmt.Sprintf("data-%d", w.n))
	if err := os.WriteFile(src, data, 0o600); err != nil {
		return err
	}
	w.cmds = append(w.cmds, "rm "+path, "write "+src+" "+path,
		fmt.Sprintf("sif %s mode 0%o", path, 0o100000|uint32(mode.Perm())),
		fmt.Sprintf("sif %s uid %d", path, uid), fmt.Sprintf("sif %s gid %d", path, gid))
	return nil
}

func (w *debugfsWriter) Mkdir(path string, mode iofs.FileMode) error {
	w.cmds = append(w.cmds, "mkdir "+path)
	return nil
}

func (w *debugfsWriter) Symlink(target, path string) error {
	w.cmds = append(w.cmds, "symlink "+path+" "+target)
	return nil
}

func (w *debugfsWriter) Remove(path string) error {
	w.cmds = append(w.cmds, "rm "+path)
	return nil
}

func (w *debugfsWriter) Close() error {
	p, err := w.e.export(w.rw, w.size)
	if err != nil {
		return err
	}
	defer os.Remove(p)
	script := filepath.Join(w.e.dir, "cmds")
	if err := os.WriteFile(script, []byte(strings.Join(w.cmds, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	if out, err := w.e.run("debugfs", "-w", "-f", script, p); err != nil {
		return fmt.Errorf("debugfs: %v: %s", err, out)
	}
	return w.e.importBack(p, w.rw, w.size)
}

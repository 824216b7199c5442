package fusemount_test

import (
	"bytes"
	"errors"
	iofs "io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"imgtool/fs/meta"
	"imgtool/fusemount"
	"imgtool/internal/testimg"
)

// TestGenericFS mounts a plain io/fs.FS without *meta.Stat: modes and
// times come from FileInfo, inode numbers are synthetic but distinct and
// stable, links come from ReadLink. A file whose data ends before the
// size its metadata claims reads as EIO, not as a short file.
func TestGenericFS(t *testing.T) {
	needFUSE(t)
	t0 := time.Date(2022, 5, 6, 7, 8, 9, 123456789, time.UTC)
	big := bytes.Repeat([]byte("x"), 300000)
	fsys := fstest.MapFS{
		"hello.txt": {Data: []byte("hello\n"), Mode: 0o640, ModTime: t0},
		"dir/sub/x": {Data: big, Mode: 0o600, ModTime: t0},
		"link":      {Data: []byte("hello.txt"), Mode: iofs.ModeSymlink | 0o777},
		"short.bin": {Data: big[:1000], Sys: &meta.Stat{
			Ino: 77, Unix: syscall.S_IFREG | 0o644, Nlink: 1, Size: 1 << 20, Mtime: t0,
		}},
	}
	mp := t.TempDir()
	srv, err := fusemount.Mount(mp, fsys, fusemount.Options{})
	must(t, err)
	t.Cleanup(func() { unmountCleanup(t, srv) })

	if b, err := os.ReadFile(filepath.Join(mp, "hello.txt")); err != nil || string(b) != "hello\n" {
		t.Errorf("hello.txt: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "dir/sub/x")); err != nil || !bytes.Equal(b, big) {
		t.Errorf("dir/sub/x: %d bytes, %v", len(b), err)
	}
	if target, err := os.Readlink(filepath.Join(mp, "link")); err != nil || target != "hello.txt" {
		t.Errorf("readlink: %q, %v", target, err)
	}
	var a, b, c syscall.Stat_t
	must(t, syscall.Stat(filepath.Join(mp, "hello.txt"), &a))
	must(t, syscall.Stat(filepath.Join(mp, "dir/sub/x"), &b))
	must(t, syscall.Stat(filepath.Join(mp, "short.bin"), &c))
	if a.Mode != syscall.S_IFREG|0o640 || a.Mtim.Nano() != t0.UnixNano() || a.Size != 6 || a.Nlink != 1 {
		t.Errorf("hello.txt: mode %o mtime %d size %d", a.Mode, a.Mtim.Nano(), a.Size)
	}
	if a.Ino == b.Ino || a.Ino == 0 || c.Ino != 77 {
		t.Errorf("inode numbers: %d, %d, %d", a.Ino, b.Ino, c.Ino)
	}
	var again syscall.Stat_t
	must(t, syscall.Stat(filepath.Join(mp, "hello.txt"), &again))
	if again.Ino != a.Ino {
		t.Errorf("inode number changed: %d then %d", a.Ino, again.Ino)
	}
	if _, err := os.ReadFile(filepath.Join(mp, "short.bin")); !errors.Is(err, syscall.EIO) {
		t.Errorf("short.bin: %v, want EIO", err)
	}
}

// needFUSE skips (fails under IMGTOOL_STRICT) where FUSE cannot mount.
func needFUSE(t testing.TB) {
	t.Helper()
	if err := fusemount.Available(); err != nil {
		testimg.Skip(t, "%v", err)
	}
}

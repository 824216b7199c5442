package extract

import (
	"bytes"
	iofs "io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"imgtool/internal/testimg"
)

const sparseSize = 8 << 20

// normalTree is a tree with every kind of entry imgtool reproduces.
func normalTree() *fakeFS {
	h1 := mkFile("h1", 0o644, "linked content")
	h2 := mkFile("h2", 0o644, "linked content")
	h1.st.Ino, h1.st.Nlink = 500, 2
	h2.st.Ino, h2.st.Nlink = 500, 2

	sparse := mkFile("sparse.img", 0o640, "")
	sparse.st.Size = sparseSize
	sparse.gen = sparseContent

	tool := mkFile("tool", 0o755|iofs.ModeSetuid, "#!/bin/sh\n")
	ro := mkDir("ro", 0o555, mkFile("inside", 0o444, "read only"))
	ro.st.Mtime = t0.Add(-48 * time.Hour)
	deep := mkDir("c", 0o750, mkFile("deep.txt", 0o600, "deep"))
	deep.st.Mtime = t0.Add(7*time.Second + 1)

	return &fakeFS{root: mkDir(".", 0o755,
		mkFile("hello.txt", 0o644, "hello\n"),
		mkFile("empty", 0o600, ""),
		mkDir("bin", 0o755, tool),
		mkDir("a", 0o755, mkDir("b", 0o711, deep), h2),
		h1,
		mkLink("rel", "hello.txt"),
		mkLink("abs", "/etc/passwd"),
		mkLink("dangling", "nowhere/x"),
		mkSpecial("fifo", iofs.ModeNamedPipe|0o640, 0, 0),
		sparse,
		ro,
		mkDir("tmp", 0o777|iofs.ModeSticky),
	)}
}

// sparseContent has data in the first 4 KiB and 100 bytes at 4 MiB; the
// rest is zeros.
func sparseContent(off int64, p []byte) {
	for i := range p {
		o := off + int64(i)
		switch {
		case o < 4096:
			p[i] = byte(o%251) + 1
		case o >= 4<<20 && o < 4<<20+100:
			p[i] = 'z'
		default:
			p[i] = 0
		}
	}
}

func nodeContent(n *node) []byte {
	if n.gen == nil {
		return n.data
	}
	b := make([]byte, n.st.Size)
	n.gen(0, b)
	return b
}

// verifyTree checks that host dir reproduces the fake directory n: types,
// permissions, times with nanoseconds, content and link targets. All times
// are checked before any content is read, which could touch atimes.
func verifyTree(t *testing.T, n *node, dir string, owners bool) {
	t.Helper()
	verifyPass(t, n, dir, owners, false)
	verifyPass(t, n, dir, owners, true)
}

func verifyPass(t *testing.T, n *node, dir string, owners, content bool) {
	t.Helper()
	for _, k := range n.kids {
		p := filepath.Join(dir, k.name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		wantMode := k.st.Mode
		if !owners {
			wantMode &^= iofs.ModeSetuid | iofs.ModeSetgid
		}
		if k.st.Mode&iofs.ModeSymlink != 0 {
			wantMode = fi.Mode() // link permissions are not settable on Linux
		}
		if fi.Mode() != wantMode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), wantMode)
		}
		if !fi.ModTime().Equal(k.st.Mtime) {
			t.Errorf("%s: mtime %v, want %v", p, fi.ModTime(), k.st.Mtime)
		}
		if at := time.Unix(st.Atim.Sec, st.Atim.Nsec); !content && !at.Equal(k.st.Atime) {
			t.Errorf("%s: atime %v, want %v", p, at, k.st.Atime)
		}
		switch {
		case k.st.Mode.IsDir():
			verifyPass(t, k, p, owners, content)
		case k.st.Mode.IsRegular() && content:
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, nodeContent(k)) {
				t.Errorf("%s: content differs (%d bytes, %v)", p, len(got), err)
			}
		case k.st.Mode&iofs.ModeSymlink != 0:
			if got, _ := os.Readlink(p); got != k.st.Link {
				t.Errorf("%s: link %q, want %q", p, got, k.st.Link)
			}
		}
	}
	if !content {
		return
	}
	list, _ := os.ReadDir(dir)
	if len(list) != len(n.kids) {
		t.Errorf("%s: %d entries, want %d", dir, len(list), len(n.kids))
	}
}

func TestNormalTree(t *testing.T) {
	fsys := normalTree()
	dest := filepath.Join(t.TempDir(), "out")
	res := mustCopy(t, fsys, ".", dest, Options{})
	if len(res.Warnings) != 0 {
		t.Fatalf("warnings: %q", res.Warnings)
	}
	verifyTree(t, fsys.root, dest, false)

	h1, _ := os.Lstat(filepath.Join(dest, "h1"))
	h2, _ := os.Lstat(filepath.Join(dest, "a", "h2"))
	if !os.SameFile(h1, h2) {
		t.Error("h1 and a/h2 are not one file")
	}
	sp, _ := os.Lstat(filepath.Join(dest, "sparse.img"))
	if sp.Size() != sparseSize {
		t.Errorf("sparse size %d", sp.Size())
	}
	if alloc := sp.Sys().(*syscall.Stat_t).Blocks * 512; alloc >= sparseSize/2 {
		t.Errorf("sparse file allocates %d bytes of %d", alloc, sparseSize)
	}
	fifo, _ := os.Lstat(filepath.Join(dest, "fifo"))
	if fifo.Mode().Type() != iofs.ModeNamedPipe {
		t.Errorf("fifo type %v", fifo.Mode())
	}
	want := Result{Files: 7, Dirs: 7, Symlinks: 3, HardLinks: 1, Special: 1,
		Bytes: int64(6 + 10 + 4 + 14 + sparseSize + 9)}
	res.Warnings = nil
	if !reflect.DeepEqual(res, want) {
		t.Errorf("result %+v, want %+v", res, want)
	}
}

func TestOwnersAsRoot(t *testing.T) {
	testimg.NeedRoot(t)
	fsys := normalTree()
	var set func(n *node, uid uint32)
	set = func(n *node, uid uint32) {
		n.st.Uid, n.st.Gid = uid, uid+1000
		for i, k := range n.kids {
			set(k, uid+uint32(i)+1)
		}
	}
	set(fsys.root, 2000)
	dest := filepath.Join(t.TempDir(), "out")
	res := mustCopy(t, fsys, ".", dest, Options{Owners: true})
	if len(res.Warnings) != 0 {
		t.Fatalf("warnings: %q", res.Warnings)
	}
	verifyTree(t, fsys.root, dest, true) // setuid kept
	var check func(n *node, p string)
	check = func(n *node, p string) {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if n.st.Nlink < 2 && (st.Uid != n.st.Uid || st.Gid != n.st.Gid) {
			t.Errorf("%s: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, n.st.Uid, n.st.Gid)
		}
		for _, k := range n.kids {
			check(k, filepath.Join(p, k.name))
		}
	}
	check(fsys.root, dest)
	tool, _ := os.Lstat(filepath.Join(dest, "bin", "tool"))
	if tool.Mode()&iofs.ModeSetuid == 0 {
		t.Error("setuid dropped with Owners")
	}
}

// userXattrs reports whether the filesystem holding dir takes user xattrs.
func userXattrs(dir string) bool {
	return unix.Setxattr(dir, "user.imgtool-probe", []byte("1"), 0) == nil
}

func getxattr(t *testing.T, p, name string) (string, error) {
	t.Helper()
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func xattrTree() *fakeFS {
	f := mkFile("f", 0o444, "x")
	f.st.Xattrs = map[string][]byte{"user.a": []byte("one"), "user.bin": {0, 1, 2, 255},
		"trusted.t": []byte("tt"), "security.s": []byte("ss"), "weird.x": []byte("w")}
	d := mkDir("d", 0o555)
	d.st.Xattrs = map[string][]byte{"user.c": []byte("dir"), "trusted.d": []byte("td")}
	l := mkLink("l", "f")
	l.st.Xattrs = map[string][]byte{"trusted.l": []byte("tl")}
	return &fakeFS{root: mkDir(".", 0o755, f, d, l)}
}

func TestXattrsUnprivileged(t *testing.T) {
	old := isRoot
	isRoot = func() bool { return false }
	defer func() { isRoot = old }()
	dest := t.TempDir()
	res := mustCopy(t, xattrTree(), ".", dest, Options{Xattrs: true})
	all := strings.Join(res.Warnings, "\n")
	for _, want := range []string{`"trusted.t" not restored: needs root`, `"security.s" not restored: needs root`,
		`"weird.x" not restored: namespace`, `"trusted.d" not restored: needs root`, `"trusted.l" not restored: needs root`} {
		if !strings.Contains(all, want) {
			t.Errorf("no warning %q in\n%s", want, all)
		}
	}
	if _, err := getxattr(t, filepath.Join(dest, "f"), "trusted.t"); err == nil {
		t.Error("trusted.t restored without root")
	}
	if !userXattrs(dest) {
		t.Skip("host filesystem does not support user xattrs")
	}
	for p, kv := range map[string][2]string{"f": {"user.a", "one"}, "d": {"user.c", "dir"}} {
		if got, err := getxattr(t, filepath.Join(dest, p), kv[0]); err != nil || got != kv[1] {
			t.Errorf("%s %s = %q, %v", p, kv[0], got, err)
		}
	}
	if got, _ := getxattr(t, filepath.Join(dest, "f"), "user.bin"); got != "\x00\x01\x02\xff" {
		t.Errorf("user.bin = %q", got)
	}
	// The read-only mode came after the xattrs.
	if fi, _ := os.Stat(filepath.Join(dest, "f")); fi.Mode().Perm() != 0o444 {
		t.Errorf("mode %v", fi.Mode())
	}
}

func TestXattrsAsRoot(t *testing.T) {
	testimg.NeedRoot(t)
	dest := t.TempDir()
	if unix.Setxattr(dest, "trusted.imgtool-probe", []byte("1"), 0) != nil {
		testimg.Skip(t, "host filesystem does not support trusted xattrs")
	}
	res := mustCopy(t, xattrTree(), ".", dest, Options{Xattrs: true})
	for _, c := range []struct{ p, name, want string }{
		{"f", "trusted.t", "tt"}, {"d", "trusted.d", "td"}, {"l", "trusted.l", "tl"},
	} {
		if got, err := getxattr(t, filepath.Join(dest, c.p), c.name); err != nil || got != c.want {
			t.Errorf("%s %s = %q, %v (warnings %q)", c.p, c.name, got, err, res.Warnings)
		}
	}
	// The link's own xattr, not its target's.
	if _, err := getxattr(t, filepath.Join(dest, "f"), "trusted.l"); err == nil {
		t.Error("symlink xattr landed on its target")
	}
}

func TestDevices(t *testing.T) {
	tree := func() *fakeFS {
		return &fakeFS{root: mkDir(".", 0o755,
			mkSpecial("null", iofs.ModeDevice|iofs.ModeCharDevice|0o666, 1, 3),
			mkSpecial("sda", iofs.ModeDevice|0o660, 8, 0),
			mkSpecial("sock", iofs.ModeSocket|0o755, 0, 0),
		)}
	}
	t.Run("not asked", func(t *testing.T) {
		dest := t.TempDir()
		res := mustCopy(t, tree(), ".", dest, Options{})
		if list, _ := os.ReadDir(dest); len(list) != 0 || res.Skipped != 3 || res.Special != 0 {
			t.Fatalf("created %v, result %+v", list, res)
		}
	})
	t.Run("not root", func(t *testing.T) {
		old := isRoot
		isRoot = func() bool { return false }
		defer func() { isRoot = old }()
		dest := t.TempDir()
		res := mustCopy(t, tree(), ".", dest, Options{Devices: true})
		if list, _ := os.ReadDir(dest); len(list) != 0 || res.Skipped != 3 ||
			!strings.Contains(strings.Join(res.Warnings, "\n"), "needs root") {
			t.Fatalf("created %v, result %+v", list, res)
		}
	})
	t.Run("root", func(t *testing.T) {
		testimg.NeedRoot(t)
		dest := t.TempDir()
		res := mustCopy(t, tree(), ".", dest, Options{Devices: true})
		for _, c := range []struct {
			name         string
			typ          iofs.FileMode
			perm         iofs.FileMode
			major, minor uint32
		}{{"null", iofs.ModeDevice | iofs.ModeCharDevice, 0o666, 1, 3}, {"sda", iofs.ModeDevice, 0o660, 8, 0}} {
			fi, err := os.Lstat(filepath.Join(dest, c.name))
			if err != nil {
				t.Fatal(err)
			}
			rdev := fi.Sys().(*syscall.Stat_t).Rdev
			if fi.Mode().Type() != c.typ || fi.Mode().Perm() != c.perm || unix.Major(rdev) != c.major || unix.Minor(rdev) != c.minor {
				t.Errorf("%s: mode %v rdev %d:%d", c.name, fi.Mode(), unix.Major(rdev), unix.Minor(rdev))
			}
		}
		if res.Special != 2 || res.Skipped != 1 {
			t.Errorf("result %+v", res)
		}
	})
}

// TestNoFollowOnLinkTimes checks that restoring a symbolic link's times
// leaves the file it points to alone.
func TestNoFollowOnLinkTimes(t *testing.T) {
	a := newArena(t)
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	os.Chtimes(a.target, old, old)
	fsys := &fakeFS{root: mkDir(".", 0o755, mkLink("l", a.target))}
	mustCopy(t, fsys, ".", a.dest, Options{})
	if fi, _ := os.Stat(a.target); !fi.ModTime().Equal(old) {
		t.Fatalf("target time changed to %v", fi.ModTime())
	}
	if fi, _ := os.Lstat(filepath.Join(a.dest, "l")); !fi.ModTime().Equal(t0.Add(3 * time.Second)) {
		t.Fatalf("link time %v", fi.ModTime())
	}
}

package extract

import (
	"context"
	"errors"
	iofs "io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// arena is a temp dir with a destination and an "outside" folder holding a
// file that attacks try to overwrite.
type arena struct {
	parent, dest, outside, target string
}

func newArena(t *testing.T) arena {
	t.Helper()
	parent := t.TempDir()
	a := arena{parent: parent, dest: filepath.Join(parent, "dest"), outside: filepath.Join(parent, "outside")}
	a.target = filepath.Join(a.outside, "passwd")
	if err := os.Mkdir(a.outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.target, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	return a
}

// checkOutside fails unless everything outside dest is as in before.
func (a arena) checkOutside(t *testing.T, before map[string]string) {
	t.Helper()
	after := without(snapshot(t, a.parent), "dest")
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("outside dest changed:\nbefore %v\nafter  %v", before, after)
	}
	if got := readString(t, a.target); got != "original" {
		t.Fatalf("target overwritten: %q", got)
	}
}

func TestSymlinkThenDirectorySameName(t *testing.T) {
	for _, force := range []bool{false, true} {
		a := newArena(t)
		// "a" is a link to the outside folder, then a directory "a" with
		// a passwd in it: writing a/passwd through the link would hit the
		// target.
		fsys := &fakeFS{root: mkDir(".", 0o755,
			mkLink("a", a.outside),
			mkDir("a", 0o755, mkFile("passwd", 0o644, "pwned")),
			mkLink("r", "../outside"),
			mkDir("r", 0o755, mkFile("passwd", 0o644, "pwned")),
		)}
		before := without(snapshot(t, a.parent), "dest")
		res, err := Copy(context.Background(), fsys, ".", a.dest, Options{Force: force})
		if err != nil {
			t.Fatalf("force=%v: %v", force, err)
		}
		a.checkOutside(t, before)
		if res.Skipped != 2 || !strings.Contains(strings.Join(res.Warnings, "\n"), "duplicate") {
			t.Fatalf("force=%v: result %+v", force, res)
		}
	}
}

func TestWriteThroughExistingSymlinks(t *testing.T) {
	a := newArena(t)
	// A first extraction leaves links to the outside in dest ...
	first := &fakeFS{root: mkDir(".", 0o755,
		mkLink("abs", a.outside),
		mkLink("rel", "../outside"),
		mkLink("file", a.target),
		mkLink("relfile", "../outside/passwd"),
	)}
	mustCopy(t, first, ".", a.dest, Options{})
	before := without(snapshot(t, a.parent), "dest")

	// ... and a second one has real directories and files at those names.
	second := &fakeFS{root: mkDir(".", 0o755,
		mkDir("abs", 0o755, mkFile("passwd", 0o644, "pwned")),
		mkDir("rel", 0o755, mkFile("passwd", 0o644, "pwned")),
		mkFile("file", 0o644, "pwned"),
		mkFile("relfile", 0o644, "pwned"),
	)}
	_, err := Copy(context.Background(), second, ".", a.dest, Options{})
	if !errors.Is(err, ErrExist) {
		t.Fatalf("without Force: err = %v, want ErrExist", err)
	}
	a.checkOutside(t, before)

	res := mustCopy(t, second, ".", a.dest, Options{Force: true})
	a.checkOutside(t, before)
	for _, p := range []string{"abs/passwd", "rel/passwd", "file", "relfile"} {
		full := filepath.Join(a.dest, p)
		fi, err := os.Lstat(full)
		if err != nil || !fi.Mode().IsRegular() || readString(t, full) != "pwned" {
			t.Fatalf("%s: %v %v, want a regular file inside dest", p, fi, err)
		}
	}
	for _, d := range []string{"abs", "rel"} {
		if fi, err := os.Lstat(filepath.Join(a.dest, d)); err != nil || !fi.IsDir() {
			t.Fatalf("%s is not a real directory: %v", d, err)
		}
	}
	if res.Files != 4 {
		t.Fatalf("result %+v", res)
	}
}

func TestSymlinkThenFileSameName(t *testing.T) {
	for _, force := range []bool{false, true} {
		a := newArena(t)
		fsys := &fakeFS{root: mkDir(".", 0o755,
			mkLink("f", a.target),
			mkFile("f", 0o644, "pwned"),
		)}
		before := without(snapshot(t, a.parent), "dest")
		res, err := Copy(context.Background(), fsys, ".", a.dest, Options{Force: force})
		if err != nil {
			t.Fatal(err)
		}
		a.checkOutside(t, before)
		if res.Skipped != 1 {
			t.Fatalf("result %+v", res)
		}
	}
}

func TestHardLinkToSymlinkOutside(t *testing.T) {
	a := newArena(t)
	l := mkLink("l1", a.target)
	f := mkFile("l2", 0o644, "pwned")
	l.st.Ino, l.st.Nlink = 7, 2
	f.st.Ino, f.st.Nlink = 7, 2
	g := mkFile("l3", 0o644, "pwned")
	g.st.Ino, g.st.Nlink = 7, 2
	fsys := &fakeFS{root: mkDir(".", 0o755, l, f, g)}
	before := without(snapshot(t, a.parent), "dest")
	res := mustCopy(t, fsys, ".", a.dest, Options{Force: true})
	a.checkOutside(t, before)

	l2, err := os.Lstat(filepath.Join(a.dest, "l2"))
	if err != nil || !l2.Mode().IsRegular() || readString(t, filepath.Join(a.dest, "l2")) != "pwned" {
		t.Fatalf("l2 not a regular file with its content: %v", err)
	}
	tgt, _ := os.Stat(a.target)
	if os.SameFile(l2, tgt) {
		t.Fatal("l2 is the outside file")
	}
	l3, _ := os.Lstat(filepath.Join(a.dest, "l3"))
	if !os.SameFile(l2, l3) {
		t.Fatal("l3 should be a hard link to the first regular copy l2")
	}
	if res.Symlinks != 1 || res.Files != 1 || res.HardLinks != 1 {
		t.Fatalf("result %+v", res)
	}
}

func TestCaseCollisions(t *testing.T) {
	build := func(a arena) *fakeFS {
		return &fakeFS{root: mkDir(".", 0o755,
			mkLink("A", a.outside),
			mkDir("a", 0o755, mkFile("passwd", 0o644, "pwned")),
		)}
	}
	t.Run("case-sensitive host", func(t *testing.T) {
		a := newArena(t)
		before := without(snapshot(t, a.parent), "dest")
		res := mustCopy(t, build(a), ".", a.dest, Options{})
		a.checkOutside(t, before)
		if readString(t, filepath.Join(a.dest, "a", "passwd")) != "pwned" {
			t.Fatal("a/passwd missing")
		}
		if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "only in case") || res.Skipped != 0 {
			t.Fatalf("result %+v", res)
		}
	})
	t.Run("merging host", func(t *testing.T) {
		// Simulate a case-insensitive host: the probe says "a" is "A".
		old := caseMerged
		caseMerged = func(*os.Root, string, string) bool { return true }
		defer func() { caseMerged = old }()
		a := newArena(t)
		before := without(snapshot(t, a.parent), "dest")
		res := mustCopy(t, build(a), ".", a.dest, Options{Force: true})
		a.checkOutside(t, before)
		if _, err := os.Lstat(filepath.Join(a.dest, "a")); !errors.Is(err, iofs.ErrNotExist) {
			t.Fatalf("a was created: %v", err)
		}
		if res.Skipped != 1 || !strings.Contains(strings.Join(res.Warnings, "\n"), "only in case") {
			t.Fatalf("result %+v", res)
		}
	})
}

func TestDirectoryLoop(t *testing.T) {
	loop := mkDir("loop", 0o755, mkFile("f", 0o644, "x"))
	loop.kids = append(loop.kids, loop) // loop/loop is loop again
	fsys := &fakeFS{root: mkDir(".", 0o755, loop)}
	dest := t.TempDir()
	res := mustCopy(t, fsys, ".", dest, Options{})
	if readString(t, filepath.Join(dest, "loop", "f")) != "x" {
		t.Fatal("loop/f missing")
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "loop") {
		t.Fatalf("no loop warning: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(dest, "loop", "loop", "loop")); err == nil {
		t.Fatal("loop followed more than once")
	}
}

func TestDeepNesting(t *testing.T) {
	n := mkFile("bottom", 0o644, "x")
	for i := 0; i < maxDepth+10; i++ {
		d := mkDir("d", 0o755, n)
		d.st.Ino = 0 // no inode numbers: only the depth cap stops it
		n = d
	}
	fsys := &fakeFS{root: mkDir(".", 0o755, n)}
	res := mustCopy(t, fsys, ".", t.TempDir(), Options{})
	if res.Files != 0 || !strings.Contains(strings.Join(res.Warnings, "\n"), "nested deeper") {
		t.Fatalf("result Files=%d warnings=%q", res.Files, res.Warnings)
	}
}

func TestWarningCap(t *testing.T) {
	var kids []*node
	for i := 0; i < maxWarnings+500; i++ {
		kids = append(kids, mkFile("", 0o644, "x"))
	}
	fsys := &fakeFS{root: mkDir(".", 0o755, kids...)}
	res := mustCopy(t, fsys, ".", t.TempDir(), Options{})
	if res.Skipped != maxWarnings+500 || len(res.Warnings) != maxWarnings+1 ||
		!strings.Contains(res.Warnings[maxWarnings], "500 more") {
		t.Fatalf("Skipped=%d, %d warnings, last %q", res.Skipped, len(res.Warnings), res.Warnings[len(res.Warnings)-1])
	}
}

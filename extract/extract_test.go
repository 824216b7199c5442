package extract

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// snapshot describes every entry under dir (type, size, link target and
// content of small files), keyed by slash path.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%v %d", fi.Mode(), fi.Size())
		switch {
		case fi.Mode()&iofs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular() && fi.Size() < 1<<20:
			b, _ := os.ReadFile(p)
			desc += " " + string(b)
		}
		out[filepath.ToSlash(rel)] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// without drops the entries under prefix from a snapshot.
func without(s map[string]string, prefix string) map[string]string {
	out := map[string]string{}
	for k, v := range s {
		if k == prefix || strings.HasPrefix(k, prefix+"/") {
			continue
		}
		out[k] = v
	}
	return out
}

func readString(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustCopy(t *testing.T, fsys iofs.FS, src, dest string, opt Options) Result {
	t.Helper()
	res, err := Copy(context.Background(), fsys, src, dest, opt)
	if err != nil {
		t.Fatalf("Copy(%q, %q): %v", src, dest, err)
	}
	return res
}

func smallTree() *fakeFS {
	return &fakeFS{root: mkDir(".", 0o755,
		mkFile("top.txt", 0o644, "top"),
		mkDir("etc", 0o755,
			mkFile("fstab", 0o644, "proc /proc proc defaults 0 0\n"),
			mkDir("ssh", 0o700, mkFile("key", 0o600, "secret")),
		),
	)}
}

func TestDestinationRules(t *testing.T) {
	fsys := smallTree()
	t.Run("file to new path", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "copy")
		res := mustCopy(t, fsys, "etc/fstab", dest, Options{})
		if got := readString(t, dest); got != "proc /proc proc defaults 0 0\n" {
			t.Fatalf("content %q", got)
		}
		if res.Files != 1 || res.Bytes != 29 {
			t.Fatalf("result %+v", res)
		}
	})
	t.Run("file into existing dir", func(t *testing.T) {
		dest := t.TempDir()
		mustCopy(t, fsys, "etc/fstab", dest, Options{})
		if got := readString(t, filepath.Join(dest, "fstab")); !strings.HasPrefix(got, "proc") {
			t.Fatalf("content %q", got)
		}
	})
	t.Run("file to path with missing parent", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "no", "such")
		if _, err := Copy(context.Background(), fsys, "etc/fstab", dest, Options{}); !errors.Is(err, iofs.ErrNotExist) {
			t.Fatalf("err = %v, want not exist", err)
		}
	})
	t.Run("file over existing file", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "fstab")
		os.WriteFile(dest, []byte("mine"), 0o644)
		_, err := Copy(context.Background(), fsys, "etc/fstab", dest, Options{})
		if !errors.Is(err, ErrExist) || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), dest) {
			t.Fatalf("err = %v, want ErrExist naming %s and --force", err, dest)
		}
		if got := readString(t, dest); got != "mine" {
			t.Fatalf("overwritten without Force: %q", got)
		}
		mustCopy(t, fsys, "etc/fstab", dest, Options{Force: true})
		if got := readString(t, dest); !strings.HasPrefix(got, "proc") {
			t.Fatalf("not overwritten with Force: %q", got)
		}
	})
	t.Run("dir to new path", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "etc-copy")
		res := mustCopy(t, fsys, "etc", dest, Options{})
		if got := readString(t, filepath.Join(dest, "ssh", "key")); got != "secret" {
			t.Fatalf("content %q", got)
		}
		if _, err := os.Lstat(filepath.Join(dest, "etc")); !errors.Is(err, iofs.ErrNotExist) {
			t.Fatalf("dest/etc exists; dest should be the copy itself")
		}
		if res.Dirs != 2 || res.Files != 2 {
			t.Fatalf("result %+v", res)
		}
		fi, _ := os.Stat(filepath.Join(dest, "ssh"))
		if fi.Mode().Perm() != 0o700 {
			t.Fatalf("ssh mode %v", fi.Mode())
		}
	})
	t.Run("dir into existing dir", func(t *testing.T) {
		dest := t.TempDir()
		mustCopy(t, fsys, "etc", dest, Options{})
		if got := readString(t, filepath.Join(dest, "etc", "fstab")); !strings.HasPrefix(got, "proc") {
			t.Fatalf("content %q", got)
		}
	})
	t.Run("dir merges into existing subdir", func(t *testing.T) {
		dest := t.TempDir()
		os.MkdirAll(filepath.Join(dest, "etc"), 0o755)
		os.WriteFile(filepath.Join(dest, "etc", "hostname"), []byte("pi"), 0o644)
		mustCopy(t, fsys, "etc", dest, Options{})
		if readString(t, filepath.Join(dest, "etc", "hostname")) != "pi" || readString(t, filepath.Join(dest, "etc", "ssh", "key")) != "secret" {
			t.Fatal("merge lost a file")
		}
	})
	t.Run("dir over existing file", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "f")
		os.WriteFile(dest, []byte("x"), 0o644)
		if _, err := Copy(context.Background(), fsys, "etc", dest, Options{Force: true}); !errors.Is(err, ErrConflict) {
			t.Fatalf("err = %v, want ErrConflict", err)
		}
	})
	t.Run("root into new dir", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "a", "b")
		mustCopy(t, fsys, ".", dest, Options{})
		got := snapshot(t, dest)
		for _, want := range []string{"top.txt", "etc/fstab", "etc/ssh/key"} {
			if _, ok := got[want]; !ok {
				t.Fatalf("%s missing in %v", want, got)
			}
		}
		fi, _ := os.Stat(dest)
		if fi.Mode().Perm() != 0o755 || !fi.ModTime().Equal(t0.Add(time.Hour)) {
			t.Fatalf("created root got mode %v time %v", fi.Mode(), fi.ModTime())
		}
	})
	t.Run("root into existing dir", func(t *testing.T) {
		dest := t.TempDir()
		os.Chmod(dest, 0o711)
		mustCopy(t, fsys, ".", dest, Options{})
		if readString(t, filepath.Join(dest, "top.txt")) != "top" {
			t.Fatal("top.txt missing")
		}
		if fi, _ := os.Stat(dest); fi.Mode().Perm() != 0o711 {
			t.Fatalf("existing dest mode changed to %v", fi.Mode())
		}
	})
	t.Run("symlink source copied as link", func(t *testing.T) {
		lfs := &fakeFS{root: mkDir(".", 0o755, mkLink("localtime", "/usr/share/zoneinfo/UTC"))}
		dest := t.TempDir()
		res := mustCopy(t, lfs, "localtime", dest, Options{})
		if got, err := os.Readlink(filepath.Join(dest, "localtime")); err != nil || got != "/usr/share/zoneinfo/UTC" {
			t.Fatalf("link %q, %v", got, err)
		}
		if res.Symlinks != 1 {
			t.Fatalf("result %+v", res)
		}
	})
	t.Run("invalid source path", func(t *testing.T) {
		for _, src := range []string{"../etc", "/etc", "etc/", ""} {
			if _, err := Copy(context.Background(), fsys, src, t.TempDir(), Options{}); !errors.Is(err, iofs.ErrInvalid) {
				t.Errorf("src %q: err = %v, want ErrInvalid", src, err)
			}
		}
	})
}

func TestHostileNames(t *testing.T) {
	parent := t.TempDir()
	dest := filepath.Join(parent, "out")
	os.WriteFile(filepath.Join(parent, "evil"), []byte("untouched"), 0o644)
	bad := []string{"../evil", "..", ".", "a/b", "/abs", "x\x00y", "", `a\b`, "../../../../tmp/evil", strings.Repeat("n", 256)}
	var kids, subKids []*node
	for _, name := range bad {
		kids = append(kids, mkFile(name, 0o644, "pwned"))
		subKids = append(subKids, mkFile(name, 0o644, "pwned"))
	}
	kids = append(kids, mkDir("..", 0o755, mkFile("evil", 0o644, "pwned")))
	kids = append(kids, mkFile("ok", 0o644, "fine"), mkDir("sub", 0o755, append(subKids, mkFile("fine", 0o644, "fine"))...))
	fsys := &fakeFS{root: mkDir(".", 0o755, kids...)}

	before := snapshot(t, parent)
	res := mustCopy(t, fsys, ".", dest, Options{Force: true})
	after := snapshot(t, parent)

	if !reflect.DeepEqual(before, without(after, "out")) {
		t.Fatalf("outside dest changed:\nbefore %v\nafter  %v", before, without(after, "out"))
	}
	got := without(snapshot(t, dest), ".")
	want := []string{"ok", "sub", "sub/fine"}
	if len(got) != len(want) {
		t.Fatalf("dest holds %v, want only %v", got, want)
	}
	for _, w := range want {
		if _, ok := got[w]; !ok {
			t.Fatalf("dest holds %v, want %v", got, want)
		}
	}
	if wantSkip := 2*len(bad) + 1; res.Skipped != wantSkip || len(res.Warnings) != wantSkip {
		t.Fatalf("Skipped = %d, warnings = %d, want %d: %q", res.Skipped, len(res.Warnings), wantSkip, res.Warnings)
	}
	all := strings.Join(res.Warnings, "\n")
	for _, why := range []string{"empty name", `name is ..`, "name is .", "contains NUL", "path separator", "longer than 255"} {
		if !strings.Contains(all, why) {
			t.Errorf("no warning says %q:\n%s", why, all)
		}
	}
	if res.Files != 2 {
		t.Fatalf("Files = %d", res.Files)
	}
}

func TestHostileTopLevelName(t *testing.T) {
	fsys := &fakeFS{root: mkDir(".", 0o755, mkFile(`a\b`, 0o644, "x"))}
	_, err := Copy(context.Background(), fsys, `a\b`, t.TempDir(), Options{})
	if !errors.Is(err, ErrUnsafeName) {
		t.Fatalf("err = %v, want ErrUnsafeName", err)
	}
}

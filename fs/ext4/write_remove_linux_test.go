package ext4

import (
	"crypto/sha256"
	"errors"
	"fmt"
	iofs "io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"imgtool/fs/meta"
	"imgtool/internal/testimg"
)

// fsEntry is what the manifest records of one file.
type fsEntry struct {
	desc string // type, mode, owner, links, size, content hash or target
	ino  uint64
}

// fsManifest describes every file of the image, read with our reader.
func fsManifest(t *testing.T, img string) map[string]fsEntry {
	t.Helper()
	f := openImage(t, img)
	out := map[string]fsEntry{}
	err := iofs.WalkDir(f, ".", func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := f.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*meta.Stat)
		desc := fmt.Sprintf("%o %d:%d nlink=%d %s", st.Unix, st.Uid, st.Gid, st.Nlink, st.Link)
		if fi.Mode().IsRegular() {
			b, err := f.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %d %x", len(b), sha256.Sum256(b))
		}
		if !fi.IsDir() {
			desc += fmt.Sprintf(" mtime=%d", fi.ModTime().UnixNano())
		}
		for _, k := range slices.Sorted(maps.Keys(st.Xattrs)) {
			desc += fmt.Sprintf(" %s=%x", k, sha256.Sum256(st.Xattrs[k]))
		}
		out[p] = fsEntry{desc, st.Ino}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// under reports whether p is dir or lies below it.
func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// freeCounts reads the free block and inode counts with dumpe2fs -h.
func freeCounts(t *testing.T, img string) (blocks, inodes int64) {
	t.Helper()
	out := testimg.Run(t, "dumpe2fs", "-h", img)
	return testimg.Field(out, "Free blocks"), testimg.Field(out, "Free inodes")
}

// writerVariants are mkfs.ext4 arguments of the filesystems the Writer
// tests change.
var writerVariants = []struct {
	name string
	args []string
}{
	{"ext4", nil},
	{"4k", []string{"-b", "4096"}},
	{"nocsum", []string{"-O", "^metadata_csum,^64bit"}},
	{"ext3", []string{"-t", "ext3"}},
	{"ext2", []string{"-t", "ext2"}},
}

func TestWriterRmdirRemoveAll(t *testing.T) {
	testimg.NeedTools(t, "mkfs.ext4", "e2fsck", "debugfs", "dumpe2fs", "setfattr")
	for _, c := range writerVariants {
		t.Run(c.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src")
			makeTree(t, src, treeOpts{manyFiles: 2000})
			// tree/: subdirectories, files, a symlink, hard links inside
			// the tree and one to a file outside it, xattrs, an empty dir.
			writeFile(t, filepath.Join(src, "tree", "a", "b", "c", "deep.txt"), []byte("deep\n"), 0o644)
			writeFile(t, filepath.Join(src, "tree", "a", "big.bin"), make([]byte, 300<<10), 0o644)
			writeFile(t, filepath.Join(src, "tree", "both1"), []byte("twice\n"), 0o644)
			must(t, os.Link(filepath.Join(src, "tree", "both1"), filepath.Join(src, "tree", "a", "both2")))
			must(t, os.Link(filepath.Join(src, "etc", "hostname"), filepath.Join(src, "tree", "hostlink")))
			must(t, os.Symlink("a/b", filepath.Join(src, "tree", "link")))
			must(t, os.Symlink(strings.Repeat("long/", 30), filepath.Join(src, "tree", "longlink")))
			writeFile(t, filepath.Join(src, "tree", "x"), []byte("x"), 0o644)
			testimg.Run(t, "setfattr", "-n", "user.big", "-v", strings.Repeat("b", 900), filepath.Join(src, "tree", "x"))
			testimg.Run(t, "setfattr", "-n", "user.small", "-v", "s", filepath.Join(src, "tree", "a", "b"))
			must(t, os.MkdirAll(filepath.Join(src, "tree", "empty"), 0o755))
			must(t, os.MkdirAll(filepath.Join(src, "lonely"), 0o755))
			// A tree inside the indexed directory, and a second indexed
			// directory to remove whole.
			writeFile(t, filepath.Join(src, "many", "sub-tree", "x", "file"), []byte("f"), 0o644)
			must(t, os.MkdirAll(filepath.Join(src, "many", "sub-tree", "y"), 0o755))
			must(t, os.MkdirAll(filepath.Join(src, "many", "sub-empty"), 0o755))
			for i := range 600 {
				writeFile(t, filepath.Join(src, "idx2", fmt.Sprintf("another-long-file-name-%04d", i)), []byte("i"), 0o644)
			}
			img := mkfs(t, src, 64<<20, c.args...)
			testimg.E2fsckOptimize(t, img) // indexes the large directories (htree)
			shrinkFsck(t, img)
			for _, d := range []string{"/many", "/idx2"} {
				out := testimg.DebugfsStat(t, img, d)
				if m := regexp.MustCompile(`Flags: 0x([0-9a-f]+)`).FindStringSubmatch(out); m == nil {
					t.Fatalf("stat %s:\n%s", d, out)
				} else if v, _ := strconv.ParseUint(m[1], 16, 32); v&InodeIndexFl == 0 {
					t.Fatalf("%s is not indexed: flags %s", d, m[1])
				}
			}
			if l := testimg.Field(testimg.DebugfsStat(t, img, "/many"), "Links"); l != 4 {
				t.Fatalf("/many has %d links", l)
			}
			before := fsManifest(t, img)
			rootLinks := testimg.Field(testimg.DebugfsStat(t, img, "/"), "Links")
			modesLinks := testimg.Field(testimg.DebugfsStat(t, img, "/modes"), "Links")
			fb0, fi0 := freeCounts(t, img)
			sum0 := testimg.FileSum(t, img)

			w := openWriter(t, img)
			// Refusals write nothing.
			for _, r := range []struct {
				err  error
				want error
			}{
				{w.Rmdir("tree"), ErrNotEmpty},
				{w.Rmdir("many"), ErrNotEmpty},
				{w.Rmdir("etc/hostname"), ErrNotDir},
				{w.Remove("tree/empty"), ErrIsDir},
				{w.Rmdir("nope"), iofs.ErrNotExist},
				{w.Rmdir("nope/deeper"), iofs.ErrNotExist},
			} {
				if !errors.Is(r.err, r.want) {
					t.Errorf("got %v, want %v", r.err, r.want)
				}
			}
			if testimg.FileSum(t, img) != sum0 {
				t.Fatal("a refused call changed the image")
			}
			for i, err := range []error{
				w.Rmdir("tree/empty"),
				w.Rmdir("modes/sticky"),
				w.Rmdir("lonely"),
				w.RemoveAll("tree"),
				w.RemoveAll("many/sub-tree"), // entries of an indexed parent
				w.Rmdir("many/sub-empty"),
				w.Remove("many/file-with-a-longish-name-01999"),
				w.RemoveAll("idx2"), // an indexed directory
				w.RemoveAll("deep"),
				w.RemoveAll("xattr"),
				w.RemoveAll("does/not/exist"),
				w.RemoveAll("hard/two"), // a file: one link of two
			} {
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			shrinkFsck(t, img)

			removed := []string{"tree", "many/sub-tree", "many/sub-empty", "many/file-with-a-longish-name-01999", "idx2", "deep", "xattr", "modes/sticky", "lonely", "hard/two"}
			gone := func(p string) bool {
				for _, r := range removed {
					if under(p, r) {
						return true
					}
				}
				return false
			}
			after := fsManifest(t, img)
			freed := map[uint64]bool{}
			for p, e := range before {
				if gone(p) {
					if _, ok := after[p]; ok {
						t.Errorf("%s still exists", p)
					}
					freed[e.ino] = true
				}
			}
			for p, e := range before {
				if gone(p) {
					continue
				}
				delete(freed, e.ino) // still linked elsewhere
				want := e.desc
				switch p {
				case "etc/hostname", "hard/one":
					want = strings.Replace(want, "nlink=2", "nlink=1", 1)
				}
				if p == "." || p == "modes" || p == "hard" || p == "many" {
					continue // link counts and sizes checked below
				}
				if after[p].desc != want {
					t.Errorf("%s changed: %q → %q", p, e.desc, after[p].desc)
				}
			}
			for p := range after {
				if _, ok := before[p]; !ok {
					t.Errorf("%s appeared", p)
				}
			}
			for _, p := range removed {
				if out := testimg.DebugfsStat(t, img, "/"+p); !strings.Contains(out, "not found") {
					t.Errorf("debugfs still finds /%s:\n%s", p, out)
				}
			}
			if got := testimg.Field(testimg.DebugfsStat(t, img, "/"), "Links"); got != rootLinks-5 {
				t.Errorf("root links %d, want %d", got, rootLinks-5)
			}
			if got := testimg.Field(testimg.DebugfsStat(t, img, "/modes"), "Links"); got != modesLinks-1 {
				t.Errorf("modes links %d, want %d", got, modesLinks-1)
			}
			if got := testimg.Field(testimg.DebugfsStat(t, img, "/many"), "Links"); got != 2 {
				t.Errorf("many links %d, want 2", got)
			}
			if ents, err := openImage(t, img).ReadDir("many"); err != nil || len(ents) != 1999 {
				t.Errorf("many/ has %d entries (%v), want 1999", len(ents), err)
			}
			for _, p := range []string{"/etc/hostname", "/hard/one"} {
				if got := testimg.Field(testimg.DebugfsStat(t, img, p), "Links"); got != 1 {
					t.Errorf("%s links %d, want 1", p, got)
				}
			}
			fb1, fi1 := freeCounts(t, img)
			if fi1-fi0 != int64(len(freed)) {
				t.Errorf("free inodes %d → %d, want %d more", fi0, fi1, len(freed))
			}
			if fb1 <= fb0+(300<<10)/int64(blockSizeOf(t, img)) {
				t.Errorf("free blocks %d → %d: too few freed", fb0, fb1)
			}
			if os.Geteuid() == 0 {
				// The kernel reads what is left exactly as our reader does.
				mnt, umount := mountImage(t, img)
				for _, p := range removed {
					if _, err := os.Lstat(filepath.Join(mnt, p)); !errors.Is(err, iofs.ErrNotExist) {
						t.Errorf("the kernel still sees %s: %v", p, err)
					}
				}
				compareTree(t, openImage(t, img), mnt, true)
				umount()
			}
		})
	}
}

// TestWriterRemoveSharedXattr removes files whose xattrs share one block
// (the kernel shares identical xattr blocks) with a file outside the tree.
func TestWriterRemoveSharedXattr(t *testing.T) {
	testimg.NeedTools(t, "mkfs.ext4", "e2fsck", "debugfs", "setfattr", "mount")
	testimg.NeedRoot(t)
	img := mkfs(t, "", 32<<20)
	mnt, umount := mountImage(t, img)
	val := strings.Repeat("q", 900)
	for _, p := range []string{"tree/s0", "tree/sub/s1", "tree/sub/s2", "keep/s3"} {
		writeFile(t, filepath.Join(mnt, p), []byte("x"), 0o644)
		testimg.Run(t, "setfattr", "-n", "user.big", "-v", val, filepath.Join(mnt, p))
	}
	umount()
	acl := regexp.MustCompile(`File ACL: (\d+)`)
	keep := acl.FindStringSubmatch(testimg.DebugfsStat(t, img, "/keep/s3"))
	s0 := acl.FindStringSubmatch(testimg.DebugfsStat(t, img, "/tree/s0"))
	if keep == nil || s0 == nil || keep[1] != s0[1] || keep[1] == "0" {
		t.Fatalf("xattr block not shared: %v %v", keep, s0)
	}
	w := openWriter(t, img)
	if err := w.RemoveAll("tree"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	shrinkFsck(t, img)
	fi, err := openImage(t, img).Lstat("keep/s3")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(fi.Sys().(*meta.Stat).Xattrs["user.big"]); got != val {
		t.Errorf("keep/s3 lost its xattr: %d bytes", len(got))
	}
}

func TestWriterAttrs(t *testing.T) {
	testimg.NeedTools(t, "mkfs.ext4", "e2fsck", "debugfs")
	for _, c := range []struct {
		name string
		args []string
	}{
		{"ext4", nil},
		{"nocsum", []string{"-O", "^metadata_csum,^64bit"}},
		{"ext2-128", []string{"-t", "ext2", "-I", "128"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src")
			makeTree(t, src, treeOpts{})
			img := mkfs(t, src, 32<<20, c.args...)
			before := fsManifest(t, img)
			w := openWriter(t, img)
			now := time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)
			w.now = func() time.Time { return now }
			mtime := time.Date(2040, 6, 7, 8, 9, 10, 123456789, time.UTC) // past 2038: epoch bits
			atime := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
			for i, err := range []error{
				w.Chmod("etc/hostname", 0o600|iofs.ModeSetuid),
				w.Chmod("modes/sticky", 0o750),
				w.Chmod("modes/setuid", 0o2711|iofs.ModeSetgid|iofs.ModeSticky),
				w.Chmod(".", 0o700),
				w.Chown("files/f00_0", 70000, 80001),
				w.Chown("ln_short", 1, 2),
				w.Chown("deep/d0", 65535, 65536),
				w.Chtimes("files/f01_1", atime, mtime),
			} {
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			if err := w.Chmod("nope", 0o644); !errors.Is(err, iofs.ErrNotExist) {
				t.Errorf("Chmod(nope) = %v", err)
			}
			if err := w.Chown("etc/hostname/x", 0, 0); !errors.Is(err, ErrNotDir) {
				t.Errorf("Chown(etc/hostname/x) = %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			shrinkFsck(t, img)
			for _, x := range []struct {
				path       string
				mode       int64 // permission bits as debugfs shows them
				uid, gid   int64
				typeString string
			}{
				{"/etc/hostname", 0o4600, 0, 0, "regular"},
				{"/modes/sticky", 0o750, 0, 0, "directory"},
				{"/modes/setuid", 0o3711, 0, 0, "regular"},
				{"/", 0o700, 0, 0, "directory"},
				{"/files/f00_0", 0o644, 70000, 80001, "regular"},
				{"/ln_short", 0o777, 1, 2, "symlink"},
				{"/deep/d0", 0o755, 65535, 65536, "directory"},
			} {
				out := testimg.DebugfsStat(t, img, x.path)
				if got := testimg.Field(out, "Mode"); got != x.mode {
					t.Errorf("%s: mode %o, want %o\n%s", x.path, got, x.mode, out)
				}
				if !strings.Contains(out, "Type: "+x.typeString) {
					t.Errorf("%s: not a %s:\n%s", x.path, x.typeString, out)
				}
				if u, g := testimg.Field(out, "User"), testimg.Field(out, "Group"); u != x.uid || g != x.gid {
					t.Errorf("%s: owner %d:%d, want %d:%d", x.path, u, g, x.uid, x.gid)
				}
				if !strings.Contains(out, fmt.Sprintf("ctime: 0x%08x", uint32(now.Unix()))) {
					t.Errorf("%s: ctime not set:\n%s", x.path, out)
				}
			}
			out := testimg.DebugfsStat(t, img, "/files/f01_1")
			wantM := fmt.Sprintf("mtime: 0x%08x", uint32(mtime.Unix()))
			if c.name != "ext2-128" {
				wantM += fmt.Sprintf(":%08x", uint32(mtime.Nanosecond())<<2|1)
			}
			if !strings.Contains(out, wantM) || !strings.Contains(out, fmt.Sprintf("atime: 0x%08x", uint32(atime.Unix()))) {
				t.Errorf("times: want %s:\n%s", wantM, out)
			}
			fi, err := openImage(t, img).Stat("files/f01_1")
			if err != nil {
				t.Fatal(err)
			}
			if want := mtime.Truncate(time.Second); c.name != "ext2-128" {
				if !fi.ModTime().Equal(mtime) {
					t.Errorf("reader mtime %v, want %v", fi.ModTime(), mtime)
				}
			} else if fi.ModTime().Unix() != int64(int32(uint32(want.Unix()))) {
				t.Errorf("reader mtime %v", fi.ModTime())
			}
			after := fsManifest(t, img)
			changed := map[string]bool{"etc/hostname": true, "modes/sticky": true, "modes/setuid": true, ".": true,
				"files/f00_0": true, "ln_short": true, "deep/d0": true, "files/f01_1": true}
			for p, e := range before {
				if !changed[p] && after[p] != e {
					t.Errorf("%s changed: %q → %q", p, e.desc, after[p].desc)
				}
			}
			if len(after) != len(before) {
				t.Errorf("%d files, want %d", len(after), len(before))
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func blockSizeOf(t *testing.T, img string) int64 {
	t.Helper()
	return testimg.Field(testimg.Run(t, "dumpe2fs", "-h", img), "Block size")
}

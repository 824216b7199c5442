package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"imgtool/internal/testimg"
)

// piTree writes the source trees of a Pi-like image and returns the image
// with them, plus the two folders.
func piTree(t *testing.T) (img, bootDir, rootDir string) {
	t.Helper()
	dir := t.TempDir()
	bootDir = filepath.Join(dir, "boot")
	rootDir = filepath.Join(dir, "root")
	write := func(p, s string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(bootDir, "config.txt"), "dtparam=audio=on\narm_64bit=1\n", 0o644)
	write(filepath.Join(bootDir, "cmdline.txt"), "console=tty1 root=PARTUUID=1234abcd-02 rootwait\n", 0o644)
	write(filepath.Join(bootDir, "overlays", "Long Overlay Name.dtbo"), strings.Repeat("dtbo", 5000), 0o644)

	write(filepath.Join(rootDir, "etc", "hostname"), "raspberrypi\n", 0o644)
	write(filepath.Join(rootDir, "etc", "fstab"), "proc /proc proc defaults 0 0\n", 0o644)
	write(filepath.Join(rootDir, "etc", "shadow"), "root:*:19000:0:99999:7:::\n", 0o640)
	write(filepath.Join(rootDir, "usr", "bin", "sudo"), "#!/bin/sh\n", 0o4755)
	big := make([]byte, 3<<20+123)
	rand.Read(big)
	write(filepath.Join(rootDir, "usr", "lib", "big.bin"), string(big), 0o644)
	write(filepath.Join(rootDir, "home", "pi", ".bashrc"), "alias ll='ls -l'\n", 0o644)
	write(filepath.Join(rootDir, "home", "pi", "deep", "a", "b", "c", "d", "file"), "deep\n", 0o600)
	for i := 0; i < 300; i++ {
		write(filepath.Join(rootDir, "var", "log", "many", fmt.Sprintf("entry-%04d.log", i)), fmt.Sprint(i), 0o644)
	}
	if err := os.MkdirAll(filepath.Join(rootDir, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(rootDir, "tmp"), 0o1777)
	must(t, os.Symlink("../usr/bin", filepath.Join(rootDir, "bin")))
	must(t, os.Symlink("/etc/hostname", filepath.Join(rootDir, "home", "pi", "abs-link")))
	must(t, os.Symlink(strings.Repeat("long/", 20)+"target", filepath.Join(rootDir, "home", "pi", "long-link")))
	must(t, os.Link(filepath.Join(rootDir, "etc", "hostname"), filepath.Join(rootDir, "etc", "hostname.hardlink")))
	must(t, syscall.Mkfifo(filepath.Join(rootDir, "home", "pi", "fifo"), 0o644))
	when := time.Date(2024, 3, 15, 10, 20, 30, 123456789, time.UTC)
	must(t, os.Chtimes(filepath.Join(rootDir, "etc", "fstab"), when, when))
	if os.Geteuid() == 0 {
		must(t, os.Lchown(filepath.Join(rootDir, "home", "pi"), 1000, 1000))
		must(t, os.Lchown(filepath.Join(rootDir, "home", "pi", ".bashrc"), 1000, 1000))
		must(t, os.Lchown(filepath.Join(rootDir, "home", "pi", "abs-link"), 1000, 1000))
	}
	if _, err := testimg.LookPath("setfattr"); err == nil {
		testimg.Run(t, "setfattr", "-n", "user.comment", "-v", "hello", filepath.Join(rootDir, "etc", "fstab"))
		if os.Geteuid() == 0 {
			testimg.Run(t, "setfattr", "-n", "security.capability", "-v", "0x0100000200200000000000000000000000000000", filepath.Join(rootDir, "usr", "bin", "sudo"))
		}
	}
	img = testimg.PiImage(t, dir, testimg.PiOptions{BootFiles: bootDir, RootFiles: rootDir})
	return img, bootDir, rootDir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestCatAndLs(t *testing.T) {
	img, bootDir, rootDir := piTree(t)
	for _, c := range []struct{ spec, src string }{
		{"bootfs:/config.txt", filepath.Join(bootDir, "config.txt")},
		{"BOOTFS:/CONFIG.TXT", filepath.Join(bootDir, "config.txt")},
		{"1:/overlays/Long Overlay Name.dtbo", filepath.Join(bootDir, "overlays", "Long Overlay Name.dtbo")},
		{"2:/etc/hostname", filepath.Join(rootDir, "etc", "hostname")},
		{"rootfs:/usr/lib/big.bin", filepath.Join(rootDir, "usr", "lib", "big.bin")},
	} {
		out, stderr, code := imgtool(t, "cat", img, c.spec)
		want, _ := os.ReadFile(c.src)
		if code != 0 || out != string(want) {
			t.Errorf("cat %s: exit %d (%s), %d bytes, want %d", c.spec, code, stderr, len(out), len(want))
		}
	}
	// Several files in one call, from two partitions.
	out, _, code := imgtool(t, "cat", img, "2:/etc/hostname", "1:/cmdline.txt", "2:/etc/hostname")
	if code != 0 || out != "raspberrypi\nconsole=tty1 root=PARTUUID=1234abcd-02 rootwait\nraspberrypi\n" {
		t.Errorf("cat of three files: %q", out)
	}
	// Without PART, the error lists the partitions.
	_, stderr, code := imgtool(t, "cat", img, "/etc/hostname")
	if code != 1 || !strings.Contains(stderr, "BOOTFS") || !strings.Contains(stderr, "rootfs") {
		t.Errorf("cat without PART: exit %d, %q", code, stderr)
	}
	_, stderr, code = imgtool(t, "cat", img, "nosuch:/x")
	if code != 1 || !strings.Contains(stderr, "2 (ext4") {
		t.Errorf("cat with an unknown PART: exit %d, %q", code, stderr)
	}
	_, stderr, code = imgtool(t, "cat", img, "2:/etc/nonexistent")
	if code != 1 || !strings.Contains(stderr, "not exist") {
		t.Errorf("cat of a missing file: exit %d, %q", code, stderr)
	}

	// ls -R --json agrees with the source tree.
	var entries []lsEntry
	mustJSON(t, &entries, "ls", "-R", "-a", img, "2:/")
	got := map[string]lsEntry{}
	for _, e := range entries {
		got[e.Path] = e
	}
	err := filepath.Walk(rootDir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == rootDir {
			return err
		}
		rel := "/" + filepath.ToSlash(strings.TrimPrefix(p, rootDir+string(filepath.Separator)))
		e, ok := got[rel]
		if !ok {
			t.Errorf("ls -R: %s missing", rel)
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		if e.Type != fileType(fi.Mode()) || e.Mode != fmt.Sprintf("%04o", unixPerm(fi.Mode())) {
			t.Errorf("%s: type %s mode %s; source %s %04o", rel, e.Type, e.Mode, fileType(fi.Mode()), unixPerm(fi.Mode()))
		}
		// mkfs.ext4 -d stores whole seconds.
		if e.Type == "file" && (e.Size != fi.Size() || e.Mtime.Unix() != fi.ModTime().Unix()) {
			t.Errorf("%s: size %d mtime %v; source %d %v", rel, e.Size, e.Mtime, fi.Size(), fi.ModTime())
		}
		if os.Geteuid() == 0 && (e.UID != st.Uid || e.GID != st.Gid) {
			t.Errorf("%s: owner %d:%d; source %d:%d", rel, e.UID, e.GID, st.Uid, st.Gid)
		}
		if e.Type == "symlink" {
			target, _ := os.Readlink(p)
			if e.Link != target {
				t.Errorf("%s: link %q; source %q", rel, e.Link, target)
			}
		}
		return nil
	})
	must(t, err)

	// The text listing shows modes, owners and link targets.
	out, _, code = imgtool(t, "ls", "-l", img, "rootfs:/home/pi")
	if code != 0 || !strings.Contains(out, "abs-link -> /etc/hostname") || !strings.Contains(out, "prw-r--r--") {
		t.Errorf("ls -l:\n%s", out)
	}
	out, _, _ = imgtool(t, "ls", img, "bootfs:/")
	if names := strings.Fields(out); !sort.StringsAreSorted(names) && len(names) < 3 {
		t.Errorf("ls bootfs:/ = %q", out)
	}
	if !strings.Contains(out, "config.txt") || !strings.Contains(out, "overlays") {
		t.Errorf("ls bootfs:/ = %q", out)
	}
}

func TestGetFileRules(t *testing.T) {
	img, bootDir, _ := piTree(t)
	dest := t.TempDir()
	// Into an existing directory: lands under its base name.
	_, stderr, code := imgtool(t, "get", img, "bootfs:/config.txt", dest)
	want, _ := os.ReadFile(filepath.Join(bootDir, "config.txt"))
	if got, err := os.ReadFile(filepath.Join(dest, "config.txt")); code != 0 || err != nil || !bytes.Equal(got, want) {
		t.Fatalf("get into a directory: exit %d %s %v", code, stderr, err)
	}
	// Not overwritten without --force.
	must(t, os.WriteFile(filepath.Join(dest, "config.txt"), []byte("mine"), 0o644))
	_, stderr, code = imgtool(t, "get", img, "bootfs:/config.txt", dest)
	if code != 1 || !strings.Contains(stderr, "force") {
		t.Errorf("overwrite without --force: exit %d %q", code, stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "config.txt")); string(got) != "mine" {
		t.Errorf("file was overwritten without --force")
	}
	_, _, code = imgtool(t, "get", "--force", img, "bootfs:/config.txt", dest)
	if got, _ := os.ReadFile(filepath.Join(dest, "config.txt")); code != 0 || !bytes.Equal(got, want) {
		t.Errorf("--force did not replace the file")
	}
	// A new name becomes the copy.
	_, _, code = imgtool(t, "get", img, "bootfs:/overlays", filepath.Join(dest, "ov"))
	if _, err := os.Stat(filepath.Join(dest, "ov", "Long Overlay Name.dtbo")); code != 0 || err != nil {
		t.Errorf("get of a directory to a new name: exit %d, %v", code, err)
	}
	// JSON summary.
	var sum getSummary
	mustJSON(t, &sum, "get", img, "2:/var/log", filepath.Join(dest, "logs"))
	if sum.Files != 300 || sum.Dirs < 2 {
		t.Errorf("get --json summary %+v", sum)
	}
}

// TestGetRootfsMatchesLoopMount copies a whole root filesystem out and
// compares it with a kernel loop mount of the same partition using rsync.
func TestGetRootfsMatchesLoopMount(t *testing.T) {
	testimg.NeedRoot(t)
	testimg.NeedTools(t, "rsync", "losetup", "mount", "umount")
	img, _, _ := piTree(t)
	var rep struct {
		Partitions []struct{ Start, Size int64 } `json:"partitions"`
	}
	out, _, _ := imgtool(t, "inspect", "--json", "--counters", img)
	must(t, json.Unmarshal([]byte(out), &rep))
	p := rep.Partitions[1]

	dev := strings.TrimSpace(testimg.Run(t, "losetup", "-f", "--show", "-r", "-o", fmt.Sprint(p.Start), "--sizelimit", fmt.Sprint(p.Size), img))
	t.Cleanup(func() { testimg.Run(t, "losetup", "-d", dev) })
	mnt := t.TempDir()
	testimg.Run(t, "mount", "-o", "ro", dev, mnt)
	t.Cleanup(func() { testimg.Run(t, "umount", mnt) })

	dest := filepath.Join(t.TempDir(), "rootfs")
	_, stderr, code := imgtool(t, "get", img, "rootfs:/", dest)
	if code != 0 {
		t.Fatalf("get rootfs:/: exit %d: %s", code, stderr)
	}
	diff := testimg.Run(t, "rsync", "-n", "-aHAX", "--checksum", "--itemize-changes", "--delete", mnt+"/", dest+"/")
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(diff), "\n") {
		if l != "" && !strings.HasSuffix(l, " ./") { // the root folder's own times are DEST's
			lines = append(lines, l)
		}
	}
	if len(lines) > 0 {
		t.Errorf("rsync finds differences between the loop mount and the copy:\n%s", strings.Join(lines, "\n"))
	}
}

// TestGetRefusesEscapingNames crafts an ext4 image whose directory entries
// are named ".." + "/" tricks and checks that nothing lands outside DEST.
func TestGetRefusesEscapingNames(t *testing.T) {
	testimg.NeedTools(t, "mkfs.ext4")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	must(t, os.MkdirAll(filepath.Join(src, "d"), 0o755))
	// Names of the same length as the hostile ones they become.
	must(t, os.WriteFile(filepath.Join(src, "d", "XXevil1"), []byte("escaped!"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "d", "YYYYYYevil2"), []byte("escaped!"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "d", "fine"), []byte("fine"), 0o644))
	img := filepath.Join(dir, "evil.img")
	testimg.Sparse(t, img, 16<<20)
	testimg.Run(t, "mkfs.ext4", "-q", "-F", "-O", "^metadata_csum,^dir_index", "-d", src, img)
	data, err := os.ReadFile(img)
	must(t, err)
	for old, repl := range map[string]string{"XXevil1": "../evil", "YYYYYYevil2": "../../evil2"} {
		i := bytes.Index(data, []byte(old))
		if i < 0 {
			t.Fatalf("%s not found in the image", old)
		}
		copy(data[i:], repl)
	}
	must(t, os.WriteFile(img, data, 0o644))

	outer := t.TempDir()
	dest := filepath.Join(outer, "a", "dest")
	must(t, os.MkdirAll(dest, 0o755))
	before := listTree(t, outer)
	_, stderr, code := imgtool(t, "get", img, "/", dest)
	after := listTree(t, outer)
	for p := range after {
		if !before[p] && !strings.HasPrefix(p, filepath.Join("a", "dest")) {
			t.Errorf("written outside DEST: %s", p)
		}
	}
	if _, err := os.Stat(filepath.Join(dest, "d", "fine")); err != nil {
		t.Errorf("the harmless file was not extracted (exit %d, %s)", code, stderr)
	}
	if !strings.Contains(stderr, "..") {
		t.Errorf("no warning about the refused names: %q", stderr)
	}
}

func listTree(t *testing.T, root string) map[string]bool {
	t.Helper()
	m := map[string]bool{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			rel, _ := filepath.Rel(root, p)
			m[rel] = true
		}
		return nil
	})
	// Also the parent folder, where "../" would land.
	entries, _ := os.ReadDir(filepath.Dir(root))
	for _, e := range entries {
		m[filepath.Join("..", e.Name())] = true
	}
	return m
}

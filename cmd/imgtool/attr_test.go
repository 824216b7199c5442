package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"imgtool/internal/testimg"
)

// dstat runs debugfs -R 'stat PATH' on the partition at off and returns
// stdout and stderr together.
func dstat(t *testing.T, img string, off int64, p string) string {
	t.Helper()
	return testimg.DebugfsStat(t, fmt.Sprintf("%s?offset=%d", img, off), p)
}

// treeImage makes a Pi-like image whose root filesystem holds tree/ with
// subdirectories, files, symbolic links, hard links (inside the tree and
// to /etc/hostname outside it), xattrs and a 2000-entry directory that
// e2fsck -D indexes (htree).
func treeImage(t *testing.T) (img string, bootOff, rootOff int64) {
	t.Helper()
	testimg.NeedTools(t, "sfdisk", "mkfs.vfat", "mkfs.ext4", "mcopy", "fsck.vfat", "e2fsck", "debugfs", "setfattr")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	boot := filepath.Join(dir, "boot")
	writeTestFile(t, filepath.Join(boot, "config.txt"), "dtparam=audio=on\n", 0o644)
	writeTestFile(t, filepath.Join(boot, "overlays", "a.dtbo"), "a", 0o644)
	writeTestFile(t, filepath.Join(boot, "overlays", "b.dtbo"), "b", 0o644)
	writeTestFile(t, filepath.Join(root, "etc", "hostname"), "raspberrypi\n", 0o644)
	writeTestFile(t, filepath.Join(root, "etc", "fstab"), "proc /proc proc defaults 0 0\n", 0o644)
	writeTestFile(t, filepath.Join(root, "usr", "bin", "tool"), "#!/bin/sh\n", 0o755)
	writeTestFile(t, filepath.Join(root, "tree", "a", "b", "c", "deep.txt"), "deep\n", 0o600)
	writeTestFile(t, filepath.Join(root, "tree", "a", "big.bin"), strings.Repeat("x", 200<<10), 0o644)
	writeTestFile(t, filepath.Join(root, "tree", "one"), "one\n", 0o644)
	writeTestFile(t, filepath.Join(root, "tree", "script.sh"), "#!/bin/sh\n", 0o755)
	must(t, os.Link(filepath.Join(root, "tree", "one"), filepath.Join(root, "tree", "a", "one-again")))
	must(t, os.Link(filepath.Join(root, "etc", "hostname"), filepath.Join(root, "tree", "hostname-link")))
	must(t, os.Symlink("a/b", filepath.Join(root, "tree", "short-link")))
	must(t, os.Symlink(strings.Repeat("long/", 20)+"x", filepath.Join(root, "tree", "long-link")))
	writeTestFile(t, filepath.Join(root, "tree", "attrs"), "x", 0o644)
	testimg.Run(t, "setfattr", "-n", "user.big", "-v", strings.Repeat("v", 900), filepath.Join(root, "tree", "attrs"))
	testimg.Run(t, "setfattr", "-n", "user.small", "-v", "s", filepath.Join(root, "tree", "a"))
	must(t, os.MkdirAll(filepath.Join(root, "tree", "empty"), 0o755))
	for i := range 2000 {
		writeTestFile(t, filepath.Join(root, "tree", "many", fmt.Sprintf("entry-with-a-long-name-%05d", i)), strconv.Itoa(i), 0o644)
	}
	img = testimg.PiImage(t, dir, testimg.PiOptions{BootFiles: boot, RootFiles: root})
	ps := partitions(t, img)
	bootOff, rootOff = ps[0].Start, ps[1].Start
	testimg.E2fsckOptimize(t, fmt.Sprintf("%s?offset=%d", img, rootOff))
	fsckAll(t, img)
	return img, bootOff, rootOff
}

func TestRmRecursiveExt4(t *testing.T) {
	img, _, rootOff := treeImage(t)
	out := dstat(t, img, rootOff, "/tree/many")
	if m := regexp.MustCompile(`Flags: 0x([0-9a-f]+)`).FindStringSubmatch(out); m == nil {
		t.Fatalf("stat /tree/many:\n%s", out)
	} else if v, _ := strconv.ParseUint(m[1], 16, 32); v&0x1000 == 0 {
		t.Fatalf("/tree/many is not indexed (flags 0x%s)", m[1])
	}
	if l := testimg.Field(dstat(t, img, rootOff, "/etc/hostname"), "Links"); l != 2 {
		t.Fatalf("/etc/hostname has %d links before", l)
	}
	rootLinks := testimg.Field(dstat(t, img, rootOff, "/"), "Links")

	// Without -r, a directory is refused; so is a missing path.
	sum := fileSHA256(t, img)
	_, stderr, code := imgtool(t, "rm", img, "2:/tree/empty")
	expectNoChange(t, img, sum, code, 2, stderr, "-r")
	_, stderr, code = imgtool(t, "rm", "-r", img, "2:/tree/nothing")
	expectNoChange(t, img, sum, code, 1, stderr, "not exist")

	editStep(t, img, "rm -r empty", []string{"rm", "-r", img, "2:/tree/empty"}, "2:/tree/empty")
	editStep(t, img, "rm -r many", []string{"rm", "-r", img, "rootfs:/tree/many"}, "2:/tree/many", "2:/tree/many/")
	var s editSummary
	before := manifest(t, img)
	mustJSON(t, &s, "rm", "-r", img, "2:/tree")
	fsckAll(t, img)
	sameExcept(t, before, manifest(t, img), "2:/tree", "2:/tree/")
	if s.Action != "removed" || s.Dirs != 4 || s.Symlinks != 2 || s.Files != 7 || s.Partition != 2 {
		t.Errorf("summary %+v", s)
	}
	for _, p := range []string{"/tree", "/tree/a", "/tree/many"} {
		if out := dstat(t, img, rootOff, p); !strings.Contains(out, "not found") {
			t.Errorf("debugfs still finds %s:\n%s", p, out)
		}
	}
	if l := testimg.Field(dstat(t, img, rootOff, "/etc/hostname"), "Links"); l != 1 {
		t.Errorf("/etc/hostname has %d links after, want 1", l)
	}
	if l := testimg.Field(dstat(t, img, rootOff, "/"), "Links"); l != rootLinks-1 {
		t.Errorf("root has %d links, want %d", l, rootLinks-1)
	}
	if got := testimg.Run(t, "debugfs", "-R", "cat /etc/hostname", fmt.Sprintf("%s?offset=%d", img, rootOff)); got != "raspberrypi\n" {
		t.Errorf("/etc/hostname reads %q", got)
	}
}

func TestChmodChown(t *testing.T) {
	img, bootOff, rootOff := treeImage(t)
	mattrib := func(p string) string {
		return testimg.Run(t, "mattrib", "-i", fmt.Sprintf("%s@@%d", img, bootOff), "::"+p)
	}
	rootfs := fmt.Sprintf("%s?offset=%d", img, rootOff)

	// FAT: the owner write bit is the read-only attribute.
	editStep(t, img, "chmod FAT a-w", []string{"chmod", img, "a-w", "bootfs:/config.txt"}, "1:/config.txt")
	if a := mattrib("/config.txt"); !strings.Contains(a, " R ") {
		t.Errorf("mattrib after a-w: %q", a)
	}
	editStep(t, img, "chmod FAT 644", []string{"chmod", img, "644", "1:/config.txt"}, "1:/config.txt")
	if a := mattrib("/config.txt"); strings.Contains(a, " R ") {
		t.Errorf("mattrib after 644: %q", a)
	}
	var as attrSummary
	before := manifest(t, img)
	mustJSON(t, &as, "chmod", "-R", img, "444", "1:/overlays")
	fsckAll(t, img)
	sameExcept(t, before, manifest(t, img), "1:/overlays/a.dtbo", "1:/overlays/b.dtbo")
	if as.Files != 2 || as.Skipped != 1 || as.Action != "chmod" {
		t.Errorf("chmod -R FAT summary %+v", as)
	}
	if a := mattrib("/overlays/a.dtbo"); !strings.Contains(a, " R ") {
		t.Errorf("mattrib a.dtbo: %q", a)
	}
	sum := fileSHA256(t, img)
	_, stderr, code := imgtool(t, "chown", img, "0:0", "1:/config.txt")
	expectNoChange(t, img, sum, code, 1, stderr, "no owners")

	// ext2/3/4.
	editStep(t, img, "chmod 0600", []string{"chmod", img, "0600", "2:/etc/hostname"}, "2:/etc/hostname", "2:/tree/hostname-link")
	out := dstat(t, img, rootOff, "/etc/hostname")
	if testimg.Field(out, "Mode") != 0o600 || !strings.Contains(out, "Type: regular") || testimg.Field(out, "Links") != 2 {
		t.Errorf("after chmod 0600:\n%s", out)
	}
	editStep(t, img, "chmod u+s,g-x", []string{"chmod", img, "u+s,g-x", "2:/usr/bin/tool"}, "2:/usr/bin/tool")
	if m := testimg.Field(dstat(t, img, rootOff, "/usr/bin/tool"), "Mode"); m != 0o4745 {
		t.Errorf("tool mode %o, want 4745", m)
	}
	editStep(t, img, "chmod -R", []string{"chmod", "-R", img, "go-rwx,u+rX", "2:/tree/a"}, "2:/tree/a", "2:/tree/a/", "2:/tree/one")
	for p, want := range map[string]int64{"/tree/a": 0o700, "/tree/a/b": 0o700, "/tree/a/b/c/deep.txt": 0o600, "/tree/a/big.bin": 0o600, "/tree/one": 0o600} {
		if m := testimg.Field(dstat(t, img, rootOff, p), "Mode"); m != want {
			t.Errorf("%s: mode %o, want %o", p, m, want)
		}
	}
	editStep(t, img, "chmod dir sticky", []string{"chmod", img, "1777", "2:/tree/empty"}, "2:/tree/empty")
	if out := dstat(t, img, rootOff, "/tree/empty"); testimg.Field(out, "Mode") != 0o1777 || !strings.Contains(out, "Type: directory") {
		t.Errorf("empty after 1777:\n%s", out)
	}
	sum = fileSHA256(t, img)
	_, stderr, code = imgtool(t, "chmod", img, "u+q", "2:/etc/hostname")
	expectNoChange(t, img, sum, code, 2, stderr, "mode")
	_, stderr, code = imgtool(t, "chmod", img, "644", "2:/tree/short-link")
	expectNoChange(t, img, sum, code, 1, stderr, "symbolic link")
	_, stderr, code = imgtool(t, "chmod", img, "644", "2:/nope")
	expectNoChange(t, img, sum, code, 1, stderr, "not exist")

	editStep(t, img, "chown 32-bit", []string{"chown", img, "70000:80000", "2:/tree/one"}, "2:/tree/one", "2:/tree/a/one-again")
	out = dstat(t, img, rootOff, "/tree/one")
	if testimg.Field(out, "User") != 70000 || testimg.Field(out, "Group") != 80000 {
		t.Errorf("after chown 70000:80000:\n%s", out)
	}
	editStep(t, img, "chown :group", []string{"chown", img, ":5", "2:/tree/one"}, "2:/tree/one", "2:/tree/a/one-again")
	if out = dstat(t, img, rootOff, "/tree/one"); testimg.Field(out, "User") != 70000 || testimg.Field(out, "Group") != 5 {
		t.Errorf("after chown :5:\n%s", out)
	}
	editStep(t, img, "chown -R", []string{"chown", "-R", img, "1000:1000", "2:/tree"}, "2:/tree", "2:/tree/", "2:/etc/hostname") // hostname-link is /etc/hostname
	for _, p := range []string{"/tree", "/tree/a/b/c/deep.txt", "/tree/short-link", "/tree/long-link", "/tree/many"} {
		if out := dstat(t, img, rootOff, p); testimg.Field(out, "User") != 1000 || testimg.Field(out, "Group") != 1000 {
			t.Errorf("%s after chown -R:\n%s", p, out)
		}
	}
	if m := testimg.Field(dstat(t, img, rootOff, "/tree/script.sh"), "Mode"); m != 0o755 {
		t.Errorf("chown changed a mode: %o", m)
	}
	// Names come from the image's own /etc/passwd and /etc/group.
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "passwd"), []byte("root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\nsvc:x:998:4::/:/usr/sbin/nologin\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "group"), []byte("root:x:0:\nadm:x:4:pi\npi:x:1000:\n"), 0o644))
	editStep(t, img, "put passwd", []string{"put", img, filepath.Join(src, "passwd"), filepath.Join(src, "group"), "2:/etc/"}, "2:/etc/passwd", "2:/etc/group")
	editStep(t, img, "chown names", []string{"chown", img, "svc:adm", "2:/etc/fstab"}, "2:/etc/fstab")
	if out := dstat(t, img, rootOff, "/etc/fstab"); testimg.Field(out, "User") != 998 || testimg.Field(out, "Group") != 4 {
		t.Errorf("after chown svc:adm:\n%s", out)
	}
	editStep(t, img, "chown login group", []string{"chown", img, "svc:", "2:/usr/bin/tool"}, "2:/usr/bin/tool")
	if out := dstat(t, img, rootOff, "/usr/bin/tool"); testimg.Field(out, "User") != 998 || testimg.Field(out, "Group") != 4 || testimg.Field(out, "Mode") != 0o4745 {
		t.Errorf("after chown svc: (setuid kept):\n%s", out)
	}
	sum = fileSHA256(t, img)
	_, stderr, code = imgtool(t, "chown", img, "nobody", "2:/etc/fstab")
	expectNoChange(t, img, sum, code, 1, stderr, "nobody")
	_, stderr, code = imgtool(t, "chown", img, "1:2:3", "2:/etc/fstab")
	expectNoChange(t, img, sum, code, 2, stderr, "owner")
	testimg.Run(t, "e2fsck", "-fn", rootfs)
}

func TestParseChmodMode(t *testing.T) {
	for _, c := range []struct {
		mode  string
		old   uint32
		dir   bool
		want  uint32
		isErr bool
	}{
		{"644", 0o777, false, 0o644, false},
		{"0755", 0, false, 0o755, false},
		{"4755", 0o644, false, 0o4755, false},
		{"755", 0o2775, true, 0o2755, false}, // directories keep setgid
		{"00755", 0o2775, true, 0o755, false},
		{"7777", 0, false, 0o7777, false},
		{"u+x", 0o644, false, 0o744, false},
		{"+x", 0o644, false, 0o755, false},
		{"a+x", 0o600, false, 0o711, false},
		{"go-w", 0o666, false, 0o644, false},
		{"u=rw,go=r", 0o777, false, 0o644, false},
		{"u=rwx,g=rx,o=", 0o4777, false, 0o750, false}, // = clears setuid of a file
		{"u=rwx", 0o4755, true, 0o4755, false},         // ... not of a directory
		{"a=rX", 0o644, false, 0o444, false},
		{"a=rX", 0o744, false, 0o555, false},
		{"a=rX", 0o600, true, 0o555, false},
		{"go-rwx,u+rX", 0o664, false, 0o600, false},
		{"u+s", 0o755, false, 0o4755, false},
		{"g+s", 0o755, true, 0o2755, false},
		{"+s", 0o755, false, 0o6755, false},
		{"o+s", 0o755, false, 0o755, false},
		{"+t", 0o777, true, 0o1777, false},
		{"o+t", 0o777, true, 0o1777, false},
		{"u+t", 0o777, true, 0o777, false},
		{"-t", 0o1777, true, 0o777, false},
		{"g=u", 0o740, false, 0o770, false},
		{"o=g", 0o751, false, 0o755, false},
		{"go=u-w", 0o751, false, 0o755, false},
		{"u-x+w", 0o544, false, 0o644, false},
		{"a-rwx", 0o777, false, 0, false},
		{"u+", 0o644, false, 0o644, false},
		{"", 0, false, 0, true},
		{"8", 0, false, 0, true},
		{"17777", 0, false, 0, true},
		{"u", 0, false, 0, true},
		{"u+q", 0, false, 0, true},
		{"x+r", 0, false, 0, true},
		{"u+rug", 0, false, 0, true},
		{"u+r,", 0, false, 0, true},
		{"64a", 0, false, 0, true},
	} {
		spec, err := parseChmodMode(c.mode)
		if c.isErr {
			if err == nil {
				t.Errorf("%q: no error", c.mode)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.mode, err)
			continue
		}
		if got := spec.apply(c.old, c.dir); got != c.want {
			t.Errorf("%q on %o (dir %v) = %o, want %o", c.mode, c.old, c.dir, got, c.want)
		}
	}
}

func TestShellWords(t *testing.T) {
	for _, c := range []struct {
		in    string
		want  []string
		isErr bool
	}{
		{"vi", []string{"vi"}, false},
		{"  code   --wait ", []string{"code", "--wait"}, false},
		{`sh -c 'echo "$1" > x' sh`, []string{"sh", "-c", `echo "$1" > x`, "sh"}, false},
		{`"/opt/My Editor/ed" -n`, []string{"/opt/My Editor/ed", "-n"}, false},
		{`a\ b c`, []string{"a b", "c"}, false},
		{`"a\"b" 'c\d'`, []string{`a"b`, `c\d`}, false},
		{`x''y ""`, []string{"xy", ""}, false},
		{`'open`, nil, true},
		{`end\`, nil, true},
	} {
		got, err := shellWords(c.in, true)
		if c.isErr {
			if err == nil {
				t.Errorf("%q: no error", c.in)
			}
			continue
		}
		if err != nil || strings.Join(got, "|") != strings.Join(c.want, "|") || len(got) != len(c.want) {
			t.Errorf("%q = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	if got, _ := shellWords(`C:\Tools\ed.exe /x`, false); len(got) != 2 || got[0] != `C:\Tools\ed.exe` {
		t.Errorf("windows words %q", got)
	}
	env := map[string]string{"EDITOR": "nano -w"}
	if got, _ := editorCommand(func(k string) string { return env[k] }, false); strings.Join(got, " ") != "nano -w" {
		t.Errorf("EDITOR: %q", got)
	}
	env["VISUAL"] = "code --wait"
	if got, _ := editorCommand(func(k string) string { return env[k] }, false); strings.Join(got, " ") != "code --wait" {
		t.Errorf("VISUAL: %q", got)
	}
	if got, _ := editorCommand(func(string) string { return "" }, false); got[0] != "vi" {
		t.Errorf("default: %q", got)
	}
	if got, _ := editorCommand(func(string) string { return "" }, true); got[0] != "notepad" {
		t.Errorf("windows default: %q", got)
	}
}

func TestEditCommand(t *testing.T) {
	testimg.NeedTools(t, "sed", "mtype", "mattrib")
	img, bootOff, rootOff := treeImage(t)
	rootfs := fmt.Sprintf("%s?offset=%d", img, rootOff)
	t.Setenv("VISUAL", "")

	// Give fstab an owner and a mode that the edit must keep.
	editStep(t, img, "chown", []string{"chown", img, "1000:1000", "2:/etc/fstab"}, "2:/etc/fstab")
	editStep(t, img, "chmod", []string{"chmod", img, "640", "2:/etc/fstab"}, "2:/etc/fstab")
	times := regexp.MustCompile(`(?m)^ *(atime|crtime):.*$`)
	statBefore := dstat(t, img, rootOff, "/etc/fstab")

	t.Setenv("EDITOR", "sed -i s/proc/PROC/g")
	out := editStep(t, img, "edit ext4", []string{"edit", img, "rootfs:/etc/fstab"}, "2:/etc/fstab")
	if !strings.Contains(out, "edited 2:/etc/fstab") {
		t.Errorf("edit printed %q", out)
	}
	if got := testimg.Run(t, "debugfs", "-R", "cat /etc/fstab", rootfs); got != "PROC /PROC PROC defaults 0 0\n" {
		t.Errorf("fstab reads %q", got)
	}
	statAfter := dstat(t, img, rootOff, "/etc/fstab")
	if testimg.Field(statAfter, "Mode") != 0o640 || testimg.Field(statAfter, "User") != 1000 || testimg.Field(statAfter, "Group") != 1000 || testimg.Field(statAfter, "Inode") != testimg.Field(statBefore, "Inode") {
		t.Errorf("fstab after edit:\n%s", statAfter)
	}
	if a, b := times.FindAllString(statBefore, -1), times.FindAllString(statAfter, -1); strings.Join(a, "\n") != strings.Join(b, "\n") || len(a) != 2 {
		t.Errorf("atime/crtime changed: %q → %q", a, b)
	}

	// A hard-linked file with an xattr: the inode is kept, so both names
	// see the change and the xattr stays.
	t.Setenv("EDITOR", "sed -i s/one/uno/")
	editStep(t, img, "edit hard link", []string{"edit", img, "2:/tree/a/one-again"}, "2:/tree/a/one-again", "2:/tree/one")
	if got := testimg.Run(t, "debugfs", "-R", "cat /tree/one", rootfs); got != "uno\n" {
		t.Errorf("/tree/one reads %q", got)
	}
	t.Setenv("EDITOR", "sed -i s/x/y/")
	editStep(t, img, "edit xattr file", []string{"edit", img, "2:/tree/attrs"}, "2:/tree/attrs")
	if got := testimg.Run(t, "debugfs", "-R", "ea_get /tree/attrs user.big", rootfs); !strings.Contains(got, strings.Repeat("v", 900)) {
		t.Errorf("xattr lost: %q", got)
	}

	// FAT: the read-only attribute is kept.
	editStep(t, img, "chmod FAT", []string{"chmod", img, "a-w", "1:/config.txt"}, "1:/config.txt")
	t.Setenv("EDITOR", "sed -i s/on/off/")
	editStep(t, img, "edit FAT", []string{"edit", img, "bootfs:/config.txt"}, "1:/config.txt")
	if got := testimg.Run(t, "mtype", "-i", fmt.Sprintf("%s@@%d", img, bootOff), "::/config.txt"); got != "dtparam=audio=off\n" {
		t.Errorf("config.txt reads %q", got)
	}
	if a := testimg.Run(t, "mattrib", "-i", fmt.Sprintf("%s@@%d", img, bootOff), "::/config.txt"); !strings.Contains(a, " R ") {
		t.Errorf("read-only attribute lost: %q", a)
	}

	// --create, with an editor command holding quoted arguments.
	t.Setenv("EDITOR", `sh -c 'printf "hello there\n" > "$1"' sh`)
	editStep(t, img, "edit --create", []string{"edit", "--create", "--mode", "600", "--owner", "1000:1000", img, "2:/etc/motd"}, "2:/etc/motd")
	if got := testimg.Run(t, "debugfs", "-R", "cat /etc/motd", rootfs); got != "hello there\n" {
		t.Errorf("motd reads %q", got)
	}
	if out := dstat(t, img, rootOff, "/etc/motd"); testimg.Field(out, "Mode") != 0o600 || testimg.Field(out, "User") != 1000 {
		t.Errorf("motd:\n%s", out)
	}

	// The temporary copy is private and named after the file.
	seen := filepath.Join(t.TempDir(), "seen")
	t.Setenv("EDITOR", `sh -c 'stat -c "%a %n" "$1" > "$0"' `+seen)
	sum := fileSHA256(t, img)
	out, stderr, code := imgtool(t, "edit", img, "2:/etc/hostname")
	expectNoChange(t, img, sum, code, 0, stderr)
	if !strings.Contains(out, "unchanged") {
		t.Errorf("unchanged edit printed %q", out)
	}
	if b, err := os.ReadFile(seen); err != nil || !strings.HasPrefix(string(b), "600 ") || !strings.HasSuffix(strings.TrimSpace(string(b)), "-hostname") {
		t.Errorf("temporary file: %q, %v", b, err)
	} else if _, err := os.Stat(strings.Fields(string(b))[1]); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
	var es editSummary
	t.Setenv("EDITOR", "true")
	mustJSON(t, &es, "edit", img, "2:/etc/hostname")
	if es.Action != "unchanged" || es.Partition != 2 || fileSHA256(t, img) != sum {
		t.Errorf("unchanged --json: %+v", es)
	}

	// Refusals change nothing.
	_, stderr, code = imgtool(t, "edit", img, "2:/etc")
	expectNoChange(t, img, sum, code, 2, stderr, "directory")
	_, stderr, code = imgtool(t, "edit", img, "2:/tree/short-link")
	expectNoChange(t, img, sum, code, 1, stderr, "symbolic link")
	_, stderr, code = imgtool(t, "edit", img, "2:/etc/none")
	expectNoChange(t, img, sum, code, 1, stderr, "--create")
	_, stderr, code = imgtool(t, "edit", "--create", img, "2:/no/dir/x")
	expectNoChange(t, img, sum, code, 1, stderr, "mkdir -p")
	t.Setenv("EDITOR", "false")
	_, stderr, code = imgtool(t, "edit", img, "2:/etc/hostname")
	expectNoChange(t, img, sum, code, 1, stderr, "editor", "nothing was changed")
	t.Setenv("EDITOR", "'unterminated")
	_, stderr, code = imgtool(t, "edit", img, "2:/etc/hostname")
	expectNoChange(t, img, sum, code, 2, stderr, "EDITOR")
}

// TestRmChmodKilled kills rm -r, chmod -R, chown -R and edit on ext2/3/4
// after the Nth change to the image and checks that the next imgtool
// command restores it exactly.
func TestRmChmodKilled(t *testing.T) {
	img, _, _ := treeImage(t)
	pristine := img + ".orig"
	testimg.Run(t, "cp", "--sparse=always", img, pristine)
	orig := fileSHA256(t, img)
	t.Setenv("VISUAL", "")
	t.Setenv("EDITOR", "sed -i s/raspberrypi/box/")
	for _, args := range [][]string{
		{"rm", "-r", img, "2:/tree/a"},
		{"chmod", "-R", img, "go-rwx", "2:/tree/a"},
		{"chown", "-R", img, "1000:1000", "2:/tree/a"},
		{"edit", img, "2:/etc/hostname"},
	} {
		testimg.Run(t, "cp", "--sparse=always", pristine, img)
		killEachChange(t, img, orig, args, args[:2])
		fsckAll(t, img)
	}
}

func TestCountWords(t *testing.T) {
	for _, c := range []struct {
		files, dirs, links int
		bytes              int64
		want               string
	}{
		{0, 0, 0, -1, "nothing"},
		{1, 0, 0, 6, "1 file, 6 bytes"},
		{2, 1, 0, -1, "2 files, 1 directory"},
		{0, 3, 1, 0, "3 directories, 1 link"},
		{5001, 54, 2, 314572800, "5001 files, 314572800 bytes, 54 directories, 2 links"},
	} {
		if got := countWords(c.files, c.dirs, c.links, c.bytes); got != c.want {
			t.Errorf("countWords(%d, %d, %d, %d) = %q, want %q", c.files, c.dirs, c.links, c.bytes, got, c.want)
		}
	}
}

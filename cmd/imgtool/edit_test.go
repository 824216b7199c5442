package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/fs"
	"imgtool/fs/meta"
	"imgtool/image"
	"imgtool/internal/testimg"
	"imgtool/part"
	"imgtool/shrink/undo"
)

// readParts opens img and reads its partition table; the partitions'
// sections read the image until done is called.
func readParts(t *testing.T, img string) (parts []part.Partition, done func()) {
	t.Helper()
	im, err := image.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := part.Read(im, im.Size())
	if err != nil {
		im.Close()
		t.Fatal(err)
	}
	return tbl.Partitions, func() { im.Close() }
}

// partitions returns the image's partitions.
func partitions(t *testing.T, img string) []part.Partition {
	t.Helper()
	parts, done := readParts(t, img)
	done()
	return parts
}

// manifest describes every file of every filesystem of img, read with our
// readers: "N:/path" → type, mode, owner, size, content hash or link.
func manifest(t *testing.T, img string) map[string]string {
	t.Helper()
	parts, done := readParts(t, img)
	defer done()
	out := map[string]string{}
	for _, p := range parts {
		sec := p.Section()
		fsys, _, err := fs.Open(sec, sec.Size(), fs.Options{})
		if err != nil {
			t.Fatalf("partition %d: %v", p.Number, err)
		}
		err = iofs.WalkDir(fsys, ".", func(name string, d iofs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			desc := fi.Mode().String()
			if st, ok := fi.Sys().(*meta.Stat); ok {
				desc += fmt.Sprintf(" %d:%d %s", st.Uid, st.Gid, st.Link)
			}
			if fi.Mode().IsRegular() {
				b, err := iofs.ReadFile(fsys, name)
				if err != nil {
					return err
				}
				h := sha256.Sum256(b)
				desc += fmt.Sprintf(" %d %s", len(b), hex.EncodeToString(h[:8]))
			}
			out[fmt.Sprintf("%d:/%s", p.Number, strings.TrimPrefix(name, "."))] = desc
			return nil
		})
		if err != nil {
			t.Fatalf("partition %d: walk: %v", p.Number, err)
		}
	}
	return out
}

// sameExcept fails when before and after differ anywhere but in the
// named entries ("2:/etc/x"; a name ending in "/" covers a subtree).
func sameExcept(t *testing.T, before, after map[string]string, changed ...string) {
	t.Helper()
	skip := func(k string) bool {
		for _, c := range changed {
			if k == c || strings.HasSuffix(c, "/") && strings.HasPrefix(k, c) {
				return true
			}
		}
		return false
	}
	for k, v := range before {
		if !skip(k) && after[k] != v {
			t.Errorf("%s changed: %q → %q", k, v, after[k])
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok && !skip(k) {
			t.Errorf("%s appeared", k)
		}
	}
}

// fsckAll runs fsck.vfat -n on a copy of each FAT partition and
// e2fsck -fn on each ext partition in place.
func fsckAll(t *testing.T, img string) {
	t.Helper()
	for _, p := range partitions(t, img) {
		sec := p.Section()
		info, err := fs.Identify(sec, sec.Size())
		if err != nil || info == nil {
			continue
		}
		switch info.Type {
		case "vfat":
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			cp := filepath.Join(t.TempDir(), "fat.img")
			out, err := os.Create(cp)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(out, io.NewSectionReader(f, p.Start, p.Size)); err != nil {
				t.Fatal(err)
			}
			f.Close()
			out.Close()
			testimg.Run(t, "fsck.vfat", "-n", cp)
		case "ext2", "ext3", "ext4":
			testimg.Run(t, "e2fsck", "-fn", fmt.Sprintf("%s?offset=%d", img, p.Start))
		}
	}
}

// editStep runs an editing command that must succeed, then checks both
// filesystems and that only the named entries changed.
func editStep(t *testing.T, img, what string, args []string, changed ...string) string {
	t.Helper()
	before := manifest(t, img)
	out, stderr, code := imgtool(t, args...)
	if code != 0 {
		t.Fatalf("%s: exit %d: %s", what, code, stderr)
	}
	if out == "" {
		t.Errorf("%s: no summary printed", what)
	}
	fsckAll(t, img)
	sameExcept(t, before, manifest(t, img), changed...)
	if undo.Exists(img) {
		t.Errorf("%s: undo file left behind", what)
	}
	return out
}

// writeTestFile writes s to p with exactly mode (the umask left out),
// creating the folders above it.
func writeTestFile(t *testing.T, p, s string, mode os.FileMode) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(s), mode))
	must(t, os.Chmod(p, mode))
}

func expectNoChange(t *testing.T, img, sum string, code, want int, stderr string, parts ...string) {
	t.Helper()
	if code != want {
		t.Errorf("exit %d, want %d (%s)", code, want, stderr)
	}
	for _, p := range parts {
		if !strings.Contains(stderr, p) {
			t.Errorf("message %q lacks %q", stderr, p)
		}
	}
	if strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
		t.Errorf("message is more than one line: %q", stderr)
	}
	if got := fileSHA256(t, img); got != sum {
		t.Errorf("image changed by a failed command: %s", stderr)
	}
	if undo.Exists(img) {
		t.Error("undo file left behind")
	}
}

func TestEditCommands(t *testing.T) {
	testimg.NeedTools(t, "sfdisk", "mkfs.vfat", "mkfs.ext4", "mcopy", "mtype", "fsck.vfat", "e2fsck", "debugfs")
	img, _, _ := piTree(t)
	ps := partitions(t, img)
	bootOff, rootOff := ps[0].Start, ps[1].Start
	src := t.TempDir()
	keyFile := filepath.Join(src, "authorized_keys")
	must(t, os.WriteFile(keyFile, []byte("ssh-ed25519 AAAAC3Nza test@host\n"), 0o644))
	tree := filepath.Join(src, "app")
	must(t, os.MkdirAll(filepath.Join(tree, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(tree, "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	must(t, os.WriteFile(filepath.Join(tree, "sub", "data.txt"), []byte(strings.Repeat("data\n", 3000)), 0o640))
	must(t, os.Symlink("run.sh", filepath.Join(tree, "start")))
	cmdSrc := filepath.Join(src, "Custom Notes.txt")
	must(t, os.WriteFile(cmdSrc, []byte("hello FAT\n"), 0o644))

	// FAT: a file into the root directory, under its long name.
	editStep(t, img, "put FAT", []string{"put", img, cmdSrc, "bootfs:/"}, "1:/Custom Notes.txt")
	if got := testimg.Run(t, "mtype", "-i", fmt.Sprintf("%s@@%d", img, bootOff), "::/Custom Notes.txt"); got != "hello FAT\n" {
		t.Errorf("mtype reads %q", got)
	}
	// FAT: mkdir -p and a tree.
	editStep(t, img, "mkdir FAT", []string{"mkdir", "-p", img, "1:/extra/deeper"}, "1:/extra", "1:/extra/deeper")
	editStep(t, img, "rm -r FAT", []string{"rm", "-r", img, "1:/overlays"}, "1:/overlays", "1:/overlays/")
	if _, err := os.Stat(img); err != nil {
		t.Fatal(err)
	}
	if m := manifest(t, img); m["1:/overlays"] != "" {
		t.Error("1:/overlays still there")
	}

	// ext4: .ssh with owner and mode, the key with its own.
	editStep(t, img, "mkdir ext4", []string{"mkdir", "-p", "--mode", "700", "--owner", "1000:1000", img, "rootfs:/home/pi/.ssh"}, "2:/home/pi/.ssh", "2:/home/pi")
	editStep(t, img, "put ext4", []string{"put", "--mode", "600", "--owner", "1000:1000", img, keyFile, "rootfs:/home/pi/.ssh/authorized_keys"}, "2:/home/pi/.ssh/authorized_keys", "2:/home/pi/.ssh")
	m := manifest(t, img)
	if !strings.HasPrefix(m["2:/home/pi/.ssh"], "drwx------ 1000:1000") || !strings.HasPrefix(m["2:/home/pi/.ssh/authorized_keys"], "-rw------- 1000:1000") {
		t.Errorf(".ssh %q, authorized_keys %q", m["2:/home/pi/.ssh"], m["2:/home/pi/.ssh/authorized_keys"])
	}
	if got := testimg.Run(t, "debugfs", "-R", "cat /home/pi/.ssh/authorized_keys", fmt.Sprintf("%s?offset=%d", img, rootOff)); got != "ssh-ed25519 AAAAC3Nza test@host\n" {
		t.Errorf("debugfs cat: %q", got)
	}
	editStep(t, img, "mkdir opt", []string{"mkdir", img, "2:/opt"}, "2:/opt")
	editStep(t, img, "put -r ext4", []string{"put", "-r", img, tree, "2:/opt/"}, "2:/opt/")
	m = manifest(t, img)
	if !strings.HasPrefix(m["2:/opt/app/run.sh"], "-rwxr-xr-x 0:0") || !strings.HasPrefix(m["2:/opt/app/start"], "L") || !strings.Contains(m["2:/opt/app/start"], " run.sh") {
		t.Errorf("tree copy: run.sh %q, start %q", m["2:/opt/app/run.sh"], m["2:/opt/app/start"])
	}
	if got := testimg.Run(t, "debugfs", "-R", "cat /opt/app/sub/data.txt", fmt.Sprintf("%s?offset=%d", img, rootOff)); got != strings.Repeat("data\n", 3000) {
		t.Errorf("debugfs cat data.txt: %d bytes", len(got))
	}
	editStep(t, img, "ln -s", []string{"ln", "-s", "/usr/share/zoneinfo/UTC", img, "2:/etc/localtime"}, "2:/etc/localtime")
	if got := testimg.Run(t, "debugfs", "-R", "stat /etc/localtime", fmt.Sprintf("%s?offset=%d", img, rootOff)); !strings.Contains(got, "Fast link dest: \"/usr/share/zoneinfo/UTC\"") {
		t.Errorf("debugfs stat /etc/localtime:\n%s", got)
	}
	editStep(t, img, "rm ext4", []string{"rm", img, "2:/etc/fstab"}, "2:/etc/fstab")
	if _, ok := manifest(t, img)["2:/etc/fstab"]; ok {
		t.Error("2:/etc/fstab still there")
	}

	// Failures change nothing.
	sum := fileSHA256(t, img)
	huge := filepath.Join(src, "huge.bin")
	must(t, os.WriteFile(huge, make([]byte, 70<<20), 0o644))
	_, stderr, code := imgtool(t, "put", img, huge, "bootfs:/huge.bin")
	expectNoChange(t, img, sum, code, 1, stderr, "full", "nothing was changed")
	_, stderr, code = imgtool(t, "put", img, cmdSrc, "bootfs:/bad*name.txt")
	expectNoChange(t, img, sum, code, 1, stderr, "name")
	_, stderr, code = imgtool(t, "put", img, cmdSrc, "2:/no/such/dir/x")
	expectNoChange(t, img, sum, code, 1, stderr, "mkdir -p")
	_, stderr, code = imgtool(t, "put", img, tree, "2:/opt/")
	expectNoChange(t, img, sum, code, 2, stderr, "-r")
	_, stderr, code = imgtool(t, "rm", img, "2:/etc/nonexistent")
	expectNoChange(t, img, sum, code, 1, stderr, "not exist")
	_, stderr, code = imgtool(t, "rm", img, "2:/etc")
	expectNoChange(t, img, sum, code, 2, stderr, "-r")
	_, stderr, code = imgtool(t, "rm", "-r", img, "2:/")
	expectNoChange(t, img, sum, code, 2, stderr, "root directory")
	_, stderr, code = imgtool(t, "mkdir", img, "2:/etc")
	expectNoChange(t, img, sum, code, 1, stderr, "exists")
	_, stderr, code = imgtool(t, "ln", "-s", "x", img, "1:/link")
	expectNoChange(t, img, sum, code, 1, stderr, "symbolic links")
	_, stderr, code = imgtool(t, "ln", "x", img, "2:/link")
	expectNoChange(t, img, sum, code, 2, stderr, "-s")
	_, stderr, code = imgtool(t, "put", img, cmdSrc, "/x")
	expectNoChange(t, img, sum, code, 1, stderr, "PART:PATH")
	// ext4 full: a file bigger than the free space.
	fill := filepath.Join(src, "fill.bin")
	must(t, os.WriteFile(fill, make([]byte, 63<<20), 0o644))
	for i := 0; ; i++ {
		before := fileSHA256(t, img)
		_, stderr, code = imgtool(t, "put", img, fill, fmt.Sprintf("2:/fill%d", i))
		if code != 0 {
			expectNoChange(t, img, before, code, 1, stderr, "nothing was changed")
			break
		}
		if i > 10 {
			t.Fatal("ext4 never filled up")
		}
	}
	fsckAll(t, img)
}

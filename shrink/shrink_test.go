package shrink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	iofs "io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/expand"
	"imgtool/fs"
	"imgtool/internal/testimg"
	"imgtool/part"
)

// rootFiles makes a folder with about mib MiB of files of random content,
// a symbolic link and nested folders.
func rootFiles(t testing.TB, mib int) string {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < mib; i++ {
		sub := filepath.Join(dir, fmt.Sprintf("d%d", i%7), fmt.Sprintf("e%d", i%3))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1<<20-i*977)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "etc", "hostname"), []byte("pi\n"), 0o644)
	os.Symlink("../etc/hostname", filepath.Join(dir, "d0", "link"))
	return dir
}

func bootFiles(t testing.TB, cmdline string) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cmdline.txt"), []byte(cmdline), 0o644)
	os.WriteFile(filepath.Join(dir, "config.txt"), []byte("arm_64bit=1\n"), 0o644)
	return dir
}

const piCmdline = "console=serial0,115200 console=tty1 root=PARTUUID=1234abcd-02 rootfstype=ext4 fsck.repair=yes rootwait\n"

// tree describes every file of every filesystem of an image: path, mode,
// size, link target and content hash.
func tree(t testing.TB, img string) map[string]string {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	tbl, err := part.Read(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range tbl.Partitions {
		if p.Extended {
			continue
		}
		fsys, _, err := fs.Open(p.Section(), p.Size, fs.Options{})
		if err != nil {
			t.Fatalf("partition %d: %v", p.Number, err)
		}
		err = iofs.WalkDir(fsys, ".", func(path string, d iofs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			desc := info.Mode().String()
			switch {
			case info.Mode()&iofs.ModeSymlink != 0:
				l, err := fsys.ReadLink(path)
				if err != nil {
					return err
				}
				desc += " -> " + l
			case info.Mode().IsRegular():
				b, err := fsys.ReadFile(path)
				if err != nil {
					return err
				}
				s := sha256.Sum256(b)
				desc += fmt.Sprintf(" %d %x", len(b), s[:8])
			}
			out[fmt.Sprintf("%d:%s", p.Number, path)] = desc
			return nil
		})
		if err != nil {
			t.Fatalf("partition %d: %v", p.Number, err)
		}
	}
	return out
}

func diffTrees(t testing.TB, before, after map[string]string, ignore func(string) bool) {
	t.Helper()
	for k, v := range before {
		if after[k] != v && !ignore(k) {
			t.Errorf("%s: was %q, now %q", k, v, after[k])
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok && !ignore(k) {
			t.Errorf("%s: new file", k)
		}
	}
}

func sha(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

func readTable(t testing.TB, img string) (*part.Table, int64) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	tbl, err := part.Read(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	return tbl, fi.Size()
}

// fsckAll runs e2fsck -fn on every ext partition and fsck.vfat -n on every
// FAT one.
func fsckAll(t testing.TB, img string) {
	t.Helper()
	tbl, _ := readTable(t, img)
	for _, p := range tbl.Partitions {
		if p.Extended {
			continue
		}
		info, err := fs.Identify(p.Section(), p.Size)
		if err != nil {
			continue
		}
		switch info.Type {
		case "ext2", "ext3", "ext4":
			cmd := exec.Command("e2fsck", "-fn", fmt.Sprintf("%s?offset=%d", img, p.Start))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("e2fsck -fn partition %d: %v\n%s", p.Number, err, out)
			}
		case "vfat":
			part := filepath.Join(t.TempDir(), "boot.part")
			testimg.Run(t, "dd", "if="+img, "of="+part, "bs=512", fmt.Sprintf("skip=%d", p.Start/512),
				fmt.Sprintf("count=%d", p.Size/512), "status=none")
			cmd := exec.Command("fsck.vfat", "-n", part)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("fsck.vfat -n partition %d: %v\n%s", p.Number, err, out)
			}
		}
	}
}

func init() {
	os.Setenv("PATH", os.Getenv("PATH")+":/usr/sbin:/sbin")
}

func noExpandChanges(k string) bool {
	return strings.HasPrefix(k, "1:cmdline.txt") || strings.Contains(k, "imgtool-expand") ||
		strings.Contains(k, "local-fs.target.wants") || k == "2:usr/local/sbin" || k == "2:usr/local" ||
		k == "2:usr" || strings.HasPrefix(k, "2:etc/systemd")
}

func TestShrinkPiMBR(t *testing.T) {
	testimg.NeedTools(t, "sfdisk", "mkfs.ext4", "mkfs.vfat", "mcopy", "e2fsck", "fsck.vfat")
	name := useEngine(t)
	t.Logf("engine: %s", name)
	dir := t.TempDir()
	img := testimg.PiImage(t, dir, testimg.PiOptions{Size: 512 * MiB, RootFiles: rootFiles(t, 60), BootFiles: bootFiles(t, piCmdline)})
	before := tree(t, img)
	tblBefore, _ := readTable(t, img)
	res, err := Apply(context.Background(), img, Options{Slack: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d → %d bytes, expansion %+v (%s), %d changes", res.OldSize, res.NewSize, res.Expansion, res.ExpansionAction, res.Changes)
	if undoExists(img) {
		t.Error("undo file left behind")
	}
	tbl, size := readTable(t, img)
	last := tbl.Partitions[len(tbl.Partitions)-1]
	if size != last.End() || size%MiB != 0 {
		t.Errorf("image is %d bytes, last partition ends at %d (want equal and 1 MiB aligned)", size, last.End())
	}
	if size >= 512*MiB || size != res.NewSize {
		t.Errorf("size %d, result says %d", size, res.NewSize)
	}
	if tbl.DiskID != tblBefore.DiskID || last.Start != tblBefore.Partitions[1].Start ||
		tbl.Partitions[0].Start != tblBefore.Partitions[0].Start || tbl.Partitions[0].Size != tblBefore.Partitions[0].Size ||
		last.UUID != tblBefore.Partitions[1].UUID || last.Type != tblBefore.Partitions[1].Type {
		t.Errorf("table changed beyond the last partition's size: %+v → %+v", tblBefore.Partitions, tbl.Partitions)
	}
	fsckAll(t, img)
	diffTrees(t, before, tree(t, img), noExpandChanges)
	if res.Expansion == nil || res.Expansion.Mechanism != expand.Imgtool || !res.Expansion.Armed {
		t.Errorf("expansion %+v, want imgtool armed", res.Expansion)
	}
	// The second shrink changes nothing.
	h := sha(t, img)
	res2, err := Apply(context.Background(), img, Options{Slack: -1})
	if err != nil {
		t.Fatal(err)
	}
	if h2 := sha(t, img); h2 != h {
		t.Errorf("second shrink changed the image (%d → %d bytes)", res2.OldSize, res2.NewSize)
	}
}

func undoExists(img string) bool {
	_, err := os.Stat(img + ".imgtool-undo")
	return err == nil
}

func TestDryRunAndOutput(t *testing.T) {
	testimg.NeedTools(t, "sfdisk", "mkfs.ext4", "mkfs.vfat", "mcopy", "e2fsck", "fsck.vfat")
	useEngine(t)
	dir := t.TempDir()
	img := testimg.PiImage(t, dir, testimg.PiOptions{Size: 256 * MiB, RootFiles: rootFiles(t, 20), BootFiles: bootFiles(t, piCmdline)})
	h := sha(t, img)
	p, err := Plan(img, Options{Slack: -1})
	if err != nil {
		t.Fatal(err)
	}
	if sha(t, img) != h {
		t.Fatal("Plan changed the image")
	}
	if !p.ShrinkFS || p.NewSize >= p.Size || p.MinBlocks == 0 {
		t.Errorf("plan %+v", p)
	}
	out := filepath.Join(dir, "small.img")
	res, err := Apply(context.Background(), img, Options{Slack: -1, Output: out})
	if err != nil {
		t.Fatal(err)
	}
	if sha(t, img) != h {
		t.Error("Apply with Output changed the input")
	}
	if res.NewSize != p.NewSize {
		t.Errorf("plan said %d bytes, result is %d", p.NewSize, res.NewSize)
	}
	fi, _ := os.Stat(out)
	if fi.Size() != res.NewSize {
		t.Errorf("output is %d bytes, want %d", fi.Size(), res.NewSize)
	}
	fsckAll(t, out)
	diffTrees(t, tree(t, img), tree(t, out), noExpandChanges)
}

func TestShrinkGPT(t *testing.T) {
	testimg.NeedTools(t, "sgdisk", "mkfs.ext4", "mkfs.vfat", "e2fsck", "fsck.vfat")
	useEngine(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "gpt.img")
	testimg.Sparse(t, img, 384*MiB)
	testimg.Run(t, "sgdisk", "-U", "8e7f1bd1-8f13-4a8e-9b5c-3d2b7c0e1f20",
		"-n", "1:2048:+64M", "-t", "1:ef00", "-u", "1:1a2b3c4d-0000-4000-8000-000000000001",
		"-n", "2:0:0", "-t", "2:8300", "-u", "2:1a2b3c4d-0000-4000-8000-000000000002", img)
	boot := filepath.Join(dir, "boot.part")
	testimg.Sparse(t, boot, 64*MiB)
	testimg.Run(t, "mkfs.vfat", "-F", "32", boot)
	testimg.CopyInto(t, img, boot, MiB)
	tbl0, _ := readTable(t, img)
	root := filepath.Join(dir, "root.part")
	testimg.Sparse(t, root, tbl0.Partitions[1].Size)
	testimg.Run(t, "mkfs.ext4", "-q", "-F", "-d", rootFiles(t, 30), root)
	testimg.CopyInto(t, img, root, tbl0.Partitions[1].Start)
	before := tree(t, img)
	res, err := Apply(context.Background(), img, Options{Slack: -1, NoExpand: true})
	if err != nil {
		t.Fatal(err)
	}
	tbl, size := readTable(t, img)
	if size != res.NewSize || size >= 384*MiB {
		t.Errorf("size %d, result %d", size, res.NewSize)
	}
	if tbl.DiskID != tbl0.DiskID || tbl.Partitions[0].UUID != tbl0.Partitions[0].UUID || tbl.Partitions[1].UUID != tbl0.Partitions[1].UUID {
		t.Errorf("GUIDs changed: %s %+v → %s %+v", tbl0.DiskID, tbl0.Partitions, tbl.DiskID, tbl.Partitions)
	}
	if len(tbl.Warnings) > 0 {
		t.Errorf("table warnings: %v", tbl.Warnings)
	}
	if (tbl.Partitions[1].End())%MiB != 0 {
		t.Errorf("partition 2 ends at %d", tbl.Partitions[1].End())
	}
	out := testimg.Run(t, "sgdisk", "-v", img)
	if !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk -v:\n%s", out)
	}
	fsckAll(t, img)
	diffTrees(t, before, tree(t, img), func(string) bool { return false })
}

func TestShrinkFATLast(t *testing.T) {
	testimg.NeedTools(t, "sfdisk", "mkfs.vfat", "fsck.vfat")
	dir := t.TempDir()
	img := filepath.Join(dir, "fat.img")
	testimg.Sparse(t, img, 256*MiB)
	testimg.RunIn(t, []byte("label: dos\nlabel-id: 0x0badcafe\n2048 131072 c\n"), "sfdisk", "-q", img)
	boot := filepath.Join(dir, "boot.part")
	testimg.Sparse(t, boot, 64*MiB)
	testimg.Run(t, "mkfs.vfat", "-F", "32", boot)
	testimg.CopyInto(t, img, boot, MiB)
	before := tree(t, img)
	res, err := Apply(context.Background(), img, Options{Slack: -1})
	if err != nil {
		t.Fatal(err)
	}
	if res.NewSize != 65*MiB || res.Plan.ShrinkFS || res.Expansion != nil {
		t.Errorf("result %+v", res)
	}
	tbl, size := readTable(t, img)
	if size != 65*MiB || tbl.DiskID != "0badcafe" {
		t.Errorf("size %d, disk id %s", size, tbl.DiskID)
	}
	fsckAll(t, img)
	diffTrees(t, before, tree(t, img), func(string) bool { return false })
}

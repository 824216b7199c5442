package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/internal/testimg"
)

func TestShrinkCLI(t *testing.T) {
	testimg.NeedTools(t, "sfdisk", "mkfs.ext4", "mkfs.vfat", "mcopy")
	dir := t.TempDir()
	boot := t.TempDir()
	os.WriteFile(filepath.Join(boot, "cmdline.txt"), []byte("console=tty1 root=PARTUUID=1234abcd-02 rootwait\n"), 0o644)
	img := testimg.PiImage(t, dir, testimg.PiOptions{Size: 256 * testimg.MiB, BootFiles: boot})
	h := testimg.FileSum(t, img)

	var plan struct {
		Size    int64 `json:"size"`
		NewSize int64 `json:"new_size"`
	}
	mustJSON(t, &plan, "shrink", "--dry-run", img)
	if plan.Size != 256*testimg.MiB || plan.NewSize >= plan.Size {
		t.Errorf("plan %+v", plan)
	}
	if testimg.FileSum(t, img) != h {
		t.Fatal("--dry-run changed the image")
	}
	out, errOut, code := imgtool(t, "shrink", "--dry-run", img)
	if code != 0 || !strings.Contains(out, "Result:") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errOut)
	}

	small := filepath.Join(dir, "small.img")
	var res struct {
		NewSize   int64 `json:"new_size"`
		Expansion *struct {
			Mechanism string `json:"mechanism"`
		} `json:"expansion"`
	}
	out, errOut, code = imgtool(t, "shrink", "--json", "--no-expand", img, small)
	if code != 0 {
		t.Fatalf("shrink: exit %d: %s", code, errOut)
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if testimg.FileSum(t, img) != h {
		t.Fatal("shrink with OUTPUT changed the input")
	}
	fi, err := os.Stat(small)
	if err != nil || fi.Size() != res.NewSize || res.NewSize >= 256*testimg.MiB || res.Expansion != nil {
		t.Fatalf("output %v, result %+v", fi, res)
	}
	var rep struct {
		EndOfLastPartition int64 `json:"end_of_last_partition"`
		Size               int64 `json:"size"`
	}
	mustJSON(t, &rep, "inspect", small)
	if rep.EndOfLastPartition != rep.Size {
		t.Errorf("inspect: last partition ends at %d, image is %d bytes", rep.EndOfLastPartition, rep.Size)
	}

	// --undo without an undo log says so on one line.
	_, errOut, code = imgtool(t, "shrink", "--undo", small)
	if code != 1 || !strings.Contains(errOut, "nothing to undo") {
		t.Errorf("--undo: exit %d: %q", code, errOut)
	}
	_, _, code = imgtool(t, "shrink", "--slack", "lots", img)
	if code != 2 {
		t.Errorf("--slack lots: exit %d, want 2", code)
	}
}

// TestShrinkLiveBackup shrinks an image whose root filesystem has a journal
// that needs recovery (as a dd of a running card has): a new version of a
// file's block is only in the journal (debugfs jo/jw/jc). The result must
// hold the journaled content and pass e2fsck.
func TestShrinkLiveBackup(t *testing.T) {
	testimg.NeedTools(t, "debugfs", "e2fsck", "dumpe2fs")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := testimg.PiImage(t, dir, testimg.PiOptions{Size: 256 << 20, RootFiles: root})
	rootOff := int64(68 << 20)
	part := fmt.Sprintf("%s?offset=%d", img, rootOff)
	blk := strings.TrimSpace(testimg.Run(t, "debugfs", "-R", "bmap /etc/hostname 0", part))
	bs := 1024
	if h := testimg.Run(t, "dumpe2fs", "-h", part); strings.Contains(h, "Block size:               4096") {
		bs = 4096
	}
	block := append([]byte("after\n"), make([]byte, bs-6)...)
	nb := filepath.Join(dir, "block")
	if err := os.WriteFile(nb, block, 0o644); err != nil {
		t.Fatal(err)
	}
	testimg.RunIn(t, []byte("jo\njw -b "+blk+" "+nb+"\njc\n"), "debugfs", "-w", "-f", "-", part)
	if h := testimg.Run(t, "dumpe2fs", "-h", part); !strings.Contains(h, "needs_recovery") {
		t.Fatalf("the fixture's journal does not need recovery")
	}
	var res struct {
		NewSize  int64 `json:"new_size"`
		Replayed bool  `json:"journal_replayed"`
	}
	mustJSON(t, &res, "shrink", img)
	if !res.Replayed || res.NewSize >= 256<<20 {
		t.Fatalf("shrink: %+v", res)
	}
	testimg.Run(t, "e2fsck", "-fn", part)
	if out, _, code := imgtool(t, "cat", img, "rootfs:/etc/hostname"); code != 0 || out != "after\n\x00" { // the inode still says 7 bytes
		t.Errorf("after shrinking: /etc/hostname is %q (exit %d); want the journaled content", out, code)
	}
}

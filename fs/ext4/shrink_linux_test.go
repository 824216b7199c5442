package ext4

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"imgtool/internal/testimg"
)

// fsckClean runs e2fsck -fn and fails the test unless it finds nothing.
func shrinkFsck(t *testing.T, img string) {
	t.Helper()
	p, err := testimg.LookPath("e2fsck")
	if err != nil {
		testimg.Skip(t, "e2fsck not installed")
	}
	out, err := exec.Command(p, "-fn", img).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn after shrink: %v\n%s", err, out)
	}
}

// blockCount reads s_blocks_count with dumpe2fs -h.
func blockCount(t *testing.T, img string) uint64 {
	t.Helper()
	out := testimg.Run(t, "dumpe2fs", "-h", img)
	m := regexp.MustCompile(`(?m)^Block count:\s+(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("dumpe2fs: no block count:\n%s", out)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// resize2fsMin shrinks a copy of img with resize2fs -M and returns its
// block count.
func resize2fsMin(t *testing.T, img string) (uint64, time.Duration) {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "r2fs.img")
	testimg.Run(t, "cp", "--sparse=always", img, cp)
	start := time.Now()
	testimg.Run(t, "e2fsck", "-pf", cp)
	testimg.Run(t, "resize2fs", "-M", cp)
	return blockCount(t, cp), time.Since(start)
}

// shrinkFile shrinks the filesystem image file to its minimum with MinSize
// and Shrink, truncating the file, and returns the new block count.
func shrinkFile(t *testing.T, img string) (uint64, time.Duration) {
	n, el, _ := shrinkFilePlan(t, img)
	return n, el
}

// shrinkFilePlan is shrinkFile that also returns the plan it followed.
func shrinkFilePlan(t *testing.T, img string) (uint64, time.Duration, *ShrinkPlan) {
	t.Helper()
	fh, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	st, _ := fh.Stat()
	start := time.Now()
	n, err := MinSize(fh, st.Size())
	if err != nil {
		t.Fatalf("MinSize: %v", err)
	}
	plan, err := PlanShrink(fh, st.Size(), n)
	if err != nil {
		t.Fatalf("PlanShrink(%d): %v", n, err)
	}
	if err := Shrink(fh, st.Size(), n, ShrinkOptions{}); err != nil {
		t.Fatalf("Shrink(%d): %v", n, err)
	}
	el := time.Since(start)
	if err := fh.Truncate(plan.NewSize()); err != nil {
		t.Fatal(err)
	}
	t.Logf("shrunk %d -> %d blocks: moved %d blocks, %d inodes, %d metadata blocks in %v",
		plan.OldBlocks, plan.NewBlocks, plan.MoveBlocks, plan.MoveInodes, plan.MetadataBlocks, el)
	return n, el, plan
}

type shrinkCase struct {
	name  string
	size  int64
	mkfs  []string
	tree  treeOpts
	after func(t *testing.T, img string) // changes before the shrink (debugfs)
	grow  int64                          // resize2fs the image to this size first
	// wantMeta: the layout puts bitmaps or inode tables of groups that
	// remain above the new end, so the shrink must move them.
	wantMeta bool
}

func runShrinkCase(t *testing.T, c shrinkCase) {
	testimg.NeedTools(t, "mkfs.ext4", "e2fsck", "resize2fs", "dumpe2fs")
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src, c.tree)
	img := mkfs(t, src, c.size, c.mkfs...)
	if c.grow > 0 {
		if err := os.Truncate(img, c.grow); err != nil {
			t.Fatal(err)
		}
		testimg.Run(t, "resize2fs", img)
	}
	if c.after != nil {
		c.after(t, img)
	}
	shrinkFsck(t, img)
	want, r2time := resize2fsMin(t, img)
	got, ourTime, plan := shrinkFilePlan(t, img)
	if c.wantMeta && plan.MetadataBlocks == 0 {
		t.Errorf("this layout was meant to move group metadata, but the plan moves none")
	}
	shrinkFsck(t, img)
	t.Logf("blocks: ours %d, resize2fs -M %d (%+.1f%%); time: ours %v, e2fsck+resize2fs %v",
		got, want, 100*(float64(got)-float64(want))/float64(want), ourTime, r2time)
	if got > want+want/50+64 {
		t.Errorf("shrunk to %d blocks, resize2fs -M reaches %d", got, want)
	}
	if c.after == nil {
		compareTree(t, openImage(t, img), src, false)
	}
}

func TestShrinkVariants(t *testing.T) {
	tree := treeOpts{manyFiles: 300, bigFile: 20 << 20, holeyBlocks: 600, holeyBS: 1024}
	cases := []shrinkCase{
		{name: "default", size: 256 << 20, tree: tree},
		{name: "4k", size: 512 << 20, mkfs: []string{"-b", "4096"}, tree: tree},
		{name: "nocsum", size: 256 << 20, mkfs: []string{"-O", "^metadata_csum,^64bit"}, tree: tree},
		{name: "noflex", size: 256 << 20, mkfs: []string{"-O", "^flex_bg"}, tree: tree},
		{name: "ext3", size: 256 << 20, mkfs: []string{"-t", "ext3"}, tree: tree},
		{name: "ext2", size: 256 << 20, mkfs: []string{"-t", "ext2"}, tree: tree},
		{name: "1k", size: 128 << 20, mkfs: []string{"-b", "1024"}, tree: tree},
		{name: "grown", size: 48 << 20, grow: 768 << 20, mkfs: []string{"-b", "4096"}, tree: tree},
		{name: "grown1k", size: 40 << 20, grow: 256 << 20, tree: tree},
		// The case: a 16 GiB sparse filesystem grown earlier from 2 GiB.
		{name: "grown16g", size: 2 << 30, grow: 16 << 30, mkfs: []string{"-b", "4096"}, tree: tree},
		{name: "htree", size: 128 << 20, tree: treeOpts{manyFiles: 4000}},
		// A huge flex group grown far: resize2fs puts the new groups'
		// bitmaps and inode tables high up, where the shrink cuts.
		{name: "grown-flexmeta", size: 64 << 20, grow: 2 << 30, mkfs: []string{"-b", "4096", "-G", "4096"}, tree: tree, wantMeta: true},
		{name: "sparse_super2", size: 512 << 20, mkfs: []string{"-O", "sparse_super2"}, tree: tree},
		{name: "sparse_super2-grown", size: 64 << 20, grow: 1 << 30, mkfs: []string{"-O", "sparse_super2", "-b", "4096"}, tree: tree},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runShrinkCase(t, c) })
	}
}

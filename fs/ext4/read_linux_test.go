package ext4

import (
	"path/filepath"
	"testing"

	"imgtool/fs/meta"
	"imgtool/internal/testimg"
)

// variants are the mkfs configurations every fixture test runs against.
var variants = []struct {
	name string
	args []string
	size int64
	tree treeOpts
}{
	{"default", nil, 64 << 20, treeOpts{manyFiles: 2000}},
	{"no_csum_32bit", []string{"-O", "^metadata_csum,^64bit"}, 64 << 20, treeOpts{manyFiles: 300}},
	{"ext3", []string{"-t", "ext3"}, 64 << 20, treeOpts{manyFiles: 300}},
	{"ext2", []string{"-t", "ext2"}, 64 << 20, treeOpts{manyFiles: 300}},
	// mkfs.ext4 1.47 -d truncates sparse files on inline_data filesystems.
	{"inline_data", []string{"-O", "inline_data"}, 64 << 20, treeOpts{manyFiles: 300, noSparse: true}},
	{"1k_deep_extents", []string{"-b", "1024"}, 96 << 20, treeOpts{manyFiles: 300, holeyBlocks: 4000, holeyBS: 1024}},
	{"ext2_1k_holey", []string{"-t", "ext2", "-b", "1024"}, 96 << 20, treeOpts{holeyBlocks: 4000, holeyBS: 1024}},
	{"bigalloc", []string{"-O", "bigalloc", "-C", "16384"}, 64 << 20, treeOpts{manyFiles: 100}},
	{"meta_bg", []string{"-O", "meta_bg,^resize_inode"}, 64 << 20, treeOpts{manyFiles: 100}},
	{"64k", []string{"-b", "65536"}, 128 << 20, treeOpts{manyFiles: 100}},
	{"huge_sparse", nil, 64 << 20, treeOpts{hugeSparse: 1 << 30}},
}

func TestVariants(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			src := filepath.Join(t.TempDir(), "src")
			makeTree(t, src, v.tree)
			img := mkfs(t, src, v.size, v.args...)
			if v.tree.manyFiles >= 1000 {
				// mkfs -d writes linear directories; e2fsck -D indexes them.
				testimg.E2fsckOptimize(t, img)
			}
			fsys := openImage(t, img)
			compareTree(t, fsys, src, false)
			if v.tree.manyFiles >= 1000 {
				fi, err := fsys.Stat("many")
				if err != nil {
					t.Fatal(err)
				}
				if fl := fi.Sys().(*meta.Stat).Flags; fl&InodeIndexFl == 0 {
					t.Errorf("many/ is not an htree directory (flags %#x)", fl)
				}
			}
		})
	}
}

package ext4

import (
	"fmt"
	"math/bits"
	"strings"
)

// CompatFeature is a bit set of s_feature_compat.
type CompatFeature uint32

// IncompatFeature is a bit set of s_feature_incompat.
type IncompatFeature uint32

// ROCompatFeature is a bit set of s_feature_ro_compat.
type ROCompatFeature uint32

// Compatible features.
const (
	CompatDirPrealloc   CompatFeature = 0x0001
	CompatImagicInodes  CompatFeature = 0x0002
	CompatHasJournal    CompatFeature = 0x0004
	CompatExtAttr       CompatFeature = 0x0008
	CompatResizeInode   CompatFeature = 0x0010
	CompatDirIndex      CompatFeature = 0x0020
	CompatLazyBG        CompatFeature = 0x0040
	CompatExcludeInode  CompatFeature = 0x0080
	CompatExcludeBitmap CompatFeature = 0x0100
	CompatSparseSuper2  CompatFeature = 0x0200
	CompatFastCommit    CompatFeature = 0x0400
	CompatStableInodes  CompatFeature = 0x0800
	CompatOrphanFile    CompatFeature = 0x1000
)

// Incompatible features.
const (
	IncompatCompression IncompatFeature = 0x00001
	IncompatFiletype    IncompatFeature = 0x00002
	IncompatRecover     IncompatFeature = 0x00004 // needs_recovery
	IncompatJournalDev  IncompatFeature = 0x00008
	IncompatMetaBG      IncompatFeature = 0x00010
	IncompatExtents     IncompatFeature = 0x00040
	Incompat64bit       IncompatFeature = 0x00080
	IncompatMMP         IncompatFeature = 0x00100
	IncompatFlexBG      IncompatFeature = 0x00200
	IncompatEAInode     IncompatFeature = 0x00400
	IncompatDirData     IncompatFeature = 0x01000
	IncompatCsumSeed    IncompatFeature = 0x02000
	IncompatLargeDir    IncompatFeature = 0x04000
	IncompatInlineData  IncompatFeature = 0x08000
	IncompatEncrypt     IncompatFeature = 0x10000
	IncompatCasefold    IncompatFeature = 0x20000
)

// Read-only compatible features.
const (
	ROCompatSparseSuper   ROCompatFeature = 0x00001
	ROCompatLargeFile     ROCompatFeature = 0x00002
	ROCompatBtreeDir      ROCompatFeature = 0x00004
	ROCompatHugeFile      ROCompatFeature = 0x00008
	ROCompatGdtCsum       ROCompatFeature = 0x00010 // uninit_bg
	ROCompatDirNlink      ROCompatFeature = 0x00020
	ROCompatExtraIsize    ROCompatFeature = 0x00040
	ROCompatHasSnapshot   ROCompatFeature = 0x00080
	ROCompatQuota         ROCompatFeature = 0x00100
	ROCompatBigalloc      ROCompatFeature = 0x00200
	ROCompatMetadataCsum  ROCompatFeature = 0x00400
	ROCompatReplica       ROCompatFeature = 0x00800
	ROCompatReadOnly      ROCompatFeature = 0x01000
	ROCompatProject       ROCompatFeature = 0x02000
	ROCompatSharedBlocks  ROCompatFeature = 0x04000
	ROCompatVerity        ROCompatFeature = 0x08000
	ROCompatOrphanPresent ROCompatFeature = 0x10000
)

var compatNames = map[CompatFeature]string{
	CompatDirPrealloc: "dir_prealloc", CompatImagicInodes: "imagic_inodes",
	CompatHasJournal: "has_journal", CompatExtAttr: "ext_attr",
	CompatResizeInode: "resize_inode", CompatDirIndex: "dir_index",
	CompatLazyBG: "lazy_bg", CompatExcludeInode: "snapshot_bitmap",
	CompatExcludeBitmap: "exclude_bitmap", CompatSparseSuper2: "sparse_super2",
	CompatFastCommit: "fast_commit", CompatStableInodes: "stable_inodes",
	CompatOrphanFile: "orphan_file",
}

var incompatNames = map[IncompatFeature]string{
	IncompatCompression: "compression", IncompatFiletype: "filetype",
	IncompatRecover: "needs_recovery", IncompatJournalDev: "journal_dev",
	IncompatMetaBG: "meta_bg", IncompatExtents: "extent", Incompat64bit: "64bit",
	IncompatMMP: "mmp", IncompatFlexBG: "flex_bg", IncompatEAInode: "ea_inode",
	IncompatDirData: "dirdata", IncompatCsumSeed: "metadata_csum_seed",
	IncompatLargeDir: "large_dir", IncompatInlineData: "inline_data",
	IncompatEncrypt: "encrypt", IncompatCasefold: "casefold",
}

var roCompatNames = map[ROCompatFeature]string{
	ROCompatSparseSuper: "sparse_super", ROCompatLargeFile: "large_file",
	ROCompatBtreeDir: "btree_dir", ROCompatHugeFile: "huge_file",
	ROCompatGdtCsum: "uninit_bg", ROCompatDirNlink: "dir_nlink",
	ROCompatExtraIsize: "extra_isize", ROCompatHasSnapshot: "snapshot",
	ROCompatQuota: "quota", ROCompatBigalloc: "bigalloc",
	ROCompatMetadataCsum: "metadata_csum", ROCompatReplica: "replica",
	ROCompatReadOnly: "read-only", ROCompatProject: "project",
	ROCompatSharedBlocks: "shared_blocks", ROCompatVerity: "verity",
	ROCompatOrphanPresent: "orphan_present",
}

// featureNames lists the names of the bits set in v, in bit order;
// unknown bits are spelled as e2fsprogs does ("FEATURE_I31").
func featureNames[T ~uint32](v T, names map[T]string, letter string) []string {
	var out []string
	for x := uint32(v); x != 0; x &= x - 1 {
		bit := bits.TrailingZeros32(x)
		if n, ok := names[T(1)<<bit]; ok {
			out = append(out, n)
		} else {
			out = append(out, fmt.Sprintf("FEATURE_%s%d", letter, bit))
		}
	}
	return out
}

// String returns the e2fsprogs names of the features, space separated.
func (f CompatFeature) String() string {
	return strings.Join(featureNames(f, compatNames, "C"), " ")
}

// String returns the e2fsprogs names of the features, space separated.
func (f IncompatFeature) String() string {
	return strings.Join(featureNames(f, incompatNames, "I"), " ")
}

// String returns the e2fsprogs names of the features, space separated.
func (f ROCompatFeature) String() string {
	return strings.Join(featureNames(f, roCompatNames, "R"), " ")
}

// Features returns the names of every feature of the superblock in the
// order dumpe2fs prints them (compat, incompat, ro_compat; bit order).
func (sb *Superblock) Features() []string {
	out := featureNames(sb.FeatureCompat, compatNames, "C")
	out = append(out, featureNames(sb.FeatureIncompat, incompatNames, "I")...)
	return append(out, featureNames(sb.FeatureROCompat, roCompatNames, "R")...)
}

// supportedIncompat are the incompatible features this reader handles.
const supportedIncompat = IncompatFiletype | IncompatRecover | IncompatMetaBG |
	IncompatExtents | Incompat64bit | IncompatMMP | IncompatFlexBG |
	IncompatEAInode | IncompatCsumSeed | IncompatLargeDir | IncompatInlineData

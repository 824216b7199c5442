// Package ext4 reads ext2, ext3 and ext4 filesystems from an io.ReaderAt,
// without root and without the kernel, as an io/fs.FS.
//
// New(r, size) checks the superblock and group descriptors; the returned
// *FS implements fs.FS, fs.ReadDirFS, fs.StatFS, fs.ReadFileFS and
// fs.ReadLinkFS (Open and Stat follow symbolic links inside the filesystem,
// at most 40 of them, absolute targets starting at the filesystem root), and
// the fs/meta interfaces UsageFS and AllocationFS (computed from the block
// bitmaps) and Labeled. Identify looks at the superblock alone.
// FileInfo.Sys() returns a *meta.Stat with the inode's full metadata;
// extended attribute values are the raw bytes as stored on disk (POSIX ACLs
// in ext4's compact on-disk format, not the kernel's xattr format).
//
// Supported: block sizes 1 to 64 KiB; 32- and 64-byte group descriptors;
// flex_bg, meta_bg, sparse_super, sparse_super2; extent trees up to depth 5
// and ext2/3 direct and indirect block maps; holes and uninitialised extents
// (read as zeros); linear and htree directories (leaf blocks are scanned;
// index blocks read as empty entries); large_dir; fast, slow and inline
// symbolic links; inline_data files and directories; extended attributes in
// the inode, in an external block and in ea_inode inodes; huge_file;
// bigalloc; metadata_csum (superblock, group descriptors, inodes, extent
// blocks, directory leaf blocks with a checksum tail, xattr blocks, block
// bitmaps) and gdt_csum (group descriptors) verification, each mismatch an
// error wrapping ErrChecksum that names the block, unless WithoutVerify is
// given. A journal that needs recovery is reported by Warnings; New does not
// replay it (Replay does, through a ReadWriterAt such as an in-memory
// overlay), so without a replay the most recent changes may be missing.
// An open File also reports where its content lies (Place), so that a
// caller holding the image file can copy it inside the kernel.
//
// Refused with ErrUnsupported, naming the feature: compression, encrypt,
// casefold, dirdata, journal_dev and unknown incompatible features; also
// encrypted or casefolded directories. htree checksums (dx tails) and inode
// bitmap checksums are not verified.
//
// Writing: Shrink moves blocks and inodes to shrink a filesystem in place;
// OpenWriter returns a Writer that creates, replaces and removes files,
// directories, symbolic links and hard links and changes modes, owners and
// times, keeping bitmaps, counters and checksums right (the caller makes
// its writes atomic, e.g. through an undo log).
//
// The on-disk format is described in the Linux kernel's
// Documentation/filesystems/ext4 and in e2fsprogs' lib/ext2fs/ext2_fs.h;
// layout.go holds the structures exactly as on disk.
//
// # Security
//
// Images are untrusted. Every size read from the image is checked before it
// is used to allocate: group descriptors must fit the image, directories are
// read in chunks and may not be larger than the image, directory entry
// counts, xattr values (64 KiB), symlink targets (64 KiB) and extent tree
// depth (5) are capped, and every block number is checked against the block
// count. Extent tree descent requires strictly decreasing depths, so it ends;
// path resolution rejects a directory that contains one of its ancestors
// (ErrLoop), so that a walk of a corrupted tree ends. Memory use does not
// grow with the image size apart from the group descriptor table (about 56
// bytes per block group) and a bounded cache of resolved directory paths.
// Reading a file whose size field is huge but whose blocks are holes yields
// zeros for that whole size: callers reading untrusted files should bound
// what they read.
package ext4

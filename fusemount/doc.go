// Package fusemount serves a read-only io/fs.FS over FUSE, so that the
// files of an image's partitions can be used by any program without root,
// loop devices or copying.
//
// The filesystem handed to Mount is any io/fs.FS. imgtool's own readers
// (fs/ext4, fs/fat) give full fidelity: FileInfo.Sys() returns a
// *meta.Stat, so the mount shows the on-disk st_mode (with setuid, setgid
// and sticky bits), owners, link counts, sizes, st_blocks, nanosecond
// times, device numbers, symbolic links, extended attributes
// (security.capability included) and the filesystem's own inode numbers,
// so hard links share one inode. Other io/fs.FS values get synthetic
// inode numbers and what FileInfo says. Opened regular files must
// implement io.ReaderAt (or io.ReadSeeker, which is serialised).
//
// Nothing is walked at mount time: lookups and directory listings are
// served as the kernel asks for them, and reads go straight to ReadAt of
// the opened file, concurrently and without buffering whole files. As the
// content cannot change, the kernel is told to cache pages, entries and
// attributes (FOPEN_KEEP_CACHE, one-hour timeouts).
//
// MountPartitions shows several partitions under one mount point: one
// folder per partition holding a filesystem ("1-bootfs", "2-rootfs") and
// each partition's raw bytes as a read-only file ("p1.img", "p2.img").
//
// Errors map to errno values: ENOENT for missing names, EROFS for any
// attempt to write, and EIO for everything the reader reports as damaged;
// a damaged file gives EIO and the mount keeps serving the others.
//
// # Platforms
//
// Linux (the fuse kernel module and, when not root, fusermount3 from the
// fuse3 package) and macOS (macFUSE). Elsewhere Mount returns an error
// wrapping ErrNotAvailable that suggests "imgtool get" instead.
//
// # Permissions
//
// Without AllowOther only the user who mounted sees the files, and the
// kernel does not check their permission bits: that user can read every
// file of the image, as with the image file itself. With AllowOther the
// kernel enforces the permission bits and owners stored in the image
// (default_permissions), so that other users cannot read what the image
// keeps private.
//
// # Security
//
// The image is untrusted. The mount is read-only, nosuid and nodev: set-id
// bits and device nodes are shown as stored but have no effect. Inode
// numbers that collide are tolerated; names come from the reader, which
// rejects '/' and NUL.
package fusemount

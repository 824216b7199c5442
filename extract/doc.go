// Package extract copies files and whole trees out of a filesystem inside a
// disk image onto the host, like "cp -r" with archive-grade metadata.
//
// The source is any [io/fs.FS]. When it also implements [io/fs.ReadLinkFS],
// symbolic links are read with ReadLink and the top-level source is looked up
// with Lstat; when its FileInfo.Sys() returns a [*meta.Stat] (every imgtool
// filesystem does), inode numbers, link counts, owners, access times, device
// numbers and extended attributes are restored too. Plain io/fs
// implementations work with modes and modification times only.
//
// # Scope
//
// [Copy] reproduces regular files (streamed through one bounded buffer, with
// all-zero 4 KiB blocks left as holes), directories, symbolic links (created
// as links, never followed), hard links (entries that share an inode number
// with a link count above one become links to the first regular copy),
// FIFOs, and, as root and only when asked, character and block devices.
// Sockets are skipped. Permission bits and the sticky bit are restored;
// setuid and setgid are kept only when owners are restored too
// ([Options.Owners]), the way tar behaves for an unprivileged user, so that
// an image cannot plant a setuid program owned by the extracting user.
// Modification and access times are set with nanoseconds; directories get
// theirs after their content is written, deepest first. Owners are set with
// lchown, extended attributes with setxattr.
//
// The destination rules follow "cp -r": see [Copy].
//
// # Limits
//
// Read errors in the source and write errors on the host stop the copy;
// problems with single entries (unsafe names, unsupported types, metadata the
// host refuses) are skipped or ignored with a warning in [Result.Warnings],
// which keeps at most 1000 messages. Directory nesting is capped at 256
// levels and directory cycles (a directory whose inode is one of its own
// ancestors) are cut. Names differing only in case are detected with simple
// case folding; Unicode normalization (as done by macOS) is not modelled.
// Symbolic link times, FIFOs, devices and extended attributes are supported on
// Linux and macOS; on Windows they are skipped with a warning, and creating
// symbolic links needs the privilege Windows asks for.
//
// # Security
//
// Images are untrusted. Every name a directory listing returns is checked
// before use: empty names, "." and "..", names containing "/", "\" or NUL,
// absolute names, names longer than 255 bytes and (on Windows) names the
// host would reinterpret (drive letters, ":" streams, reserved device names,
// trailing dots or spaces) are skipped with a warning. Duplicate names in one
// directory are skipped too.
//
// String checks are not relied on alone. All host operations go through an
// [os.Root] opened on the destination directory, which refuses any path that
// leaves it, including through symbolic links created earlier in the same
// copy. Each directory of the copy is then opened as a root of its own
// (checked with Lstat and fstat to be the real directory at that name, no
// symbolic link followed), and its children are created by single-component
// names relative to it. Files are created with O_EXCL and O_NOFOLLOW; an
// existing entry is only replaced with [Options.Force], and then removed
// first (a symbolic link is removed, never written through; an existing hard
// link is unlinked, never truncated in place). The copy descends only into
// directories it created or found as real directories, and makes a hard
// link only to a regular file this copy wrote, still present and the same
// file. For the operations os.Root lacks (symbolic link times, mkfifo,
// mknod, xattrs on non-regular files) the parent directory is opened and
// checked the same way and the call is made relative to its descriptor:
// utimensat with AT_SYMLINK_NOFOLLOW on Linux and macOS; mknodat, and
// lsetxattr on /proc/self/fd/N/name, on Linux. On macOS, which lacks mknodat and an *at
// form of setxattr, the path below the checked directory is used, which a
// local process racing the copy could redirect; the image alone cannot.
// Regular files get their xattrs, owner and mode through their own
// descriptor.
//
// Files are created with mode 0600 and directories with 0700 until their
// content is complete; the stored modes are applied last.
package extract

package extract

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path"
	"path/filepath"
)

// Options control what [Copy] restores and whether it may replace files.
type Options struct {
	// Force replaces existing non-directory entries in the destination.
	// Without it, an existing entry stops the copy with an error wrapping
	// [ErrExist]. Existing directories are always merged into.
	Force bool

	// Owners restores the stored numeric uid and gid with lchown, and keeps
	// setuid and setgid bits. The caller sets it when running as root.
	Owners bool

	// Devices creates character and block device nodes. It takes effect
	// only as root; otherwise devices are skipped and counted in
	// Result.Skipped.
	Devices bool

	// Xattrs restores extended attributes: user.* always; security.*,
	// trusted.* and system.posix_acl_access/default only as root. Others
	// are skipped with a warning.
	Xattrs bool

	// Progress, when not nil, is told how far the copy has come.
	Progress Progress
}

// Progress receives running totals during a copy. Copy calls Update from the
// goroutine that called Copy only, after each entry and after each 256 KiB
// of file content; a renderer should throttle its own output.
type Progress interface {
	// Update reports the entries written so far (files, directories,
	// links and special files) and the bytes of file content copied.
	Update(files, bytes int64)
}

// Result counts what [Copy] did.
type Result struct {
	Files     int   // regular files written
	Dirs      int   // directories created or merged into
	Symlinks  int   // symbolic links created
	HardLinks int   // hard links created
	Special   int   // FIFOs and device nodes created
	Skipped   int   // entries not created (unsafe names, sockets, devices, duplicates, cycles …)
	Bytes     int64 // bytes of regular-file content copied

	// Warnings says, one line each, why entries were skipped or why
	// metadata could not be restored. At most 1000 are kept; a last line
	// says how many more there were.
	Warnings []string
}

// Errors that Copy wraps; test with errors.Is.
var (
	// ErrExist means a destination entry exists and Options.Force is off.
	ErrExist = errors.New("extract: destination exists")

	// ErrConflict means a destination entry exists with a type that cannot
	// be replaced (a directory in place of a file, or a file where a
	// directory must be), even with Force.
	ErrConflict = errors.New("extract: destination has a conflicting type")

	// ErrUnsafeName means the source path itself names something that
	// cannot be created safely on the host.
	ErrUnsafeName = errors.New("extract: unsafe name")
)

// Copy copies src, an io/fs path in fsys ("." for the root, "etc/fstab"),
// to the host path dest, with the rules of "cp -r":
//
//   - src is a file (or symbolic link, FIFO, device): if dest is an existing
//     directory, the file lands in dest/base(src); otherwise dest becomes the
//     file (its parent directory must exist).
//   - src is a directory: if dest does not exist it is created and becomes
//     the copy; if dest is an existing directory, the copy is made in
//     dest/base(src) (merging into it if that exists).
//   - src is ".": the contents of the root are copied into dest, which is
//     created (with its parents) if missing.
//
// The stored mode and times of the copied directory are applied to dest only
// when Copy created it.
//
// Copy stops at the first error, returning the counts so far; on a
// cancelled ctx the error wraps ctx.Err(). A partly written file is removed.
// Entries that cannot be created safely are skipped with a warning instead.
// See the package documentation for the safety rules.
func Copy(ctx context.Context, fsys iofs.FS, src, dest string, opt Options) (Result, error) {
	c := &copier{ctx: ctx, fsys: fsys, opt: opt, links: map[uint64]linkRec{}, asRoot: isRoot()}
	res, err := c.run(src, dest)
	return res, err
}

// isRoot reports whether the process may chown, mknod devices and set
// privileged xattrs. Tests replace it to check the unprivileged path.
var isRoot = func() bool { return os.Geteuid() == 0 }

func (c *copier) run(src, dest string) (Result, error) {
	if err := c.ctx.Err(); err != nil {
		return c.res, fmt.Errorf("extract: %w", err)
	}
	if !iofs.ValidPath(src) {
		return c.res, fmt.Errorf("extract: source %q: %w", src, iofs.ErrInvalid)
	}
	info, err := lstatFS(c.fsys, src)
	if err != nil {
		return c.res, fmt.Errorf("extract: %w", err)
	}
	var (
		rootDir string // host directory the os.Root is opened on
		rel     string // where the copy goes inside it ("." for rootDir itself)
		created bool   // whether Copy created rootDir
	)
	destInfo, derr := os.Stat(dest)
	destIsDir := derr == nil && destInfo.IsDir()
	switch {
	case src == ".":
		if !info.IsDir() {
			return c.res, fmt.Errorf("extract: root of the filesystem is not a directory")
		}
		if derr != nil && !errors.Is(derr, iofs.ErrNotExist) {
			return c.res, fmt.Errorf("extract: %w", derr)
		}
		if derr == nil && !destIsDir {
			return c.res, fmt.Errorf("%w: %s is not a directory", ErrConflict, dest)
		}
		if derr != nil {
			if err := os.MkdirAll(dest, 0o700); err != nil {
				return c.res, fmt.Errorf("extract: %w", err)
			}
			created = true
		}
		rootDir, rel = dest, "."
	case info.IsDir():
		switch {
		case destIsDir:
			rootDir, rel = dest, path.Base(src)
		case derr == nil:
			return c.res, fmt.Errorf("%w: cannot overwrite non-directory %s with directory %s", ErrConflict, dest, src)
		case errors.Is(derr, iofs.ErrNotExist):
			if err := os.Mkdir(dest, 0o700); err != nil {
				return c.res, fmt.Errorf("extract: %w", err)
			}
			rootDir, rel, created = dest, ".", true
		default:
			return c.res, fmt.Errorf("extract: %w", derr)
		}
	default:
		if destIsDir {
			rootDir, rel = dest, path.Base(src)
		} else {
			rootDir, rel = filepath.Dir(dest), filepath.Base(dest)
			if rel == "." || rel == ".." || rel == string(filepath.Separator) {
				return c.res, fmt.Errorf("%w: destination %q", ErrUnsafeName, dest)
			}
		}
	}
	if rel != "." && rel == path.Base(src) {
		if why := badName(rel); why != "" {
			return c.res, fmt.Errorf("%w: %q: %s", ErrUnsafeName, rel, why)
		}
	}

	root, err := os.OpenRoot(rootDir)
	if err != nil {
		return c.res, fmt.Errorf("extract: %w", err)
	}
	defer root.Close()
	c.root = root

	e := entry{fsPath: src, rel: rel, dir: root, name: rel, info: info, st: statOf(info)}
	if rel == "." {
		err = c.copyRootDir(e, created)
	} else {
		err = c.copyEntry(e)
	}
	c.finish()
	return c.res, err
}

// lstatFS describes name without following a final symbolic link when fsys
// can tell links apart, and with Stat otherwise.
func lstatFS(fsys iofs.FS, name string) (iofs.FileInfo, error) {
	if l, ok := fsys.(iofs.ReadLinkFS); ok {
		return l.Lstat(name)
	}
	return iofs.Stat(fsys, name)
}

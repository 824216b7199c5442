package extract

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"imgtool/fs/meta"
)

const (
	maxWarnings = 1000
	maxDepth    = 256
)

// copier holds the state of one Copy.
type copier struct {
	ctx    context.Context
	fsys   iofs.FS
	opt    Options
	root   *os.Root
	asRoot bool
	res    Result

	links   map[uint64]linkRec // first regular copy of each multiply linked inode
	active  map[uint64]bool    // inode numbers of the directories being copied
	depth   int
	buf     []byte // the one copy buffer, allocated on first use
	dropped int    // warnings beyond maxWarnings
}

// linkRec remembers the first copy of an inode so that later names become
// hard links to it, if it is still the file this copy wrote.
type linkRec struct {
	rel  string
	host os.FileInfo
}

// entry is one source entry and where it goes.
type entry struct {
	fsPath string   // path in fsys
	rel    string   // slash-separated path inside the destination root
	dir    *os.Root // the destination directory the entry goes in
	name   string   // its name there (one component, or "." for dir itself)
	info   iofs.FileInfo
	st     *meta.Stat // nil when the filesystem does not provide one
}

func statOf(info iofs.FileInfo) *meta.Stat {
	st, _ := info.Sys().(*meta.Stat)
	return st
}

func (c *copier) warn(where, format string, args ...any) {
	if len(c.res.Warnings) >= maxWarnings {
		c.dropped++
		return
	}
	c.res.Warnings = append(c.res.Warnings, where+": "+fmt.Sprintf(format, args...))
}

func (c *copier) skip(where, format string, args ...any) {
	c.res.Skipped++
	c.warn(where, format, args...)
}

func (c *copier) finish() {
	if c.dropped > 0 {
		c.res.Warnings = append(c.res.Warnings, fmt.Sprintf("… and %d more warnings", c.dropped))
		c.dropped = 0
	}
	c.progress()
}

func (c *copier) progress() {
	if c.opt.Progress == nil {
		return
	}
	r := &c.res
	c.opt.Progress.Update(int64(r.Files+r.Dirs+r.Symlinks+r.HardLinks+r.Special), r.Bytes)
}

// host names a destination entry in error messages.
func (c *copier) host(rel string) string {
	return filepath.Join(c.root.Name(), filepath.FromSlash(rel))
}

func (c *copier) canceled() error {
	if err := c.ctx.Err(); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	return nil
}

// copyRootDir copies the contents of directory e into the destination root
// itself, then applies e's metadata to the root when Copy created it.
func (c *copier) copyRootDir(e entry, created bool) error {
	c.res.Dirs++
	if err := c.copyChildren(e, e.dir); err != nil {
		return err
	}
	if created {
		c.applyMeta(e, nil)
	}
	return nil
}

// copyEntry copies one entry of any type.
func (c *copier) copyEntry(e entry) error {
	if err := c.canceled(); err != nil {
		return err
	}
	mode := e.info.Mode()
	var err error
	switch {
	case mode.IsDir():
		err = c.copyDir(e)
	case mode.IsRegular():
		err = c.copyRegular(e)
	case mode&iofs.ModeSymlink != 0:
		err = c.copySymlink(e)
	case mode&iofs.ModeNamedPipe != 0:
		err = c.copySpecial(e, "FIFO")
	case mode&iofs.ModeDevice != 0:
		if !c.opt.Devices || !c.asRoot {
			why := "device node skipped (needs root and devices enabled)"
			if c.opt.Devices {
				why = "device node skipped: creating devices needs root"
			}
			c.skip(e.fsPath, "%s", why)
			return nil
		}
		err = c.copySpecial(e, "device")
	case mode&iofs.ModeSocket != 0:
		c.skip(e.fsPath, "socket skipped")
		return nil
	default:
		c.skip(e.fsPath, "unsupported file type %v skipped", mode.Type())
		return nil
	}
	c.progress()
	return err
}

// prepare makes room for a new non-directory entry: nothing there is fine;
// a directory is a conflict; anything else is removed with Force (a symbolic
// link is removed, never followed) and an error without.
func (c *copier) prepare(e entry) error {
	rel := e.rel
	fi, err := e.dir.Lstat(e.name)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	if fi.IsDir() {
		return fmt.Errorf("%w: %s is a directory", ErrConflict, c.host(rel))
	}
	if !c.opt.Force {
		return fmt.Errorf("%w: %s; use --force to overwrite", ErrExist, c.host(rel))
	}
	if err := e.dir.Remove(e.name); err != nil {
		return fmt.Errorf("extract: replacing %s: %w", c.host(rel), err)
	}
	return nil
}

// copyDir creates (or merges into) the directory and copies its children.
func (c *copier) copyDir(e entry) error {
	err := e.dir.Mkdir(e.name, 0o700)
	if errors.Is(err, iofs.ErrExist) {
		fi, lerr := e.dir.Lstat(e.name)
		switch {
		case lerr != nil:
			return fmt.Errorf("extract: %w", lerr)
		case fi.IsDir():
			err = nil // merge into a real directory
		case !c.opt.Force:
			return fmt.Errorf("%w: %s; use --force to overwrite", ErrExist, c.host(e.rel))
		default:
			if err := e.dir.Remove(e.name); err != nil {
				return fmt.Errorf("extract: replacing %s: %w", c.host(e.rel), err)
			}
			err = e.dir.Mkdir(e.name, 0o700)
		}
	}
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	c.res.Dirs++
	sub, err := openSubdir(e.dir, e.name)
	if err != nil {
		return fmt.Errorf("extract: %s: %w", c.host(e.rel), err)
	}
	err = c.copyChildren(e, sub)
	sub.Close()
	if err != nil {
		return err
	}
	c.applyMeta(e, nil)
	return nil
}

// openSubdir opens the directory name in dir as a root of its own, so that
// the operations on its children resolve one component each, and checks
// that it is the real directory Lstat sees at name (no symbolic link
// followed).
func openSubdir(dir *os.Root, name string) (*os.Root, error) {
	fi, err := dir.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: not a directory", ErrConflict)
	}
	sub, err := dir.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	si, err := sub.Stat(".")
	if err != nil || !os.SameFile(fi, si) {
		sub.Close()
		if err == nil {
			err = fmt.Errorf("%w: directory changed while being opened", ErrConflict)
		}
		return nil, err
	}
	return sub, nil
}

// copyChildren lists directory e and copies each child whose name is safe
// into dir, the host directory made for e.
func (c *copier) copyChildren(e entry, dir *os.Root) error {
	if c.depth >= maxDepth {
		c.warn(e.fsPath, "contents skipped: nested deeper than %d directories", maxDepth)
		return nil
	}
	if e.st != nil && e.st.Ino != 0 {
		if c.active == nil {
			c.active = map[uint64]bool{}
		}
		if c.active[e.st.Ino] {
			c.warn(e.fsPath, "contents skipped: directory loop (inode %d is its own ancestor)", e.st.Ino)
			return nil
		}
		c.active[e.st.Ino] = true
		defer delete(c.active, e.st.Ino)
	}
	c.depth++
	defer func() { c.depth-- }()

	list, err := iofs.ReadDir(c.fsys, e.fsPath)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	seen := make(map[string]bool, len(list))
	folded := make(map[string]string, len(list))
	for _, d := range list {
		name := d.Name()
		shown := showChild(e.fsPath, name)
		if why := badName(name); why != "" {
			c.skip(shown, "skipped: %s", why)
			continue
		}
		if seen[name] {
			c.skip(shown, "skipped: duplicate name in one directory")
			continue
		}
		seen[name] = true
		child := entry{fsPath: path.Join(e.fsPath, name), rel: path.Join(e.rel, name), dir: dir, name: name}
		if first, ok := folded[foldName(name)]; ok {
			if caseMerged(dir, first, name) {
				c.skip(shown, "skipped: differs from %q only in case and the host filesystem does not tell them apart", first)
				continue
			}
			c.warn(shown, "differs from %q only in case; both copied here, but they would merge on a case-insensitive filesystem", first)
		} else {
			folded[foldName(name)] = name
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("extract: %s: %w", shown, err)
		}
		child.info, child.st = info, statOf(info)
		if err := c.copyEntry(child); err != nil {
			return err
		}
	}
	return nil
}

// caseMerged reports whether the host already resolves later to the entry
// created as first, as a case-insensitive filesystem does. A variable so
// that tests on case-sensitive hosts can take the merging path.
var caseMerged = func(root *os.Root, first, later string) bool {
	a, err := root.Lstat(first)
	if err != nil {
		return false
	}
	b, err := root.Lstat(later)
	return err == nil && os.SameFile(a, b)
}

// showChild names a child for warnings, quoting names that are not plain.
func showChild(dir, name string) string {
	if badName(name) != "" || strings.ContainsFunc(name, func(r rune) bool { return r < 32 || r == 0x7f }) {
		name = fmt.Sprintf("%q", name)
	}
	if dir == "." {
		return name
	}
	return dir + "/" + name
}

// copySymlink creates a symbolic link with the stored target. The target is
// never followed by the copy; os.Root refuses to resolve it for any later
// operation if it leads outside the destination.
func (c *copier) copySymlink(e entry) error {
	target, err := c.readLink(e)
	if err != nil {
		return err
	}
	if target == "" || strings.IndexByte(target, 0) >= 0 {
		c.skip(e.fsPath, "symbolic link skipped: empty target or target containing NUL")
		return nil
	}
	if err := c.prepare(e); err != nil {
		return err
	}
	if err := e.dir.Symlink(target, e.name); err != nil {
		c.skip(e.fsPath, "symbolic link not created: %v", err)
		return nil
	}
	c.res.Symlinks++
	c.applyMeta(e, nil)
	return nil
}

func (c *copier) readLink(e entry) (string, error) {
	if _, ok := c.fsys.(iofs.ReadLinkFS); ok {
		t, err := iofs.ReadLink(c.fsys, e.fsPath)
		if err != nil {
			return "", fmt.Errorf("extract: %w", err)
		}
		return t, nil
	}
	if e.st != nil {
		return e.st.Link, nil
	}
	return "", nil
}

// copySpecial creates a FIFO or device node.
func (c *copier) copySpecial(e entry, what string) error {
	if err := c.prepare(e); err != nil {
		return err
	}
	var dev meta.Dev
	if e.st != nil {
		dev = e.st.Rdev
	}
	if err := mknod(e.dir, e.name, e.info.Mode(), dev); err != nil {
		c.skip(e.fsPath, "%s not created: %v", what, err)
		return nil
	}
	c.res.Special++
	c.applyMeta(e, nil)
	return nil
}

// times returns the access and modification times to restore.
func times(e entry) (atime, mtime time.Time) {
	mtime = e.info.ModTime()
	atime = mtime
	if e.st != nil {
		if !e.st.Mtime.IsZero() {
			mtime = e.st.Mtime
		}
		atime = mtime
		if !e.st.Atime.IsZero() {
			atime = e.st.Atime
		}
	}
	return atime, mtime
}

// hostMode is the mode to apply: permissions and sticky always, setuid and
// setgid only together with owners.
func (c *copier) hostMode(m iofs.FileMode) iofs.FileMode {
	keep := iofs.ModePerm | iofs.ModeSticky
	if c.opt.Owners {
		keep |= iofs.ModeSetuid | iofs.ModeSetgid
	}
	return m & keep
}

// applyMeta restores owner, xattrs, mode and times, in that order (chown
// clears setuid bits and file capabilities, so it comes first; a read-only
// mode would refuse user xattrs, so the mode comes after them). f, when not
// nil, is the open regular file, used for everything but the times. Failures
// become warnings.
func (c *copier) applyMeta(e entry, f *os.File) {
	isLink := e.info.Mode()&iofs.ModeSymlink != 0
	if c.opt.Owners && e.st != nil {
		var err error
		if f != nil {
			err = f.Chown(int(e.st.Uid), int(e.st.Gid))
		} else {
			err = e.dir.Lchown(e.name, int(e.st.Uid), int(e.st.Gid))
		}
		if err != nil {
			c.warn(e.fsPath, "owner not set: %v", err)
		}
	}
	if c.opt.Xattrs && e.st != nil && len(e.st.Xattrs) > 0 {
		c.applyXattrs(e, f)
	}
	if !isLink {
		var err error
		if f != nil {
			err = f.Chmod(c.hostMode(e.info.Mode()))
		} else {
			err = e.dir.Chmod(e.name, c.hostMode(e.info.Mode()))
		}
		if err != nil {
			c.warn(e.fsPath, "mode not set: %v", err)
		}
	}
	if f != nil {
		return // times are set by the caller after Close
	}
	c.setTimes(e, isLink)
}

func (c *copier) setTimes(e entry, isLink bool) {
	atime, mtime := times(e)
	var err error
	if isLink {
		err = lutimes(e.dir, e.name, atime, mtime)
	} else {
		err = e.dir.Chtimes(e.name, atime, mtime)
	}
	if err != nil {
		c.warn(e.fsPath, "times not set: %v", err)
	}
}

// xattrAllowed says whether an attribute name may be restored, or why not.
func (c *copier) xattrAllowed(name string) string {
	switch {
	case name == "" || len(name) > maxNameLen || strings.IndexByte(name, 0) >= 0:
		return "invalid name"
	case strings.HasPrefix(name, "user."):
		return ""
	case strings.HasPrefix(name, "security."), strings.HasPrefix(name, "trusted."),
		name == "system.posix_acl_access", name == "system.posix_acl_default":
		if !c.asRoot {
			return "needs root"
		}
		return ""
	}
	return "namespace not restored"
}

// maxXattrSize is the largest value Linux accepts.
const maxXattrSize = 64 << 10

func (c *copier) applyXattrs(e entry, f *os.File) {
	names := make([]string, 0, len(e.st.Xattrs))
	for name := range e.st.Xattrs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		value := e.st.Xattrs[name]
		if why := c.xattrAllowed(name); why != "" {
			c.warn(e.fsPath, "xattr %q not restored: %s", name, why)
			continue
		}
		if len(value) > maxXattrSize {
			c.warn(e.fsPath, "xattr %q not restored: value larger than 64 KiB", name)
			continue
		}
		var err error
		if f != nil {
			err = fsetxattr(f, name, value)
		} else {
			err = setxattrAt(e.dir, e.name, name, value)
		}
		if err != nil {
			c.warn(e.fsPath, "xattr %q not restored: %v", name, err)
		}
	}
}

package ext4

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"imgtool/fs/meta"
)

var (
	_ iofs.FS           = (*FS)(nil)
	_ iofs.ReadDirFS    = (*FS)(nil)
	_ iofs.StatFS       = (*FS)(nil)
	_ iofs.ReadFileFS   = (*FS)(nil)
	_ iofs.ReadLinkFS   = (*FS)(nil)
	_ meta.UsageFS      = (*FS)(nil)
	_ meta.AllocationFS = (*FS)(nil)
	_ meta.Labeled      = (*FS)(nil)

	_ iofs.File        = (*File)(nil)
	_ io.ReaderAt      = (*File)(nil)
	_ io.Seeker        = (*File)(nil)
	_ iofs.ReadDirFile = (*dirFile)(nil)
)

// resolve walks name from the root. Symbolic links in the middle of the
// path are always followed, the last one only when followLast is set;
// absolute targets start again at the root. It returns the inode and the
// chain of directory inodes leading to it.
func (f *FS) resolve(name string, followLast bool) (*inode, error) {
	if !iofs.ValidPath(name) {
		return nil, iofs.ErrInvalid
	}
	full := name
	var comps []string
	chain := []uint32{RootIno}
	if name != "." {
		if c := f.cachedDir(name); c != nil && followLast {
			chain = c
		} else {
			if dir, base := path.Split(name); dir != "" {
				if c := f.cachedDir(strings.TrimSuffix(dir, "/")); c != nil {
					chain = slices.Clone(c)
					name = base
				}
			}
			comps = strings.Split(name, "/")
		}
	}
	cur, err := f.readInode(chain[len(chain)-1])
	if err != nil {
		return nil, err
	}
	hops := 0
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(chain) > 1 {
				chain = chain[:len(chain)-1]
			}
			if cur, err = f.readInode(chain[len(chain)-1]); err != nil {
				return nil, err
			}
			continue
		}
		if !cur.isDir() {
			return nil, ErrNotDir
		}
		ino, err := f.lookup(cur, c)
		if err != nil {
			return nil, err
		}
		if ino == 0 {
			return nil, iofs.ErrNotExist
		}
		next, err := f.readInode(ino)
		if err != nil {
			return nil, err
		}
		if next.isLink() && (len(comps) > 0 || followLast) {
			hops++
			if hops > maxSymlinkHops {
				return nil, ErrLoop
			}
			target, err := f.readLink(next)
			if err != nil {
				return nil, err
			}
			if strings.HasPrefix(target, "/") {
				chain = chain[:1]
			}
			if len(comps)+strings.Count(target, "/") > maxSymlinkLen {
				return nil, ErrLoop
			}
			comps = append(strings.Split(target, "/"), comps...)
			if cur, err = f.readInode(chain[len(chain)-1]); err != nil {
				return nil, err
			}
			continue
		}
		if next.isDir() {
			if slices.Contains(chain, ino) {
				return nil, ErrLoop
			}
			chain = append(chain, ino)
		} else if len(comps) > 0 {
			// A later component must be a directory (or "."/"..").
			if !cur.isDir() {
				return nil, ErrNotDir
			}
		}
		cur = next
		if !next.isDir() && len(comps) > 0 {
			for _, rest := range comps {
				if rest != "" && rest != "." {
					return nil, ErrNotDir
				}
			}
		}
	}
	if cur.isDir() && len(chain) > 0 && chain[len(chain)-1] == cur.ino {
		f.cacheDir(full, chain)
	}
	return cur, nil
}

// readLink returns the target of a symbolic link inode.
func (f *FS) readLink(in *inode) (string, error) {
	size := in.size()
	if size > maxSymlinkLen || size > f.blockSize && !in.hasFlag(InodeInlineDataFl) {
		return "", corruptf(-1, fmt.Sprintf("inode %d", in.ino), "symbolic link of %d bytes too long", size)
	}
	c, err := f.content(in)
	if err != nil {
		return "", err
	}
	b := make([]byte, c.size)
	if _, err := c.ReadAt(b, 0); err != nil && err != io.EOF {
		return "", err
	}
	return string(b), nil
}

func pathErr(op, name string, err error) error {
	if err == nil {
		return nil
	}
	var pe *iofs.PathError
	if errors.As(err, &pe) && pe.Path == name {
		return err
	}
	return &iofs.PathError{Op: op, Path: name, Err: err}
}

// Open opens the named file, following symbolic links. Regular files (and
// devices, FIFOs and sockets, which read as empty) are returned as *File;
// directories implement fs.ReadDirFile.
func (f *FS) Open(name string) (iofs.File, error) {
	in, err := f.resolve(name, true)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	info := f.newInfo(path.Base(name), in)
	if in.isDir() {
		return &dirFile{f: f, info: info}, nil
	}
	c, err := f.content(in)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	if !in.isReg() {
		c = &content{f: f, in: in, inline: []byte{}, size: 0}
	}
	return &File{info: info, c: c}, nil
}

// Stat returns information about the named file, following symbolic links.
func (f *FS) Stat(name string) (iofs.FileInfo, error) {
	in, err := f.resolve(name, true)
	if err != nil {
		return nil, pathErr("stat", name, err)
	}
	return f.newInfo(path.Base(name), in), nil
}

// Lstat returns information about the named file without following a
// final symbolic link.
func (f *FS) Lstat(name string) (iofs.FileInfo, error) {
	in, err := f.resolve(name, false)
	if err != nil {
		return nil, pathErr("lstat", name, err)
	}
	return f.newInfo(path.Base(name), in), nil
}

// ReadLink returns the target of the named symbolic link.
func (f *FS) ReadLink(name string) (string, error) {
	in, err := f.resolve(name, false)
	if err != nil {
		return "", pathErr("readlink", name, err)
	}
	if !in.isLink() {
		return "", pathErr("readlink", name, iofs.ErrInvalid)
	}
	t, err := f.readLink(in)
	return t, pathErr("readlink", name, err)
}

// ReadFile reads the named file whole.
func (f *FS) ReadFile(name string) ([]byte, error) {
	fl, err := f.Open(name)
	if err != nil {
		return nil, pathErr("readfile", name, err)
	}
	defer fl.Close()
	file, ok := fl.(*File)
	if !ok {
		return nil, pathErr("readfile", name, errors.New("is a directory"))
	}
	size := file.c.size
	// Grow as data arrives rather than trusting the size field.
	buf := make([]byte, 0, min(size, 64<<20))
	for int64(len(buf)) < size {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(size-int64(len(buf)), int64(cap(buf))+1)))
		}
		n, err := file.c.ReadAt(buf[len(buf):cap(buf)], int64(len(buf)))
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, pathErr("readfile", name, err)
		}
	}
	return buf, nil
}

// ReadDir returns the entries of the named directory sorted by name.
func (f *FS) ReadDir(name string) ([]iofs.DirEntry, error) {
	in, err := f.resolve(name, true)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	if !in.isDir() {
		return nil, pathErr("readdir", name, ErrNotDir)
	}
	ents, err := f.listDir(in)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	out := make([]iofs.DirEntry, len(ents))
	ib := &inodeBlock{off: -1}
	for i, e := range ents {
		out[i] = &dirEntry{f: f, d: e, ib: ib}
	}
	slices.SortFunc(out, func(a, b iofs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// dirEntry is an fs.DirEntry; Info reads the inode.
type dirEntry struct {
	f  *FS
	d  dirent
	ib *inodeBlock // shared by the entries of one listing
}

func (e *dirEntry) Name() string { return e.d.name }
func (e *dirEntry) IsDir() bool  { return e.Type().IsDir() }

func (e *dirEntry) Type() iofs.FileMode {
	switch e.d.ft {
	case FtRegFile:
		return 0
	case FtDir:
		return iofs.ModeDir
	case FtChrdev:
		return iofs.ModeDevice | iofs.ModeCharDevice
	case FtBlkdev:
		return iofs.ModeDevice
	case FtFifo:
		return iofs.ModeNamedPipe
	case FtSock:
		return iofs.ModeSocket
	case FtSymlink:
		return iofs.ModeSymlink
	}
	in, err := e.f.readInodeVia(e.d.ino, e.ib)
	if err != nil {
		return iofs.ModeIrregular
	}
	return goMode(in.Mode).Type()
}

func (e *dirEntry) Info() (iofs.FileInfo, error) {
	in, err := e.f.readInodeVia(e.d.ino, e.ib)
	if err != nil {
		return nil, err
	}
	return e.f.newInfo(e.d.name, in), nil
}

func (e *dirEntry) String() string { return iofs.FormatDirEntry(e) }

// fileInfo is an fs.FileInfo whose Sys returns *meta.Stat.
type fileInfo struct {
	f    *FS
	name string
	in   *inode
	once sync.Once
	st   *meta.Stat
}

func (f *FS) newInfo(name string, in *inode) *fileInfo {
	if name == "/" || name == "" {
		name = "."
	}
	return &fileInfo{f: f, name: name, in: in}
}

func (fi *fileInfo) Name() string        { return fi.name }
func (fi *fileInfo) Size() int64         { return fi.in.size() }
func (fi *fileInfo) Mode() iofs.FileMode { return goMode(fi.in.Mode) }
func (fi *fileInfo) IsDir() bool         { return fi.in.isDir() }
func (fi *fileInfo) ModTime() time.Time {
	return xtime(fi.in.Mtime, fi.in.MtimeExtra, fi.in.hasExtra(inodeOffCtimeExtra+4, 4))
}
func (fi *fileInfo) String() string { return iofs.FormatFileInfo(fi) }

// Sys returns a *meta.Stat with every attribute of the inode, including
// xattrs (raw values as stored) and the symlink target.
func (fi *fileInfo) Sys() any {
	fi.once.Do(func() { fi.st = fi.f.stat(fi.in) })
	return fi.st
}

// File is an open regular file (or an empty device, FIFO or socket). It
// implements io.Reader, io.ReaderAt (safe for concurrent use), io.Seeker
// and fs.File.
type File struct {
	info *fileInfo
	c    *content
	mu   sync.Mutex
	off  int64
}

// Stat returns the file's information.
func (fl *File) Stat() (iofs.FileInfo, error) { return fl.info, nil }

// Read reads from the current offset.
func (fl *File) Read(p []byte) (int, error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	n, err := fl.c.ReadAt(p, fl.off)
	fl.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt reads len(p) bytes at offset off.
func (fl *File) ReadAt(p []byte, off int64) (int, error) { return fl.c.ReadAt(p, off) }

// Seek sets the offset of the next Read.
func (fl *File) Seek(offset int64, whence int) (int64, error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += fl.off
	case io.SeekEnd:
		offset += fl.c.size
	default:
		return 0, errors.New("ext4: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("ext4: negative seek offset")
	}
	fl.off = offset
	return offset, nil
}

// Size returns the file size in bytes.
func (fl *File) Size() int64 { return fl.c.size }

var _ meta.PlacedFile = (*File)(nil)

// Device returns the reader the filesystem was opened on (and its size):
// the one the offsets of Place refer to.
func (fl *File) Device() (any, int64) { return fl.c.f.r, fl.c.f.size }

// Place calls fn for each run of the content in [off, off+n): its byte
// offset in Device, or -1 for a hole. Inline data fails with
// meta.ErrNotPlaced.
func (fl *File) Place(off, n int64, fn func(dev, length int64) error) error {
	return fl.c.place(off, n, fn)
}

// Close releases the file.
func (fl *File) Close() error { return nil }

// dirFile is an open directory.
type dirFile struct {
	f      *FS
	info   *fileInfo
	ents   []dirent
	loaded bool
	pos    int
}

func (d *dirFile) Stat() (iofs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Close() error                 { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &iofs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}

// ReadDir returns the next n entries in directory order (all when n <= 0).
func (d *dirFile) ReadDir(n int) ([]iofs.DirEntry, error) {
	if !d.loaded {
		ents, err := d.f.listDir(d.info.in)
		if err != nil {
			return nil, err
		}
		d.ents, d.loaded = ents, true
	}
	rest := d.ents[d.pos:]
	if n > 0 && len(rest) == 0 {
		return nil, io.EOF
	}
	if n > 0 && n < len(rest) {
		rest = rest[:n]
	}
	d.pos += len(rest)
	out := make([]iofs.DirEntry, len(rest))
	ib := &inodeBlock{off: -1}
	for i, e := range rest {
		out[i] = &dirEntry{f: d.f, d: e, ib: ib}
	}
	return out, nil
}

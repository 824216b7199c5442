package fat

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"slices"
	"strings"
)

// maxCachedEntries bounds the parsed directory entries kept in memory.
const maxCachedEntries = 1 << 17

// maxDirClusters is the most clusters a directory of maxDirEntries spans.
func (g *geometry) maxDirClusters() int {
	n := maxDirEntries * dirEntrySize / g.clusterSize
	return int(max(n, 1))
}

// readDir returns the parsed directory whose first cluster is first (0:
// the FAT12/16 root directory).
func (f *FS) readDir(first uint32) (*dirData, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d, ok := f.dirs[first]; ok {
		return d, nil
	}
	d, err := f.loadDir(first)
	if err != nil {
		return nil, err
	}
	if f.cached+len(d.entries) > maxCachedEntries {
		clear(f.dirs)
		f.cached = 0
	}
	f.dirs[first] = d
	f.cached += len(d.entries)
	return d, nil
}

// loadDir reads and parses a directory; f.mu is held.
func (f *FS) loadDir(first uint32) (*dirData, error) {
	g := f.g
	p := newDirParser(first)
	p.hidden = &f.hidden
	if first == 0 && g.variant != FAT32 {
		buf := make([]byte, g.sectorSize)
		for off, end := g.rootOff, g.rootOff+g.rootEntries*dirEntrySize; off < end && !p.done; off += g.sectorSize {
			if _, err := f.r.ReadAt(buf, off); err != nil {
				return nil, formatErrWrap(off, "reading root directory", err)
			}
			p.feed(buf[:min(g.sectorSize, end-off)], off)
		}
		return p.d, nil
	}
	if !g.valid(first) {
		return nil, formatErr(g.dataOff, "directory starts at invalid cluster %d", first)
	}
	buf := make([]byte, g.clusterSize)
	seen := make(map[uint32]bool)
	limit := g.maxDirClusters()
	c := first
	for n := 0; ; n++ {
		if seen[c] {
			return nil, formatErr(g.entryOff(c), "directory chain starting at cluster %d loops at cluster %d", first, c)
		}
		if n >= limit {
			return nil, formatErr(g.entryOff(c), "directory starting at cluster %d exceeds %d entries", first, maxDirEntries)
		}
		seen[c] = true
		if o, ok := f.dirOwner[c]; ok && o != first {
			return nil, formatErr(g.clusterOff(c), "cluster %d belongs to both the directory at cluster %d and the one at cluster %d", c, o, first)
		}
		f.dirOwner[c] = first
		off := g.clusterOff(c)
		if _, err := f.r.ReadAt(buf, off); err != nil {
			return nil, formatErrWrap(off, "reading directory cluster", err)
		}
		p.feed(buf, off)
		if p.done {
			return p.d, nil
		}
		v := f.fat.get(c)
		switch g.classify(v) {
		case entNext:
			c = v
		case entEOC:
			return p.d, nil
		default:
			return nil, formatErr(g.entryOff(c), "directory chain starting at cluster %d: cluster %d has FAT entry %#x", first, c, v)
		}
	}
}

// formatErrWrap wraps an I/O error with the offset it happened at.
func formatErrWrap(off int64, what string, err error) error {
	if errors.Is(err, io.EOF) {
		return formatErr(off, "%s: beyond the end of the image", what)
	}
	return &readError{off: off, what: what, err: err}
}

type readError struct {
	off  int64
	what string
	err  error
}

func (e *readError) Error() string {
	return fmt.Sprintf("fat: %s at offset %d: %v", e.what, e.off, e.err)
}

// Unwrap returns the I/O error.
func (e *readError) Unwrap() error { return e.err }

// target is what a path names: the root (n == nil) or a directory entry;
// dir is set for directories.
type target struct {
	n   *node
	dir *dirData
}

// resolve walks a path from the root. Subdirectories are entered only
// through the first entry of the parent that their ".." entry names, and
// never when their cluster is an ancestor's.
func (f *FS) resolve(op, name string) (target, error) {
	if !iofs.ValidPath(name) {
		return target{}, &iofs.PathError{Op: op, Path: name, Err: iofs.ErrInvalid}
	}
	root := f.rootKey()
	d, err := f.readDir(root)
	if err != nil {
		return target{}, &iofs.PathError{Op: op, Path: name, Err: err}
	}
	if name == "." {
		return target{dir: d}, nil
	}
	ancestors := []uint32{root}
	parts := strings.Split(name, "/")
	for i, part := range parts {
		n := d.lookup(part)
		if n == nil {
			return target{}, &iofs.PathError{Op: op, Path: name, Err: iofs.ErrNotExist}
		}
		last := i == len(parts)-1
		if !n.isDir() {
			if last {
				return target{n: n}, nil
			}
			return target{}, &iofs.PathError{Op: op, Path: name, Err: iofs.ErrNotExist}
		}
		if slices.Contains(ancestors, n.cluster) {
			return target{}, &iofs.PathError{Op: op, Path: name,
				Err: formatErr(n.off, "directory %q names cluster %d of an ancestor directory", n.name, n.cluster)}
		}
		if n.dup {
			return target{}, &iofs.PathError{Op: op, Path: name,
				Err: formatErr(n.off, "directory %q names cluster %d that an earlier entry already names", n.name, n.cluster)}
		}
		cd, err := f.readDir(n.cluster)
		if err != nil {
			return target{}, &iofs.PathError{Op: op, Path: name, Err: err}
		}
		parentOK := cd.hasDotdot && (cd.dotdot == d.first || d.first == root && cd.dotdot == 0)
		if !parentOK {
			return target{}, &iofs.PathError{Op: op, Path: name,
				Err: formatErr(n.off, "directory %q at cluster %d has no \"..\" entry naming its parent", n.name, n.cluster)}
		}
		ancestors = append(ancestors, n.cluster)
		d = cd
		if last {
			return target{n: n, dir: cd}, nil
		}
	}
	return target{}, &iofs.PathError{Op: op, Path: name, Err: iofs.ErrNotExist}
}

// Open opens the named file or directory. Regular files implement
// io.Reader, io.ReaderAt and io.Seeker; directories implement
// fs.ReadDirFile.
func (f *FS) Open(name string) (iofs.File, error) {
	t, err := f.resolve("open", name)
	if err != nil {
		return nil, err
	}
	if t.dir != nil {
		return &dirFile{info: f.info(name, t.n), entries: t.dir.entries, fs: f}, nil
	}
	runs, err := f.runs(t.n)
	if err != nil {
		return nil, &iofs.PathError{Op: "open", Path: name, Err: err}
	}
	return &File{fs: f, info: f.info(name, t.n), runs: runs, size: int64(t.n.size)}, nil
}

// Stat describes the named file.
func (f *FS) Stat(name string) (iofs.FileInfo, error) {
	t, err := f.resolve("stat", name)
	if err != nil {
		return nil, err
	}
	return f.info(name, t.n), nil
}

// Lstat is Stat: FAT has no symbolic links.
func (f *FS) Lstat(name string) (iofs.FileInfo, error) {
	t, err := f.resolve("lstat", name)
	if err != nil {
		return nil, err
	}
	return f.info(name, t.n), nil
}

// ReadLink returns an error wrapping fs.ErrInvalid: FAT has no symbolic
// links. A missing file gives fs.ErrNotExist.
func (f *FS) ReadLink(name string) (string, error) {
	if _, err := f.resolve("readlink", name); err != nil {
		return "", err
	}
	return "", &iofs.PathError{Op: "readlink", Path: name, Err: iofs.ErrInvalid}
}

// ReadDir lists the named directory sorted by name.
func (f *FS) ReadDir(name string) ([]iofs.DirEntry, error) {
	t, err := f.resolve("readdir", name)
	if err != nil {
		return nil, err
	}
	if t.dir == nil {
		return nil, &iofs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	list := make([]iofs.DirEntry, len(t.dir.entries))
	for i := range t.dir.entries {
		list[i] = &dirEntry{fs: f, n: &t.dir.entries[i]}
	}
	slices.SortFunc(list, func(a, b iofs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return list, nil
}

// ReadFile returns the contents of the named file.
func (f *FS) ReadFile(name string) ([]byte, error) {
	t, err := f.resolve("readfile", name)
	if err != nil {
		return nil, err
	}
	if t.dir != nil {
		return nil, &iofs.PathError{Op: "readfile", Path: name, Err: errIsDir}
	}
	runs, err := f.runs(t.n)
	if err != nil {
		return nil, &iofs.PathError{Op: "readfile", Path: name, Err: err}
	}
	h := &File{fs: f, info: f.info(name, t.n), runs: runs, size: int64(t.n.size)}
	b := make([]byte, h.size) // bounded: runs lie inside the image and do not overlap
	if _, err := h.ReadAt(b, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return b, nil
}

var (
	errNotDir = fmt.Errorf("not a directory: %w", iofs.ErrInvalid)
	errIsDir  = fmt.Errorf("is a directory: %w", iofs.ErrInvalid)
)

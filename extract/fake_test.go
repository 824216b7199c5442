package extract

import (
	"errors"
	"io"
	iofs "io/fs"
	"strings"
	"time"

	"imgtool/fs/meta"
)

// node is one entry of the in-memory fake filesystem. Its name is returned
// as is by ReadDir, so tests can plant hostile names and duplicates.
type node struct {
	name string
	st   meta.Stat                 // Mode, Size, times, owners, Ino, Nlink, Link, Xattrs, Rdev
	data []byte                    // content of a regular file, unless gen is set
	gen  func(off int64, p []byte) // fills p with the content at off
	kids []*node
	// short makes the file end this many bytes before its recorded size.
	short int64
}

var _ iofs.ReadDirFS = (*fakeFS)(nil)
var _ iofs.ReadLinkFS = (*fakeFS)(nil)

// fakeFS is an io/fs.FS over a tree of nodes, with ReadLinkFS and
// FileInfo.Sys() returning *meta.Stat.
type fakeFS struct{ root *node }

var ino uint64 = 1000

func nextIno() uint64 { ino++; return ino }

var t0 = time.Date(2024, 3, 1, 12, 30, 45, 123456789, time.UTC)

func mkDir(name string, perm iofs.FileMode, kids ...*node) *node {
	return &node{name: name, st: meta.Stat{Ino: nextIno(), Mode: iofs.ModeDir | perm, Nlink: 2,
		Mtime: t0.Add(time.Hour), Atime: t0.Add(2 * time.Hour)}, kids: kids}
}

func mkFile(name string, perm iofs.FileMode, content string) *node {
	return &node{name: name, data: []byte(content), st: meta.Stat{Ino: nextIno(), Mode: perm, Nlink: 1,
		Size: int64(len(content)), Mtime: t0, Atime: t0.Add(time.Minute)}}
}

func mkLink(name, target string) *node {
	return &node{name: name, st: meta.Stat{Ino: nextIno(), Mode: iofs.ModeSymlink | 0o777, Nlink: 1,
		Size: int64(len(target)), Link: target, Mtime: t0.Add(3 * time.Second), Atime: t0.Add(4 * time.Second)}}
}

func mkSpecial(name string, mode iofs.FileMode, major, minor uint32) *node {
	return &node{name: name, st: meta.Stat{Ino: nextIno(), Mode: mode, Nlink: 1,
		Rdev: meta.Dev{Major: major, Minor: minor}, Mtime: t0, Atime: t0}}
}

func (n *node) info() *fakeInfo { return &fakeInfo{n} }

type fakeInfo struct{ n *node }

func (fi *fakeInfo) Name() string                 { return fi.n.name }
func (fi *fakeInfo) Size() int64                  { return fi.n.st.Size }
func (fi *fakeInfo) Mode() iofs.FileMode          { return fi.n.st.Mode }
func (fi *fakeInfo) ModTime() time.Time           { return fi.n.st.Mtime }
func (fi *fakeInfo) IsDir() bool                  { return fi.n.st.Mode.IsDir() }
func (fi *fakeInfo) Sys() any                     { return &fi.n.st }
func (fi *fakeInfo) Type() iofs.FileMode          { return fi.n.st.Mode.Type() }
func (fi *fakeInfo) Info() (iofs.FileInfo, error) { return fi, nil }

// lookup resolves a valid path without following symbolic links.
func (f *fakeFS) lookup(op, name string) (*node, error) {
	if !iofs.ValidPath(name) {
		return nil, &iofs.PathError{Op: op, Path: name, Err: iofs.ErrInvalid}
	}
	n := f.root
	if name == "." {
		return n, nil
	}
	for _, part := range strings.Split(name, "/") {
		if !n.st.Mode.IsDir() {
			return nil, &iofs.PathError{Op: op, Path: name, Err: iofs.ErrNotExist}
		}
		var next *node
		for _, k := range n.kids {
			if k.name == part {
				next = k
				break
			}
		}
		if next == nil {
			return nil, &iofs.PathError{Op: op, Path: name, Err: iofs.ErrNotExist}
		}
		n = next
	}
	return n, nil
}

func (f *fakeFS) Open(name string) (iofs.File, error) {
	n, err := f.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if n.st.Mode&iofs.ModeSymlink != 0 {
		return nil, &iofs.PathError{Op: "open", Path: name, Err: errors.New("fake does not follow links")}
	}
	return &fakeFile{n: n}, nil
}

func (f *fakeFS) ReadDir(name string) ([]iofs.DirEntry, error) {
	n, err := f.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if !n.st.Mode.IsDir() {
		return nil, &iofs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	out := make([]iofs.DirEntry, len(n.kids))
	for i, k := range n.kids {
		out[i] = k.info()
	}
	return out, nil
}

func (f *fakeFS) ReadLink(name string) (string, error) {
	n, err := f.lookup("readlink", name)
	if err != nil {
		return "", err
	}
	if n.st.Mode&iofs.ModeSymlink == 0 {
		return "", &iofs.PathError{Op: "readlink", Path: name, Err: iofs.ErrInvalid}
	}
	return n.st.Link, nil
}

func (f *fakeFS) Lstat(name string) (iofs.FileInfo, error) {
	n, err := f.lookup("lstat", name)
	if err != nil {
		return nil, err
	}
	return n.info(), nil
}

type fakeFile struct {
	n   *node
	off int64
}

func (f *fakeFile) Stat() (iofs.FileInfo, error) { return f.n.info(), nil }
func (f *fakeFile) Close() error                 { return nil }

func (f *fakeFile) Read(p []byte) (int, error) {
	end := f.n.st.Size - f.n.short
	if f.off >= end {
		return 0, io.EOF
	}
	if rest := end - f.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	if f.n.gen != nil {
		f.n.gen(f.off, p)
	} else {
		copy(p, f.n.data[f.off:])
	}
	f.off += int64(len(p))
	return len(p), nil
}

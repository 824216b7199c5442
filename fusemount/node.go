//go:build linux || darwin

package fusemount

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"imgtool/fs/meta"
)

// Compile-time checks of the FUSE operations each node serves.
var (
	_ gofs.InodeEmbedder      = (*node)(nil)
	_ gofs.NodeLookuper       = (*node)(nil)
	_ gofs.NodeOpendirHandler = (*node)(nil)
	_ gofs.NodeGetattrer      = (*node)(nil)
	_ gofs.NodeOpener         = (*node)(nil)
	_ gofs.NodeReadlinker     = (*node)(nil)
	_ gofs.NodeGetxattrer     = (*node)(nil)
	_ gofs.NodeListxattrer    = (*node)(nil)
	_ gofs.NodeStatfser       = (*node)(nil)

	_ gofs.FileReader   = (*fileHandle)(nil)
	_ gofs.FileReleaser = (*fileHandle)(nil)

	_ gofs.FileReaddirenter = (*dirHandle)(nil)
	_ gofs.FileSeekdirer    = (*dirHandle)(nil)
	_ gofs.FileReleasedirer = (*dirHandle)(nil)
	_ gofs.FileLookuper     = (*dirHandle)(nil)

	_ gofs.InodeEmbedder = (*topNode)(nil)
	_ gofs.NodeOnAdder   = (*topNode)(nil)
	_ gofs.NodeGetattrer = (*topNode)(nil)
	_ gofs.NodeStatfser  = (*topNode)(nil)

	_ gofs.InodeEmbedder = (*rawNode)(nil)
	_ gofs.NodeGetattrer = (*rawNode)(nil)
	_ gofs.NodeOpener    = (*rawNode)(nil)
	_ gofs.NodeStatfser  = (*rawNode)(nil)
)

// tree is one filesystem served under a mount: the whole mount, or one
// partition's folder.
type tree struct {
	fsys  iofs.FS
	rl    iofs.ReadLinkFS // nil when fsys has no symbolic links
	base  uint64          // OR'ed into inode numbers to keep partitions apart
	bsize uint32
	log   *log.Logger

	usageOnce sync.Once
	usage     meta.Usage
	usageOK   bool

	synthMu sync.Mutex
	synth   map[string]uint64 // inode numbers for files without *meta.Stat
}

// Inode numbers handed out for files whose FileInfo carries none start
// here, far above any real one.
const synthBase = 1 << 62

// partShift places the partition number above the inode numbers of its
// filesystem in a MountPartitions tree.
const partShift = 48

func newTree(fsys iofs.FS, base uint64, bsize int64, lg *log.Logger) *tree {
	t := &tree{fsys: fsys, base: base, bsize: uint32(bsize), log: lg}
	t.rl, _ = fsys.(iofs.ReadLinkFS)
	return t
}

// rootNode stats the filesystem's root and returns its node.
func (t *tree) rootNode() (*node, error) {
	fi, err := iofs.Stat(t.fsys, ".")
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, errors.New("fusemount: the root of the filesystem is not a directory")
	}
	st := t.statOf(".", fi)
	return &node{t: t, name: ".", st: st, ino: t.inoOf(".", st)}, nil
}

func (t *tree) lstat(name string) (iofs.FileInfo, error) {
	if t.rl != nil {
		return t.rl.Lstat(name)
	}
	return iofs.Stat(t.fsys, name)
}

// statOf returns the *meta.Stat behind fi, or one made from what fi says.
func (t *tree) statOf(name string, fi iofs.FileInfo) *meta.Stat {
	if st, ok := fi.Sys().(*meta.Stat); ok && st != nil {
		return st
	}
	mt := fi.ModTime()
	st := &meta.Stat{
		Mode:  fi.Mode(),
		Nlink: 1,
		Size:  fi.Size(),
		Atime: mt, Mtime: mt, Ctime: mt,
	}
	if st.Size < 0 {
		st.Size = 0
	}
	st.Blocks = (st.Size + 511) / 512
	if fi.IsDir() {
		st.Nlink = 2
	}
	st.Unix = unixMode(st)
	if fi.Mode()&iofs.ModeSymlink != 0 && t.rl != nil {
		st.Link, _ = t.rl.ReadLink(name)
		st.Size = int64(len(st.Link))
	}
	return st
}

// inoOf returns the inode number to show: the filesystem's own when it
// has one, otherwise a synthetic number stable for the life of the mount.
func (t *tree) inoOf(name string, st *meta.Stat) uint64 {
	if st.Ino != 0 {
		if ino := st.Ino | t.base; ino != ^uint64(0) {
			return ino
		}
	}
	t.synthMu.Lock()
	defer t.synthMu.Unlock()
	if t.synth == nil {
		t.synth = map[string]uint64{}
	}
	ino, ok := t.synth[name]
	if !ok {
		ino = synthBase + uint64(len(t.synth)) + 1
		t.synth[name] = ino
	}
	return ino
}

// errno maps a reader's error to the errno the kernel passes on, logging
// what becomes EIO.
func (t *tree) errno(op, name string, err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, iofs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, iofs.ErrPermission):
		return syscall.EACCES
	case errors.Is(err, iofs.ErrInvalid):
		return syscall.EINVAL
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	if strings.HasSuffix(err.Error(), "not a directory") {
		return syscall.ENOTDIR
	}
	t.log.Printf("%s %s: %v", op, name, err)
	return syscall.EIO
}

func (t *tree) statfs(out *fuse.StatfsOut) {
	out.Bsize = t.bsize
	out.Frsize = t.bsize
	out.NameLen = 255
	t.usageOnce.Do(func() {
		if u, ok := t.fsys.(meta.UsageFS); ok {
			usage, err := u.Usage()
			if err != nil {
				t.log.Printf("statfs: %v", err)
				return
			}
			t.usage, t.usageOK = usage, true
		}
	})
	if t.usageOK && t.bsize > 0 {
		b := uint64(t.bsize)
		out.Blocks = uint64(max(t.usage.Total, 0)) / b
		out.Bfree = uint64(max(t.usage.Free, 0)) / b
		out.Bavail = out.Bfree
	}
}

// node is a file, directory or other object of a tree.
type node struct {
	gofs.Inode
	t    *tree
	name string // io/fs path: "." for the root
	st   *meta.Stat
	ino  uint64
}

// newChild creates the node for name in n, described by fi, and fills
// out with its attributes.
func (n *node) newChild(ctx context.Context, name string, fi iofs.FileInfo, out *fuse.EntryOut) *gofs.Inode {
	p := path.Join(n.name, name)
	st := n.t.statOf(p, fi)
	ino := n.t.inoOf(p, st)
	child := &node{t: n.t, name: p, st: st, ino: ino}
	fillAttr(&out.Attr, st, ino, n.t.bsize)
	return n.NewInode(ctx, child, gofs.StableAttr{Mode: unixMode(st) & syscall.S_IFMT, Ino: ino})
}

// Lookup finds a name in the directory.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	p := path.Join(n.name, name)
	if !iofs.ValidPath(p) {
		return nil, syscall.ENOENT
	}
	fi, err := n.t.lstat(p)
	if err != nil {
		return nil, n.t.errno("lookup", p, err)
	}
	return n.newChild(ctx, name, fi, out), 0
}

// Getattr returns the attributes found when the node was looked up: they
// cannot change.
func (n *node) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillAttr(&out.Attr, n.st, n.ino, n.t.bsize)
	return 0
}

// Open opens a regular file for reading.
func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EROFS
	}
	f, err := n.t.fsys.Open(n.name)
	if err != nil {
		return nil, 0, n.t.errno("open", n.name, err)
	}
	h := &fileHandle{t: n.t, name: n.name, f: f, size: n.st.Size}
	switch r := f.(type) {
	case io.ReaderAt:
		h.ra = r
	case io.ReadSeeker:
		h.rs = r
	default:
		f.Close()
		n.t.log.Printf("open %s: the file implements neither io.ReaderAt nor io.Seeker", n.name)
		return nil, 0, syscall.EIO
	}
	return h, fuse.FOPEN_KEEP_CACHE, 0
}

// Readlink returns the target of a symbolic link.
func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if unixMode(n.st)&syscall.S_IFMT != syscall.S_IFLNK {
		return nil, syscall.EINVAL
	}
	if n.st.Link != "" || n.t.rl == nil {
		return []byte(n.st.Link), 0
	}
	target, err := n.t.rl.ReadLink(n.name)
	if err != nil {
		return nil, n.t.errno("readlink", n.name, err)
	}
	return []byte(target), 0
}

// Getxattr returns one extended attribute. A zero-length dest asks for
// the size only; a dest too small gives ERANGE.
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	v, ok := n.st.Xattrs[attr]
	if !ok {
		return 0, noAttr
	}
	if len(dest) == 0 {
		return uint32(len(v)), 0
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// Listxattr lists the names of the extended attributes, each followed by
// a NUL, sorted.
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	var list []byte
	for _, name := range sortedKeys(n.st.Xattrs) {
		list = append(list, name...)
		list = append(list, 0)
	}
	if len(dest) == 0 {
		return uint32(len(list)), 0
	}
	if len(dest) < len(list) {
		return uint32(len(list)), syscall.ERANGE
	}
	return uint32(copy(dest, list)), 0
}

// Statfs reports the filesystem's size and free space from its own
// allocation counters.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	n.t.statfs(out)
	return 0
}

// OpendirHandle reads the directory once; the kernel may cache the
// listing (FOPEN_CACHE_DIR).
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	ents, err := iofs.ReadDir(n.t.fsys, n.name)
	if err != nil {
		return nil, 0, n.t.errno("readdir", n.name, err)
	}
	parent := n.ino
	if _, p := n.Parent(); p != nil {
		parent = p.StableAttr().Ino
	}
	d := &dirHandle{n: n}
	d.ents = make([]fuse.DirEntry, 0, len(ents)+2)
	d.infos = make([]iofs.FileInfo, 0, len(ents)+2)
	d.ents = append(d.ents,
		fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: n.ino},
		fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: parent})
	d.infos = append(d.infos, nil, nil)
	for _, e := range ents {
		name := e.Name()
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
			continue
		}
		de := fuse.DirEntry{Name: name, Mode: typeBits(e.Type())}
		fi, err := e.Info()
		if err == nil {
			st := n.t.statOf(path.Join(n.name, name), fi)
			de.Ino = n.t.inoOf(path.Join(n.name, name), st)
			de.Mode = unixMode(st) & syscall.S_IFMT
		} else {
			fi = nil
		}
		d.ents = append(d.ents, de)
		d.infos = append(d.infos, fi)
	}
	for i := range d.ents {
		d.ents[i].Off = uint64(i + 1)
	}
	return d, fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_CACHE_DIR, 0
}

// dirHandle is an open directory: its entries, read once, and the
// FileInfo of each so that the lookups of READDIRPLUS need not search the
// directory again.
type dirHandle struct {
	n     *node
	ents  []fuse.DirEntry
	infos []iofs.FileInfo
	pos   int
}

// Readdirent returns the next entry, nil at the end.
func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if d.pos >= len(d.ents) {
		return nil, 0
	}
	e := d.ents[d.pos]
	d.pos++
	return &e, 0
}

// Seekdir moves to the entry after offset off.
func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	d.pos = int(min(off, uint64(len(d.ents))))
	return 0
}

// Lookup serves READDIRPLUS from the entry just listed.
func (d *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if i := d.pos - 1; i >= 0 && i < len(d.ents) && d.ents[i].Name == name && d.infos[i] != nil {
		fi := d.infos[i]
		d.infos[i] = nil
		return d.n.newChild(ctx, name, fi, out), 0
	}
	return d.n.Lookup(ctx, name, out)
}

// Releasedir drops the listing.
func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	d.ents, d.infos = nil, nil
}

// fileHandle is an open file: reads go straight to ReadAt.
type fileHandle struct {
	t    *tree
	name string
	f    iofs.File
	ra   io.ReaderAt
	mu   sync.Mutex // serialises rs
	rs   io.ReadSeeker
	size int64 // the size stat reports; data ending before it is an error
}

// Read reads at off. Short reads happen only at the end of the file; an
// error from the reader, or data ending before the size the file claims
// (a truncated image), gives EIO, never a short read that the kernel
// would take for the end of the file.
func (h *fileHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	var n int
	var err error
	if h.ra != nil {
		n, err = h.ra.ReadAt(dest, off)
	} else {
		h.mu.Lock()
		if _, err = h.rs.Seek(off, io.SeekStart); err == nil {
			n, err = io.ReadFull(h.rs, dest)
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
		}
		h.mu.Unlock()
	}
	if err == io.EOF && n < len(dest) && off+int64(n) < h.size {
		err = fmt.Errorf("data ends at byte %d of %d: %w", off+int64(n), h.size, io.ErrUnexpectedEOF)
	}
	if err != nil && err != io.EOF {
		return nil, h.t.errno("read", h.name, err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// Release closes the file.
func (h *fileHandle) Release(ctx context.Context) syscall.Errno {
	if h.f != nil {
		h.f.Close()
	}
	return 0
}

// topNode is the root of a MountPartitions tree: one folder per
// filesystem and one raw file per partition, made once at mount time.
type topNode struct {
	gofs.Inode
	folders []folder
	raws    []*rawNode
	created time.Time
}

type folder struct {
	name string
	root *node
}

// OnAdd builds the fixed top level.
func (r *topNode) OnAdd(ctx context.Context) {
	for _, f := range r.folders {
		ch := r.NewPersistentInode(ctx, f.root, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: f.root.ino})
		r.AddChild(f.name, ch, false)
	}
	for _, raw := range r.raws {
		ch := r.NewPersistentInode(ctx, raw, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: raw.ino})
		r.AddChild(raw.name, ch, false)
	}
}

// stat describes the top folder: read-only, owned by the user who
// mounted.
func (r *topNode) stat() *meta.Stat {
	return &meta.Stat{
		Unix:  syscall.S_IFDIR | 0o555,
		Nlink: uint32(2 + len(r.folders)),
		Uid:   uint32(os.Getuid()),
		Gid:   uint32(os.Getgid()),
		Size:  4096,
		Atime: r.created, Mtime: r.created, Ctime: r.created,
	}
}

// Getattr describes the top folder.
func (r *topNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillAttr(&out.Attr, r.stat(), 1, 4096)
	return 0
}

// Statfs reports the total of the partitions, all of it used.
func (r *topNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Bsize, out.Frsize, out.NameLen = 4096, 4096, 255
	var total int64
	for _, raw := range r.raws {
		total += raw.size
	}
	out.Blocks = uint64(total) / 4096
	return 0
}

// rawNode is a partition's bytes as a read-only file.
type rawNode struct {
	gofs.Inode
	name    string
	ino     uint64
	r       io.ReaderAt
	size    int64
	created time.Time
	lg      *log.Logger
}

// stat describes the raw file.
func (r *rawNode) stat() *meta.Stat {
	return &meta.Stat{
		Unix:   syscall.S_IFREG | 0o444,
		Nlink:  1,
		Uid:    uint32(os.Getuid()),
		Gid:    uint32(os.Getgid()),
		Size:   r.size,
		Blocks: (r.size + 511) / 512,
		Atime:  r.created, Mtime: r.created, Ctime: r.created,
	}
}

// Getattr describes the raw file.
func (r *rawNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillAttr(&out.Attr, r.stat(), r.ino, 4096)
	return 0
}

// Open opens the raw partition for reading.
func (r *rawNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EROFS
	}
	t := &tree{log: r.lg}
	return &fileHandle{t: t, name: r.name, ra: io.NewSectionReader(r.r, 0, r.size), size: r.size}, fuse.FOPEN_KEEP_CACHE, 0
}

// Statfs reports the partition's size, all of it used.
func (r *rawNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Bsize, out.Frsize, out.NameLen = 4096, 4096, 255
	out.Blocks = uint64(r.size) / 4096
	return 0
}

// fillAttr copies st into a FUSE attribute.
func fillAttr(a *fuse.Attr, st *meta.Stat, ino uint64, bsize uint32) {
	a.Ino = ino
	a.Size = uint64(max(st.Size, 0))
	a.Blocks = uint64(max(st.Blocks, 0))
	a.Mode = unixMode(st)
	a.Nlink = max(st.Nlink, 1)
	a.Owner = fuse.Owner{Uid: st.Uid, Gid: st.Gid}
	a.Rdev = encodeDev(st.Rdev)
	a.Blksize = bsize
	a.Atime, a.Atimensec = unixTime(st.Atime)
	a.Mtime, a.Mtimensec = unixTime(st.Mtime)
	a.Ctime, a.Ctimensec = unixTime(st.Ctime)
}

// unixTime splits t into seconds (two's complement before 1970, as the
// kernel reads them) and nanoseconds; the zero time is the epoch.
func unixTime(t time.Time) (uint64, uint32) {
	if t.IsZero() {
		return 0, 0
	}
	return uint64(t.Unix()), uint32(t.Nanosecond())
}

// unixMode returns the st_mode to show: the raw one when the reader gives
// it, otherwise one made from the Go mode.
func unixMode(st *meta.Stat) uint32 {
	if st.Unix&syscall.S_IFMT != 0 {
		return st.Unix
	}
	m := st.Mode
	u := uint32(m.Perm())
	if m&iofs.ModeSetuid != 0 {
		u |= syscall.S_ISUID
	}
	if m&iofs.ModeSetgid != 0 {
		u |= syscall.S_ISGID
	}
	if m&iofs.ModeSticky != 0 {
		u |= syscall.S_ISVTX
	}
	return u | typeBits(m)
}

// typeBits returns the S_IFMT bits of a Go file mode.
func typeBits(m iofs.FileMode) uint32 {
	switch {
	case m&iofs.ModeDir != 0:
		return syscall.S_IFDIR
	case m&iofs.ModeSymlink != 0:
		return syscall.S_IFLNK
	case m&iofs.ModeNamedPipe != 0:
		return syscall.S_IFIFO
	case m&iofs.ModeSocket != 0:
		return syscall.S_IFSOCK
	case m&iofs.ModeCharDevice != 0:
		return syscall.S_IFCHR
	case m&iofs.ModeDevice != 0:
		return syscall.S_IFBLK
	}
	return syscall.S_IFREG
}

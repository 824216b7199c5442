package fat

import (
	"cmp"
	"io"
	iofs "io/fs"
	"slices"
	"sort"
	"sync"
	"time"

	"imgtool/fs/meta"
)

// run is a stretch of a file stored in consecutive clusters.
type run struct {
	fileOff int64 // offset in the file
	diskOff int64 // offset in the filesystem
	length  int64
}

// runs builds the run list of a regular file from its cluster chain. The
// chain must hold at least as many clusters as the size needs, all valid,
// inside the image, and none twice.
func (f *FS) runs(n *node) ([]run, error) {
	g := f.g
	cs := g.clusterSize
	need := (int64(n.size) + cs - 1) / cs
	if need == 0 {
		return nil, nil
	}
	if need > int64(g.clusters) {
		return nil, formatErr(n.off, "file %q of %d bytes is larger than the filesystem", n.name, n.size)
	}
	limit := min(f.size, g.fsSize)
	var runs []run
	c := n.cluster
	prevOff := n.off // where the current cluster number was read
	for i := range need {
		if !g.valid(c) {
			return nil, formatErr(prevOff, "file %q: cluster %d out of range", n.name, c)
		}
		off := g.clusterOff(c)
		if off+cs > limit {
			return nil, formatErr(prevOff, "file %q: cluster %d lies beyond the end of the image", n.name, c)
		}
		if k := len(runs) - 1; k >= 0 && runs[k].diskOff+runs[k].length == off {
			runs[k].length += cs
		} else {
			runs = append(runs, run{fileOff: i * cs, diskOff: off, length: cs})
		}
		if i == need-1 {
			break
		}
		v := f.fat.get(c)
		prevOff = g.entryOff(c)
		switch g.classify(v) {
		case entNext:
			c = v
		case entEOC:
			return nil, formatErr(prevOff, "file %q: cluster chain ends after %d of %d clusters", n.name, i+1, need)
		case entFree:
			return nil, formatErr(prevOff, "file %q: cluster chain reaches free cluster after cluster %d", n.name, c)
		case entBad:
			return nil, formatErr(prevOff, "file %q: cluster chain reaches a bad-cluster marker after cluster %d", n.name, c)
		default:
			return nil, formatErr(prevOff, "file %q: cluster %d has invalid FAT entry %#x", n.name, c, v)
		}
	}
	// Trim the last run to the file size.
	runs[len(runs)-1].length -= need*cs - int64(n.size)
	// A chain that loops uses a cluster twice: find overlapping runs.
	if len(runs) > 1 {
		s := slices.Clone(runs)
		slices.SortFunc(s, func(a, b run) int { return cmp.Compare(a.diskOff, b.diskOff) })
		for i := 1; i < len(s); i++ {
			if s[i-1].diskOff+s[i-1].length > s[i].diskOff {
				c := uint32((s[i].diskOff-g.dataOff)/cs) + firstCluster
				return nil, formatErr(g.entryOff(c), "file %q: cluster chain loops (cluster %d used twice)", n.name, c)
			}
		}
	}
	return runs, nil
}

// File is an open regular file. ReadAt is safe for concurrent use; Read
// and Seek share an offset.
type File struct {
	fs   *FS
	info *fileInfo
	runs []run
	size int64

	mu     sync.Mutex
	pos    int64
	closed bool
}

// Compile-time checks of the interfaces of File.
var (
	_ iofs.File   = (*File)(nil)
	_ io.ReaderAt = (*File)(nil)
	_ io.Seeker   = (*File)(nil)
)

// Stat describes the file.
func (h *File) Stat() (iofs.FileInfo, error) { return h.info, nil }

// Close releases the file; later calls fail with fs.ErrClosed.
func (h *File) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return &iofs.PathError{Op: "close", Path: h.info.path, Err: iofs.ErrClosed}
	}
	h.closed = true
	return nil
}

func (h *File) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// ReadAt reads len(p) bytes at offset off of the file. Consecutive
// clusters are read with one call to the underlying reader.
func (h *File) ReadAt(p []byte, off int64) (int, error) {
	if h.isClosed() {
		return 0, &iofs.PathError{Op: "read", Path: h.info.path, Err: iofs.ErrClosed}
	}
	return h.readAt(p, off)
}

func (h *File) readAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &iofs.PathError{Op: "read", Path: h.info.path, Err: iofs.ErrInvalid}
	}
	if off >= h.size {
		return 0, io.EOF
	}
	want := int(min(int64(len(p)), h.size-off))
	i := sort.Search(len(h.runs), func(i int) bool { return h.runs[i].fileOff+h.runs[i].length > off })
	n := 0
	for n < want && i < len(h.runs) {
		r := h.runs[i]
		in := off - r.fileOff
		k := int(min(r.length-in, int64(want-n)))
		m, err := h.fs.r.ReadAt(p[n:n+k], r.diskOff+in)
		n += m
		if m < k {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, &iofs.PathError{Op: "read", Path: h.info.path, Err: err}
		}
		off += int64(k)
		i++
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Read reads from the current offset.
func (h *File) Read(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return 0, &iofs.PathError{Op: "read", Path: h.info.path, Err: iofs.ErrClosed}
	}
	if h.pos >= h.size {
		return 0, io.EOF
	}
	n, err := h.readAt(p, h.pos)
	h.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// Seek sets the offset of the next Read.
func (h *File) Seek(offset int64, whence int) (int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return 0, &iofs.PathError{Op: "seek", Path: h.info.path, Err: iofs.ErrClosed}
	}
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += h.pos
	case io.SeekEnd:
		offset += h.size
	default:
		return 0, &iofs.PathError{Op: "seek", Path: h.info.path, Err: iofs.ErrInvalid}
	}
	if offset < 0 {
		return 0, &iofs.PathError{Op: "seek", Path: h.info.path, Err: iofs.ErrInvalid}
	}
	h.pos = offset
	return offset, nil
}

// dirFile is an open directory.
type dirFile struct {
	fs      *FS
	info    *fileInfo
	entries []node
	pos     int
	closed  bool
	mu      sync.Mutex
}

var _ iofs.ReadDirFile = (*dirFile)(nil)

func (d *dirFile) Stat() (iofs.FileInfo, error) { return d.info, nil }

func (d *dirFile) Read([]byte) (int, error) {
	return 0, &iofs.PathError{Op: "read", Path: d.info.path, Err: errIsDir}
}

func (d *dirFile) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return &iofs.PathError{Op: "close", Path: d.info.path, Err: iofs.ErrClosed}
	}
	d.closed = true
	return nil
}

// ReadDir returns the next entries in directory order.
func (d *dirFile) ReadDir(count int) ([]iofs.DirEntry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, &iofs.PathError{Op: "readdir", Path: d.info.path, Err: iofs.ErrClosed}
	}
	rest := len(d.entries) - d.pos
	if count > 0 && rest == 0 {
		return nil, io.EOF
	}
	if count <= 0 || count > rest {
		count = rest
	}
	list := make([]iofs.DirEntry, count)
	for i := range list {
		list[i] = &dirEntry{fs: d.fs, n: &d.entries[d.pos+i]}
	}
	d.pos += count
	return list, nil
}

// dirEntry is an entry of a directory listing.
type dirEntry struct {
	fs *FS
	n  *node
}

func (e *dirEntry) Name() string { return e.n.name }
func (e *dirEntry) IsDir() bool  { return e.n.isDir() }
func (e *dirEntry) Type() iofs.FileMode {
	if e.n.isDir() {
		return iofs.ModeDir
	}
	return 0
}
func (e *dirEntry) Info() (iofs.FileInfo, error) { return e.fs.info(e.n.name, e.n), nil }
func (e *dirEntry) String() string               { return iofs.FormatDirEntry(e) }

// fileInfo describes a file; Sys returns a *meta.Stat.
type fileInfo struct {
	path string // as opened, for errors
	name string
	st   meta.Stat
}

func (i *fileInfo) Name() string        { return i.name }
func (i *fileInfo) Size() int64         { return i.st.Size }
func (i *fileInfo) Mode() iofs.FileMode { return i.st.Mode }
func (i *fileInfo) ModTime() time.Time  { return i.st.Mtime }
func (i *fileInfo) IsDir() bool         { return i.st.Mode.IsDir() }
func (i *fileInfo) Sys() any            { return &i.st }
func (i *fileInfo) String() string      { return iofs.FormatFileInfo(i) }

// Unix file-type bits of st_mode.
const (
	sIFDIR = 0o040000
	sIFREG = 0o100000
)

// info builds the description of n (nil: the root) opened as name.
func (f *FS) info(name string, n *node) *fileInfo {
	g := f.g
	if n == nil {
		size := g.rootEntries * dirEntrySize
		if g.variant == FAT32 {
			size = int64(f.dirClusters(g.rootCluster)) * g.clusterSize
		}
		epoch := time.Unix(0, 0).UTC()
		return &fileInfo{path: name, name: ".", st: meta.Stat{
			Ino: 1, Mode: iofs.ModeDir | 0o755, Unix: sIFDIR | 0o755, Nlink: 1,
			Size: size, Blocks: (size + 511) / 512,
			Atime: epoch, Mtime: epoch, Ctime: epoch,
			Flags: uint32(AttrDirectory),
		}}
	}
	mtime := fatTime(n.wrtDate, n.wrtTime, 0)
	st := meta.Stat{
		Ino:   uint64(n.off),
		Nlink: 1,
		Size:  int64(n.size),
		Atime: fatTime(n.accDate, 0, 0),
		Mtime: mtime,
		Ctime: mtime,
		Flags: uint32(n.attr),
	}
	if n.crtDate != 0 { // 0: the writer did not record it
		st.Crtime = fatTime(n.crtDate, n.crtTime, n.crtTenth)
	}
	if n.isDir() {
		st.Mode, st.Unix = iofs.ModeDir|0o755, sIFDIR|0o755
		st.Size = int64(f.dirClusters(n.cluster)) * g.clusterSize
		st.Blocks = st.Size / 512
	} else {
		perm := iofs.FileMode(0o644)
		if n.attr&AttrReadOnly != 0 {
			perm = 0o444
		}
		st.Mode, st.Unix = perm, sIFREG|uint32(perm)
		st.Blocks = (st.Size + g.clusterSize - 1) / g.clusterSize * g.clusterSize / 512
	}
	return &fileInfo{path: name, name: n.name, st: st}
}

// dirClusters counts the clusters of a directory's chain, stopping at the
// directory size limit or at the first invalid entry.
func (f *FS) dirClusters(first uint32) int {
	g := f.g
	c, n := first, 0
	for n < g.maxDirClusters() && g.valid(c) {
		n++
		v := f.fat.get(c)
		if g.classify(v) != entNext {
			break
		}
		c = v
	}
	return n
}

// fatTime decodes a FAT date and time (local time of the writer, taken as
// UTC) plus a count of 10 ms.
func fatTime(date, tm uint16, tenth uint8) time.Time {
	year := 1980 + int(date>>9)
	month := max(int(date>>5&0x0F), 1)
	day := max(int(date&0x1F), 1)
	hour := int(tm >> 11)
	minute := int(tm >> 5 & 0x3F)
	sec := int(tm&0x1F) * 2
	ms := int(tenth) * 10
	return time.Date(year, time.Month(month), day, hour, minute, sec, ms*int(time.Millisecond), time.UTC)
}

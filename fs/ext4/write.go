package ext4

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"path"
	"strings"
	"time"
)

// Limits of the Writer, which is meant for small configuration files.
const (
	maxWriteFile = 64 << 20 // bytes of one file written by WriteFile
	maxPathDepth = 64       // path elements resolved by the Writer
)

// Errors of the Writer, matched with errors.Is.
var (
	// ErrExist is returned by Mkdir when the path exists.
	ErrExist = errors.New("ext4: file exists")
	// ErrIsDir is returned by Remove for a directory.
	ErrIsDir = errors.New("ext4: is a directory")
	// ErrNotEmpty is returned by Rmdir for a directory that holds entries.
	ErrNotEmpty = errors.New("ext4: directory not empty")
)

// Writer creates, replaces and removes small files, directories and
// symbolic links in an ext2/3/4 filesystem, with the same allocator and
// checksums as the shrink engine. Counters, bitmaps and descriptors are
// written by Close. It is not safe for concurrent use.
type Writer struct {
	s     *shrinker // loaded bitmaps and group table, writing through w
	now   func() time.Time
	dirty []bool // groups whose bitmaps changed
	dirs  []int64
}

// OpenWriter opens the filesystem in the first size bytes of rw for
// writing. It refuses filesystems Shrink refuses (errors, journal to
// replay, unsupported features).
func OpenWriter(rw ReadWriterAt, size int64) (*Writer, error) {
	s, err := newShrinker(rw, size)
	if err != nil {
		return nil, err
	}
	if err := s.setup(s.f.blocks); err != nil {
		return nil, err
	}
	if err := s.loadBitmaps(); err != nil {
		return nil, err
	}
	s.w = rw
	s.final = append(bitset(nil), s.used...)
	s.taken = newBitset(s.oldBlocks)
	s.ifinal = append(bitset(nil), s.iused...)
	s.groups = append([]group(nil), s.f.groupList...)
	s.cursor = s.f.firstData
	w := &Writer{s: s, now: time.Now, dirty: make([]bool, s.oldGroups), dirs: make([]int64, s.oldGroups)}
	return w, nil
}

// readInode reads inode ino's raw bytes from its table.
func (w *Writer) readInode(ino uint32) (*inode, error) {
	s := w.s
	if ino == 0 || ino > s.f.inodes {
		return nil, corruptf(-1, fmt.Sprintf("inode %d", ino), "inode number out of range")
	}
	raw := make([]byte, s.f.inodeSize)
	if err := s.f.readAt(raw, s.inodeOff(ino)); err != nil {
		return nil, err
	}
	return s.rawInode(ino, raw), nil
}

func (w *Writer) writeInode(in *inode) error {
	w.s.setInodeCsum(in.raw, in.ino)
	return w.s.writeOff(in.raw, w.s.inodeOff(in.ino))
}

// dirBlocks calls fn with every block of directory in (logical and
// physical number, contents); fn returns true when it changed the block,
// which is then written back, and stop to end the walk.
func (w *Writer) dirBlocks(in *inode, fn func(lblk, pblk uint64, b []byte) (changed, stop bool, err error)) error {
	s := w.s
	if in.hasFlag(InodeInlineDataFl) {
		return &FormatError{Block: -1, Off: -1, What: fmt.Sprintf("directory inode %d", in.ino), Msg: "inline-data directories cannot be changed", Err: ErrUnsupported}
	}
	n := uint64((in.size() + s.bs - 1) / s.bs)
	if int64(n) > s.size/s.bs {
		return corruptf(-1, fmt.Sprintf("directory inode %d", in.ino), "directory larger than the filesystem")
	}
	m := newMapper(s.fv, in)
	b := make([]byte, s.bs)
	for l := uint64(0); l < n; l++ {
		r, err := m.lookup(l)
		if err != nil {
			return err
		}
		if r.zero {
			continue
		}
		if err := s.f.readBlock(b, r.pblk); err != nil {
			return err
		}
		ch, stop, err := fn(l, r.pblk, b)
		if err != nil {
			return err
		}
		if ch {
			if err := s.writeAt(b, r.pblk); err != nil {
				return err
			}
		}
		if stop {
			return nil
		}
	}
	return nil
}

// hasTail reports whether a directory leaf block ends in a checksum tail.
func hasTail(b []byte) bool {
	t := b[len(b)-12:]
	return sle.Uint32(t) == 0 && sle.Uint16(t[4:]) == 12 && t[6] == 0 && t[7] == DirTailFileType
}

// sealDirBlock recomputes a leaf block's tail checksum.
func (w *Writer) sealDirBlock(in *inode, b []byte) {
	if w.s.f.metaCsum && hasTail(b) {
		sle.PutUint32(b[len(b)-4:], crc32c(w.s.inoSeed(in.ino, in.Generation), b[:len(b)-12]))
	}
}

// lookup returns the inode a directory entry names (0 when absent).
func (w *Writer) lookup(dir *inode, name string) (uint32, uint8, error) {
	var found uint32
	var ft uint8
	err := w.dirBlocks(dir, func(l, _ uint64, b []byte) (bool, bool, error) {
		if dir.hasFlag(InodeIndexFl) && (l == 0 || w.isDxNode(b)) {
			return false, false, nil
		}
		_, err := w.s.f.parseDirBlock(b, -1, "directory", func(n []byte, ino uint32, t uint8) bool {
			if string(n) == name {
				found, ft = ino, t
				return false
			}
			return true
		})
		return false, found != 0, err
	})
	return found, ft, err
}

func (w *Writer) isDxNode(b []byte) bool {
	return sle.Uint32(b) == 0 && w.s.f.recLen(sle.Uint16(b[4:])) == int(w.s.bs) && b[6] == 0
}

// resolve returns the directory holding the last element of p and that
// element's name.
func (w *Writer) resolve(p string) (*inode, string, error) {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" {
		return nil, "", fmt.Errorf("ext4: %q names the root directory", p)
	}
	elems := strings.Split(p, "/")
	if len(elems) > maxPathDepth {
		return nil, "", fmt.Errorf("ext4: path %q too deep", p)
	}
	dir, err := w.readInode(RootIno)
	if err != nil {
		return nil, "", err
	}
	for _, e := range elems[:len(elems)-1] {
		if dir, err = w.lookupInode(dir, p, e); err != nil {
			return nil, "", err
		}
		if !dir.isDir() {
			return nil, "", fmt.Errorf("ext4: %s: %w", p, ErrNotDir)
		}
	}
	name := elems[len(elems)-1]
	if len(name) > 255 {
		return nil, "", fmt.Errorf("ext4: name %q longer than 255 bytes", name)
	}
	return dir, name, nil
}

// allocBlocks allocates n blocks as at most four runs (the extents an
// inode holds without a tree) or, without extents, anywhere.
func (w *Writer) allocBlocks(n uint64) ([]xent, error) {
	s := w.s
	var out []xent
	var l uint32
	for n > 0 {
		b, got, err := s.alloc(n)
		if err != nil {
			return nil, fmt.Errorf("ext4: no free space: %w", err)
		}
		w.markBlocks(b, got, true)
		out = append(out, xent{lblk: l, pblk: b, n: uint32(got)})
		l += uint32(got)
		n -= got
	}
	return mergeExtents(out), nil
}

// markBlocks records blocks as used or free and marks their groups dirty.
func (w *Writer) markBlocks(b, n uint64, used bool) {
	s := w.s
	for x := b; x < b+n; x++ {
		if used {
			s.final.set(x)
			s.used.set(x)
		} else {
			s.final.clr(x)
		}
		w.dirty[(x-s.f.firstData)/s.f.bpg] = true
	}
}

// allocInode takes the first free inode after the reserved ones.
func (w *Writer) allocInode(dir bool) (uint32, error) {
	s := w.s
	f := s.f
	for i := uint64(f.firstIno); i < uint64(f.inodes); i++ {
		if s.ifinal.get(i - 1) {
			continue
		}
		s.ifinal.set(i - 1)
		gi := (i - 1) / uint64(f.ipg)
		g := &s.groups[gi]
		idx := uint32((i - 1) % uint64(f.ipg))
		if s.csum() {
			if g.flags&BgInodeUninit != 0 {
				g.flags &^= BgInodeUninit
				g.itableUnused = f.ipg
			}
			if idx >= f.ipg-g.itableUnused {
				g.itableUnused = f.ipg - idx - 1
			}
		}
		w.dirty[gi] = true
		if dir {
			w.dirs[gi]++
		}
		return uint32(i), nil
	}
	return 0, errors.New("ext4: no free inode")
}

// newInode builds an in-use inode.
func (w *Writer) newInode(ino uint32, mode uint16, uid, gid uint32) *inode {
	s := w.s
	raw := make([]byte, s.f.inodeSize)
	now := w.now()
	sle.PutUint16(raw[0:], mode)
	sle.PutUint16(raw[2:], uint16(uid))
	sle.PutUint16(raw[0x78:], uint16(uid>>16))
	sle.PutUint16(raw[0x18:], uint16(gid))
	sle.PutUint16(raw[0x7A:], uint16(gid>>16))
	sec := uint32(now.Unix())
	for _, off := range []int{8, 0xC, 0x10} {
		sle.PutUint32(raw[off:], sec)
	}
	sle.PutUint16(raw[0x1A:], 1)
	sle.PutUint32(raw[0x64:], uint32(now.UnixNano())^ino)
	if s.f.inodeSize > GoodOldInodeSize {
		extra := uint16(32)
		if s.f.sb.MinExtraIsize > extra {
			extra = s.f.sb.MinExtraIsize
		}
		sle.PutUint16(raw[0x80:], min(extra, uint16(s.f.inodeSize-GoodOldInodeSize)))
		if extra >= 0x98-GoodOldInodeSize {
			sle.PutUint32(raw[0x90:], sec)
		}
	}
	return s.rawInode(ino, raw)
}

// setData stores content in blocks for inode in (extents or direct
// blocks), updating size and i_blocks. in must own no blocks.
func (w *Writer) setData(in *inode, data []byte) error {
	s := w.s
	n := uint64((int64(len(data)) + s.bs - 1) / s.bs)
	extents := s.f.sb.FeatureIncompat&IncompatExtents != 0
	if !extents && n > NDirBlocks {
		return fmt.Errorf("ext4: %d bytes is too large for a block-mapped file written by this package (at most %d)", len(data), NDirBlocks*s.bs)
	}
	var exts []xent
	if n > 0 {
		var err error
		if exts, err = w.allocBlocks(n); err != nil {
			return err
		}
		if extents && len(exts) > 4 {
			for _, e := range exts {
				w.markBlocks(e.pblk, uint64(e.n), false)
			}
			return errors.New("ext4: free space too fragmented for the file")
		}
	}
	buf := make([]byte, int64(n)*s.bs)
	copy(buf, data)
	for _, e := range exts {
		if err := s.writeAt(buf[int64(e.lblk)*s.bs:int64(e.lblk+e.n)*s.bs], e.pblk); err != nil {
			return err
		}
	}
	raw := in.raw
	clear(raw[0x28 : 0x28+60])
	flags := sle.Uint32(raw[0x20:]) &^ (InodeExtentsFl | InodeInlineDataFl | InodeIndexFl)
	if extents {
		flags |= InodeExtentsFl
		es := make([]treeEntry, len(exts))
		for i, e := range exts {
			es[i] = treeEntry{lblk: e.lblk, x: e}
		}
		encodeNode(raw[0x28:0x28+60], es, 4, 0)
	} else {
		i := 0
		for _, e := range exts {
			for k := uint32(0); k < e.n; k++ {
				sle.PutUint32(raw[0x28+4*i:], uint32(e.pblk)+k)
				i++
			}
		}
	}
	sle.PutUint32(raw[0x20:], flags)
	sle.PutUint32(raw[4:], uint32(len(data)))
	sle.PutUint32(raw[0x6C:], uint32(uint64(len(data))>>32))
	blocks := n * uint64(s.bs/512)
	if in.fileACL() != 0 {
		blocks += uint64(s.bs / 512)
	}
	sle.PutUint32(raw[0x1C:], uint32(blocks))
	sle.PutUint16(raw[0x74:], 0)
	in.Inode = s.rawInode(in.ino, raw).Inode
	return nil
}

// freeData releases the blocks an inode's data uses (not its xattr
// block).
func (w *Writer) freeData(in *inode) error {
	s := w.s
	if in.hasFlag(InodeInlineDataFl) || s.f.isFastSymlink(in) {
		return nil
	}
	switch in.mode() {
	case SIFCHR, SIFBLK, SIFIFO, SIFSOCK:
		return nil
	}
	if in.hasFlag(InodeExtentsFl) {
		exts, nodes, err := s.readTree(in)
		if err != nil {
			return err
		}
		for _, e := range exts {
			w.markBlocks(e.pblk, uint64(e.n), false)
		}
		for _, b := range nodes {
			w.markBlocks(b, 1, false)
		}
		return nil
	}
	var walk func(p uint64, level int) error
	walk = func(p uint64, level int) error {
		if p == 0 {
			return nil
		}
		if p >= s.oldBlocks {
			return corruptf(int64(p), "block map", "pointer beyond the filesystem end")
		}
		if level > 0 {
			b := make([]byte, s.bs)
			if err := s.f.readBlock(b, p); err != nil {
				return err
			}
			for j := int64(0); j < s.bs; j += 4 {
				if err := walk(uint64(sle.Uint32(b[j:])), level-1); err != nil {
					return err
				}
			}
		}
		w.markBlocks(p, 1, false)
		return nil
	}
	for i := 0; i < NBlocks; i++ {
		if err := walk(uint64(sle.Uint32(in.raw[0x28+4*i:])), max(0, i-NDirBlocks+1)); err != nil {
			return err
		}
	}
	return nil
}

func fileType(mode uint16) uint8 {
	switch mode & SIFMT {
	case SIFDIR:
		return FtDir
	case SIFLNK:
		return FtSymlink
	case SIFREG:
		return FtRegFile
	}
	return FtUnknown
}

func unixMode(mode iofs.FileMode) uint16 {
	m := uint16(mode.Perm())
	if mode&iofs.ModeSetuid != 0 {
		m |= SISUID
	}
	if mode&iofs.ModeSetgid != 0 {
		m |= SISGID
	}
	if mode&iofs.ModeSticky != 0 {
		m |= SISVTX
	}
	return m
}

// WriteFile creates the regular file name with data, or replaces the
// content, mode and owner of an existing one (its old blocks are freed).
// The parent directory must exist.
func (w *Writer) WriteFile(name string, data []byte, mode iofs.FileMode, uid, gid uint32) error {
	if len(data) > maxWriteFile {
		return fmt.Errorf("ext4: %s: %d bytes is more than this writer handles (%d)", name, len(data), maxWriteFile)
	}
	return w.create(name, SIFREG|unixMode(mode), data, uid, gid)
}

// Symlink creates the symbolic link name pointing at target (replacing an
// existing link or file of that name).
func (w *Writer) Symlink(target, name string) error {
	if len(target) == 0 || len(target) >= int(w.s.bs) {
		return fmt.Errorf("ext4: symlink target of %d bytes not supported", len(target))
	}
	return w.create(name, SIFLNK|0o777, []byte(target), 0, 0)
}

// Mkdir creates the directory name. It fails with ErrExist when the name
// exists.
func (w *Writer) Mkdir(name string, mode iofs.FileMode, uid, gid uint32) error {
	parent, base, err := w.resolve(name)
	if err != nil {
		return err
	}
	if ino, _, err := w.lookup(parent, base); err != nil {
		return err
	} else if ino != 0 {
		return fmt.Errorf("ext4: %s: %w", name, ErrExist)
	}
	ino, err := w.allocInode(true)
	if err != nil {
		return err
	}
	in := w.newInode(ino, SIFDIR|unixMode(mode), uid, gid)
	sle.PutUint16(in.raw[0x1A:], 2)
	b := make([]byte, w.s.bs)
	end := len(b)
	if w.s.f.metaCsum {
		end -= 12
		sle.PutUint16(b[end+4:], 12)
		b[end+7] = DirTailFileType
	}
	putEntry(b[0:], ino, 12, ".", FtDir)
	putEntry(b[12:], parent.ino, uint16(end-12), "..", FtDir)
	if err := w.setData(in, b); err != nil {
		return err
	}
	in.Inode = w.s.rawInode(ino, in.raw).Inode
	w.sealDirBlock(in, b)
	if in.hasFlag(InodeExtentsFl) {
		x := in.raw[0x28+12:]
		blk := uint64(sle.Uint32(x[8:])) | uint64(sle.Uint16(x[6:]))<<32
		if err := w.s.writeAt(b, blk); err != nil {
			return err
		}
	} else if err := w.s.writeAt(b, uint64(sle.Uint32(in.raw[0x28:]))); err != nil {
		return err
	}
	if err := w.writeInode(in); err != nil {
		return err
	}
	if err := w.addEntry(parent, base, ino, FtDir); err != nil {
		return err
	}
	parent, err = w.readInode(parent.ino)
	if err != nil {
		return err
	}
	if l := sle.Uint16(parent.raw[0x1A:]); l > 1 && l < 65000 {
		sle.PutUint16(parent.raw[0x1A:], l+1)
	}
	return w.writeInode(parent)
}

func putEntry(b []byte, ino uint32, recLen uint16, name string, ft uint8) {
	sle.PutUint32(b, ino)
	sle.PutUint16(b[4:], recLen)
	b[6] = byte(len(name))
	b[7] = ft
	copy(b[8:], name)
}

// create makes or replaces a regular file or symlink.
func (w *Writer) create(name string, mode uint16, data []byte, uid, gid uint32) error {
	parent, base, err := w.resolve(name)
	if err != nil {
		return err
	}
	old, _, err := w.lookup(parent, base)
	if err != nil {
		return err
	}
	if old != 0 {
		in, err := w.readInode(old)
		if err != nil {
			return err
		}
		if in.isDir() {
			return fmt.Errorf("ext4: %s is a directory", name)
		}
		if in.mode() != mode&SIFMT {
			if err := w.Remove(name); err != nil {
				return err
			}
		} else {
			if err := w.freeData(in); err != nil {
				return err
			}
			raw := in.raw
			sle.PutUint16(raw[0:], mode)
			sle.PutUint16(raw[2:], uint16(uid))
			sle.PutUint16(raw[0x78:], uint16(uid>>16))
			sle.PutUint16(raw[0x18:], uint16(gid))
			sle.PutUint16(raw[0x7A:], uint16(gid>>16))
			now := w.now()
			putTime(in, 0xC, 0x84, now)
			putTime(in, 0x10, 0x88, now)
			if err := w.fill(in, mode, data); err != nil {
				return err
			}
			return w.writeInode(in)
		}
	}
	ino, err := w.allocInode(false)
	if err != nil {
		return err
	}
	in := w.newInode(ino, mode, uid, gid)
	if err := w.fill(in, mode, data); err != nil {
		return err
	}
	if err := w.writeInode(in); err != nil {
		return err
	}
	return w.addEntry(parent, base, ino, fileType(mode))
}

// fill stores the content: fast symlinks in i_block, the rest in blocks.
func (w *Writer) fill(in *inode, mode uint16, data []byte) error {
	if mode&SIFMT == SIFLNK && len(data) < 60 {
		raw := in.raw
		clear(raw[0x28 : 0x28+60])
		copy(raw[0x28:], data)
		sle.PutUint32(raw[0x20:], sle.Uint32(raw[0x20:])&^(InodeExtentsFl|InodeInlineDataFl))
		sle.PutUint32(raw[4:], uint32(len(data)))
		sle.PutUint32(raw[0x6C:], 0)
		var blocks uint32
		if in.fileACL() != 0 {
			blocks = uint32(w.s.bs / 512)
		}
		sle.PutUint32(raw[0x1C:], blocks)
		return nil
	}
	return w.setData(in, data)
}

// addEntry adds name → ino to directory dir: into the first leaf block
// with room, or into a new block at the end. An htree directory is first
// turned into a linear one (its index blocks become empty leaf blocks),
// which e2fsck and the kernel accept.
func (w *Writer) addEntry(dir *inode, name string, ino uint32, ft uint8) error {
	s := w.s
	if s.f.sb.FeatureIncompat&IncompatFiletype == 0 {
		ft = 0
	}
	if dir.hasFlag(InodeIndexFl) {
		if err := w.unindex(dir); err != nil {
			return err
		}
	}
	need := (8 + len(name) + 3) &^ 3
	done := false
	err := w.dirBlocks(dir, func(_, _ uint64, b []byte) (bool, bool, error) {
		end := len(b)
		if s.f.metaCsum && hasTail(b) {
			end -= 12
		}
		for pos := 0; pos+8 <= end; {
			rl := s.f.recLen(sle.Uint16(b[pos+4:]))
			if rl < 8 || pos+rl > end {
				return false, true, corruptf(-1, fmt.Sprintf("directory inode %d", dir.ino), "bad entry")
			}
			cur := sle.Uint32(b[pos:])
			used := 0
			if cur != 0 {
				used = (8 + int(b[pos+6]) + 3) &^ 3
			}
			if rl-used >= need {
				if cur == 0 {
					putEntry(b[pos:], ino, uint16(rl), name, ft)
				} else {
					sle.PutUint16(b[pos+4:], uint16(used))
					putEntry(b[pos+used:], ino, uint16(rl-used), name, ft)
				}
				w.sealDirBlock(dir, b)
				done = true
				return true, true, nil
			}
			pos += rl
		}
		return false, false, nil
	})
	if err != nil || done {
		return err
	}
	return w.appendDirBlock(dir, name, ino, ft)
}

// appendDirBlock grows a directory by one block holding a single entry.
func (w *Writer) appendDirBlock(dir *inode, name string, ino uint32, ft uint8) error {
	s := w.s
	exts, _, err := s.readTree(dir)
	if !dir.hasFlag(InodeExtentsFl) {
		return errors.New("ext4: growing block-mapped directories is not supported")
	}
	if err != nil {
		return err
	}
	nb, _, err := s.alloc(1)
	if err != nil {
		return fmt.Errorf("ext4: no free space: %w", err)
	}
	w.markBlocks(nb, 1, true)
	lblk := uint32((dir.size() + s.bs - 1) / s.bs)
	if k := len(exts); k > 0 && exts[k-1].lblk+exts[k-1].n == lblk && exts[k-1].pblk+uint64(exts[k-1].n) == nb {
		exts[k-1].n++
	} else {
		exts = append(exts, xent{lblk: lblk, pblk: nb, n: 1})
	}
	if len(exts) > 4 || parseExtentHeader(dir.raw[0x28:]).Depth != 0 {
		return errors.New("ext4: growing a directory with an extent tree is not supported")
	}
	b := make([]byte, s.bs)
	end := len(b)
	if s.f.metaCsum {
		end -= 12
		sle.PutUint16(b[end+4:], 12)
		b[end+7] = DirTailFileType
	}
	putEntry(b, ino, uint16(end), name, ft)
	w.sealDirBlock(dir, b)
	if err := s.writeAt(b, nb); err != nil {
		return err
	}
	es := make([]treeEntry, len(exts))
	for i, e := range exts {
		es[i] = treeEntry{lblk: e.lblk, x: e}
	}
	clear(dir.raw[0x28 : 0x28+60])
	encodeNode(dir.raw[0x28:0x28+60], es, 4, 0)
	size := uint64(lblk+1) * uint64(s.bs)
	sle.PutUint32(dir.raw[4:], uint32(size))
	sle.PutUint32(dir.raw[0x6C:], uint32(size>>32))
	s.addInodeBlocks(dir, 1)
	return w.writeInode(dir)
}

// unindex turns an htree directory into a linear one.
func (w *Writer) unindex(dir *inode) error {
	s := w.s
	err := w.dirBlocks(dir, func(l, _ uint64, b []byte) (bool, bool, error) {
		end := len(b)
		tail := s.f.metaCsum
		if tail {
			end -= 12
		}
		switch {
		case l == 0:
			clear(b[24:])
			sle.PutUint16(b[16:], uint16(end-12))
		case w.isDxNode(b):
			clear(b)
			sle.PutUint16(b[4:], uint16(end))
		default:
			return false, false, nil
		}
		if tail {
			sle.PutUint16(b[end+4:], 12)
			b[end+7] = DirTailFileType
		}
		w.sealDirBlock(dir, b)
		return true, false, nil
	})
	if err != nil {
		return err
	}
	sle.PutUint32(dir.raw[0x20:], sle.Uint32(dir.raw[0x20:])&^InodeIndexFl)
	dir.Flags &^= InodeIndexFl
	return w.writeInode(dir)
}

// Remove deletes a file or symbolic link: the directory entry first, then
// (when no other link is left) its blocks, xattr block and inode. It
// refuses directories with an error wrapping ErrIsDir; use Rmdir or
// RemoveAll for those.
func (w *Writer) Remove(name string) error {
	parent, base, in, err := w.child(name)
	if err != nil {
		return err
	}
	if in.isDir() {
		return fmt.Errorf("ext4: %s: %w; Remove deletes files and links (use Rmdir or RemoveAll)", name, ErrIsDir)
	}
	return w.removeFile(parent, base, in)
}

// child finds name, which is to be removed: the directory holding it,
// its last element and its inode.
func (w *Writer) child(name string) (parent *inode, base string, in *inode, err error) {
	parent, base, err = w.resolve(name)
	if err != nil {
		return nil, "", nil, err
	}
	if base == "." || base == ".." {
		return nil, "", nil, fmt.Errorf("ext4: %s: cannot remove %q entries", name, base)
	}
	if in, err = w.lookupInode(parent, name, base); err != nil {
		return nil, "", nil, err
	}
	return parent, base, in, nil
}

// lookupInode reads the inode of entry base of directory dir; name, the
// path being resolved, is what a missing entry's error names.
func (w *Writer) lookupInode(dir *inode, name, base string) (*inode, error) {
	ino, _, err := w.lookup(dir, base)
	if err != nil {
		return nil, err
	}
	if ino == 0 {
		return nil, fmt.Errorf("ext4: %s: %w", name, iofs.ErrNotExist)
	}
	return w.readInode(ino)
}

// removeFile unlinks the non-directory in, named base in parent, and
// frees it when that was its last link.
func (w *Writer) removeFile(parent *inode, base string, in *inode) error {
	if err := w.unlink(parent, base, in.ino); err != nil {
		return err
	}
	links := sle.Uint16(in.raw[0x1A:])
	if links > 1 {
		sle.PutUint16(in.raw[0x1A:], links-1)
		putTime(in, 0xC, 0x84, w.now())
		return w.writeInode(in)
	}
	return w.freeInode(in)
}

// unlink removes the entry base (which must name inode ino) from
// directory dir, merging its space into the previous entry of its block,
// and sets the directory's change and modification times. Entries of an
// indexed directory are removed from their leaf block; the index stays
// valid, as it only records hash ranges.
func (w *Writer) unlink(dir *inode, base string, ino uint32) error {
	s := w.s
	found := false
	err := w.dirBlocks(dir, func(l, _ uint64, b []byte) (bool, bool, error) {
		if dir.hasFlag(InodeIndexFl) && (l == 0 || w.isDxNode(b)) {
			return false, false, nil
		}
		prev := -1
		for pos := 0; pos+8 <= len(b); {
			rl := s.f.recLen(sle.Uint16(b[pos+4:]))
			if rl < 8 || pos+rl > len(b) || 8+int(b[pos+6]) > rl {
				return false, true, corruptf(-1, fmt.Sprintf("directory inode %d", dir.ino), "bad entry")
			}
			e := sle.Uint32(b[pos:])
			if e != 0 && int(b[pos+6]) == len(base) && string(b[pos+8:pos+8+len(base)]) == base {
				if e != ino {
					return false, true, corruptf(-1, fmt.Sprintf("directory inode %d", dir.ino), "entry %q changed while being removed", base)
				}
				if prev >= 0 {
					sle.PutUint16(b[prev+4:], uint16(s.f.recLen(sle.Uint16(b[prev+4:]))+rl))
				} else {
					sle.PutUint32(b[pos:], 0)
				}
				w.sealDirBlock(dir, b)
				found = true
				return true, true, nil
			}
			prev = pos
			pos += rl
		}
		return false, false, nil
	})
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("ext4: %s: %w", base, iofs.ErrNotExist)
	}
	now := w.now()
	putTime(dir, 0xC, 0x84, now)
	putTime(dir, 0x10, 0x88, now)
	return w.writeInode(dir)
}

// freeInode releases an unlinked inode: its blocks, its share of an
// xattr block, and the inode itself (link count 0, deletion time set).
func (w *Writer) freeInode(in *inode) error {
	s := w.s
	if err := w.freeData(in); err != nil {
		return err
	}
	if err := w.dropXattrBlock(in); err != nil {
		return err
	}
	sle.PutUint16(in.raw[0x1A:], 0)
	sle.PutUint32(in.raw[0x14:], uint32(w.now().Unix()))
	gi := uint64(in.ino-1) / uint64(s.f.ipg)
	s.ifinal.clr(uint64(in.ino - 1))
	w.dirty[gi] = true
	if in.isDir() {
		w.dirs[gi]--
	}
	return w.writeInode(in)
}

// dropXattrBlock gives up the inode's reference to its external xattr
// block, freeing the block when no other inode shares it.
func (w *Writer) dropXattrBlock(in *inode) error {
	s := w.s
	acl := in.fileACL()
	if acl == 0 || acl >= s.oldBlocks {
		return nil
	}
	b := make([]byte, s.bs)
	if err := s.f.readBlock(b, acl); err != nil {
		return err
	}
	if rc := sle.Uint32(b[4:]); rc > 1 {
		sle.PutUint32(b[4:], rc-1)
		if s.f.metaCsum {
			sle.PutUint32(b[0x10:], xattrBlockCsum(s.f.seed, acl, b))
		}
		return s.writeAt(b, acl)
	}
	w.markBlocks(acl, 1, false)
	return nil
}

// Rmdir removes the empty directory name: its entry in the parent first,
// then its blocks, xattr block and inode; the parent loses the link that
// ".." held. It fails with an error wrapping ErrNotEmpty when the
// directory holds entries, and ErrNotDir when name is not a directory.
func (w *Writer) Rmdir(name string) error {
	parent, base, in, err := w.child(name)
	if err != nil {
		return err
	}
	if !in.isDir() {
		return fmt.Errorf("ext4: %s: %w", name, ErrNotDir)
	}
	return w.rmdir(parent, name, base, in)
}

func (w *Writer) rmdir(parent *inode, name, base string, in *inode) error {
	ents, err := w.entries(in)
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("ext4: %s: %w (%d entries)", name, ErrNotEmpty, len(ents))
	}
	if err := w.unlink(parent, base, in.ino); err != nil {
		return err
	}
	// Like the kernel, a parent whose count overflowed (1, with dir_nlink)
	// keeps it.
	if l := sle.Uint16(parent.raw[0x1A:]); l > 2 {
		sle.PutUint16(parent.raw[0x1A:], l-1)
		if err := w.writeInode(parent); err != nil {
			return err
		}
	}
	return w.freeInode(in)
}

// wdirent is a directory entry other than "." and "..".
type wdirent struct {
	name string
	ino  uint32
}

// entries lists directory in's entries other than "." and "..", all of
// them, including names the reader hides.
func (w *Writer) entries(in *inode) ([]wdirent, error) {
	s := w.s
	var out []wdirent
	err := w.dirBlocks(in, func(l, _ uint64, b []byte) (bool, bool, error) {
		if in.hasFlag(InodeIndexFl) && (l == 0 || w.isDxNode(b)) {
			return false, false, nil
		}
		for pos := 0; pos+8 <= len(b); {
			rl := s.f.recLen(sle.Uint16(b[pos+4:]))
			nl := int(b[pos+6])
			if rl < 8 || pos+rl > len(b) || 8+nl > rl {
				return false, true, corruptf(-1, fmt.Sprintf("directory inode %d", in.ino), "bad entry")
			}
			if ino := sle.Uint32(b[pos:]); ino != 0 && nl > 0 {
				n := string(b[pos+8 : pos+8+nl])
				if n != "." && n != ".." {
					if ino > s.f.inodes {
						return false, true, corruptf(-1, fmt.Sprintf("directory inode %d", in.ino), "entry %q points at inode %d beyond %d", n, ino, s.f.inodes)
					}
					out = append(out, wdirent{n, ino})
				}
			}
			pos += rl
		}
		return false, false, nil
	})
	return out, err
}

// maxRemoveDepth bounds the directory depth RemoveAll descends, which
// also ends the walk in a directory that contains itself.
const maxRemoveDepth = 256

// RemoveAll removes name and, for a directory, everything below it,
// depth first, each entry with the ordering of Remove and Rmdir. A name
// that does not exist is not an error. An error part-way leaves a
// consistent filesystem with part of the tree removed.
func (w *Writer) RemoveAll(name string) error {
	parent, base, in, err := w.child(name)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return w.removeTree(parent.ino, name, base, in.ino, 0)
}

// removeTree removes inode ino, named base in directory parentIno (name
// is its path, for messages), and what it holds.
func (w *Writer) removeTree(parentIno uint32, name, base string, ino uint32, depth int) error {
	in, err := w.readInode(ino)
	if err != nil {
		return err
	}
	if in.isDir() {
		if depth >= maxRemoveDepth {
			return corruptf(-1, name, "directories nested deeper than %d (a directory loop?)", maxRemoveDepth)
		}
		ents, err := w.entries(in)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := w.removeTree(ino, name+"/"+e.name, e.name, e.ino, depth+1); err != nil {
				return err
			}
		}
		if in, err = w.readInode(ino); err != nil { // its links and blocks changed
			return err
		}
	}
	parent, err := w.readInode(parentIno)
	if err != nil {
		return err
	}
	if in.isDir() {
		return w.rmdir(parent, name, base, in)
	}
	return w.removeFile(parent, base, in)
}

// Close writes the bitmaps, group descriptors and superblock counters.
func (w *Writer) Close() error {
	s := w.s
	s.dirsPerGroup = make([]uint32, s.oldGroups)
	if err := w.countDirs(); err != nil {
		return err
	}
	s.inoMap = map[uint32]uint32{}
	return s.writeMetadata()
}

// countDirs takes each group's directory count from its descriptor plus
// the directories this writer created.
func (w *Writer) countDirs() error {
	s := w.s
	ds := uint64(s.f.descSize)
	raw := make([]byte, s.oldDesc*uint64(s.bs))
	if err := s.f.readAt(raw, int64(s.f.firstData+1)*s.bs); err != nil {
		return err
	}
	for gi := range s.dirsPerGroup {
		d := raw[uint64(gi)*ds:]
		n := uint32(sle.Uint16(d[0x10:]))
		if ds >= 64 {
			n |= uint32(sle.Uint16(d[0x30:])) << 16
		}
		s.dirsPerGroup[gi] = uint32(int64(n) + w.dirs[gi])
	}
	return nil
}

package ext4

import (
	"encoding/binary"
	"fmt"
	"imgtool/fs/meta"
	"io"
	"sync"
)

// Limits of this reader, protecting it from hostile images.
const (
	maxGroups         = 1 << 24   // group descriptors kept in memory
	maxDirEntries     = 1 << 22   // entries of one directory
	maxSymlinkLen     = 1 << 16   // bytes of a symbolic link target
	maxSymlinkHops    = 40        // symbolic links followed while resolving a path
	maxXattrValue     = 1 << 16   // bytes of one extended attribute value
	maxDirChunk       = 256 << 10 // bytes of directory read at once
	dirCacheSize      = 8192      // resolved directory paths remembered
	maxIndexedEntries = 1 << 17   // directory entries kept in name indexes
)

type options struct {
	noVerify bool
}

// Option changes how New reads a filesystem.
type Option func(*options)

// WithoutVerify makes the reader ignore metadata checksum mismatches
// (metadata_csum and gdt_csum) instead of failing with ErrChecksum.
func WithoutVerify() Option { return func(o *options) { o.noVerify = true } }

// group is a decoded block group descriptor.
type group struct {
	blockBitmap  uint64
	inodeBitmap  uint64
	inodeTable   uint64
	freeBlocks   uint32
	freeInodes   uint32
	itableUnused uint32
	flags        uint16
	bbCsum       uint32
	ibCsum       uint32
}

// FS is an ext2, ext3 or ext4 filesystem opened for reading. It implements
// io/fs.FS, fs.ReadDirFS, fs.StatFS, fs.ReadFileFS, fs.ReadLinkFS and the
// fs/meta interfaces UsageFS, AllocationFS and Labeled. It is safe for
// concurrent use.
type FS struct {
	r    io.ReaderAt
	size int64
	sb   Superblock
	geometry
	seed      uint32
	metaCsum  bool
	gdtCsum   bool
	verify    bool
	hugeFile  bool
	extraTime bool
	groupList []group
	warnings  []string

	mu       sync.Mutex
	dirCache map[string][]uint32
	// name indexes of large directories, by inode; dirMapEntries counts
	// their entries.
	dirMaps       map[uint32]map[string]uint32
	dirMapEntries int

	hidden meta.HiddenLog // entries with unsafe names, for Hidden
}

// New opens the ext2/3/4 filesystem that r holds in its first size bytes.
// It reads the superblock and the group descriptors and verifies their
// checksums (unless WithoutVerify). Filesystems using features it cannot
// read correctly are refused with an error wrapping ErrUnsupported that
// names the feature.
func New(r io.ReaderAt, size int64, opts ...Option) (*FS, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	sb, raw, err := readSuperblock(r, size)
	if err != nil {
		return nil, err
	}
	if bad := sb.FeatureIncompat &^ supportedIncompat; bad != 0 {
		return nil, &FormatError{Block: -1, Off: SuperblockOffset, What: "superblock",
			Msg: fmt.Sprintf("incompatible feature %q not supported", bad.String()), Err: ErrUnsupported}
	}
	g, err := sb.geometry()
	if err != nil {
		return nil, err
	}
	f := &FS{r: r, size: size, sb: *sb, geometry: *g, verify: !o.noVerify,
		seed:     sb.csumSeed(),
		metaCsum: sb.FeatureROCompat&ROCompatMetadataCsum != 0,
		hugeFile: sb.FeatureROCompat&ROCompatHugeFile != 0,
		dirCache: make(map[string][]uint32),
		dirMaps:  make(map[uint32]map[string]uint32),
	}
	f.gdtCsum = !f.metaCsum && sb.FeatureROCompat&ROCompatGdtCsum != 0
	if f.verify {
		if err := verifySuperblockChecksum(sb, raw); err != nil {
			return nil, err
		}
	}
	if err := f.readGroups(); err != nil {
		return nil, err
	}
	if sb.FeatureIncompat&IncompatRecover != 0 {
		f.warnings = append(f.warnings, "journal needs recovery: recent changes may be missing")
	}
	if sb.State&StateErrors != 0 {
		f.warnings = append(f.warnings, "filesystem has errors: run e2fsck")
	}
	if o.noVerify && f.metaCsum {
		if err := verifySuperblockChecksum(sb, raw); err != nil {
			f.warnings = append(f.warnings, "superblock checksum mismatch ignored")
		}
	}
	return f, nil
}

// Warnings returns conditions worth telling the user that do not stop
// reading, such as a journal that needs recovery.
func (f *FS) Warnings() []string { return append([]string(nil), f.warnings...) }

// Superblock returns a copy of the primary superblock.
func (f *FS) Superblock() *Superblock {
	sb := f.sb
	return &sb
}

// Label returns the volume label.
func (f *FS) Label() string { return f.sb.Label() }

// UUID returns the filesystem UUID in lowercase RFC 4122 form.
func (f *FS) UUID() string { return f.sb.UUIDString() }

// Type returns "ext2", "ext3" or "ext4", decided as blkid does.
func (f *FS) Type() string { return f.sb.fsType() }

// hasSuper reports whether group g holds a superblock backup.
func (f *FS) hasSuper(g uint64) bool {
	if g == 0 {
		return true
	}
	if f.sb.FeatureCompat&CompatSparseSuper2 != 0 {
		return g == uint64(f.sb.BackupBgs[0]) || g == uint64(f.sb.BackupBgs[1])
	}
	if g <= 1 || f.sb.FeatureROCompat&ROCompatSparseSuper == 0 {
		return true
	}
	if g&1 == 0 {
		return false
	}
	for _, b := range []uint64{3, 5, 7} {
		p := b
		for p < g {
			p *= b
		}
		if p == g {
			return true
		}
	}
	return false
}

func (f *FS) groupFirstBlock(g uint64) uint64 { return f.firstData + g*f.bpg }

// descBlock returns the block holding group descriptor block i.
func (f *FS) descBlock(i uint64) uint64 {
	sbBlock := uint64(SuperblockOffset / f.blockSize) // 1 with 1 KiB blocks
	if f.sb.FeatureIncompat&IncompatMetaBG == 0 || i < uint64(f.sb.FirstMetaBg) {
		return sbBlock + 1 + i
	}
	bg := i * uint64(f.blockSize/f.descSize)
	blk := f.groupFirstBlock(bg)
	if f.hasSuper(bg) {
		blk++
	}
	if bg == 0 && f.blockSize == 1024 && f.firstData == 0 {
		blk++
	}
	return blk
}

func (f *FS) readGroups() error {
	if f.groups > maxGroups || int64(f.groups)*f.descSize > f.size {
		return &FormatError{Block: -1, Off: SuperblockOffset, What: "superblock",
			Msg: fmt.Sprintf("%d block groups do not fit the image", f.groups), Err: ErrTooLarge}
	}
	perBlock := uint64(f.blockSize / f.descSize)
	nblocks := (f.groups + perBlock - 1) / perBlock
	f.groupList = make([]group, f.groups)
	buf := make([]byte, f.blockSize)
	for i := uint64(0); i < nblocks; i++ {
		blk := f.descBlock(i)
		if err := f.readBlock(buf, blk); err != nil {
			return fmt.Errorf("ext4: group descriptors: %w", err)
		}
		for j := uint64(0); j < perBlock; j++ {
			gi := i*perBlock + j
			if gi >= f.groups {
				break
			}
			d := buf[int64(j)*f.descSize : int64(j+1)*f.descSize]
			if err := f.decodeGroup(gi, d, int64(blk)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *FS) decodeGroup(gi uint64, d []byte, blk int64) error {
	le := binary.LittleEndian
	g := group{
		blockBitmap:  uint64(le.Uint32(d[0:])),
		inodeBitmap:  uint64(le.Uint32(d[4:])),
		inodeTable:   uint64(le.Uint32(d[8:])),
		freeBlocks:   uint32(le.Uint16(d[0xC:])),
		freeInodes:   uint32(le.Uint16(d[0xE:])),
		flags:        le.Uint16(d[0x12:]),
		bbCsum:       uint32(le.Uint16(d[0x18:])),
		ibCsum:       uint32(le.Uint16(d[0x1A:])),
		itableUnused: uint32(le.Uint16(d[0x1C:])),
	}
	if f.descSize >= 64 {
		g.blockBitmap |= uint64(le.Uint32(d[0x20:])) << 32
		g.inodeBitmap |= uint64(le.Uint32(d[0x24:])) << 32
		g.inodeTable |= uint64(le.Uint32(d[0x28:])) << 32
		g.freeBlocks |= uint32(le.Uint16(d[0x2C:])) << 16
		g.freeInodes |= uint32(le.Uint16(d[0x2E:])) << 16
		g.itableUnused |= uint32(le.Uint16(d[0x32:])) << 16
		g.bbCsum |= uint32(le.Uint16(d[0x38:])) << 16
		g.ibCsum |= uint32(le.Uint16(d[0x3A:])) << 16
	}
	what := fmt.Sprintf("group %d descriptor", gi)
	if f.verify && (f.metaCsum || f.gdtCsum) {
		stored := le.Uint16(d[0x1E:])
		var sum uint16
		if f.metaCsum {
			c := crc32cU32(f.seed, uint32(gi))
			c = crc32c(c, d[:0x1E])
			c = crc32c(c, []byte{0, 0})
			c = crc32c(c, d[0x20:])
			sum = uint16(c)
		} else {
			c := crc16(0xFFFF, f.sb.UUID[:])
			var gb [4]byte
			le.PutUint32(gb[:], uint32(gi))
			c = crc16(c, gb[:])
			c = crc16(c, d[:0x1E])
			if f.descSize > 32 {
				c = crc16(c, d[0x20:])
			}
			sum = c
		}
		if sum != stored {
			return csumError(blk, what)
		}
	}
	itBlocks := (uint64(f.ipg)*uint64(f.inodeSize) + uint64(f.blockSize) - 1) / uint64(f.blockSize)
	if g.inodeTable == 0 || g.inodeTable+itBlocks > f.blocks || g.inodeTable+itBlocks < g.inodeTable {
		if g.flags&BgInodeUninit == 0 || !(f.metaCsum || f.gdtCsum) {
			return corruptf(blk, what, "inode table at block %d outside the filesystem", g.inodeTable)
		}
	}
	if g.itableUnused > f.ipg {
		g.itableUnused = f.ipg
	}
	f.groupList[gi] = g
	return nil
}

// readAt reads len(p) bytes at byte offset off of the filesystem; a short
// read is an error naming the block.
func (f *FS) readAt(p []byte, off int64) error {
	n, err := f.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return &FormatError{Block: off / f.blockSize, Off: off, Msg: fmt.Sprintf("reading %d bytes beyond the end of the image", len(p)), Err: err}
}

// checkBlocks fails unless blocks [blk, blk+n) lie inside the filesystem.
func (f *FS) checkBlocks(blk, n uint64, what string) error {
	if blk >= f.blocks || n > f.blocks-blk {
		return corruptf(int64(blk), what, "block range of %d blocks beyond the filesystem end (%d blocks)", n, f.blocks)
	}
	return nil
}

// readBlock reads one block into buf (len(buf) == block size).
func (f *FS) readBlock(buf []byte, blk uint64) error {
	if err := f.checkBlocks(blk, 1, "metadata"); err != nil {
		return err
	}
	return f.readAt(buf, int64(blk)*f.blockSize)
}

// inode is a decoded inode with its raw bytes (for in-inode xattrs and
// inline data).
type inode struct {
	Inode
	ino   uint32
	raw   []byte // s_inode_size bytes
	extra int    // usable bytes after the first 128
}

func (in *inode) mode() uint16 { return in.Mode & SIFMT }
func (in *inode) isDir() bool  { return in.mode() == SIFDIR }
func (in *inode) isReg() bool  { return in.mode() == SIFREG }
func (in *inode) isLink() bool { return in.mode() == SIFLNK }
func (in *inode) hasFlag(fl uint32) bool {
	return in.Flags&fl != 0
}

func (in *inode) size() int64 {
	s := uint64(in.SizeLo) | uint64(in.SizeHigh)<<32
	if s > 1<<62 {
		s = 1 << 62
	}
	return int64(s)
}

func (in *inode) fileACL() uint64 { return uint64(in.FileACLLo) | uint64(in.FileACLHigh)<<32 }

func (in *inode) hasExtra(off, n int) bool { return off+n <= GoodOldInodeSize+in.extra }

// inodeLoc returns the byte offset of an inode and whether its group marks
// it as never initialised.
func (f *FS) inodeLoc(ino uint32) (int64, bool, error) {
	if ino == 0 || ino > f.inodes {
		return 0, false, corruptf(-1, fmt.Sprintf("inode %d", ino), "inode number out of range 1..%d", f.inodes)
	}
	if f.ipg == 0 || uint64(ino-1)/uint64(f.ipg) >= uint64(len(f.groupList)) {
		return 0, false, corruptf(-1, fmt.Sprintf("inode %d", ino), "inode has no group")
	}
	gi := uint64(ino-1) / uint64(f.ipg)
	idx := uint64(ino-1) % uint64(f.ipg)
	g := &f.groupList[gi]
	uninit := (f.metaCsum || f.gdtCsum) && (g.flags&BgInodeUninit != 0 || idx >= uint64(f.ipg-g.itableUnused))
	off := int64(g.inodeTable)*f.blockSize + int64(idx)*f.inodeSize
	if !uninit && (g.inodeTable == 0 || g.inodeTable >= f.blocks) {
		return 0, false, corruptf(-1, fmt.Sprintf("inode %d", ino), "inode table of group %d outside the filesystem", gi)
	}
	return off, uninit, nil
}

// inodeBlock holds the last inode-table block read for one directory
// listing: the inodes of a directory's entries usually lie side by side,
// so a listing reads each table block once instead of each inode.
type inodeBlock struct {
	mu  sync.Mutex
	off int64 // of buf in the filesystem; -1 when empty
	buf []byte
}

// readInode reads and checks inode ino.
func (f *FS) readInode(ino uint32) (*inode, error) { return f.readInodeVia(ino, nil) }

// readInodeVia reads and checks inode ino, through ib when not nil.
func (f *FS) readInodeVia(ino uint32, ib *inodeBlock) (*inode, error) {
	off, uninit, err := f.inodeLoc(ino)
	if err != nil {
		return nil, err
	}
	in := &inode{ino: ino, raw: make([]byte, f.inodeSize)}
	if !uninit {
		if err := f.readInodeBytes(in.raw, off, ib); err != nil {
			return nil, fmt.Errorf("ext4: inode %d: %w", ino, err)
		}
	}
	blk := off / f.blockSize
	if f.inodeSize > GoodOldInodeSize {
		x := int(binary.LittleEndian.Uint16(in.raw[0x80:]))
		if x&3 != 0 || GoodOldInodeSize+int64(x) > f.inodeSize {
			return nil, corruptf(blk, fmt.Sprintf("inode %d", ino), "extra inode size %d out of range", x)
		}
		in.extra = x
	}
	var buf [inodeStructSize]byte
	copy(buf[:], in.raw[:min(len(in.raw), GoodOldInodeSize+in.extra)])
	in.Inode = decodeInode(buf[:])
	if f.verify && f.metaCsum && !uninit {
		if err := f.verifyInode(in); err != nil {
			return nil, csumError(blk, fmt.Sprintf("inode %d", ino))
		}
	}
	if in.Mode == 0 && in.LinksCount == 0 {
		return nil, corruptf(blk, fmt.Sprintf("inode %d", ino), "inode is not in use")
	}
	return in, nil
}

// readInodeBytes reads the inode at off into p: through ib's block when
// given (reading the whole block on a miss), else directly.
func (f *FS) readInodeBytes(p []byte, off int64, ib *inodeBlock) error {
	if ib == nil || f.blockSize%int64(len(p)) != 0 {
		return f.readAt(p, off)
	}
	bo := off - off%f.blockSize
	ib.mu.Lock()
	defer ib.mu.Unlock()
	if ib.off != bo {
		if ib.buf == nil {
			ib.buf = make([]byte, f.blockSize)
		}
		ib.off = -1
		if err := f.readAt(ib.buf, bo); err != nil {
			return f.readAt(p, off) // a block cut short by a damaged image: read the inode alone
		}
		ib.off = bo
	}
	copy(p, ib.buf[off-bo:])
	return nil
}

func (f *FS) inodeSeed(in *inode) uint32 {
	c := crc32cU32(f.seed, in.ino)
	return crc32cU32(c, in.Generation)
}

func (f *FS) verifyInode(in *inode) error {
	raw := in.raw
	hasHi := in.extra >= inodeOffChecksumHi+2-GoodOldInodeSize
	c := crc32c(f.inodeSeed(in), raw[:inodeOffChecksumLo])
	c = crc32c(c, []byte{0, 0})
	if hasHi {
		c = crc32c(c, raw[inodeOffChecksumLo+2:inodeOffChecksumHi])
		c = crc32c(c, []byte{0, 0})
		c = crc32c(c, raw[inodeOffChecksumHi+2:])
	} else {
		c = crc32c(c, raw[inodeOffChecksumLo+2:])
	}
	stored := uint32(in.ChecksumLo)
	if hasHi {
		stored |= uint32(in.ChecksumHi) << 16
	} else {
		c &= 0xFFFF
	}
	if c == stored {
		return nil
	}
	for _, b := range raw {
		if b != 0 {
			return ErrChecksum
		}
	}
	return nil
}

func decodeInode(b []byte) Inode {
	le := binary.LittleEndian
	var n Inode
	n.Mode = le.Uint16(b[0:])
	n.UIDLo = le.Uint16(b[2:])
	n.SizeLo = le.Uint32(b[4:])
	n.Atime = le.Uint32(b[8:])
	n.Ctime = le.Uint32(b[0xC:])
	n.Mtime = le.Uint32(b[0x10:])
	n.Dtime = le.Uint32(b[0x14:])
	n.GIDLo = le.Uint16(b[0x18:])
	n.LinksCount = le.Uint16(b[0x1A:])
	n.BlocksLo = le.Uint32(b[0x1C:])
	n.Flags = le.Uint32(b[0x20:])
	n.Version = le.Uint32(b[0x24:])
	for i := range n.Block {
		n.Block[i] = le.Uint32(b[0x28+4*i:])
	}
	n.Generation = le.Uint32(b[0x64:])
	n.FileACLLo = le.Uint32(b[0x68:])
	n.SizeHigh = le.Uint32(b[0x6C:])
	n.ObsoFaddr = le.Uint32(b[0x70:])
	n.BlocksHigh = le.Uint16(b[0x74:])
	n.FileACLHigh = le.Uint16(b[0x76:])
	n.UIDHigh = le.Uint16(b[0x78:])
	n.GIDHigh = le.Uint16(b[0x7A:])
	n.ChecksumLo = le.Uint16(b[0x7C:])
	n.OSD2Reserved = le.Uint16(b[0x7E:])
	n.ExtraIsize = le.Uint16(b[0x80:])
	n.ChecksumHi = le.Uint16(b[0x82:])
	n.CtimeExtra = le.Uint32(b[0x84:])
	n.MtimeExtra = le.Uint32(b[0x88:])
	n.AtimeExtra = le.Uint32(b[0x8C:])
	n.Crtime = le.Uint32(b[0x90:])
	n.CrtimeExtra = le.Uint32(b[0x94:])
	n.VersionHi = le.Uint32(b[0x98:])
	n.Projid = le.Uint32(b[0x9C:])
	return n
}

// cacheDir remembers the resolved chain of a directory path.
func (f *FS) cacheDir(name string, chain []uint32) {
	f.mu.Lock()
	if len(f.dirCache) >= dirCacheSize {
		clear(f.dirCache)
	}
	f.dirCache[name] = chain
	f.mu.Unlock()
}

func (f *FS) cachedDir(name string) []uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dirCache[name]
}

// Hidden describes the directory entries the reader hid because their names
// cannot be io/fs path elements (see meta.HiddenFS).
func (f *FS) Hidden() []string { return f.hidden.Hidden() }

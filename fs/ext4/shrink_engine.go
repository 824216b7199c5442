package ext4

import (
	"fmt"
	"io"
)

// maxCopyRun bounds one read/write of moved data (bytes).
const maxCopyRun = 8 << 20

// shrinker carries the state of one shrink run. With w == nil it is a dry
// run: it allocates and checks everything but writes nothing.
type shrinker struct {
	f    *FS // verified reader of the old filesystem
	fv   *FS // the same without checksum verification (final-state reads)
	r    io.ReaderAt
	size int64
	w    io.WriterAt

	bs                   int64
	oldBlocks, newBlocks uint64
	oldGroups, newGroups uint64
	itBlocks             uint64
	oldDesc, newDesc     uint64 // group descriptor blocks
	oldRsv, newRsv       uint64 // reserved GDT blocks
	backupBgs            [2]uint32

	used    bitset // blocks in use before the shrink (whole filesystem)
	final   bitset // blocks in use after the shrink (newBlocks bits)
	taken   bitset // blocks allocated by this shrink
	claimed bitset // blocks above the new end accounted for (offset newBlocks)
	cursor  uint64

	iused  bitset // inodes in use before the shrink (bit ino-1)
	ifinal bitset // inodes in use after the shrink (bit ino-1)

	groups       []group // descriptors as they will be written
	inoMap       map[uint32]uint32
	dirs         []uint32 // final numbers of directories
	dirsPerGroup []uint32
	xattrMoved   map[uint64]uint64
	touchedIno   []bool // groups whose inode bitmap or table changed

	plan ShrinkPlan

	// pending copy run
	cpSrc, cpDst, cpN uint64
	buf               []byte

	progress      ShrinkProgress
	progressTotal int64
	progressDone  int64
}

func newShrinker(r io.ReaderAt, size int64) (*shrinker, error) {
	sb, _, err := readSuperblock(r, size)
	if err != nil {
		return nil, err
	}
	if sb.FeatureIncompat&IncompatRecover != 0 {
		return nil, ErrNeedsRecovery
	}
	f, err := New(r, size)
	if err != nil {
		return nil, err
	}
	fv, err := New(r, size, WithoutVerify())
	if err != nil {
		return nil, err
	}
	if f.blocks > uint64(size/f.blockSize) {
		return nil, refusef("the filesystem (%d blocks of %d bytes) is larger than the %d bytes holding it; the image is truncated", f.blocks, f.blockSize, size)
	}
	s := &shrinker{f: f, fv: fv, r: r, size: size, bs: f.blockSize}
	if err := s.checkFeatures(); err != nil {
		return nil, err
	}
	return s, nil
}

// checkFeatures refuses filesystems the engine does not handle.
func (s *shrinker) checkFeatures() error {
	sb := &s.f.sb
	switch {
	case sb.State&StateErrors != 0:
		return refusef("the filesystem has errors recorded; run e2fsck -f first")
	case sb.State&StateValid == 0:
		return refusef("the filesystem was not cleanly unmounted; run e2fsck -f first")
	case sb.FeatureROCompat&ROCompatBigalloc != 0:
		return refusef("feature bigalloc is not supported")
	case sb.FeatureIncompat&IncompatEncrypt != 0:
		return refusef("feature encrypt is not supported")
	case sb.FeatureIncompat&IncompatMetaBG != 0:
		return refusef("feature meta_bg is not supported")
	case sb.FeatureIncompat&IncompatEAInode != 0:
		return refusef("feature ea_inode is not supported")
	case sb.FeatureIncompat&IncompatMMP != 0:
		return refusef("feature mmp is not supported")
	case sb.FeatureROCompat&ROCompatHasSnapshot != 0:
		return refusef("feature snapshot is not supported")
	case sb.FeatureROCompat&ROCompatOrphanPresent != 0 || sb.LastOrphan != 0:
		return refusef("the filesystem has orphan inodes; run e2fsck -f first")
	case sb.FeatureCompat&CompatHasJournal != 0 && sb.JournalDev != 0 && sb.JournalInum == 0:
		return refusef("external journals are not supported")
	}
	if bad := sb.FeatureIncompat &^ (supportedIncompat | IncompatCasefold); bad != 0 {
		return refusef("feature %s is not supported", bad)
	}
	return nil
}

func (s *shrinker) csum() bool { return s.f.metaCsum || s.f.gdtCsum }

// hasSuperNew is hasSuper for the shrunk filesystem.
func (s *shrinker) hasSuperNew(g uint64) bool {
	if g == 0 {
		return true
	}
	if s.f.sb.FeatureCompat&CompatSparseSuper2 != 0 {
		return g == uint64(s.backupBgs[0]) || g == uint64(s.backupBgs[1])
	}
	return s.f.hasSuper(g)
}

// superRegion returns the length of the superblock + GDT (+ reserved GDT)
// region at the start of group g, before or after the shrink.
func (s *shrinker) superRegion(g uint64, after bool) uint64 {
	if after {
		if !s.hasSuperNew(g) {
			return 0
		}
		return 1 + s.newDesc + s.newRsv
	}
	if !s.f.hasSuper(g) {
		return 0
	}
	return 1 + s.oldDesc + s.oldRsv
}

// geometry computes the new layout for newBlocks and checks it.
func (s *shrinker) setup(newBlocks uint64) error {
	f := s.f
	s.oldBlocks, s.oldGroups = f.blocks, f.groups
	if newBlocks > f.blocks {
		return refusef("%d blocks is larger than the filesystem (%d blocks); shrink cannot grow", newBlocks, f.blocks)
	}
	if newBlocks <= f.firstData+1 {
		return refusef("%d blocks is too small", newBlocks)
	}
	s.newBlocks = newBlocks
	s.newGroups = (newBlocks - f.firstData + f.bpg - 1) / f.bpg
	s.itBlocks = (uint64(f.ipg)*uint64(f.inodeSize) + uint64(s.bs) - 1) / uint64(s.bs)
	perBlock := uint64(s.bs / f.descSize)
	s.oldDesc = (s.oldGroups + perBlock - 1) / perBlock
	s.newDesc = (s.newGroups + perBlock - 1) / perBlock
	s.oldRsv = uint64(f.sb.ReservedGDTBlocks)
	s.newRsv = s.oldRsv
	if f.sb.FeatureCompat&CompatResizeInode != 0 && s.newDesc != s.oldDesc {
		s.newRsv = min(s.oldRsv+s.oldDesc-s.newDesc, uint64(s.bs/4))
	}
	s.backupBgs = f.sb.BackupBgs
	if f.sb.FeatureCompat&CompatSparseSuper2 != 0 {
		for i := range s.backupBgs {
			if uint64(s.backupBgs[i]) >= s.newGroups {
				s.backupBgs[i] = 0
			}
		}
	}
	last := s.newGroups - 1
	lastLen := newBlocks - f.groupFirstBlock(last)
	overhead := s.superRegion(last, true)
	if f.sb.FeatureIncompat&IncompatFlexBG == 0 {
		overhead += 2 + s.itBlocks
	}
	if last > 0 && lastLen < overhead+50 {
		lo := f.groupFirstBlock(last)
		return refusef("the last block group would hold only %d blocks, too few for its metadata; use at most %d or at least %d blocks",
			lastLen, lo, lo+overhead+50)
	}
	if last == 0 && lastLen < overhead+s.itBlocks+2+50 {
		return refusef("%d blocks is too small for the first group's metadata", newBlocks)
	}
	s.plan = ShrinkPlan{BlockSize: s.bs, OldBlocks: s.oldBlocks, NewBlocks: newBlocks,
		OldGroups: s.oldGroups, NewGroups: s.newGroups}
	return nil
}

// loadBitmaps reads every block and inode bitmap.
func (s *shrinker) loadBitmaps() error {
	f := s.f
	s.used = newBitset(s.oldBlocks)
	for b := uint64(0); b < f.firstData; b++ {
		s.used.set(b)
	}
	buf := make([]byte, s.bs)
	for gi := uint64(0); gi < s.oldGroups; gi++ {
		err := f.groupBitmap(gi, buf, func(blk, n uint64) {
			for b := blk; b < blk+n && b < s.oldBlocks; b++ {
				s.used.set(b)
			}
		})
		if err != nil {
			return err
		}
		first := f.groupFirstBlock(gi)
		s.used.setBytes(first, buf, min(f.bpg, s.oldBlocks-first))
	}
	s.iused = newBitset(uint64(f.inodes))
	for gi := uint64(0); gi < s.oldGroups; gi++ {
		g := &f.groupList[gi]
		if s.csum() && g.flags&BgInodeUninit != 0 {
			continue
		}
		if err := f.readBlock(buf, g.inodeBitmap); err != nil {
			return fmt.Errorf("ext4: group %d inode bitmap: %w", gi, err)
		}
		s.iused.setBytes(gi*uint64(f.ipg), buf, uint64(f.ipg))
	}
	return nil
}

// run performs the shrink to newBlocks, writing through w, or simulates
// it when w is nil.
func (s *shrinker) run(w io.WriterAt, newBlocks uint64) error {
	s.w = w
	if err := s.setup(newBlocks); err != nil {
		return err
	}
	if newBlocks == s.oldBlocks {
		return nil
	}
	if err := s.loadBitmaps(); err != nil {
		return err
	}
	s.final = newBitset(s.newBlocks)
	copy(s.final, s.used[:len(s.final)])
	if r := s.newBlocks % 64; r != 0 {
		s.final[len(s.final)-1] &= 1<<r - 1
	}
	s.taken = newBitset(s.newBlocks)
	s.claimed = newBitset(s.oldBlocks - s.newBlocks)
	s.cursor = s.f.firstData
	s.groups = append([]group(nil), s.f.groupList...)
	s.inoMap = make(map[uint32]uint32)
	s.xattrMoved = make(map[uint64]uint64)
	s.dirsPerGroup = make([]uint32, s.newGroups)
	s.touchedIno = make([]bool, s.newGroups)
	s.buf = make([]byte, maxCopyRun)

	if err := s.groupMetadata(); err != nil {
		return err
	}
	if err := s.assignInodes(); err != nil {
		return err
	}
	if err := s.processInodes(); err != nil {
		return err
	}
	if err := s.resizeInode(); err != nil {
		return err
	}
	if err := s.flush(); err != nil {
		return err
	}
	if err := s.checkAccounted(); err != nil {
		return err
	}
	if w == nil {
		return nil
	}
	if len(s.inoMap) > 0 {
		if err := s.rewriteDirs(); err != nil {
			return err
		}
	}
	return s.writeMetadata()
}

// claim records that blocks [blk, blk+n) above the new end are accounted
// for; a block claimed twice is an error.
func (s *shrinker) claim(blk, n uint64, what string) error {
	if blk+n > s.oldBlocks || blk+n < blk {
		return corruptf(int64(blk), what, "block range of %d blocks beyond the filesystem end", n)
	}
	for b := max(blk, s.newBlocks); b < blk+n; b++ {
		i := b - s.newBlocks
		if s.claimed.get(i) {
			return corruptf(int64(b), what, "block is used twice; run e2fsck -f")
		}
		s.claimed.set(i)
	}
	return nil
}

// checkAccounted verifies that every in-use block above the new end was
// moved or belongs to a group that disappears.
func (s *shrinker) checkAccounted() error {
	var stray uint64
	first := uint64(0)
	for b := s.newBlocks; b < s.oldBlocks; b++ {
		if s.used.get(b) && !s.claimed.get(b-s.newBlocks) {
			if stray == 0 {
				first = b
			}
			stray++
		}
	}
	if stray > 0 {
		return refusef("%d blocks above the new end (the first is block %d) are marked in use but belong to no file; run e2fsck -f first", stray, first)
	}
	return nil
}

// alloc returns a run of up to n blocks free before the shrink and not yet
// allocated, below the new end.
func (s *shrinker) alloc(n uint64) (uint64, uint64, error) {
	for pass := 0; pass < 2; pass++ {
		b := s.cursor
		for b < s.newBlocks {
			if s.used.get(b) || s.taken.get(b) {
				if b%64 == 0 && (s.used[b/64]|s.taken[b/64]) == ^uint64(0) {
					b += 64
					continue
				}
				b++
				continue
			}
			e := b
			for e < s.newBlocks && e-b < n && !s.used.get(e) && !s.taken.get(e) {
				e++
			}
			for x := b; x < e; x++ {
				s.taken.set(x)
				s.final.set(x)
			}
			s.cursor = e
			return b, e - b, nil
		}
		s.cursor = s.f.firstData
	}
	return 0, 0, spacef("not enough free space below block %d to hold the data above it; choose a larger size (see MinSize)", s.newBlocks)
}

// allocContig returns n contiguous free blocks below the new end.
func (s *shrinker) allocContig(n uint64) (uint64, error) {
	b := s.f.firstData
	for b+n <= s.newBlocks {
		e := b
		for e < b+n && !s.used.get(e) && !s.taken.get(e) {
			e++
		}
		if e == b+n {
			for x := b; x < e; x++ {
				s.taken.set(x)
				s.final.set(x)
			}
			return b, nil
		}
		b = e + 1
	}
	return 0, spacef("no run of %d free blocks below block %d for an inode table; choose a larger size", n, s.newBlocks)
}

func (s *shrinker) free(blk, n uint64) {
	for b := blk; b < blk+n && b < s.newBlocks; b++ {
		s.final.clr(b)
	}
}

// copyBlocks schedules a copy of n blocks from src to dst, merging with
// the pending run when contiguous.
func (s *shrinker) copyBlocks(src, dst, n uint64) error {
	s.plan.MoveBlocks += n
	if s.w == nil {
		return nil
	}
	if s.cpN > 0 && s.cpSrc+s.cpN == src && s.cpDst+s.cpN == dst && int64(s.cpN+n)*s.bs <= maxCopyRun {
		s.cpN += n
		return nil
	}
	if err := s.flush(); err != nil {
		return err
	}
	s.cpSrc, s.cpDst, s.cpN = src, dst, n
	return nil
}

// flush performs the pending copy.
func (s *shrinker) flush() error {
	for s.cpN > 0 {
		n := min(s.cpN, uint64(maxCopyRun/s.bs))
		b := s.buf[:int64(n)*s.bs]
		if err := s.f.readAt(b, int64(s.cpSrc)*s.bs); err != nil {
			return err
		}
		if err := s.writeAt(b, s.cpDst); err != nil {
			return err
		}
		s.cpSrc += n
		s.cpDst += n
		s.cpN -= n
		s.progressDone += int64(n)
		if s.progress != nil {
			s.progress.Update(s.progressDone, s.progressTotal)
		}
	}
	return nil
}

// writeAt writes p at block blk (nothing in dry runs).
func (s *shrinker) writeAt(p []byte, blk uint64) error {
	return s.writeOff(p, int64(blk)*s.bs)
}

func (s *shrinker) writeOff(p []byte, off int64) error {
	if s.w == nil {
		return nil
	}
	n, err := s.w.WriteAt(p, off)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("ext4: writing block %d: %w", off/s.bs, err)
	}
	return nil
}

// groupMetadata frees the metadata of groups that disappear, shrinks the
// GDT regions of the groups that remain, and relocates bitmaps and inode
// tables of remaining groups that lie above the new end.
func (s *shrinker) groupMetadata() error {
	f := s.f
	mark := func(blk, n uint64) error {
		s.free(blk, n)
		if blk+n > s.newBlocks {
			lo := max(blk, s.newBlocks)
			return s.claim(lo, blk+n-lo, "group metadata")
		}
		return nil
	}
	for gi := uint64(0); gi < s.oldGroups; gi++ {
		g := &f.groupList[gi]
		first := f.groupFirstBlock(gi)
		if gi >= s.newGroups {
			if n := s.superRegion(gi, false); n > 0 {
				if err := mark(first, min(n, s.oldBlocks-first)); err != nil {
					return err
				}
			}
			for _, m := range [][2]uint64{{g.blockBitmap, 1}, {g.inodeBitmap, 1}, {g.inodeTable, s.itBlocks}} {
				if m[0] != 0 && m[0]+m[1] <= s.oldBlocks {
					if err := mark(m[0], m[1]); err != nil {
						return err
					}
				}
			}
			continue
		}
		if o, n := s.superRegion(gi, false), s.superRegion(gi, true); n < o {
			s.free(first+n, o-n)
		}
		ng := &s.groups[gi]
		if g.blockBitmap >= s.newBlocks {
			if err := s.claim(g.blockBitmap, 1, "block bitmap"); err != nil {
				return err
			}
			b, err := s.allocContig(1)
			if err != nil {
				return err
			}
			ng.blockBitmap = b
			s.plan.MetadataBlocks++
		}
		if g.inodeBitmap >= s.newBlocks {
			if err := s.claim(g.inodeBitmap, 1, "inode bitmap"); err != nil {
				return err
			}
			b, err := s.allocContig(1)
			if err != nil {
				return err
			}
			ng.inodeBitmap = b
			s.plan.MetadataBlocks++
		}
		if g.inodeTable+s.itBlocks > s.newBlocks {
			if err := s.claim(g.inodeTable, s.itBlocks, "inode table"); err != nil {
				return err
			}
			b, err := s.allocContig(s.itBlocks)
			if err != nil {
				return err
			}
			s.free(g.inodeTable, s.itBlocks)
			ng.inodeTable = b
			s.plan.MetadataBlocks += s.itBlocks
			if !(s.csum() && g.flags&BgInodeUninit != 0) {
				if err := s.copyBlocks(g.inodeTable, b, s.itBlocks); err != nil {
					return err
				}
				if err := s.flush(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// assignInodes gives every used inode of a vanishing group the number of
// a free inode in a remaining group.
func (s *shrinker) assignInodes() error {
	f := s.f
	ipg := uint64(f.ipg)
	newInodes := s.newGroups * ipg
	s.ifinal = newBitset(newInodes)
	copy(s.ifinal, s.iused[:len(s.ifinal)])
	if r := newInodes % 64; r != 0 {
		s.ifinal[len(s.ifinal)-1] &= 1<<r - 1
	}
	next := uint64(f.firstIno) // bit index of the next candidate (ino-1)
	for i := newInodes; i < uint64(f.inodes); i++ {
		if !s.iused.get(i) {
			continue
		}
		for next < newInodes && s.ifinal.get(next) {
			next++
		}
		if next >= newInodes {
			return spacef("the %d remaining groups have too few free inodes for the inodes of the groups that disappear; choose a larger size", s.newGroups)
		}
		s.ifinal.set(next)
		s.inoMap[uint32(i+1)] = uint32(next + 1)
		gi := next / ipg
		s.touchedIno[gi] = true
		g := &s.groups[gi]
		idx := uint32(next % ipg)
		if s.csum() {
			if g.flags&BgInodeUninit != 0 {
				g.flags &^= BgInodeUninit
				g.itableUnused = f.ipg
			}
			if used := f.ipg - g.itableUnused; idx >= used {
				g.itableUnused = f.ipg - idx - 1
			}
		}
		s.plan.MoveInodes++
	}
	return nil
}

// inodeOff returns the byte offset of inode ino after the shrink.
func (s *shrinker) inodeOff(ino uint32) int64 {
	gi := uint64(ino-1) / uint64(s.f.ipg)
	idx := uint64(ino-1) % uint64(s.f.ipg)
	return int64(s.groups[gi].inodeTable)*s.bs + int64(idx)*s.f.inodeSize
}

// setInodeCsum stores the metadata_csum checksum of an inode numbered ino.
func (s *shrinker) setInodeCsum(raw []byte, ino uint32) {
	if !s.f.metaCsum {
		return
	}
	extra := 0
	if len(raw) > GoodOldInodeSize {
		extra = int(sle.Uint16(raw[0x80:]))
	}
	hasHi := extra >= inodeOffChecksumHi+2-GoodOldInodeSize
	sle.PutUint16(raw[inodeOffChecksumLo:], 0)
	if hasHi {
		sle.PutUint16(raw[inodeOffChecksumHi:], 0)
	}
	c := crc32c(s.inoSeed(ino, sle.Uint32(raw[0x64:])), raw)
	sle.PutUint16(raw[inodeOffChecksumLo:], uint16(c))
	if hasHi {
		sle.PutUint16(raw[inodeOffChecksumHi:], uint16(c>>16))
	}
}

func (s *shrinker) inoSeed(ino, gen uint32) uint32 {
	return crc32cU32(crc32cU32(s.f.seed, ino), gen)
}

// processInodes walks every used inode, moves its blocks that lie above
// the new end and writes it at its final place.
func (s *shrinker) processInodes() error {
	f := s.f
	ipg := uint64(f.ipg)
	isz := uint64(f.inodeSize)
	chunk := max(1, min(ipg, uint64(1<<20)/isz))
	buf := make([]byte, chunk*isz)
	for gi := uint64(0); gi < s.oldGroups; gi++ {
		g := &f.groupList[gi]
		n := ipg
		if s.csum() {
			if g.flags&BgInodeUninit != 0 {
				continue
			}
			n = ipg - uint64(g.itableUnused)
		}
		for start := uint64(0); start < n; start += chunk {
			cnt := min(chunk, n-start)
			base := gi*ipg + start
			if s.iused.count(base, base+cnt) == 0 {
				continue
			}
			b := buf[:cnt*isz]
			if err := f.readAt(b, int64(g.inodeTable)*s.bs+int64(start*isz)); err != nil {
				return fmt.Errorf("ext4: group %d inode table: %w", gi, err)
			}
			for i := uint64(0); i < cnt; i++ {
				if !s.iused.get(base + i) {
					continue
				}
				raw := b[i*isz : (i+1)*isz]
				if err := s.processInode(uint32(base+i+1), raw); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// rawInode decodes raw inode bytes for the reader's helpers.
func (s *shrinker) rawInode(ino uint32, raw []byte) *inode {
	in := &inode{ino: ino, raw: raw}
	if len(raw) > GoodOldInodeSize {
		x := int(sle.Uint16(raw[0x80:]))
		if x&3 == 0 && GoodOldInodeSize+x <= len(raw) {
			in.extra = x
		}
	}
	var b [inodeStructSize]byte
	copy(b[:], raw[:min(len(raw), GoodOldInodeSize+in.extra)])
	in.Inode = decodeInode(b[:])
	return in
}

func (s *shrinker) processInode(ino uint32, raw []byte) error {
	f := s.f
	if ino == 7 && f.sb.FeatureCompat&CompatResizeInode != 0 {
		return nil // rebuilt by resizeInode
	}
	newIno, moved := ino, false
	if m, ok := s.inoMap[ino]; ok {
		newIno, moved = m, true
	}
	in := s.rawInode(ino, raw)
	what := fmt.Sprintf("inode %d", ino)
	if ino == 1 {
		if in.BlocksLo != 0 {
			return refusef("the filesystem has a bad-blocks list; not supported")
		}
		return nil
	}
	changed := moved
	if in.Mode != 0 || in.LinksCount != 0 || ino < f.firstIno {
		hasBlocks := !in.hasFlag(InodeInlineDataFl) && !f.isFastSymlink(in)
		switch in.mode() {
		case SIFCHR, SIFBLK, SIFIFO, SIFSOCK:
			hasBlocks = false
		}
		if in.Mode == 0 && in.BlocksLo == 0 {
			hasBlocks = false
		}
		if hasBlocks {
			var ch bool
			var err error
			if in.hasFlag(InodeExtentsFl) {
				ch, err = s.moveExtents(in, newIno, moved)
			} else {
				ch, err = s.moveIndirect(in)
			}
			if err != nil {
				return fmt.Errorf("ext4: %s: %w", what, err)
			}
			changed = changed || ch
		}
		if acl := in.fileACL(); acl != 0 {
			nacl, err := s.moveXattr(acl, what)
			if err != nil {
				return err
			}
			if nacl != acl {
				sle.PutUint32(raw[0x68:], uint32(nacl))
				sle.PutUint16(raw[0x76:], uint16(nacl>>32))
				changed = true
			}
		}
		if in.isDir() {
			s.dirs = append(s.dirs, newIno)
			s.dirsPerGroup[uint64(newIno-1)/uint64(f.ipg)]++
		}
	}
	if !changed {
		return nil
	}
	s.setInodeCsum(raw, newIno)
	return s.writeOff(raw, s.inodeOff(newIno))
}

// moveXattr moves an xattr block above the new end (once, however many
// inodes share it) and returns its new number.
func (s *shrinker) moveXattr(acl uint64, what string) (uint64, error) {
	if acl >= s.oldBlocks {
		return 0, corruptf(int64(acl), what, "xattr block beyond the filesystem end")
	}
	if acl < s.newBlocks {
		return acl, nil
	}
	if d, ok := s.xattrMoved[acl]; ok {
		return d, nil
	}
	if err := s.claim(acl, 1, what+" xattr block"); err != nil {
		return 0, err
	}
	dst, _, err := s.alloc(1)
	if err != nil {
		return 0, err
	}
	s.xattrMoved[acl] = dst
	s.plan.MoveBlocks++
	if s.w == nil {
		return dst, nil
	}
	b := make([]byte, s.bs)
	if err := s.f.readBlock(b, acl); err != nil {
		return 0, err
	}
	if s.f.metaCsum {
		sle.PutUint32(b[0x10:], xattrBlockCsum(s.f.seed, dst, b))
	}
	return dst, s.writeAt(b, dst)
}

// moveIndirect moves the blocks of a block-mapped (ext2/ext3) inode that
// lie above the new end, rewriting the pointers.
func (s *shrinker) moveIndirect(in *inode) (bool, error) {
	changed := false
	for i := 0; i < NBlocks; i++ {
		p := sle.Uint32(in.raw[0x28+4*i:])
		if p == 0 {
			continue
		}
		level := max(0, i-NDirBlocks+1)
		np, err := s.remapInd(uint64(p), level, 0)
		if err != nil {
			return false, err
		}
		if np != uint64(p) {
			sle.PutUint32(in.raw[0x28+4*i:], uint32(np))
			changed = true
		}
	}
	return changed, nil
}

// remapInd moves block p (data at level 0, an indirect block above) and,
// for indirect blocks, everything below it. It returns p's new number.
func (s *shrinker) remapInd(p uint64, level, depth int) (uint64, error) {
	if p >= s.oldBlocks {
		return 0, corruptf(int64(p), "block map", "pointer beyond the filesystem end")
	}
	if level == 0 {
		if p < s.newBlocks {
			return p, nil
		}
		if err := s.claim(p, 1, "file data"); err != nil {
			return 0, err
		}
		dst, _, err := s.alloc(1)
		if err != nil {
			return 0, err
		}
		return dst, s.copyBlocks(p, dst, 1)
	}
	if depth > 3 {
		return 0, corruptf(int64(p), "block map", "too deep")
	}
	b := make([]byte, s.bs)
	if err := s.f.readBlock(b, p); err != nil {
		return 0, err
	}
	dirty := false
	for j := int64(0); j < s.bs; j += 4 {
		c := sle.Uint32(b[j:])
		if c == 0 {
			continue
		}
		nc, err := s.remapInd(uint64(c), level-1, depth+1)
		if err != nil {
			return 0, err
		}
		if nc != uint64(c) {
			sle.PutUint32(b[j:], uint32(nc))
			dirty = true
		}
	}
	if p >= s.newBlocks {
		if err := s.claim(p, 1, "indirect block"); err != nil {
			return 0, err
		}
		dst, _, err := s.alloc(1)
		if err != nil {
			return 0, err
		}
		s.plan.MoveBlocks++
		return dst, s.writeAt(b, dst)
	}
	if dirty {
		return p, s.writeAt(b, p)
	}
	return p, nil
}

package ext4

import (
	"encoding/binary"
	"fmt"
	"time"
)

// orphanNow is the clock used for the i_dtime of released inodes.
var orphanNow = func() uint32 { return uint32(time.Now().Unix()) }

// maxOrphanBlocks bounds the block ranges collected for one run of
// ReleaseOrphans.
const maxOrphanRanges = 1 << 22

// ReleaseOrphans processes the orphan list (s_last_orphan, chained through
// i_dtime) as e2fsck does before checking: inodes without links are
// released (their blocks — data, extent or indirect blocks, and their
// xattr block unless another inode shares it — are freed, the inode is
// freed and stamped with a deletion time) and inodes with links (a
// truncate in progress) are truncated to i_size. Bitmaps, their
// checksums, group descriptors and superblock counters are updated and the
// list is emptied. It returns how many inodes were released.
//
// Everything is read and checked before anything is written: a list that
// points outside the inode table, a block of an orphan already marked free
// or shared with another orphan, or a truncate it cannot do (an extent
// tree deeper than the inode, indirect blocks past i_size) fails with an
// error that names the inode and leaves the image as it was. It refuses the
// orphan_file feature when the orphan file holds entries, and bigalloc,
// ea_inode and quota filesystems with orphans.
func ReleaseOrphans(rw ReadWriterAt, size int64) (released int, err error) {
	f, err := New(rw, size, WithoutVerify())
	if err != nil {
		return 0, err
	}
	sb := &f.sb
	if sb.FeatureROCompat&ROCompatOrphanPresent != 0 {
		return 0, fmt.Errorf("ext4: the orphan file (orphan_file feature, inode %d) holds orphans; release them with e2fsck -f: %w",
			sb.OrphanFileInum, ErrUnsupported)
	}
	if sb.FeatureIncompat&IncompatRecover != 0 {
		return 0, fmt.Errorf("ext4: the journal needs recovery; replay it (Replay) before releasing orphans: %w", ErrJournal)
	}
	if sb.LastOrphan == 0 {
		return 0, nil
	}
	for _, bad := range []struct {
		on   bool
		name string
	}{
		{f.clusterRatio > 1, "bigalloc"},
		{sb.FeatureIncompat&IncompatEAInode != 0, "ea_inode"},
		{sb.FeatureROCompat&ROCompatQuota != 0, "quota"},
	} {
		if bad.on {
			return 0, fmt.Errorf("ext4: releasing orphan inodes on a %s filesystem is not supported; run e2fsck -f: %w", bad.name, ErrUnsupported)
		}
	}
	v := &orphanVol{f: f, rw: rw, bbm: map[uint64][]byte{}, ibm: map[uint64][]byte{}, dirty: map[uint64]bool{},
		freeing: map[uint64]bool{}, dirDec: map[uint64]uint32{}}
	// Collect the list.
	var list []*inode
	seen := map[uint32]bool{}
	for ino := sb.LastOrphan; ino != 0; {
		if ino < f.firstIno || ino > f.inodes {
			return 0, orphanErr(ino, "the orphan list points to inode %d outside %d..%d", ino, f.firstIno, f.inodes)
		}
		if seen[ino] {
			break // a cycle: every inode on it is already collected
		}
		seen[ino] = true
		in, err := f.readInode(ino)
		if err != nil {
			return 0, fmt.Errorf("ext4: orphan inode %d: %w; run e2fsck -f", ino, err)
		}
		list = append(list, in)
		ino = in.Dtime
	}
	// Plan every change.
	plans := make([]orphanPlan, 0, len(list))
	for _, in := range list {
		p, err := v.plan(in)
		if err != nil {
			return 0, err
		}
		plans = append(plans, p)
	}
	// Apply.
	for i := range plans {
		if err := v.apply(&plans[i]); err != nil {
			return released, err
		}
		if plans[i].release {
			released++
		}
	}
	if err := v.flush(); err != nil {
		return released, err
	}
	nsb, _, err := repairReadSuper(rw)
	if err != nil {
		return released, err
	}
	nsb.LastOrphan = 0
	repairSetFreeBlocks(nsb, repairFreeBlocks(nsb)+v.freedBlocks)
	nsb.FreeInodesCount += uint32(v.freedInodes)
	return released, repairWriteSuper(rw, nsb)
}

func orphanErr(ino uint32, format string, args ...any) error {
	return &FormatError{Block: -1, Off: -1, What: fmt.Sprintf("orphan inode %d", ino),
		Msg: fmt.Sprintf(format, args...) + "; run e2fsck -f", Err: ErrCorrupt}
}

// orphanPlan is what happens to one orphan.
type orphanPlan struct {
	in        *inode
	release   bool        // free the inode (no links) or truncate it
	free      [][2]uint64 // block ranges to free
	xattrDec  uint64      // xattr block whose refcount drops (not freed)
	newBlock  []byte      // new i_block (60 bytes) for a truncate, nil to keep
	freedHere uint64
}

type orphanVol struct {
	f           *FS
	rw          ReadWriterAt
	bbm, ibm    map[uint64][]byte // loaded bitmaps by group
	dirty       map[uint64]bool   // groups whose descriptor changed
	dirDec      map[uint64]uint32 // directories released per group
	freeing     map[uint64]bool   // blocks planned to be freed
	nranges     int
	freedBlocks uint64
	freedInodes uint64
}

func (v *orphanVol) blockBitmap(gi uint64) ([]byte, error) {
	if b, ok := v.bbm[gi]; ok {
		return b, nil
	}
	f := v.f
	g := &f.groupList[gi]
	if (f.metaCsum || f.gdtCsum) && g.flags&BgBlockUninit != 0 {
		return nil, corruptf(-1, fmt.Sprintf("group %d", gi), "an orphan's block lies in a group whose block bitmap is uninitialised; run e2fsck -f")
	}
	b := make([]byte, f.blockSize)
	if err := f.readBlock(b, g.blockBitmap); err != nil {
		return nil, err
	}
	v.bbm[gi] = b
	return b, nil
}

// addFree plans to free blocks [blk, blk+n) of inode ino, checking that
// they are in range, marked used and not already planned.
func (v *orphanVol) addFree(p *orphanPlan, blk, n uint64) error {
	f := v.f
	ino := p.in.ino
	if n == 0 {
		return nil
	}
	if blk < f.firstData || blk >= f.blocks || n > f.blocks-blk {
		return orphanErr(ino, "blocks %d..%d beyond the filesystem", blk, blk+n-1)
	}
	v.nranges++
	if v.nranges > maxOrphanRanges || uint64(len(v.freeing))+n > 4*f.blocks/3+1<<20 {
		return orphanErr(ino, "too many blocks to free")
	}
	for b := blk; b < blk+n; b++ {
		if v.freeing[b] {
			return orphanErr(ino, "block %d is claimed twice", b)
		}
		gi := (b - f.firstData) / f.bpg
		bm, err := v.blockBitmap(gi)
		if err != nil {
			return err
		}
		i := (b - f.firstData) % f.bpg
		if bm[i/8]&(1<<(i%8)) == 0 {
			return orphanErr(ino, "block %d (group %d) is already marked free", b, gi)
		}
		v.freeing[b] = true
	}
	p.free = append(p.free, [2]uint64{blk, n})
	p.freedHere += n
	return nil
}

func (v *orphanVol) plan(in *inode) (orphanPlan, error) {
	f := v.f
	p := orphanPlan{in: in, release: in.LinksCount == 0}
	owns := f.inodeOwnsBlocks(in)
	if p.release {
		if acl := in.fileACL(); acl != 0 {
			if acl >= f.blocks {
				return p, orphanErr(in.ino, "xattr block %d beyond the filesystem", acl)
			}
			buf := make([]byte, f.blockSize)
			if err := f.readBlock(buf, acl); err != nil {
				return p, err
			}
			if binary.LittleEndian.Uint32(buf) != XattrMagic {
				return p, orphanErr(in.ino, "xattr block %d has no xattr magic", acl)
			}
			if binary.LittleEndian.Uint32(buf[4:]) > 1 {
				p.xattrDec = acl
			} else if err := v.addFree(&p, acl, 1); err != nil {
				return p, err
			}
		}
		if !owns {
			return p, nil
		}
		if in.hasFlag(InodeExtentsFl) {
			return p, v.planExtents(&p, in.raw[0x28:0x28+60], -1, 0)
		}
		for i := range NDirBlocks {
			if b := uint64(in.Block[i]); b != 0 {
				if err := v.addFree(&p, b, 1); err != nil {
					return p, err
				}
			}
		}
		for level := 1; level <= 3; level++ {
			if b := uint64(in.Block[NDirBlocks+level-1]); b != 0 {
				if err := v.planIndirect(&p, b, level); err != nil {
					return p, err
				}
			}
		}
		return p, nil
	}
	// Truncate to i_size.
	if !owns {
		return p, nil
	}
	keep := (uint64(in.size()) + uint64(f.blockSize) - 1) / uint64(f.blockSize)
	nb := make([]byte, 60)
	copy(nb, in.raw[0x28:0x28+60])
	if in.hasFlag(InodeExtentsFl) {
		h := parseExtentHeader(nb)
		if h.Magic != ExtentMagic || h.Entries > 4 {
			return p, orphanErr(in.ino, "bad extent header in the inode")
		}
		if h.Depth != 0 {
			if err := v.checkNothingBeyond(in, keep); err != nil {
				return p, err
			}
			return p, nil
		}
		le := binary.LittleEndian
		out := 0
		changed := false
		for i := range int(h.Entries) {
			e := nb[12+12*i : 24+12*i]
			lblk := uint64(le.Uint32(e))
			n := uint64(le.Uint16(e[4:]))
			uninit := n > maxInitExtentLen
			if uninit {
				n -= maxInitExtentLen
			}
			start := uint64(le.Uint32(e[8:])) | uint64(le.Uint16(e[6:]))<<32
			switch {
			case lblk >= keep:
				if err := v.addFree(&p, start, n); err != nil {
					return p, err
				}
				changed = true
				continue
			case lblk+n > keep:
				cut := lblk + n - keep
				if err := v.addFree(&p, start+(n-cut), cut); err != nil {
					return p, err
				}
				n -= cut
				changed = true
			}
			ln := uint16(n)
			if uninit {
				ln += maxInitExtentLen
			}
			le.PutUint16(e[4:], ln)
			copy(nb[12+12*out:], e)
			out++
		}
		if changed {
			clear(nb[12+12*out:])
			le.PutUint16(nb[2:], uint16(out))
			p.newBlock = nb
		}
		return p, nil
	}
	for level := 1; level <= 3; level++ {
		if in.Block[NDirBlocks+level-1] != 0 {
			if err := v.checkNothingBeyond(in, keep); err != nil {
				return p, err
			}
			return p, nil
		}
	}
	le := binary.LittleEndian
	for i := keep; i < NDirBlocks; i++ {
		if b := uint64(in.Block[i]); b != 0 {
			if err := v.addFree(&p, b, 1); err != nil {
				return p, err
			}
			le.PutUint32(nb[4*i:], 0)
			p.newBlock = nb
		}
	}
	return p, nil
}

// checkNothingBeyond accepts a truncate-in-progress orphan whose mapping
// this code cannot edit only if nothing is mapped past i_size.
func (v *orphanVol) checkNothingBeyond(in *inode, keep uint64) error {
	m := newMapper(v.f, in)
	for l, steps := keep, 0; l < maxLogical && steps < 1<<20; steps++ {
		r, err := m.lookup(l)
		if err != nil {
			return fmt.Errorf("ext4: orphan inode %d: %w; run e2fsck -f", in.ino, err)
		}
		if !r.zero {
			return orphanErr(in.ino, "truncating an inode with blocks past i_size in an extent tree of depth > 0 or indirect blocks is not supported")
		}
		l += r.n
	}
	return nil
}

func (v *orphanVol) planExtents(p *orphanPlan, node []byte, blk int64, level int) error {
	h := parseExtentHeader(node)
	if h.Magic != ExtentMagic || int(h.Entries) > (len(node)-12)/12 || h.Depth > MaxExtentDepth || level > MaxExtentDepth {
		return orphanErr(p.in.ino, "bad extent node at block %d", blk)
	}
	le := binary.LittleEndian
	for i := range int(h.Entries) {
		e := node[12+12*i:]
		if h.Depth == 0 {
			n := uint64(le.Uint16(e[4:]))
			if n > maxInitExtentLen {
				n -= maxInitExtentLen
			}
			if err := v.addFree(p, uint64(le.Uint32(e[8:]))|uint64(le.Uint16(e[6:]))<<32, n); err != nil {
				return err
			}
			continue
		}
		child := uint64(le.Uint32(e[4:])) | uint64(le.Uint16(e[8:]))<<32
		if err := v.addFree(p, child, 1); err != nil {
			return err // a cycle shows up as a block claimed twice
		}
		buf := make([]byte, v.f.blockSize)
		if err := v.f.readBlock(buf, child); err != nil {
			return err
		}
		if err := v.planExtents(p, buf, int64(child), level+1); err != nil {
			return err
		}
	}
	return nil
}

func (v *orphanVol) planIndirect(p *orphanPlan, blk uint64, level int) error {
	if err := v.addFree(p, blk, 1); err != nil {
		return err
	}
	buf := make([]byte, v.f.blockSize)
	if err := v.f.readBlock(buf, blk); err != nil {
		return err
	}
	for i := 0; i+4 <= len(buf); i += 4 {
		b := uint64(binary.LittleEndian.Uint32(buf[i:]))
		if b == 0 {
			continue
		}
		var err error
		if level == 1 {
			err = v.addFree(p, b, 1)
		} else {
			err = v.planIndirect(p, b, level-1)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// apply frees the planned blocks in the loaded bitmaps and rewrites the
// inode (and a shared xattr block).
func (v *orphanVol) apply(p *orphanPlan) error {
	f := v.f
	in := p.in
	for _, r := range p.free {
		for b := r[0]; b < r[0]+r[1]; b++ {
			gi := (b - f.firstData) / f.bpg
			bm := v.bbm[gi]
			i := (b - f.firstData) % f.bpg
			bm[i/8] &^= 1 << (i % 8)
			f.groupList[gi].freeBlocks++
			v.dirty[gi] = true
		}
	}
	v.freedBlocks += p.freedHere
	if p.xattrDec != 0 {
		if err := v.decXattr(p.xattrDec); err != nil {
			return err
		}
	}
	raw := in.raw
	le := binary.LittleEndian
	if p.release {
		gi := uint64(in.ino-1) / uint64(f.ipg)
		idx := uint64(in.ino-1) % uint64(f.ipg)
		bm, ok := v.ibm[gi]
		if !ok {
			bm = make([]byte, f.blockSize)
			if err := f.readBlock(bm, f.groupList[gi].inodeBitmap); err != nil {
				return err
			}
			v.ibm[gi] = bm
		}
		if bm[idx/8]&(1<<(idx%8)) != 0 {
			bm[idx/8] &^= 1 << (idx % 8)
			f.groupList[gi].freeInodes++
			if in.isDir() {
				v.dirDec[gi]++
			}
			v.freedInodes++
		}
		v.dirty[gi] = true
		le.PutUint32(raw[0x14:], orphanNow()) // i_dtime
		le.PutUint16(raw[0x1A:], 0)           // i_links_count
		le.PutUint32(raw[0x1C:], 0)           // i_blocks_lo
		le.PutUint16(raw[0x74:], 0)           // i_blocks_high
		le.PutUint32(raw[0x68:], 0)           // i_file_acl_lo
		le.PutUint16(raw[0x76:], 0)           // i_file_acl_high
		le.PutUint32(raw[0x04:], 0)           // i_size_lo
		le.PutUint32(raw[0x6C:], 0)           // i_size_high
		if in.hasFlag(InodeExtentsFl) {
			// An empty extent tree, as the kernel leaves it.
			nb := raw[0x28 : 0x28+60]
			clear(nb)
			le.PutUint16(nb, ExtentMagic)
			le.PutUint16(nb[4:], 4)
		} else if f.inodeOwnsBlocks(in) {
			clear(raw[0x28 : 0x28+60])
		}
	} else {
		le.PutUint32(raw[0x14:], 0) // i_dtime held the list link
		if p.newBlock != nil {
			copy(raw[0x28:0x28+60], p.newBlock)
		}
		if p.freedHere > 0 {
			blocks := uint64(le.Uint32(raw[0x1C:])) | uint64(le.Uint16(raw[0x74:]))<<32
			per := uint64(f.blockSize / 512)
			if in.hasFlag(InodeHugeFileFl) && f.hugeFile {
				per = 1
			}
			blocks -= min(blocks, p.freedHere*per)
			le.PutUint32(raw[0x1C:], uint32(blocks))
			le.PutUint16(raw[0x74:], uint16(blocks>>32))
		}
	}
	return v.writeInode(in)
}

func (v *orphanVol) writeInode(in *inode) error {
	f := v.f
	off, _, err := f.inodeLoc(in.ino)
	if err != nil {
		return err
	}
	raw := in.raw
	if f.metaCsum {
		le := binary.LittleEndian
		hasHi := in.extra >= inodeOffChecksumHi+2-GoodOldInodeSize
		le.PutUint16(raw[inodeOffChecksumLo:], 0)
		if hasHi {
			le.PutUint16(raw[inodeOffChecksumHi:], 0)
		}
		gen := le.Uint32(raw[0x64:])
		c := crc32cU32(crc32cU32(f.seed, in.ino), gen)
		c = crc32c(c, raw)
		le.PutUint16(raw[inodeOffChecksumLo:], uint16(c))
		if hasHi {
			le.PutUint16(raw[inodeOffChecksumHi:], uint16(c>>16))
		}
	}
	return repairWriteAt(v.rw, raw, off, f.blockSize, fmt.Sprintf("inode %d", in.ino))
}

func (v *orphanVol) decXattr(blk uint64) error {
	f := v.f
	buf := make([]byte, f.blockSize)
	if err := f.readBlock(buf, blk); err != nil {
		return err
	}
	le := binary.LittleEndian
	le.PutUint32(buf[4:], le.Uint32(buf[4:])-1)
	if f.metaCsum {
		le.PutUint32(buf[0x10:], 0)
		var b8 [8]byte
		le.PutUint64(b8[:], blk)
		c := crc32c(crc32c(f.seed, b8[:]), buf)
		le.PutUint32(buf[0x10:], c)
	}
	return repairWriteAt(v.rw, buf, int64(blk)*f.blockSize, f.blockSize, "xattr block")
}

// flush writes the changed bitmaps and group descriptors.
func (v *orphanVol) flush() error {
	f := v.f
	for gi, bm := range v.bbm {
		if !v.dirty[gi] {
			continue
		}
		g := &f.groupList[gi]
		if err := repairWriteAt(v.rw, bm, int64(g.blockBitmap)*f.blockSize, f.blockSize, fmt.Sprintf("group %d block bitmap", gi)); err != nil {
			return err
		}
		g.bbCsum = crc32c(f.seed, bm[:f.cpg/8])
	}
	for gi, bm := range v.ibm {
		g := &f.groupList[gi]
		if err := repairWriteAt(v.rw, bm, int64(g.inodeBitmap)*f.blockSize, f.blockSize, fmt.Sprintf("group %d inode bitmap", gi)); err != nil {
			return err
		}
		g.ibCsum = crc32c(f.seed, bm[:f.ipg/8])
	}
	for gi := range v.dirty {
		if err := v.writeDesc(gi); err != nil {
			return err
		}
	}
	return nil
}

// writeDesc rewrites group descriptor gi from the in-memory counters and
// bitmap checksums, recomputing its checksum.
func (v *orphanVol) writeDesc(gi uint64) error {
	f := v.f
	g := &f.groupList[gi]
	perBlock := uint64(f.blockSize / f.descSize)
	off := int64(f.descBlock(gi/perBlock))*f.blockSize + int64(gi%perBlock)*f.descSize
	d := make([]byte, f.descSize)
	if err := f.readAt(d, off); err != nil {
		return err
	}
	le := binary.LittleEndian
	le.PutUint16(d[0xC:], uint16(g.freeBlocks))
	le.PutUint16(d[0xE:], uint16(g.freeInodes))
	dirs := uint32(le.Uint16(d[0x10:]))
	if f.descSize >= 64 {
		dirs |= uint32(le.Uint16(d[0x30:])) << 16
	}
	dirs -= min(dirs, v.dirDec[gi])
	le.PutUint16(d[0x10:], uint16(dirs))
	if f.metaCsum {
		le.PutUint16(d[0x18:], uint16(g.bbCsum))
		le.PutUint16(d[0x1A:], uint16(g.ibCsum))
	}
	if f.descSize >= 64 {
		le.PutUint16(d[0x2C:], uint16(g.freeBlocks>>16))
		le.PutUint16(d[0x2E:], uint16(g.freeInodes>>16))
		le.PutUint16(d[0x30:], uint16(dirs>>16))
		if f.metaCsum {
			le.PutUint16(d[0x38:], uint16(g.bbCsum>>16))
			le.PutUint16(d[0x3A:], uint16(g.ibCsum>>16))
		}
	}
	switch {
	case f.metaCsum:
		c := crc32cU32(f.seed, uint32(gi))
		c = crc32c(c, d[:0x1E])
		c = crc32c(c, []byte{0, 0})
		c = crc32c(c, d[0x20:])
		le.PutUint16(d[0x1E:], uint16(c))
	case f.gdtCsum:
		c := crc16(0xFFFF, f.sb.UUID[:])
		var gb [4]byte
		le.PutUint32(gb[:], uint32(gi))
		c = crc16(c, gb[:])
		c = crc16(c, d[:0x1E])
		if f.descSize > 32 {
			c = crc16(c, d[0x20:])
		}
		le.PutUint16(d[0x1E:], c)
	}
	return repairWriteAt(v.rw, d, off, f.blockSize, fmt.Sprintf("group %d descriptor", gi))
}

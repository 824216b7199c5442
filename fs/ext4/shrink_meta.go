package ext4

import (
	"encoding/binary"
	"fmt"
)

// listBackups iterates the groups holding superblock backups below n, as
// e2fsprogs' list_backups does (1, 3, 5, 7, 9, 25, 27, 49 … with
// sparse_super; the two s_backup_bgs with sparse_super2; every group
// otherwise).
func (s *shrinker) listBackups(n uint64, fn func(g uint64)) {
	sb := &s.f.sb
	switch {
	case sb.FeatureCompat&CompatSparseSuper2 != 0:
		for _, g := range s.backupBgs {
			if g != 0 && uint64(g) < n {
				fn(uint64(g))
			}
		}
	case sb.FeatureROCompat&ROCompatSparseSuper == 0:
		for g := uint64(1); g < n; g++ {
			fn(g)
		}
	default:
		three, five, seven := uint64(1), uint64(5), uint64(7)
		for {
			p, mult := &three, uint64(3)
			if five < *p {
				p, mult = &five, 5
			}
			if seven < *p {
				p, mult = &seven, 7
			}
			g := *p
			if g >= n {
				return
			}
			fn(g)
			*p *= mult
		}
	}
}

// resizeInode rebuilds the resize inode's map of reserved GDT blocks for
// the remaining groups, as mke2fs creates it.
func (s *shrinker) resizeInode() error {
	f := s.f
	if f.sb.FeatureCompat&CompatResizeInode == 0 {
		return nil
	}
	raw := make([]byte, f.inodeSize)
	off := int64(f.groupList[0].inodeTable)*s.bs + 6*f.inodeSize
	if err := f.readAt(raw, off); err != nil {
		return fmt.Errorf("ext4: resize inode: %w", err)
	}
	in := s.rawInode(7, raw)
	const dindSlot = 0x28 + 4*13
	dind := uint64(sle.Uint32(raw[dindSlot:]))
	if dind == 0 || dind >= s.oldBlocks {
		if s.newRsv == 0 && dind == 0 {
			return nil
		}
		return refusef("the resize inode (7) has no valid block map; run e2fsck -f first")
	}
	if dind >= s.newBlocks {
		if err := s.claim(dind, 1, "resize inode"); err != nil {
			return err
		}
		b, _, err := s.alloc(1)
		if err != nil {
			return err
		}
		dind = b
	}
	apb := uint64(s.bs / 4)
	dbuf := make([]byte, s.bs)
	gbuf := make([]byte, s.bs)
	nblocks := uint64(1)
	sbBlk := f.firstData
	for rsv := uint64(0); rsv < s.newRsv; rsv++ {
		gdtBlk := sbBlk + 1 + s.newDesc + rsv
		gdtOff := (s.newDesc + rsv) % apb
		sle.PutUint32(dbuf[4*gdtOff:], uint32(gdtBlk))
		nblocks++
		clear(gbuf)
		last := uint64(0)
		s.listBackups(s.newGroups, func(g uint64) {
			if last < apb {
				sle.PutUint32(gbuf[4*last:], uint32(gdtBlk+g*f.bpg))
				last++
				nblocks++
			}
		})
		if err := s.writeAt(gbuf, gdtBlk); err != nil {
			return err
		}
	}
	if err := s.writeAt(dbuf, dind); err != nil {
		return err
	}
	clear(raw[0x28 : 0x28+60])
	sle.PutUint32(raw[dindSlot:], uint32(dind))
	size := (apb*apb + apb + NDirBlocks) * uint64(s.bs)
	sle.PutUint32(raw[4:], uint32(size))
	sle.PutUint32(raw[0x6C:], uint32(size>>32))
	b512 := nblocks * uint64(s.bs/512)
	if in.hasFlag(InodeHugeFileFl) {
		b512 = nblocks
	}
	sle.PutUint32(raw[0x1C:], uint32(b512))
	if f.hugeFile {
		sle.PutUint16(raw[0x74:], uint16(b512>>32))
	}
	s.setInodeCsum(raw, 7)
	return s.writeOff(raw, s.inodeOff(7))
}

// writeMetadata writes the bitmaps, group descriptors and superblocks of
// the shrunk filesystem.
func (s *shrinker) writeMetadata() error {
	f := s.f
	ipg := uint64(f.ipg)
	var freeBlocks, freeInodes uint64
	buf := make([]byte, s.bs)
	for gi := uint64(0); gi < s.newGroups; gi++ {
		g := &s.groups[gi]
		first := f.groupFirstBlock(gi)
		n := min(f.bpg, s.newBlocks-first)
		clear(buf)
		var inUse uint64
		for c := uint64(0); c < n; c++ {
			if s.final.get(first + c) {
				buf[c/8] |= 1 << (c % 8)
				inUse++
			}
		}
		for c := n; c < uint64(s.bs)*8; c++ {
			buf[c/8] |= 1 << (c % 8)
		}
		g.freeBlocks = uint32(n - inUse)
		freeBlocks += n - inUse
		g.flags &^= BgBlockUninit
		if f.metaCsum {
			g.bbCsum = crc32c(f.seed, buf[:f.cpg/8])
		}
		if err := s.writeAt(buf, g.blockBitmap); err != nil {
			return err
		}
		if s.csum() && g.flags&BgInodeUninit != 0 {
			g.freeInodes = f.ipg
			freeInodes += ipg
			continue
		}
		clear(buf)
		inUse = 0
		for i := uint64(0); i < ipg; i++ {
			if s.ifinal.get(gi*ipg + i) {
				buf[i/8] |= 1 << (i % 8)
				inUse++
			}
		}
		for i := ipg; i < uint64(s.bs)*8; i++ {
			buf[i/8] |= 1 << (i % 8)
		}
		g.freeInodes = uint32(ipg - inUse)
		freeInodes += ipg - inUse
		if f.metaCsum {
			g.ibCsum = crc32c(f.seed, buf[:ipg/8])
		}
		if err := s.writeAt(buf, g.inodeBitmap); err != nil {
			return err
		}
	}
	gdt, err := s.encodeGroups()
	if err != nil {
		return err
	}
	sbBlk := f.firstData
	if err := s.writeAt(gdt, sbBlk+1); err != nil {
		return err
	}
	sb := f.sb
	sb.BlocksCountLo = uint32(s.newBlocks)
	sb.FreeBlocksCountLo = uint32(freeBlocks)
	r := uint64(sb.RBlocksCountLo)
	if f.sb.FeatureIncompat&Incompat64bit != 0 {
		r |= uint64(sb.RBlocksCountHi) << 32
	}
	r = uint64(float64(r) * float64(s.newBlocks) / float64(s.oldBlocks))
	sb.RBlocksCountLo = uint32(r)
	if f.sb.FeatureIncompat&Incompat64bit != 0 {
		sb.BlocksCountHi = uint32(s.newBlocks >> 32)
		sb.FreeBlocksCountHi = uint32(freeBlocks >> 32)
		sb.RBlocksCountHi = uint32(r >> 32)
	}
	sb.FreeInodesCount = uint32(freeInodes)
	sb.InodesCount = uint32(s.newGroups * ipg)
	sb.ReservedGDTBlocks = uint16(s.newRsv)
	sb.BackupBgs = s.backupBgs
	sb.OverheadClusters = 0
	for _, p := range []*uint32{&sb.JournalInum, &sb.UsrQuotaInum, &sb.GrpQuotaInum, &sb.PrjQuotaInum, &sb.LpfIno, &sb.OrphanFileInum, &sb.SnapshotInum} {
		if m, ok := s.inoMap[*p]; ok {
			*p = m
		}
	}
	if sb.FeatureCompat&CompatHasJournal != 0 && sb.JournalInum != 0 && sb.JnlBackupType == 1 {
		raw := make([]byte, f.inodeSize)
		if err := f.readAt(raw, s.inodeOff(sb.JournalInum)); err != nil {
			return err
		}
		for i := range NBlocks {
			sb.JnlBlocks[i] = sle.Uint32(raw[0x28+4*i:])
		}
		sb.JnlBlocks[15] = sle.Uint32(raw[0x6C:])
		sb.JnlBlocks[16] = sle.Uint32(raw[4:])
	}
	var werr error
	writeSB := func(g uint64) {
		sb.BlockGroupNr = uint16(g)
		raw := make([]byte, SuperblockSize)
		if _, err := binary.Encode(raw, binary.LittleEndian, &sb); err != nil {
			werr = err
			return
		}
		if f.metaCsum {
			sle.PutUint32(raw[0x3FC:], crc32c(^uint32(0), raw[:0x3FC]))
		}
		off := int64(SuperblockOffset)
		if g > 0 {
			off = int64(f.groupFirstBlock(g)) * s.bs
		}
		if err := s.writeOff(raw, off); err != nil {
			werr = err
		}
	}
	s.listBackups(s.newGroups, func(g uint64) {
		if werr == nil {
			writeSB(g)
			if werr == nil {
				werr = s.writeAt(gdt, f.groupFirstBlock(g)+1)
			}
		}
	})
	if werr != nil {
		return werr
	}
	writeSB(0)
	return werr
}

// encodeGroups returns the new group descriptor table, starting from the
// old descriptors so that fields this engine does not know are kept.
func (s *shrinker) encodeGroups() ([]byte, error) {
	f := s.f
	old := make([]byte, s.oldDesc*uint64(s.bs))
	if err := f.readAt(old, int64(f.firstData+1)*s.bs); err != nil {
		return nil, fmt.Errorf("ext4: group descriptors: %w", err)
	}
	out := make([]byte, s.newDesc*uint64(s.bs))
	ds := uint64(f.descSize)
	copy(out, old[:s.newGroups*ds])
	for gi := uint64(0); gi < s.newGroups; gi++ {
		g := &s.groups[gi]
		d := out[gi*ds : (gi+1)*ds]
		sle.PutUint32(d[0:], uint32(g.blockBitmap))
		sle.PutUint32(d[4:], uint32(g.inodeBitmap))
		sle.PutUint32(d[8:], uint32(g.inodeTable))
		sle.PutUint16(d[0xC:], uint16(g.freeBlocks))
		sle.PutUint16(d[0xE:], uint16(g.freeInodes))
		sle.PutUint16(d[0x10:], uint16(s.dirsPerGroup[gi]))
		sle.PutUint16(d[0x12:], g.flags)
		sle.PutUint16(d[0x18:], uint16(g.bbCsum))
		sle.PutUint16(d[0x1A:], uint16(g.ibCsum))
		sle.PutUint16(d[0x1C:], uint16(g.itableUnused))
		if ds >= 64 {
			sle.PutUint32(d[0x20:], uint32(g.blockBitmap>>32))
			sle.PutUint32(d[0x24:], uint32(g.inodeBitmap>>32))
			sle.PutUint32(d[0x28:], uint32(g.inodeTable>>32))
			sle.PutUint16(d[0x2C:], uint16(g.freeBlocks>>16))
			sle.PutUint16(d[0x2E:], uint16(g.freeInodes>>16))
			sle.PutUint16(d[0x30:], uint16(s.dirsPerGroup[gi]>>16))
			sle.PutUint16(d[0x32:], uint16(g.itableUnused>>16))
			sle.PutUint16(d[0x38:], uint16(g.bbCsum>>16))
			sle.PutUint16(d[0x3A:], uint16(g.ibCsum>>16))
		}
		var sum uint16
		switch {
		case f.metaCsum:
			c := crc32cU32(f.seed, uint32(gi))
			c = crc32c(c, d[:0x1E])
			c = crc32c(c, []byte{0, 0})
			c = crc32c(c, d[0x20:])
			sum = uint16(c)
		case f.gdtCsum:
			c := crc16(0xFFFF, f.sb.UUID[:])
			c = crc16(c, sle.AppendUint32(nil, uint32(gi)))
			c = crc16(c, d[:0x1E])
			if ds > 32 {
				c = crc16(c, d[0x20:])
			}
			sum = c
		}
		sle.PutUint16(d[0x1E:], sum)
	}
	return out, nil
}

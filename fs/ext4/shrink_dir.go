package ext4

import "fmt"

// rewriteDirs renames the inode numbers of moved inodes in every
// directory entry, and recomputes the block checksums of directories that
// were renumbered themselves. Htree index blocks keep their hashes; only
// their checksums (which depend on the inode number) change.
func (s *shrinker) rewriteDirs() error {
	targets := make(map[uint32]bool, len(s.inoMap))
	for _, n := range s.inoMap {
		targets[n] = true
	}
	raw := make([]byte, s.f.inodeSize)
	chunk := uint64(max(1, maxDirChunk/s.bs))
	buf := make([]byte, chunk*uint64(s.bs))
	for _, ino := range s.dirs {
		if err := s.f.readAt(raw, s.inodeOff(ino)); err != nil {
			return err
		}
		in := s.rawInode(ino, raw)
		moved := targets[ino]
		what := fmt.Sprintf("directory inode %d", ino)
		if in.hasFlag(InodeInlineDataFl) {
			if err := s.rewriteInlineDir(in, moved); err != nil {
				return err
			}
			continue
		}
		size := in.size()
		if size > s.size {
			return corruptf(-1, what, "directory larger than the filesystem")
		}
		nblocks := uint64((size + s.bs - 1) / s.bs)
		m := newMapper(s.fv, in)
		for lblk := uint64(0); lblk < nblocks; {
			r, err := m.lookup(lblk)
			if err != nil {
				return err
			}
			n := min(r.n, chunk, nblocks-lblk)
			if r.zero {
				lblk += n
				continue
			}
			b := buf[:n*uint64(s.bs)]
			if err := s.f.readAt(b, int64(r.pblk)*s.bs); err != nil {
				return err
			}
			for i := uint64(0); i < n; i++ {
				blk := b[int64(i)*s.bs : int64(i+1)*s.bs]
				ch, err := s.rewriteDirBlock(in, blk, lblk+i, moved)
				if err != nil {
					return fmt.Errorf("ext4: %s block %d: %w", what, lblk+i, err)
				}
				if ch {
					if err := s.writeAt(blk, r.pblk+i); err != nil {
						return err
					}
				}
			}
			lblk += n
		}
	}
	return nil
}

// mapEntries rewrites the inode fields of the directory entries in b.
func (s *shrinker) mapEntries(b []byte) (bool, error) {
	changed := false
	for pos := 0; pos+dirEntryHeadSize <= len(b); {
		ino := sle.Uint32(b[pos:])
		rl := s.f.recLen(sle.Uint16(b[pos+4:]))
		if rl < dirEntryHeadSize || rl%4 != 0 || rl > len(b)-pos {
			return changed, corruptf(-1, "directory", "bad entry at byte %d", pos)
		}
		if n, ok := s.inoMap[ino]; ok && ino != 0 {
			sle.PutUint32(b[pos:], n)
			changed = true
		}
		pos += rl
	}
	return changed, nil
}

func (s *shrinker) rewriteDirBlock(in *inode, b []byte, lblk uint64, moved bool) (bool, error) {
	indexed := in.hasFlag(InodeIndexFl)
	gen := sle.Uint32(in.raw[0x64:])
	seed := s.inoSeed(in.ino, gen)
	if indexed && lblk == 0 {
		changed := false
		for _, off := range []int{0, 12} {
			if n, ok := s.inoMap[sle.Uint32(b[off:])]; ok {
				sle.PutUint32(b[off:], n)
				changed = true
			}
		}
		if s.f.metaCsum && (changed || moved) {
			s.dxCsum(b, 0x18+int(b[0x1D]), seed)
		}
		return changed || (moved && s.f.metaCsum), nil
	}
	if indexed && sle.Uint32(b) == 0 && s.f.recLen(sle.Uint16(b[4:])) == int(s.bs) && b[6] == 0 {
		if s.f.metaCsum && moved {
			s.dxCsum(b, 8, seed)
			return true, nil
		}
		return false, nil
	}
	changed, err := s.mapEntries(b)
	if err != nil {
		return false, err
	}
	if s.f.metaCsum && (changed || moved) {
		t := b[len(b)-12:]
		if sle.Uint32(t) == 0 && sle.Uint16(t[4:]) == 12 && t[6] == 0 && t[7] == DirTailFileType {
			sle.PutUint32(t[8:], crc32c(seed, b[:len(b)-12]))
			return true, nil
		}
	}
	return changed, nil
}

// dxCsum recomputes the dx_tail checksum of an htree root or node whose
// count/limit header is at countOff.
func (s *shrinker) dxCsum(b []byte, countOff int, seed uint32) {
	if countOff+4 > len(b) {
		return
	}
	limit := int(sle.Uint16(b[countOff:]))
	count := int(sle.Uint16(b[countOff+2:]))
	tail := countOff + 8*limit
	if count > limit || tail+8 > len(b) {
		return
	}
	c := crc32c(seed, b[:countOff+8*count])
	c = crc32c(c, b[tail:tail+4])
	c = crc32c(c, []byte{0, 0, 0, 0})
	sle.PutUint32(b[tail+4:], c)
}

// rewriteInlineDir rewrites the entries of a directory stored in its inode
// (i_block and the system.data xattr).
func (s *shrinker) rewriteInlineDir(in *inode, moved bool) error {
	raw := in.raw
	changed := false
	if n, ok := s.inoMap[sle.Uint32(raw[0x28:])]; ok {
		sle.PutUint32(raw[0x28:], n)
		changed = true
	}
	ch, err := s.mapEntries(raw[0x2C : 0x28+60])
	if err != nil {
		return err
	}
	changed = changed || ch
	start := GoodOldInodeSize + in.extra
	if in.extra > 0 && start+4 <= len(raw) && sle.Uint32(raw[start:]) == XattrMagic {
		area := raw[start+4:]
		for pos := 0; pos+xattrEntryHeadSize <= len(area) && sle.Uint32(area[pos:]) != 0; {
			nl := int(area[pos])
			if pos+xattrEntryHeadSize+nl > len(area) {
				break
			}
			offs := int(sle.Uint16(area[pos+2:]))
			size := int(sle.Uint32(area[pos+8:]))
			if area[pos+1] == 7 && string(area[pos+xattrEntryHeadSize:pos+xattrEntryHeadSize+nl]) == "data" && offs+size <= len(area) && size > 0 {
				ch, err := s.mapEntries(area[offs : offs+size])
				if err != nil {
					return err
				}
				changed = changed || ch
			}
			pos += (xattrEntryHeadSize + nl + 3) &^ 3
		}
	}
	if !changed {
		return nil
	}
	_ = moved
	s.setInodeCsum(raw, in.ino)
	return s.writeOff(raw, s.inodeOff(in.ino))
}

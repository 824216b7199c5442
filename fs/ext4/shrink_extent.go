package ext4

import "fmt"

// xent is one extent of a file: n blocks from logical block lblk stored at
// pblk, uninitialised when uninit is set.
type xent struct {
	lblk   uint32
	pblk   uint64
	n      uint32
	uninit bool
}

// maxTreeBlocks bounds the extent-tree blocks of one inode.
const maxTreeBlocks = 1 << 20

// readTree collects the extents and the tree blocks of an extent inode.
func (s *shrinker) readTree(in *inode) ([]xent, []uint64, error) {
	var exts []xent
	var nodes []uint64
	var walk func(node []byte, depth int, blk int64) error
	walk = func(node []byte, depth int, blk int64) error {
		what := fmt.Sprintf("inode %d extent tree", in.ino)
		if len(node) < 12 {
			return corruptf(blk, what, "node too small")
		}
		h := parseExtentHeader(node)
		if h.Magic != ExtentMagic || int(h.Entries) > (len(node)-12)/12 {
			return corruptf(blk, what, "bad extent node header")
		}
		if depth >= 0 && int(h.Depth) != depth || h.Depth > MaxExtentDepth {
			return corruptf(blk, what, "bad depth %d", h.Depth)
		}
		for i := 0; i < int(h.Entries); i++ {
			e := node[12+12*i:]
			if h.Depth == 0 {
				n := uint32(sle.Uint16(e[4:]))
				x := xent{lblk: sle.Uint32(e), n: n, pblk: uint64(sle.Uint32(e[8:])) | uint64(sle.Uint16(e[6:]))<<32}
				if n > maxInitExtentLen {
					x.n -= maxInitExtentLen
					x.uninit = true
				}
				if x.n == 0 {
					continue
				}
				if x.pblk+uint64(x.n) > s.oldBlocks {
					return corruptf(blk, what, "extent beyond the filesystem end")
				}
				exts = append(exts, x)
				continue
			}
			child := uint64(sle.Uint32(e[4:])) | uint64(sle.Uint16(e[8:]))<<32
			if child >= s.oldBlocks || child < s.f.firstData {
				return corruptf(blk, what, "index points beyond the filesystem end")
			}
			if len(nodes) >= maxTreeBlocks {
				return corruptf(blk, what, "too many tree blocks")
			}
			nodes = append(nodes, child)
			b := make([]byte, s.bs)
			if err := s.f.readBlock(b, child); err != nil {
				return err
			}
			if err := walk(b, int(h.Depth)-1, int64(child)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(in.raw[0x28:0x28+60], -1, -1); err != nil {
		return nil, nil, err
	}
	return exts, nodes, nil
}

// moveExtents moves the data and tree blocks of an extent inode that lie
// above the new end and rebuilds its tree when anything changed (or when
// the inode is renumbered on a metadata_csum filesystem, since tree block
// checksums depend on the inode number).
func (s *shrinker) moveExtents(in *inode, newIno uint32, moved bool) (bool, error) {
	exts, nodes, err := s.readTree(in)
	if err != nil {
		return false, err
	}
	need := moved && s.f.metaCsum && len(nodes) > 0
	for _, b := range nodes {
		if b >= s.newBlocks {
			need = true
		}
	}
	for _, e := range exts {
		if e.pblk+uint64(e.n) > s.newBlocks {
			need = true
		}
	}
	if !need {
		return false, nil
	}
	var out []xent
	for _, e := range exts {
		end := e.pblk + uint64(e.n)
		if end <= s.newBlocks {
			out = append(out, e)
			continue
		}
		start := max(e.pblk, s.newBlocks)
		if e.pblk < s.newBlocks {
			out = append(out, xent{lblk: e.lblk, pblk: e.pblk, n: uint32(s.newBlocks - e.pblk), uninit: e.uninit})
		}
		if err := s.claim(start, end-start, fmt.Sprintf("inode %d data", in.ino)); err != nil {
			return false, err
		}
		l := e.lblk + uint32(start-e.pblk)
		for start < end {
			dst, got, err := s.alloc(end - start)
			if err != nil {
				return false, err
			}
			if e.uninit {
				s.plan.MoveBlocks += got
			} else if err := s.copyBlocks(start, dst, got); err != nil {
				return false, err
			}
			out = append(out, xent{lblk: l, pblk: dst, n: uint32(got), uninit: e.uninit})
			start += got
			l += uint32(got)
		}
	}
	out = mergeExtents(out)
	var reuse []uint64
	for _, b := range nodes {
		if b < s.newBlocks {
			reuse = append(reuse, b)
		} else if err := s.claim(b, 1, fmt.Sprintf("inode %d extent tree", in.ino)); err != nil {
			return false, err
		}
	}
	used, err := s.buildTree(in, newIno, out, reuse)
	if err != nil {
		return false, err
	}
	for _, b := range reuse[min(used, len(reuse)):] {
		s.free(b, 1)
	}
	delta := int64(used) - int64(len(nodes))
	if delta != 0 {
		s.addInodeBlocks(in, delta)
	}
	return true, nil
}

// addInodeBlocks changes i_blocks by delta filesystem blocks.
func (s *shrinker) addInodeBlocks(in *inode, delta int64) {
	raw := in.raw
	v := uint64(sle.Uint32(raw[0x1C:]))
	if s.f.hugeFile {
		v |= uint64(sle.Uint16(raw[0x74:])) << 32
	}
	unit := s.bs / 512
	if s.f.hugeFile && in.hasFlag(InodeHugeFileFl) {
		unit = 1
	}
	v = uint64(int64(v) + delta*unit)
	sle.PutUint32(raw[0x1C:], uint32(v))
	if s.f.hugeFile {
		sle.PutUint16(raw[0x74:], uint16(v>>32))
	}
}

// mergeExtents joins neighbouring extents that continue each other.
func mergeExtents(in []xent) []xent {
	out := in[:0]
	for _, e := range in {
		if k := len(out); k > 0 {
			p := &out[k-1]
			limit := uint32(maxInitExtentLen)
			if e.uninit {
				limit = maxInitExtentLen - 1
			}
			if p.uninit == e.uninit && p.lblk+p.n == e.lblk && p.pblk+uint64(p.n) == e.pblk && p.n+e.n <= limit {
				p.n += e.n
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

// treeEntry is one entry of an extent node being built: an extent (leaf
// level) or an index entry pointing at child.
type treeEntry struct {
	lblk  uint32
	child uint64
	x     xent
}

// buildTree writes a fresh, fully packed extent tree for exts into the
// inode's i_block and into tree blocks taken first from reuse, then
// allocated. It returns the number of tree blocks used.
func (s *shrinker) buildTree(in *inode, ino uint32, exts []xent, reuse []uint64) (int, error) {
	perBlock := int((s.bs - 12) / 12)
	cur := make([]treeEntry, len(exts))
	for i, e := range exts {
		cur[i] = treeEntry{lblk: e.lblk, x: e}
	}
	used := 0
	depth := 0
	gen := sle.Uint32(in.raw[0x64:])
	for len(cur) > 4 {
		if depth >= MaxExtentDepth {
			return 0, corruptf(-1, fmt.Sprintf("inode %d", in.ino), "extent tree too deep")
		}
		var next []treeEntry
		for i := 0; i < len(cur); i += perBlock {
			chunk := cur[i:min(i+perBlock, len(cur))]
			var blk uint64
			if used < len(reuse) {
				blk = reuse[used]
			} else {
				b, _, err := s.alloc(1)
				if err != nil {
					return 0, err
				}
				blk = b
			}
			used++
			if s.w != nil {
				b := make([]byte, s.bs)
				encodeNode(b, chunk, perBlock, depth)
				if s.f.metaCsum {
					tail := 12 + 12*perBlock
					sle.PutUint32(b[tail:], crc32c(s.inoSeed(ino, gen), b[:tail]))
				}
				if err := s.writeAt(b, blk); err != nil {
					return 0, err
				}
			}
			next = append(next, treeEntry{lblk: chunk[0].lblk, child: blk})
		}
		cur = next
		depth++
	}
	root := in.raw[0x28 : 0x28+60]
	clear(root)
	encodeNode(root, cur, 4, depth)
	return used, nil
}

// encodeNode writes an extent node header and its entries into b.
func encodeNode(b []byte, es []treeEntry, maxEntries, depth int) {
	sle.PutUint16(b, ExtentMagic)
	sle.PutUint16(b[2:], uint16(len(es)))
	sle.PutUint16(b[4:], uint16(maxEntries))
	sle.PutUint16(b[6:], uint16(depth))
	sle.PutUint32(b[8:], 0)
	for i, e := range es {
		p := b[12+12*i:]
		sle.PutUint32(p, e.lblk)
		if depth == 0 {
			n := uint16(e.x.n)
			if e.x.uninit {
				n += maxInitExtentLen
			}
			sle.PutUint16(p[4:], n)
			sle.PutUint16(p[6:], uint16(e.x.pblk>>32))
			sle.PutUint32(p[8:], uint32(e.x.pblk))
		} else {
			sle.PutUint32(p[4:], uint32(e.child))
			sle.PutUint16(p[8:], uint16(e.child>>32))
			sle.PutUint16(p[10:], 0)
		}
	}
}

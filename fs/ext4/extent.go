package ext4

import (
	"encoding/binary"
	"fmt"
	"sort"
	"sync"
)

// run is a stretch of logical blocks of a file: n blocks starting at
// logical block lblk, stored from physical block pblk, or reading as zeros
// (holes, uninitialised extents) when zero is set.
type run struct {
	pblk uint64
	n    uint64
	zero bool
}

// mapper maps logical to physical blocks for one open file. Lookups are
// safe for concurrent use.
type mapper struct {
	f  *FS
	in *inode

	mu sync.Mutex
	// extent files: the last leaf read, covering logical [leafLo, leafHi).
	leaf           []Extent
	leafLo, leafHi uint64
	leafValid      bool
	// block-mapped files: the last indirect block read per level.
	ind [3]indCache
	buf []byte
}

type indCache struct {
	blk  uint64
	data []uint32
}

// maxLogical is one past the last logical block a file can have.
const maxLogical = 1 << 32

func newMapper(f *FS, in *inode) *mapper { return &mapper{f: f, in: in} }

// lookup returns the run that starts at logical block lblk. The run never
// extends past logical block maxLogical.
func (m *mapper) lookup(lblk uint64) (run, error) {
	if lblk >= maxLogical {
		return run{zero: true, n: 1}, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var r run
	var err error
	if m.in.hasFlag(InodeExtentsFl) {
		r, err = m.lookupExtent(lblk)
	} else {
		r, err = m.lookupIndirect(lblk)
	}
	if err != nil {
		return run{}, err
	}
	if r.n == 0 {
		r.n = 1
	}
	if !r.zero && (r.pblk >= m.f.blocks || r.n > m.f.blocks-r.pblk) {
		return run{}, m.f.checkBlocks(r.pblk, r.n, fmt.Sprintf("inode %d data", m.in.ino))
	}
	return r, nil
}

func parseExtentHeader(b []byte) ExtentHeader {
	le := binary.LittleEndian
	return ExtentHeader{Magic: le.Uint16(b), Entries: le.Uint16(b[2:]), Max: le.Uint16(b[4:]), Depth: le.Uint16(b[6:]), Generation: le.Uint32(b[8:])}
}

// checkNode validates an extent node of len(b) bytes.
func (m *mapper) checkNode(b []byte, blk int64, wantDepth int) (ExtentHeader, error) {
	what := fmt.Sprintf("inode %d extent tree", m.in.ino)
	if len(b) < 12 {
		return ExtentHeader{}, corruptf(blk, what, "node too small")
	}
	h := parseExtentHeader(b)
	if h.Magic != ExtentMagic {
		return h, corruptf(blk, what, "bad extent header magic %#x", h.Magic)
	}
	maxEntries := (len(b) - 12) / 12
	if int(h.Max) > maxEntries || h.Entries > h.Max {
		return h, corruptf(blk, what, "%d entries of max %d do not fit", h.Entries, h.Max)
	}
	if h.Depth > MaxExtentDepth || (wantDepth >= 0 && int(h.Depth) != wantDepth) {
		return h, corruptf(blk, what, "bad depth %d", h.Depth)
	}
	if blk >= 0 && m.f.verify && m.f.metaCsum {
		tail := 12 + 12*int(h.Max)
		if tail+4 > len(b) {
			return h, corruptf(blk, what, "no room for the checksum")
		}
		if crc32c(m.f.inodeSeed(m.in), b[:tail]) != binary.LittleEndian.Uint32(b[tail:]) {
			return h, csumError(blk, what)
		}
	}
	return h, nil
}

func (m *mapper) lookupExtent(lblk uint64) (run, error) {
	if !m.leafValid || lblk < m.leafLo || lblk >= m.leafHi {
		if err := m.loadLeaf(lblk); err != nil {
			return run{}, err
		}
	}
	ex := m.leaf
	i := sort.Search(len(ex), func(i int) bool { return uint64(ex[i].Block) > lblk }) - 1
	next := m.leafHi
	if i+1 < len(ex) {
		next = min(next, uint64(ex[i+1].Block))
	}
	if i >= 0 {
		e := ex[i]
		n := uint64(e.Len)
		zero := false
		if n > maxInitExtentLen {
			n -= maxInitExtentLen
			zero = true
		}
		start := uint64(e.Block)
		if lblk < start+n {
			cnt := start + n - lblk
			if zero {
				return run{n: cnt, zero: true}, nil
			}
			p := uint64(e.StartLo) | uint64(e.StartHi)<<32
			return run{pblk: p + (lblk - start), n: cnt}, nil
		}
	}
	if next <= lblk {
		next = lblk + 1
	}
	return run{n: next - lblk, zero: true}, nil
}

// loadLeaf descends the extent tree to the leaf covering lblk.
func (m *mapper) loadLeaf(lblk uint64) error {
	node := m.in.raw[0x28 : 0x28+60]
	blk := int64(-1)
	lo, hi := uint64(0), uint64(maxLogical)
	h, err := m.checkNode(node, -1, -1)
	if err != nil {
		return err
	}
	if h.Max > 4 {
		return corruptf(-1, fmt.Sprintf("inode %d extent tree", m.in.ino), "root claims %d entries", h.Max)
	}
	depth := int(h.Depth)
	for depth > 0 {
		n := int(h.Entries)
		idx := func(i int) ExtentIdx {
			b := node[12+12*i:]
			le := binary.LittleEndian
			return ExtentIdx{Block: le.Uint32(b), LeafLo: le.Uint32(b[4:]), LeafHi: le.Uint16(b[8:])}
		}
		i := sort.Search(n, func(i int) bool { return uint64(idx(i).Block) > lblk }) - 1
		if i < 0 {
			// lblk lies before the first index: a hole up to it.
			end := hi
			if n > 0 {
				end = min(end, uint64(idx(0).Block))
			}
			m.leaf, m.leafLo, m.leafHi, m.leafValid = nil, lo, max(end, lblk+1), true
			return nil
		}
		e := idx(i)
		lo = max(lo, uint64(e.Block))
		if i+1 < n {
			hi = min(hi, uint64(idx(i+1).Block))
		}
		if hi <= lo {
			return corruptf(blk, fmt.Sprintf("inode %d extent tree", m.in.ino), "index entries out of order")
		}
		child := uint64(e.LeafLo) | uint64(e.LeafHi)<<32
		if m.buf == nil {
			m.buf = make([]byte, m.f.blockSize)
		}
		if err := m.f.readBlock(m.buf, child); err != nil {
			return err
		}
		node, blk = m.buf, int64(child)
		depth--
		if h, err = m.checkNode(node, blk, depth); err != nil {
			return err
		}
	}
	le := binary.LittleEndian
	leaf := m.leaf[:0]
	for i := range int(h.Entries) {
		b := node[12+12*i:]
		leaf = append(leaf, Extent{Block: le.Uint32(b), Len: le.Uint16(b[4:]), StartHi: le.Uint16(b[6:]), StartLo: le.Uint32(b[8:])})
	}
	m.leaf, m.leafLo, m.leafHi, m.leafValid = leaf, lo, hi, true
	return nil
}

// lookupIndirect maps lblk through the ext2/3 direct and indirect blocks.
func (m *mapper) lookupIndirect(lblk uint64) (run, error) {
	p := uint64(m.f.blockSize / 4)
	blocks := m.in.Block
	if lblk < NDirBlocks {
		return contiguous(blocks[lblk:NDirBlocks]), nil
	}
	l := lblk - NDirBlocks
	span := p // logical blocks covered by one pointer at this level
	for level := 1; level <= 3; level++ {
		if l < span {
			return m.walkIndirect(uint64(blocks[NDirBlocks+level-1]), level, l, span)
		}
		l -= span
		span *= p
	}
	return run{zero: true, n: maxLogical - lblk}, nil
}

// walkIndirect resolves offset l (in blocks) below an indirect pointer ptr
// of the given level, which covers span logical blocks.
func (m *mapper) walkIndirect(ptr uint64, level int, l, span uint64) (run, error) {
	p := uint64(m.f.blockSize / 4)
	for {
		if ptr == 0 {
			return run{zero: true, n: span - l}, nil
		}
		data, err := m.indirect(level, ptr)
		if err != nil {
			return run{}, err
		}
		span /= p
		i := l / span
		if level == 1 {
			return contiguous(data[i:]), nil
		}
		l -= i * span
		ptr = uint64(data[i])
		level--
	}
}

// indirect returns the pointers of an indirect block, cached per level.
func (m *mapper) indirect(level int, blk uint64) ([]uint32, error) {
	c := &m.ind[level-1]
	if c.data != nil && c.blk == blk {
		return c.data, nil
	}
	if m.buf == nil {
		m.buf = make([]byte, m.f.blockSize)
	}
	if err := m.f.readBlock(m.buf, blk); err != nil {
		return nil, err
	}
	if c.data == nil {
		c.data = make([]uint32, m.f.blockSize/4)
	}
	for i := range c.data {
		c.data[i] = binary.LittleEndian.Uint32(m.buf[4*i:])
	}
	c.blk = blk
	return c.data, nil
}

// contiguous returns the run at the start of a list of block pointers:
// consecutive physical blocks, or consecutive zero pointers (a hole).
func contiguous(ptrs []uint32) run {
	if ptrs[0] == 0 {
		n := uint64(1)
		for n < uint64(len(ptrs)) && ptrs[n] == 0 {
			n++
		}
		return run{zero: true, n: n}
	}
	n := uint64(1)
	for n < uint64(len(ptrs)) && ptrs[n] == ptrs[n-1]+1 {
		n++
	}
	return run{pblk: uint64(ptrs[0]), n: n}
}

package ext4

import (
	"errors"
	"io"
)

// maxMinSizeTries bounds the simulated shrinks MinSize runs to confirm
// its estimate.
const maxMinSizeTries = 24

// MinSize returns the smallest block count the filesystem in the first
// size bytes of r can be shrunk to with Shrink. Like `resize2fs -P` it
// counts the data blocks, the metadata of the groups that remain, enough
// inode-table space for every used inode, the journal and the reserved GDT
// blocks; unlike it, it then confirms the figure by simulating the shrink
// (as PlanShrink), growing it until every block and inode finds a place.
// Blocks freed by the shrink itself (metadata of vanishing groups) are not
// reused, so the result can exceed the tightest possible size by those.
func MinSize(r io.ReaderAt, size int64) (uint64, error) {
	s, err := newShrinker(r, size)
	if err != nil {
		return 0, err
	}
	est, err := s.estimate()
	if err != nil {
		return 0, err
	}
	for try := 0; try < maxMinSizeTries; try++ {
		n := s.validLast(est)
		if n >= s.f.blocks {
			return s.f.blocks, nil
		}
		t, err := newShrinker(r, size)
		if err != nil {
			return 0, err
		}
		err = t.run(nil, n)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, errNoSpace) {
			return 0, err
		}
		est = n + max(n/64, s.f.bpg/16, 64)
	}
	return s.f.blocks, nil
}

// validLast raises n until the last group can hold its metadata.
func (s *shrinker) validLast(n uint64) uint64 {
	f := s.f
	if n >= f.blocks {
		return f.blocks
	}
	groups := (n - f.firstData + f.bpg - 1) / f.bpg
	last := groups - 1
	lo := f.groupFirstBlock(last)
	overhead := uint64(0)
	if f.hasSuper(last) {
		overhead = 1 + s.oldDesc + s.oldRsv
	}
	if f.sb.FeatureIncompat&IncompatFlexBG == 0 || last == 0 {
		overhead += 2 + s.itBlocks
	}
	if n-lo < overhead+50 {
		n = lo + overhead + 50
	}
	return min(n, f.blocks)
}

// estimate returns the smallest size at which the free blocks below the
// end can take every in-use block above it, with a margin for extent
// trees that grow when runs split.
func (s *shrinker) estimate() (uint64, error) {
	f := s.f
	if err := s.setup(f.blocks); err != nil {
		return 0, err
	}
	if err := s.loadBitmaps(); err != nil {
		return 0, err
	}
	usedInodes := s.iused.count(0, uint64(f.inodes))
	minGroups := max(1, (usedInodes+uint64(f.ipg)-1)/uint64(f.ipg))
	lo := f.groupFirstBlock(minGroups-1) + 1
	fits := func(n uint64) bool {
		groups := (n - f.firstData + f.bpg - 1) / f.bpg
		above := s.used.count(n, f.blocks)
		var meta uint64
		count := func(blk, ln uint64) {
			if blk+ln > n {
				b := max(blk, n)
				meta += blk + ln - b
			}
		}
		for gi := groups; gi < f.groups; gi++ {
			g := &f.groupList[gi]
			count(f.groupFirstBlock(gi), s.superRegion(gi, false))
			count(g.blockBitmap, 1)
			count(g.inodeBitmap, 1)
			count(g.inodeTable, s.itBlocks)
		}
		need := above - min(above, meta)
		free := (n - f.firstData) - s.used.count(f.firstData, n)
		return free >= need+need/128+16
	}
	hi := f.blocks
	if !fits(hi) {
		return hi, nil
	}
	lo = max(lo, f.firstData+1)
	for lo < hi {
		mid := lo + (hi-lo)/2
		if fits(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return hi, nil
}

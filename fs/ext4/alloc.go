package ext4

import (
	"fmt"
	"slices"

	"imgtool/fs/meta"
)

// rangeList accumulates block ranges, merging neighbours.
type rangeList struct {
	bs  int64
	out []meta.Range
}

func (l *rangeList) add(blk, n uint64) {
	if n == 0 {
		return
	}
	off, ln := int64(blk)*l.bs, int64(n)*l.bs
	if k := len(l.out); k > 0 && l.out[k-1].Off+l.out[k-1].Len == off {
		l.out[k-1].Len += ln
		return
	}
	l.out = append(l.out, meta.Range{Off: off, Len: ln})
}

// normalize sorts and merges overlapping or touching ranges.
func normalize(rs []meta.Range) []meta.Range {
	slices.SortFunc(rs, func(a, b meta.Range) int {
		switch {
		case a.Off < b.Off:
			return -1
		case a.Off > b.Off:
			return 1
		}
		return 0
	})
	out := rs[:0]
	for _, r := range rs {
		if k := len(out); k > 0 && r.Off <= out[k-1].Off+out[k-1].Len {
			if end := r.Off + r.Len; end > out[k-1].Off+out[k-1].Len {
				out[k-1].Len = end - out[k-1].Off
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// superAndDesc returns the blocks of group gi holding a superblock copy
// and group descriptors (old-style with reserved GDT blocks, or meta_bg),
// as e2fsprogs reserves them.
func (f *FS) superAndDesc(gi uint64, add func(blk, n uint64)) {
	groupBlock := f.groupFirstBlock(gi)
	perBlock := uint64(f.blockSize / f.descSize)
	descBlocks := (f.groups + perBlock - 1) / perBlock
	metaBG := f.sb.FeatureIncompat&IncompatMetaBG != 0
	oldDesc := descBlocks + uint64(f.sb.ReservedGDTBlocks)
	if metaBG {
		oldDesc = uint64(f.sb.FirstMetaBg)
	}
	has := f.hasSuper(gi)
	if has {
		add(groupBlock, 1)
	}
	if !metaBG || gi/perBlock < uint64(f.sb.FirstMetaBg) {
		if has && oldDesc > 0 {
			start := groupBlock + 1
			n := oldDesc
			if start+n > f.blocks {
				n = f.blocks - min(start, f.blocks)
			}
			add(start, n)
		}
		return
	}
	if r := gi % perBlock; r == 0 || r == 1 || r == perBlock-1 {
		blk := groupBlock
		if has {
			blk++
		}
		add(blk, 1)
	}
}

// groupBitmap returns the block bitmap of group gi (one bit per cluster),
// synthesising it for BLOCK_UNINIT groups. extra receives metadata of an
// uninitialised group that lies outside it.
func (f *FS) groupBitmap(gi uint64, buf []byte, extra func(blk, n uint64)) error {
	g := &f.groupList[gi]
	first := f.groupFirstBlock(gi)
	what := fmt.Sprintf("group %d block bitmap", gi)
	if (f.metaCsum || f.gdtCsum) && g.flags&BgBlockUninit != 0 {
		clear(buf)
		last := min(first+f.bpg, f.blocks)
		mark := func(blk, n uint64) {
			end := blk + n
			if blk < first {
				extra(blk, min(end, first)-blk)
			}
			if end > last {
				s := max(blk, last)
				extra(s, end-s)
			}
			for b := max(blk, first); b < min(end, last); b++ {
				c := (b - first) / f.clusterRatio
				buf[c/8] |= 1 << (c % 8)
			}
		}
		f.superAndDesc(gi, mark)
		itBlocks := (uint64(f.ipg)*uint64(f.inodeSize) + uint64(f.blockSize) - 1) / uint64(f.blockSize)
		for _, m := range [][2]uint64{{g.blockBitmap, 1}, {g.inodeBitmap, 1}, {g.inodeTable, itBlocks}} {
			if m[0] != 0 && m[0] < f.blocks {
				mark(m[0], min(m[1], f.blocks-m[0]))
			}
		}
		return nil
	}
	if err := f.readBlock(buf, g.blockBitmap); err != nil {
		return fmt.Errorf("ext4: %s: %w", what, err)
	}
	if f.verify && f.metaCsum {
		c := crc32c(f.seed, buf[:f.cpg/8])
		stored := g.bbCsum
		if f.descSize < 64 {
			c &= 0xFFFF
		}
		if c != stored {
			return csumError(int64(g.blockBitmap), what)
		}
	}
	return nil
}

// maxExtraRanges bounds the metadata ranges of uninitialised groups that
// lie outside them (a handful per group on sane filesystems).
const maxExtraRanges = 1 << 20

// Allocated returns the byte ranges the block bitmaps mark in use (boot
// block included), sorted and merged. Groups whose bitmap was never
// initialised (BLOCK_UNINIT) count only their metadata.
func (f *FS) Allocated() ([]meta.Range, error) {
	l := &rangeList{bs: f.blockSize}
	l.add(0, f.firstData)
	var extra []meta.Range
	buf := make([]byte, f.blockSize)
	for gi := uint64(0); gi < f.groups; gi++ {
		err := f.groupBitmap(gi, buf, func(blk, n uint64) {
			if n > 0 && len(extra) < maxExtraRanges {
				extra = append(extra, meta.Range{Off: int64(blk) * f.blockSize, Len: int64(n) * f.blockSize})
			}
		})
		if err != nil {
			return nil, err
		}
		first := f.groupFirstBlock(gi)
		nclusters := min(f.cpg, (f.blocks-first+f.clusterRatio-1)/f.clusterRatio)
		for c := uint64(0); c < nclusters; {
			if buf[c/8] == 0 && c%8 == 0 {
				c += 8
				continue
			}
			if buf[c/8]&(1<<(c%8)) == 0 {
				c++
				continue
			}
			s := c
			for c < nclusters && buf[c/8]&(1<<(c%8)) != 0 {
				if c%8 == 0 && buf[c/8] == 0xFF && c+8 <= nclusters {
					c += 8
					continue
				}
				c++
			}
			blk := first + s*f.clusterRatio
			n := min((c-s)*f.clusterRatio, f.blocks-blk)
			l.add(blk, n)
		}
	}
	out := l.out
	if len(extra) > 0 {
		out = normalize(append(out, extra...))
	}
	return out, nil
}

// Usage returns the exact usage computed from the block bitmaps.
func (f *FS) Usage() (meta.Usage, error) {
	rs, err := f.Allocated()
	if err != nil {
		return meta.Usage{}, err
	}
	var used int64
	for _, r := range rs {
		used += r.Len
	}
	total := int64(f.blocks) * f.blockSize
	return meta.Usage{Total: total, Used: used, Free: total - used}, nil
}

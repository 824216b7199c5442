package ext4

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"strings"
)

// CheckKind classifies what Check found.
type CheckKind int

// Kinds of CheckItem. The first group are errors (shrinking could lose
// data); leaks and count mismatches are warnings.
const (
	CheckUsedButFree CheckKind = iota // a referenced block is marked free
	CheckDoubleClaim                  // a block is referenced twice
	CheckOutOfRange                   // a reference beyond the filesystem end
	CheckInodeFree                    // an in-use inode is marked free
	CheckBadMetadata                  // a bitmap, extent tree or indirect block is unreadable
	CheckLeak                         // warning: marked used but unreferenced
	CheckInodeLeak                    // warning: inode marked used but not in use
	CheckFreeCount                    // warning: a free count disagrees with the bitmaps
)

var checkKindNames = [...]string{"used-but-free", "double-claim", "out-of-range", "inode-free",
	"bad-metadata", "leak", "inode-leak", "free-count"}

// String returns a short name of the kind.
func (k CheckKind) String() string {
	if int(k) < len(checkKindNames) && k >= 0 {
		return checkKindNames[k]
	}
	return fmt.Sprintf("CheckKind(%d)", int(k))
}

// CheckItem is one disagreement between the metadata and the bitmaps.
type CheckItem struct {
	Kind  CheckKind
	Group int64 // block group, -1 when not tied to one
	Block int64 // first block concerned, -1 when none
	Count int64 // blocks from Block (leaks are reported as runs)
	Inode int64 // inode concerned, -1 when none
	Msg   string
}

// CheckReport is the result of Check. Errors are disagreements that make
// shrinking unsafe; Warnings (leaked blocks and inodes, free-count
// mismatches) are harmless for shrink but e2fsck -fn would report them.
// Each list is capped at maxCheckItems; the Omitted counters say how many
// more there were.
type CheckReport struct {
	Groups          uint64
	InodesInUse     uint64
	BlocksUsed      uint64 // blocks referenced by metadata and inodes
	Errors          []CheckItem
	Warnings        []CheckItem
	ErrorsOmitted   int
	WarningsOmitted int
}

// Err returns a *CheckError when the report holds errors, else nil.
func (r *CheckReport) Err() error {
	if r == nil || len(r.Errors) == 0 {
		return nil
	}
	return &CheckError{Report: r}
}

// CheckError is returned by Check when the bitmaps disagree with what the
// inodes and group metadata reference.
type CheckError struct {
	Report *CheckReport
}

// Error lists the first disagreements and says what to do.
func (e *CheckError) Error() string {
	r := e.Report
	n := len(r.Errors) + r.ErrorsOmitted
	var b strings.Builder
	fmt.Fprintf(&b, "ext4: %d allocation error(s): ", n)
	for i, it := range r.Errors {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", n-3)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(it.Msg)
	}
	b.WriteString("; run e2fsck -f on the image (or the partition copied out) and try again")
	return b.String()
}

// Unwrap makes a CheckError match ErrCorrupt.
func (e *CheckError) Unwrap() error { return ErrCorrupt }

const (
	maxCheckItems      = 100
	maxCheckBitmap     = 32 << 20 // bytes per bitmap (two are kept: 64 MiB)
	maxCheckXattrSeen  = 1 << 20
	checkTableChunkMax = 1 << 20 // bytes of inode table read at once
)

type checker struct {
	f        *FS
	rep      *CheckReport
	nbits    uint64
	ondisk   []byte // block bitmaps as on disk, one bit per cluster
	ref      []byte // clusters referenced
	badGroup []bool // groups whose bitmap could not be read
	bigalloc bool
	xattrs   map[uint64]bool
	buf      []byte
	// current owner, for messages
	ino      int64
	what     string
	oorNoted bool
}

func (c *checker) add(warn bool, it CheckItem) {
	if warn {
		if len(c.rep.Warnings) >= maxCheckItems {
			c.rep.WarningsOmitted++
			return
		}
		c.rep.Warnings = append(c.rep.Warnings, it)
		return
	}
	if len(c.rep.Errors) >= maxCheckItems {
		c.rep.ErrorsOmitted++
		return
	}
	c.rep.Errors = append(c.rep.Errors, it)
}

func (c *checker) cluster(blk uint64) uint64 { return (blk - c.f.firstData) / c.f.clusterRatio }
func (c *checker) group(blk uint64) int64 {
	return int64(c.cluster(blk) / c.f.cpg)
}

func testBit(b []byte, i uint64) bool { return b[i/8]&(1<<(i%8)) != 0 }
func setBit(b []byte, i uint64)       { b[i/8] |= 1 << (i % 8) }

// mark records that blocks [blk, blk+n) belong to the current owner. It
// returns false when the first block was already referenced (the caller
// then does not descend into it) or out of range.
func (c *checker) mark(blk, n uint64) bool {
	f := c.f
	if n == 0 {
		return true
	}
	if blk < f.firstData || blk >= f.blocks || n > f.blocks-blk {
		if !c.oorNoted {
			c.oorNoted = true
			c.add(false, CheckItem{Kind: CheckOutOfRange, Group: -1, Block: int64(blk), Count: int64(n), Inode: c.ino,
				Msg: fmt.Sprintf("%s references blocks %d..%d beyond the filesystem (%d blocks)", c.what, blk, blk+n-1, f.blocks)})
		}
		return false
	}
	fresh := true
	last := ^uint64(0)
	for b := blk; b < blk+n; b++ {
		cl := c.cluster(b)
		if cl == last {
			continue
		}
		last = cl
		if testBit(c.ref, cl) {
			if b == blk {
				fresh = false
			}
			if !c.bigalloc {
				c.add(false, CheckItem{Kind: CheckDoubleClaim, Group: c.group(b), Block: int64(b), Count: 1, Inode: c.ino,
					Msg: fmt.Sprintf("block %d (group %d) is used by %s and by something else", b, c.group(b), c.what)})
			}
			continue
		}
		setBit(c.ref, cl)
		c.rep.BlocksUsed++
		g := cl / f.cpg
		if !c.badGroup[g] && !testBit(c.ondisk, cl) {
			c.add(false, CheckItem{Kind: CheckUsedButFree, Group: int64(g), Block: int64(b), Count: 1, Inode: c.ino,
				Msg: fmt.Sprintf("block %d (group %d) is used by %s but marked free", b, g, c.what)})
		}
	}
	return fresh
}

// Check walks every in-use inode and compares the blocks it references
// (data, extent tree and indirect blocks, xattr block) and the group
// metadata with the block bitmaps, and in-use inodes with the inode
// bitmaps. It returns the report, and with it a *CheckError when there are
// errors (leaks and free-count mismatches alone are warnings, not errors).
// Filesystems whose block bitmap would exceed 32 MiB (2^28 clusters) are
// refused with ErrTooLarge.
func Check(r io.ReaderAt, size int64) (*CheckReport, error) {
	f, err := New(r, size, WithoutVerify())
	if err != nil {
		return nil, err
	}
	nbits := (f.blocks - f.firstData + f.clusterRatio - 1) / f.clusterRatio
	if nbits/8+1 > maxCheckBitmap || f.groups*f.cpg/8+1 > maxCheckBitmap {
		return nil, fmt.Errorf("ext4: checking %d clusters needs more than %d MiB of bitmaps; run e2fsck -f instead: %w",
			nbits, 2*maxCheckBitmap>>20, ErrTooLarge)
	}
	nb := (f.groups*f.cpg + 7) / 8
	c := &checker{f: f, rep: &CheckReport{Groups: f.groups}, nbits: nbits,
		ondisk: make([]byte, nb), ref: make([]byte, nb), badGroup: make([]bool, f.groups),
		bigalloc: f.clusterRatio > 1, xattrs: make(map[uint64]bool), buf: make([]byte, f.blockSize), ino: -1}
	if err := c.loadBitmaps(); err != nil {
		return nil, err
	}
	c.markMetadata()
	if err := c.walkInodes(); err != nil {
		return nil, err
	}
	c.compare()
	return c.rep, c.rep.Err()
}

func (c *checker) loadBitmaps() error {
	f := c.f
	buf := make([]byte, f.blockSize)
	for gi := uint64(0); gi < f.groups; gi++ {
		if err := f.groupBitmap(gi, buf, func(uint64, uint64) {}); err != nil {
			c.badGroup[gi] = true
			c.add(false, CheckItem{Kind: CheckBadMetadata, Group: int64(gi), Block: int64(f.groupList[gi].blockBitmap), Inode: -1,
				Msg: fmt.Sprintf("block bitmap of group %d unreadable: %v", gi, err)})
			continue
		}
		base := gi * f.cpg
		for i := uint64(0); i < f.cpg; i++ {
			if buf[i/8]&(1<<(i%8)) != 0 {
				setBit(c.ondisk, base+i)
			}
		}
	}
	return nil
}

func (c *checker) markMetadata() {
	f := c.f
	itBlocks := (uint64(f.ipg)*uint64(f.inodeSize) + uint64(f.blockSize) - 1) / uint64(f.blockSize)
	for gi := uint64(0); gi < f.groups; gi++ {
		g := &f.groupList[gi]
		c.oorNoted = false
		c.what = fmt.Sprintf("group %d superblock or descriptors", gi)
		f.superAndDesc(gi, func(blk, n uint64) { c.mark(blk, n) })
		c.what = fmt.Sprintf("group %d block bitmap", gi)
		c.mark(g.blockBitmap, 1)
		c.what = fmt.Sprintf("group %d inode bitmap", gi)
		c.mark(g.inodeBitmap, 1)
		if g.inodeTable != 0 {
			c.what = fmt.Sprintf("group %d inode table", gi)
			c.mark(g.inodeTable, itBlocks)
		}
	}
	if f.sb.FeatureIncompat&IncompatMMP != 0 && f.sb.MMPBlock != 0 {
		c.what = "the MMP block"
		c.mark(f.sb.MMPBlock, 1)
	}
}

// groupInodeBitmap reads the inode bitmap of a group; ok is false for
// groups whose inodes were never initialised.
func (c *checker) groupInodeBitmap(gi uint64, buf []byte) (bool, error) {
	f := c.f
	g := &f.groupList[gi]
	if (f.metaCsum || f.gdtCsum) && g.flags&BgInodeUninit != 0 {
		clear(buf)
		return false, nil
	}
	if err := f.readBlock(buf, g.inodeBitmap); err != nil {
		return false, err
	}
	return true, nil
}

func (c *checker) walkInodes() error {
	f := c.f
	ibm := make([]byte, f.blockSize)
	perChunk := max(1, int64(checkTableChunkMax)/f.inodeSize)
	table := make([]byte, perChunk*f.inodeSize)
	var freeInodesTotal uint64
	for gi := uint64(0); gi < f.groups; gi++ {
		g := &f.groupList[gi]
		init, err := c.groupInodeBitmap(gi, ibm)
		if err != nil {
			c.ino = -1
			c.add(false, CheckItem{Kind: CheckBadMetadata, Group: int64(gi), Block: int64(g.inodeBitmap), Inode: -1,
				Msg: fmt.Sprintf("inode bitmap of group %d unreadable: %v", gi, err)})
			continue
		}
		valid := uint64(f.ipg)
		if f.metaCsum || f.gdtCsum {
			valid -= uint64(g.itableUnused)
			if !init {
				valid = 0
			}
		}
		var freeHere uint64
		for idx := uint64(0); idx < uint64(f.ipg); idx++ {
			if !testBit(ibm, idx) {
				freeHere++
			}
		}
		freeInodesTotal += freeHere
		if !init {
			freeHere = uint64(f.ipg)
		}
		if uint64(g.freeInodes) != freeHere {
			c.add(true, CheckItem{Kind: CheckFreeCount, Group: int64(gi), Block: -1, Inode: -1,
				Msg: fmt.Sprintf("group %d descriptor says %d free inodes, its bitmap %d", gi, g.freeInodes, freeHere)})
		}
		for start := uint64(0); start < valid; start += uint64(perChunk) {
			n := min(uint64(perChunk), valid-start)
			off := int64(g.inodeTable)*f.blockSize + int64(start)*f.inodeSize
			chunk := table[:int64(n)*f.inodeSize]
			if g.inodeTable == 0 || g.inodeTable >= f.blocks {
				break
			}
			if err := f.readAt(chunk, off); err != nil {
				c.add(false, CheckItem{Kind: CheckBadMetadata, Group: int64(gi), Block: off / f.blockSize, Inode: -1,
					Msg: fmt.Sprintf("inode table of group %d unreadable: %v", gi, err)})
				break
			}
			for k := uint64(0); k < n; k++ {
				idx := start + k
				ino := gi*uint64(f.ipg) + idx + 1
				if ino > uint64(f.inodes) {
					break
				}
				c.checkInode(uint32(ino), chunk[int64(k)*f.inodeSize:int64(k+1)*f.inodeSize], testBit(ibm, idx), gi)
			}
		}
		// Inodes past itable_unused must be free.
		for idx := valid; idx < uint64(f.ipg) && init; idx++ {
			ino := gi*uint64(f.ipg) + idx + 1
			if testBit(ibm, idx) && ino <= uint64(f.inodes) && ino >= uint64(f.firstIno) {
				c.add(true, CheckItem{Kind: CheckInodeLeak, Group: int64(gi), Block: -1, Inode: int64(ino),
					Msg: fmt.Sprintf("inode %d (group %d) is marked used but lies in the unused part of the inode table", ino, gi)})
			}
		}
	}
	if uint64(f.sb.FreeInodesCount) != freeInodesTotal {
		c.add(true, CheckItem{Kind: CheckFreeCount, Group: -1, Block: -1, Inode: -1,
			Msg: fmt.Sprintf("superblock says %d free inodes, the bitmaps %d", f.sb.FreeInodesCount, freeInodesTotal)})
	}
	return nil
}

// rawInode decodes an inode from its table bytes.
func (f *FS) rawInode(ino uint32, raw []byte) *inode {
	in := &inode{ino: ino, raw: raw}
	if f.inodeSize > GoodOldInodeSize {
		x := int(binary.LittleEndian.Uint16(raw[0x80:]))
		if x&3 == 0 && GoodOldInodeSize+int64(x) <= f.inodeSize {
			in.extra = x
		}
	}
	var buf [inodeStructSize]byte
	copy(buf[:], raw[:min(len(raw), GoodOldInodeSize+in.extra)])
	in.Inode = decodeInode(buf[:])
	return in
}

// inodeOwnsBlocks reports whether i_block holds block references.
func (f *FS) inodeOwnsBlocks(in *inode) bool {
	if in.hasFlag(InodeInlineDataFl) {
		return false
	}
	switch in.mode() {
	case SIFCHR, SIFBLK, SIFIFO, SIFSOCK:
		return false
	case SIFLNK:
		return !f.isFastSymlink(in)
	}
	return true
}

func (c *checker) checkInode(ino uint32, raw []byte, marked bool, gi uint64) {
	f := c.f
	in := f.rawInode(ino, raw)
	reserved := ino < f.firstIno
	inUse := in.LinksCount > 0 || reserved
	if !inUse {
		if marked {
			c.add(true, CheckItem{Kind: CheckInodeLeak, Group: int64(gi), Block: -1, Inode: int64(ino),
				Msg: fmt.Sprintf("inode %d (group %d) is marked used but has no links (an orphan? run ReleaseOrphans)", ino, gi)})
		}
		return
	}
	if !marked {
		c.add(false, CheckItem{Kind: CheckInodeFree, Group: int64(gi), Block: -1, Inode: int64(ino),
			Msg: fmt.Sprintf("inode %d (group %d) is in use but marked free in the inode bitmap", ino, gi)})
	}
	if reserved && in.Mode == 0 && ino != 1 {
		return
	}
	c.rep.InodesInUse++
	c.ino = int64(ino)
	c.oorNoted = false
	c.what = fmt.Sprintf("inode %d", ino)
	if acl := in.fileACL(); acl != 0 {
		if !c.xattrs[acl] {
			if len(c.xattrs) < maxCheckXattrSeen {
				c.xattrs[acl] = true
			}
			c.what = fmt.Sprintf("inode %d (xattr block)", ino)
			c.mark(acl, 1)
			c.what = fmt.Sprintf("inode %d", ino)
		}
	}
	if !f.inodeOwnsBlocks(in) {
		return
	}
	if ino == 7 && f.sb.FeatureCompat&CompatResizeInode != 0 {
		// The resize inode's tree maps the reserved descriptor blocks,
		// counted with the group metadata; only its double-indirect block
		// is its own.
		c.mark(uint64(in.Block[NDirBlocks+1]), 1)
		return
	}
	if in.hasFlag(InodeExtentsFl) {
		c.walkExtents(in.raw[0x28:0x28+60], -1, -1)
		return
	}
	for i := range NDirBlocks {
		if b := uint64(in.Block[i]); b != 0 {
			c.mark(b, 1)
		}
	}
	for level := 1; level <= 3; level++ {
		if b := uint64(in.Block[NDirBlocks+level-1]); b != 0 {
			c.walkIndirect(b, level)
		}
	}
}

func (c *checker) badTree(blk int64, msg string) {
	c.add(false, CheckItem{Kind: CheckBadMetadata, Group: -1, Block: blk, Inode: c.ino,
		Msg: fmt.Sprintf("%s: %s at block %d", c.what, msg, blk)})
}

// walkExtents marks the blocks of an extent node and its subtree. A child
// block already referenced is not descended into, so cycles end.
func (c *checker) walkExtents(node []byte, blk int64, wantDepth int) {
	h := parseExtentHeader(node)
	if h.Magic != ExtentMagic || int(h.Entries) > (len(node)-12)/12 || h.Depth > MaxExtentDepth ||
		(wantDepth >= 0 && int(h.Depth) != wantDepth) {
		c.badTree(blk, "bad extent node")
		return
	}
	le := binary.LittleEndian
	if h.Depth == 0 {
		for i := range int(h.Entries) {
			e := node[12+12*i:]
			n := uint64(le.Uint16(e[4:]))
			if n > maxInitExtentLen {
				n -= maxInitExtentLen
			}
			start := uint64(le.Uint32(e[8:])) | uint64(le.Uint16(e[6:]))<<32
			c.mark(start, n)
		}
		return
	}
	for i := range int(h.Entries) {
		e := node[12+12*i:]
		child := uint64(le.Uint32(e[4:])) | uint64(le.Uint16(e[8:]))<<32
		if !c.mark(child, 1) {
			continue
		}
		buf := make([]byte, c.f.blockSize)
		if err := c.f.readBlock(buf, child); err != nil {
			c.badTree(int64(child), "unreadable extent block")
			continue
		}
		c.walkExtents(buf, int64(child), int(h.Depth)-1)
	}
}

func (c *checker) walkIndirect(blk uint64, level int) {
	if !c.mark(blk, 1) {
		return
	}
	buf := make([]byte, c.f.blockSize)
	if err := c.f.readBlock(buf, blk); err != nil {
		c.badTree(int64(blk), "unreadable indirect block")
		return
	}
	for i := 0; i+4 <= len(buf); i += 4 {
		p := uint64(binary.LittleEndian.Uint32(buf[i:]))
		if p == 0 {
			continue
		}
		if level == 1 {
			c.mark(p, 1)
		} else {
			c.walkIndirect(p, level-1)
		}
	}
}

// compare reports clusters marked used but unreferenced (as runs) and
// free-count mismatches.
func (c *checker) compare() {
	f := c.f
	var freeTotal uint64
	for gi := uint64(0); gi < f.groups; gi++ {
		if c.badGroup[gi] {
			continue
		}
		first := gi * f.cpg
		n := min(f.cpg, c.nbits-first)
		var free uint64
		runStart, runLen := uint64(0), uint64(0)
		flush := func() {
			if runLen == 0 {
				return
			}
			b := f.firstData + (first+runStart)*f.clusterRatio
			cnt := runLen * f.clusterRatio
			c.add(true, CheckItem{Kind: CheckLeak, Group: int64(gi), Block: int64(b), Count: int64(cnt), Inode: -1,
				Msg: fmt.Sprintf("blocks %d..%d (group %d) marked used but unreferenced", b, b+cnt-1, gi)})
			runLen = 0
		}
		for i := uint64(0); i < n; i++ {
			cl := first + i
			if i%8 == 0 && i+8 <= n && c.ondisk[cl/8] == c.ref[cl/8] {
				free += 8 - uint64(bits.OnesCount8(c.ondisk[cl/8]))
				flush()
				i += 7
				continue
			}
			od, rf := testBit(c.ondisk, cl), testBit(c.ref, cl)
			if !od {
				free++
			}
			if od && !rf {
				if runLen == 0 {
					runStart = i
				}
				runLen++
				continue
			}
			flush()
		}
		flush()
		freeTotal += free
		if gd := f.groupList[gi].freeBlocks; uint64(gd) != free {
			c.add(true, CheckItem{Kind: CheckFreeCount, Group: int64(gi), Block: -1, Inode: -1,
				Msg: fmt.Sprintf("group %d descriptor says %d free blocks, its bitmap %d", gi, gd, free)})
		}
	}
	if sbFree := f.freeBlocks; sbFree != freeTotal*f.clusterRatio && !anyTrue(c.badGroup) {
		c.add(true, CheckItem{Kind: CheckFreeCount, Group: -1, Block: -1, Inode: -1,
			Msg: fmt.Sprintf("superblock says %d free blocks, the bitmaps %d", sbFree, freeTotal*f.clusterRatio)})
	}
}

func anyTrue(b []bool) bool {
	for _, v := range b {
		if v {
			return true
		}
	}
	return false
}

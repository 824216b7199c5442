package fat

import (
	"fmt"
)

// This file holds the Writer's view of one directory: its raw 32-byte
// slots in order, where each lies on disk, which are free, and the entries
// the reader's parser finds in them.

// slotDir is a directory loaded for writing.
type slotDir struct {
	first    uint32   // first cluster; 0 for the FAT12/16 root directory
	clusters []uint32 // the chain (nil for the fixed root directory)
	raw      []byte   // every slot, in order
	end      int      // index of the end-of-directory marker, or the slot count
	data     *dirData // entries as the reader sees them
}

// slots is the number of 32-byte slots the directory has room for.
func (d *slotDir) slots() int { return len(d.raw) / dirEntrySize }

// slot returns the bytes of slot i.
func (d *slotDir) slot(i int) []byte { return d.raw[i*dirEntrySize : (i+1)*dirEntrySize] }

// isFree reports whether slot i may be used for a new entry.
func (d *slotDir) isFree(i int) bool { return i >= d.end || d.raw[i*dirEntrySize] == 0xE5 }

// slotOff returns the byte offset of slot i in the filesystem.
func (w *Writer) slotOff(d *slotDir, i int) int64 {
	g := w.g
	if d.clusters == nil {
		return g.rootOff + int64(i)*dirEntrySize
	}
	per := int(g.clusterSize / dirEntrySize)
	return g.clusterOff(d.clusters[i/per]) + int64(i%per)*dirEntrySize
}

// loadSlots reads a directory: the fixed root when first is 0 on FAT12/16,
// else the chain starting at first, bounded by the specification's
// directory size.
func (w *Writer) loadSlots(first uint32) (*slotDir, error) {
	g := w.g
	d := &slotDir{first: first}
	p := newDirParser(first)
	if first == 0 && g.variant != FAT32 {
		d.raw = make([]byte, g.rootEntries*dirEntrySize)
		if _, err := w.rw.ReadAt(d.raw, g.rootOff); err != nil {
			return nil, formatErrWrap(g.rootOff, "reading root directory", err)
		}
		p.feed(d.raw, g.rootOff)
	} else {
		chain, err := w.chainOf(first, g.dataOff, fmt.Sprintf("directory at cluster %d", first))
		if err != nil {
			return nil, err
		}
		if len(chain) > g.maxDirClusters() {
			return nil, formatErr(g.clusterOff(first), "directory at cluster %d exceeds %d entries; run fsck.vfat", first, maxDirEntries)
		}
		d.clusters = chain
		d.raw = make([]byte, int64(len(chain))*g.clusterSize)
		for i, c := range chain {
			b := d.raw[int64(i)*g.clusterSize : int64(i+1)*g.clusterSize]
			off := g.clusterOff(c)
			if _, err := w.rw.ReadAt(b, off); err != nil {
				return nil, formatErrWrap(off, "reading directory cluster", err)
			}
			p.feed(b, off)
		}
	}
	d.data = p.d
	d.end = d.slots()
	for i := range d.slots() {
		if d.raw[i*dirEntrySize] == 0 {
			d.end = i
			break
		}
	}
	return d, nil
}

// indexOf returns the slot index of the entry at byte offset off.
func (w *Writer) indexOf(d *slotDir, off int64) int {
	g := w.g
	if d.clusters == nil {
		return int((off - g.rootOff) / dirEntrySize)
	}
	per := int(g.clusterSize / dirEntrySize)
	for k, c := range d.clusters {
		base := g.clusterOff(c)
		if off >= base && off < base+g.clusterSize {
			return k*per + int((off-base)/dirEntrySize)
		}
	}
	return -1
}

// entrySlots returns the slots of an entry: its long-name pieces (those
// just before it that carry its checksum, in sequence) and its short entry
// last.
func (w *Writer) entrySlots(d *slotDir, n *node) []int {
	i := w.indexOf(d, n.off)
	if i < 0 {
		return nil
	}
	sum := checksum(n.short)
	out := []int{i}
	for ord, j := 1, i-1; j >= 0 && ord <= lfnMaxOrd; ord, j = ord+1, j-1 {
		e := d.slot(j)
		if Attr(e[11])&0x3F != AttrLongName || e[13] != sum || int(e[0]&^lfnLast) != ord || e[0] == 0xE5 {
			break
		}
		out = append([]int{j}, out...)
		if e[0]&lfnLast != 0 {
			break
		}
	}
	return out
}

// freeRun finds the first run of n free slots. When none exists it
// returns the start of the free slots at the end of the directory and how
// many slots are missing from that run.
func (d *slotDir) freeRun(n int) (start, missing int) {
	run := 0
	for i := range d.slots() {
		if !d.isFree(i) {
			run = 0
			continue
		}
		run++
		if run == n {
			return i - n + 1, 0
		}
	}
	return d.slots() - run, n - run
}

// shortNames reports the 8.3 names in use in the directory.
func (d *slotDir) shortNames() map[[11]byte]bool {
	m := make(map[[11]byte]bool)
	for i := range d.end {
		e := d.slot(i)
		if e[0] == 0xE5 || Attr(e[11])&0x3F == AttrLongName {
			continue
		}
		var sn [11]byte
		copy(sn[:], e[:11])
		m[sn] = true
	}
	return m
}

// isEmpty reports whether a subdirectory holds nothing but "." and "..".
func (d *slotDir) isEmpty() bool {
	for i := range d.end {
		e := d.slot(i)
		if e[0] == 0xE5 || Attr(e[11])&0x3F == AttrLongName {
			continue
		}
		if string(e[:11]) == ".          " || string(e[:11]) == "..         " {
			continue
		}
		return false
	}
	return true
}

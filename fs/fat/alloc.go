package fat

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// This file holds the cluster allocator of the Writer: the in-memory FAT,
// its changes (kept with their original values so that an operation that
// fails before reaching the disk can be undone), and the writes of the
// changed entries to every FAT copy and of the FSInfo sector.

// eocMark is the end-of-chain value the Writer stores.
func (w *Writer) eocMark() uint32 {
	switch w.g.variant {
	case FAT12:
		return 0xFFF
	case FAT16:
		return 0xFFFF
	}
	return 0x0FFFFFFF
}

// setEntry changes the FAT entry of cluster c in memory, keeping the free
// count in step and remembering the first value seen for undo.
func (w *Writer) setEntry(c, v uint32) {
	old := w.fat.get(c)
	if _, ok := w.undo[c]; !ok {
		w.undo[c] = old
	}
	switch {
	case old == 0 && v != 0:
		w.free--
	case old != 0 && v == 0:
		w.free++
	}
	raw := w.fat.raw
	switch w.g.variant {
	case FAT12:
		o := int(c) + int(c)/2
		if c&1 != 0 {
			raw[o] = raw[o]&0x0F | byte(v<<4)
			raw[o+1] = byte(v >> 4)
		} else {
			raw[o] = byte(v)
			raw[o+1] = raw[o+1]&0xF0 | byte(v>>8)&0x0F
		}
	case FAT16:
		binary.LittleEndian.PutUint16(raw[2*c:], uint16(v))
	default: // the top four bits are reserved and kept
		old32 := binary.LittleEndian.Uint32(raw[4*c:])
		binary.LittleEndian.PutUint32(raw[4*c:], old32&0xF0000000|v&0x0FFFFFFF)
	}
}

// rollback restores, in memory, the entries changed since the last flush.
func (w *Writer) rollback() {
	for c, v := range w.undo {
		w.setEntry(c, v)
	}
	clear(w.undo)
}

// entryBytes is the byte range of cluster c's entry in a FAT.
func (w *Writer) entryBytes(c uint32) (lo, hi int) {
	l, h := w.fat.entryBytes(c)
	return int(l), int(h)
}

// flushFAT writes the entries changed since the last flush to every FAT
// copy (only the active one when FAT32 mirroring is off), in runs of
// neighbouring bytes.
func (w *Writer) flushFAT() error {
	if len(w.undo) == 0 {
		return nil
	}
	cs := make([]uint32, 0, len(w.undo))
	for c := range w.undo {
		cs = append(cs, c)
	}
	slices.Sort(cs)
	limit := int(w.g.fatBytes())
	type span struct{ lo, hi int }
	var spans []span
	for _, c := range cs {
		lo, hi := w.entryBytes(c)
		hi = min(hi, limit)
		if k := len(spans) - 1; k >= 0 && lo <= spans[k].hi+64 {
			spans[k].hi = max(spans[k].hi, hi)
			continue
		}
		spans = append(spans, span{lo, hi})
	}
	for _, copyStart := range w.fatCopies {
		for _, s := range spans {
			off := copyStart + int64(s.lo)
			if _, err := w.rw.WriteAt(w.fat.raw[s.lo:s.hi], off); err != nil {
				return w.fail(fmt.Errorf("fat: writing FAT at offset %d: %w", off, err))
			}
		}
	}
	clear(w.undo)
	return nil
}

// countFree counts the free clusters of the in-memory FAT.
func (w *Writer) countFree() uint32 {
	var n uint32
	for c := uint32(firstCluster); c-firstCluster < w.g.clusters; c++ {
		if w.fat.get(c) == 0 {
			n++
		}
	}
	return n
}

// pickClusters chooses n free clusters without changing anything: the
// first run of n consecutive free clusters found from the allocation hint
// onwards (wrapping around), else the free clusters in order from the hint.
// The caller has checked that n clusters are free.
func (w *Writer) pickClusters(n int) []uint32 {
	if n <= 0 {
		return nil
	}
	g := w.g
	total := g.clusters
	start := w.next
	if !g.valid(start) {
		start = firstCluster
	}
	// at returns the i-th cluster from the hint, wrapping.
	at := func(i uint32) uint32 {
		return firstCluster + (start-firstCluster+i)%total
	}
	runStart, runLen := uint32(0), 0
	for i := uint32(0); i < total; i++ {
		c := at(i)
		if c == firstCluster && i > 0 {
			runLen = 0 // a run cannot wrap around the end of the data area
		}
		if w.fat.get(c) != 0 {
			runLen = 0
			continue
		}
		if runLen == 0 {
			runStart = c
		}
		runLen++
		if runLen == n {
			out := make([]uint32, n)
			for j := range out {
				out[j] = runStart + uint32(j)
			}
			return out
		}
	}
	out := make([]uint32, 0, n)
	for i := uint32(0); i < total && len(out) < n; i++ {
		if c := at(i); w.fat.get(c) == 0 {
			out = append(out, c)
		}
	}
	return out
}

// allocate marks clusters as a chain in memory: each points to the next,
// the last holds the end-of-chain mark. The hint moves past the last.
func (w *Writer) allocate(cs []uint32) {
	for i, c := range cs {
		v := w.eocMark()
		if i+1 < len(cs) {
			v = cs[i+1]
		}
		w.setEntry(c, v)
	}
	if len(cs) > 0 {
		w.next = cs[len(cs)-1] + 1
		if !w.g.valid(w.next) {
			w.next = firstCluster
		}
	}
}

// release marks clusters free in memory.
func (w *Writer) release(cs []uint32) {
	for _, c := range cs {
		w.setEntry(c, 0)
	}
}

// chainOf returns the cluster chain that starts at first, checked: every
// cluster valid, none twice, ending with an end-of-chain mark, at most the
// cluster count long. what names the owner for errors; off is the byte
// offset of its directory entry.
func (w *Writer) chainOf(first uint32, off int64, what string) ([]uint32, error) {
	if first == 0 {
		return nil, nil
	}
	g := w.g
	seen := make(map[uint32]bool)
	var out []uint32
	c := first
	prev := off
	for range g.clusters {
		if !g.valid(c) {
			return nil, formatErr(prev, "%s: cluster %d out of range; run fsck.vfat to repair the filesystem", what, c)
		}
		if seen[c] {
			return nil, formatErr(prev, "%s: cluster chain loops at cluster %d; run fsck.vfat to repair the filesystem", what, c)
		}
		seen[c] = true
		out = append(out, c)
		v := w.fat.get(c)
		prev = g.entryOff(c)
		switch g.classify(v) {
		case entNext:
			c = v
		case entEOC:
			return out, nil
		default:
			return nil, formatErr(prev, "%s: cluster %d has FAT entry %#x; run fsck.vfat to repair the filesystem", what, c, v)
		}
	}
	return nil, formatErr(prev, "%s: cluster chain longer than the filesystem; run fsck.vfat to repair the filesystem", what)
}

// writeFSInfo stores the free count and the allocation hint in the FAT32
// FSInfo sector, when the volume has a valid one.
func (w *Writer) writeFSInfo() error {
	if w.fsInfoOff == 0 {
		return nil
	}
	var b [8]byte
	binary.LittleEndian.PutUint32(b[0:], w.free)
	binary.LittleEndian.PutUint32(b[4:], w.next)
	if _, err := w.rw.WriteAt(b[:], w.fsInfoOff+488); err != nil {
		return w.fail(fmt.Errorf("fat: writing FSInfo sector: %w", err))
	}
	return nil
}

package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// errNoClusters is returned by ReplaceFile when the filesystem has too few
// free clusters for the new content.
var errNoClusters = errors.New("fat: no free clusters")

// ReplaceFile replaces the content of the existing regular file at path
// (slash-separated, from the root) with data, in place: the file keeps its
// cluster chain, which is cut short (freeing the clusters it no longer
// needs) or extended with free clusters taken from the start of the FAT.
// Every copy of the FAT is updated, the FAT32 FSInfo free count and hint
// are kept in step, and the directory entry gets the new size and the
// current time (UTC) as its write time. Names, long names and every other
// file are left alone. It does not create files.
//
// A crash in the middle leaves the filesystem with a file of mixed content
// and possibly lost clusters (fsck repairs both); callers that need
// atomicity write through an undo log.
func ReplaceFile(rw interface {
	io.ReaderAt
	io.WriterAt
}, size int64, path string, data []byte) error {
	f, err := New(rw, size)
	if err != nil {
		return err
	}
	t, err := f.resolve("replace", path)
	if err != nil {
		return err
	}
	if t.dir != nil || t.n == nil {
		return fmt.Errorf("fat: replace %s: is a directory", path)
	}
	if int64(len(data)) > 0xFFFFFFFF {
		return fmt.Errorf("fat: replace %s: %d bytes is too large for FAT", path, len(data))
	}
	n := t.n
	g := f.g
	cs := g.clusterSize
	// The existing chain, bounded by the cluster count.
	var chain []uint32
	if n.size > 0 || n.cluster != 0 {
		c := n.cluster
		for g.valid(c) {
			if len(chain) > int(g.clusters) {
				return formatErr(n.off, "file %q: cluster chain loops", n.name)
			}
			chain = append(chain, c)
			v := f.fat.get(c)
			if g.classify(v) != entNext {
				break
			}
			c = v
		}
	}
	need := int((int64(len(data)) + cs - 1) / cs)
	if have := int((int64(n.size) + cs - 1) / cs); len(chain) < have {
		return formatErr(n.off, "file %q: cluster chain shorter than its size", n.name)
	}
	w := &replaceFAT{f: f, rw: rw}
	freeDelta := 0
	switch {
	case need > len(chain):
		hint := uint32(firstCluster)
		for len(chain) < need {
			c, ok := w.findFree(hint)
			if !ok {
				return fmt.Errorf("%w: %s needs %d more clusters", errNoClusters, path, need-len(chain))
			}
			w.set(c, w.eoc())
			if len(chain) > 0 {
				w.set(chain[len(chain)-1], c)
			}
			chain = append(chain, c)
			hint = c + 1
			freeDelta--
		}
	case need < len(chain):
		if need > 0 {
			w.set(chain[need-1], w.eoc())
		}
		for _, c := range chain[need:] {
			w.set(c, 0)
			freeDelta++
		}
		chain = chain[:need]
	}
	// Content, the last cluster padded with zeros.
	buf := make([]byte, cs)
	for i, c := range chain {
		clear(buf)
		copy(buf, data[min(int64(i)*cs, int64(len(data))):])
		if _, err := rw.WriteAt(buf, g.clusterOff(c)); err != nil {
			return err
		}
	}
	if err := w.flush(); err != nil {
		return err
	}
	if freeDelta != 0 && g.variant == FAT32 && g.fsInfoSector > 0 {
		if err := w.fsInfo(freeDelta, chain); err != nil {
			return err
		}
	}
	// Directory entry: first cluster, size, write and access times.
	var first uint32
	if len(chain) > 0 {
		first = chain[0]
	}
	e := make([]byte, dirEntrySize)
	if _, err := rw.ReadAt(e, n.off); err != nil {
		return err
	}
	le := binary.LittleEndian
	le.PutUint16(e[20:], uint16(first>>16))
	le.PutUint16(e[26:], uint16(first))
	le.PutUint32(e[28:], uint32(len(data)))
	d, tm := replaceDOSTime(time.Now().UTC())
	le.PutUint16(e[22:], tm)
	le.PutUint16(e[24:], d)
	le.PutUint16(e[18:], d)
	_, err = rw.WriteAt(e, n.off)
	return err
}

// replaceFAT changes FAT entries in memory and writes the touched entries
// to every FAT copy.
type replaceFAT struct {
	f  *FS
	rw interface {
		io.ReaderAt
		io.WriterAt
	}
	touched map[uint32]bool
}

func (w *replaceFAT) eoc() uint32 {
	switch w.f.g.variant {
	case FAT12:
		return 0xFFF
	case FAT16:
		return 0xFFFF
	}
	return 0x0FFFFFFF
}

func (w *replaceFAT) findFree(from uint32) (uint32, bool) {
	g := w.f.g
	for c := max(from, firstCluster); g.valid(c); c++ {
		if w.f.fat.get(c) == 0 {
			return c, true
		}
	}
	return 0, false
}

// set changes entry c in the in-memory table.
func (w *replaceFAT) set(c, v uint32) {
	raw := w.f.fat.raw
	switch w.f.g.variant {
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
	default:
		old := binary.LittleEndian.Uint32(raw[4*c:])
		binary.LittleEndian.PutUint32(raw[4*c:], old&0xF0000000|v&0x0FFFFFFF)
	}
	if w.touched == nil {
		w.touched = make(map[uint32]bool)
	}
	w.touched[c] = true
}

// flush writes the bytes of each touched entry to every FAT copy.
func (w *replaceFAT) flush() error {
	g := w.f.g
	raw := w.f.fat.raw
	for c := range w.touched {
		var lo, n int
		switch g.variant {
		case FAT12:
			lo, n = int(c)+int(c)/2, 2
		case FAT16:
			lo, n = 2*int(c), 2
		default:
			lo, n = 4*int(c), 4
		}
		for i := range g.numFATs {
			off := (g.reserved+i*g.fatSectors)*g.sectorSize + int64(lo)
			if _, err := w.rw.WriteAt(raw[lo:lo+n], off); err != nil {
				return err
			}
		}
	}
	return nil
}

// fsInfo adjusts the FSInfo free count by delta and points the next-free
// hint past the last cluster allocated.
func (w *replaceFAT) fsInfo(delta int, chain []uint32) error {
	g := w.f.g
	off := g.fsInfoSector * g.sectorSize
	b := make([]byte, 512)
	if _, err := w.rw.ReadAt(b, off); err != nil {
		return err
	}
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != 0x41615252 || le.Uint32(b[484:]) != 0x61417272 {
		return nil // no valid FSInfo: nothing to keep in step
	}
	if free := le.Uint32(b[488:]); free != 0xFFFFFFFF {
		le.PutUint32(b[488:], uint32(int64(free)+int64(delta)))
	}
	if delta < 0 && len(chain) > 0 {
		le.PutUint32(b[492:], chain[len(chain)-1]+1)
	}
	_, err := w.rw.WriteAt(b[484:500], off+484)
	return err
}

// replaceDOSTime encodes t as a FAT date and time (2-second resolution).
func replaceDOSTime(t time.Time) (date, tm uint16) {
	y := max(t.Year()-1980, 0)
	date = uint16(y<<9 | int(t.Month())<<5 | t.Day())
	tm = uint16(t.Hour()<<11 | t.Minute()<<5 | t.Second()/2)
	return date, tm
}

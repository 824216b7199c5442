package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"path"
	"strings"
	"time"
)

// Errors of the Writer. Each is returned wrapped in an *fs.PathError that
// names the operation and the path.
var (
	// ErrFull: the filesystem has fewer free clusters than the operation
	// needs. Nothing was changed.
	ErrFull = errors.New("fat: not enough free space")
	// ErrDirFull: the directory cannot take more entries (the fixed
	// FAT12/16 root directory, or the 65536 entries a directory may hold).
	// Nothing was changed.
	ErrDirFull = errors.New("fat: directory full")
	// ErrBadName: the name cannot be stored on FAT (forbidden character,
	// trailing dot or space, longer than 255 UTF-16 characters).
	ErrBadName = errors.New("fat: invalid file name")
	// ErrNotEmpty: Remove was asked to delete a directory that holds
	// entries; use RemoveAll.
	ErrNotEmpty = errors.New("fat: directory not empty")
)

// rwAt is what the Writer needs of an image.
type rwAt = interface {
	io.ReaderAt
	io.WriterAt
}

// Writer changes a FAT12, FAT16 or FAT32 filesystem in place: it creates,
// replaces, truncates and removes files and directories, with long names.
//
// Each method leaves the filesystem consistent on disk when it returns
// (every FAT copy and the FAT32 FSInfo sector are written before it
// returns), so fsck.vfat finds nothing to repair between two calls. A
// method that cannot complete for a reason known in advance (no space,
// directory full, bad name, missing parent, wrong kind of file) returns an
// error and writes nothing. Writes are ordered so that an I/O failure or a
// crash part-way leaves at worst clusters marked used that no file owns
// (or, for Truncate, a chain longer than the file), never a file pointing
// at free or foreign clusters: new clusters are filled, then marked in
// the FAT, then linked from a directory entry; old clusters are freed
// last. After an I/O error the Writer refuses further calls.
//
// Times are stored as UTC, as the reader reads them. A Writer is not safe
// for concurrent use, and nothing else may write the image while it is
// open; readers opened with New before a change may see stale data.
type Writer struct {
	// Clock supplies the time stamped on directories made by Mkdir and
	// MkdirAll and on files changed by Truncate. Nil means time.Now.
	Clock func() time.Time

	rw        rwAt
	size      int64
	g         *geometry
	fat       *table
	fatCopies []int64           // byte offsets of the FATs to write
	fsInfoOff int64             // FAT32 FSInfo sector; 0 when none or invalid
	free      uint32            // free clusters
	next      uint32            // allocation hint
	undo      map[uint32]uint32 // FAT entries changed since the last flush: first value
	broken    error
	closed    bool
}

// OpenWriter opens the FAT filesystem held in the first size bytes of rw
// for writing. It reads the boot sector and the active FAT; it returns an
// error wrapping ErrNotFAT when rw holds no FAT filesystem, and refuses a
// filesystem larger than the image.
func OpenWriter(rw interface {
	io.ReaderAt
	io.WriterAt
}, size int64) (*Writer, error) {
	f, err := New(rw, size)
	if err != nil {
		return nil, err
	}
	if err := f.fat.loadAll(); err != nil { // the writer keeps the whole FAT
		return nil, err
	}
	g := f.g
	if end := g.dataOff + int64(g.clusters)*g.clusterSize; end > size {
		return nil, fmt.Errorf("fat: the filesystem needs %d bytes but the image has %d; it is truncated, write to a complete image", end, size)
	}
	w := &Writer{rw: rw, size: size, g: g, fat: f.fat, undo: make(map[uint32]uint32)}
	var boot [512]byte
	if _, err := rw.ReadAt(boot[:], 0); err != nil {
		return nil, fmt.Errorf("fat: reading boot sector: %w", err)
	}
	if ext := binary.LittleEndian.Uint16(boot[40:]); g.variant == FAT32 && ext&0x80 != 0 {
		w.fatCopies = []int64{g.fatOff} // mirroring off: only the active FAT is used
	} else {
		for i := range g.numFATs {
			w.fatCopies = append(w.fatCopies, (g.reserved+i*g.fatSectors)*g.sectorSize)
		}
	}
	w.free = w.countFree()
	w.next = firstCluster
	if g.variant == FAT32 && g.fsInfoSector > 0 {
		off := g.fsInfoSector * g.sectorSize
		var b [512]byte
		if _, err := rw.ReadAt(b[:], off); err == nil {
			le := binary.LittleEndian
			if le.Uint32(b[0:]) == fsInfoLeadSig && le.Uint32(b[484:]) == fsInfoStrucSig {
				w.fsInfoOff = off
				if hint := le.Uint32(b[492:]); g.valid(hint) {
					w.next = hint
				}
			}
		}
	}
	return w, nil
}

// now returns the Clock's time.
func (w *Writer) now() time.Time {
	if w.Clock != nil {
		return w.Clock()
	}
	return time.Now()
}

// fail stops the Writer after an I/O error.
func (w *Writer) fail(err error) error {
	if w.broken == nil {
		w.broken = err
	}
	return err
}

// usable checks that the Writer may run op.
func (w *Writer) usable(op, p string) error {
	if w.closed {
		return &iofs.PathError{Op: op, Path: p, Err: iofs.ErrClosed}
	}
	if w.broken != nil {
		return &iofs.PathError{Op: op, Path: p, Err: fmt.Errorf("fat: writer stopped after an earlier I/O error (%w); check the image with fsck.vfat and open a new Writer", w.broken)}
	}
	return nil
}

// Close writes the FSInfo sector once more and ends the Writer. The
// filesystem is already consistent after each call, so Close only matters
// to callers that want later calls to fail.
func (w *Writer) Close() error {
	if w.closed {
		return &iofs.PathError{Op: "close", Path: ".", Err: iofs.ErrClosed}
	}
	w.closed = true
	if w.broken != nil {
		return nil
	}
	return w.writeFSInfo()
}

// Free returns the number of free clusters and the cluster size in bytes.
func (w *Writer) Free() (clusters int64, clusterSize int64) {
	return int64(w.free), w.g.clusterSize
}

// reader returns a reader that shares the Writer's FAT, with no cached
// directories.
func (w *Writer) reader() *FS {
	return &FS{r: w.rw, size: w.size, g: w.g, fat: w.fat,
		dirs: make(map[uint32]*dirData), dirOwner: make(map[uint32]uint32)}
}

// locate loads the parent directory of p for writing and finds the entry
// p names in it (n is nil when there is none).
func (w *Writer) locate(op, p string) (d *slotDir, name string, n *node, err error) {
	if !iofs.ValidPath(p) || p == "." {
		return nil, "", nil, &iofs.PathError{Op: op, Path: p, Err: iofs.ErrInvalid}
	}
	dir, name := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	t, err := w.reader().resolve(op, dir)
	if err != nil {
		var pe *iofs.PathError
		if errors.As(err, &pe) {
			pe.Path = p
		}
		return nil, "", nil, err
	}
	if t.dir == nil {
		return nil, "", nil, &iofs.PathError{Op: op, Path: p, Err: fmt.Errorf("%s is a file: %w", dir, errNotDir)}
	}
	d, err = w.loadSlots(t.dir.first)
	if err != nil {
		return nil, "", nil, &iofs.PathError{Op: op, Path: p, Err: err}
	}
	return d, name, d.data.lookup(name), nil
}

// locateExisting is locate for an entry that must exist.
func (w *Writer) locateExisting(op, p string) (*slotDir, *node, error) {
	d, _, n, err := w.locate(op, p)
	if err != nil {
		return nil, nil, err
	}
	if n == nil {
		return nil, nil, &iofs.PathError{Op: op, Path: p, Err: iofs.ErrNotExist}
	}
	return d, n, nil
}

// clustersFor is the number of clusters that n bytes occupy.
func (w *Writer) clustersFor(n int64) int {
	return int((n + w.g.clusterSize - 1) / w.g.clusterSize)
}

// fullErr describes a lack of free clusters.
func (w *Writer) fullErr(op, p string, need int) error {
	return &iofs.PathError{Op: op, Path: p, Err: fmt.Errorf("%w: needs %d clusters of %d bytes, %d are free; remove files or use a larger filesystem",
		ErrFull, need, w.g.clusterSize, w.free)}
}

// entryPlan is where a new entry goes in its parent directory.
type entryPlan struct {
	short [11]byte
	ntres uint8
	lfn   [][]byte // long-name entries, in stored order
	start int      // first slot
	grow  int      // clusters to add to the directory first
}

// planEntry chooses the short name, the long-name entries and the slots
// of a new entry called name in d, without writing anything.
func (w *Writer) planEntry(op, p string, d *slotDir, name string) (*entryPlan, error) {
	u, err := checkLongName(name)
	if err != nil {
		return nil, &iofs.PathError{Op: op, Path: p, Err: err}
	}
	taken := d.shortNames()
	pl := &entryPlan{}
	sn, ntres, plain := plainShort(name)
	if plain && !taken[sn] {
		pl.short, pl.ntres = sn, ntres
	} else {
		sn, err := makeAlias(name, func(s [11]byte) bool { return taken[s] }, len(taken)+1)
		if err != nil {
			return nil, &iofs.PathError{Op: op, Path: p, Err: err}
		}
		pl.short = sn
		pl.lfn = lfnEntries(u, sn)
	}
	count := len(pl.lfn) + 1
	start, missing := d.freeRun(count)
	if missing > 0 {
		if d.clusters == nil {
			return nil, &iofs.PathError{Op: op, Path: p, Err: fmt.Errorf("%w: the %s root directory holds at most %d entries and has room for %d fewer than the %d this name needs; remove files from it or use a shorter 8.3 name",
				ErrDirFull, w.g.variant, w.g.rootEntries, missing, count)}
		}
		per := int(w.g.clusterSize / dirEntrySize)
		pl.grow = (missing + per - 1) / per
		if d.slots()+pl.grow*per > maxDirEntries {
			return nil, &iofs.PathError{Op: op, Path: p, Err: fmt.Errorf("%w: a directory holds at most %d entries; use a subdirectory", ErrDirFull, maxDirEntries)}
		}
	}
	pl.start = start
	return pl, nil
}

// zeroClusters writes zeros over clusters.
func (w *Writer) zeroClusters(cs []uint32) error {
	zero := make([]byte, w.g.clusterSize)
	for _, c := range cs {
		if _, err := w.rw.WriteAt(zero, w.g.clusterOff(c)); err != nil {
			return fmt.Errorf("fat: zeroing cluster %d: %w", c, err)
		}
	}
	return nil
}

// writeData stores data in the clusters cs, consecutive clusters with one
// write, the last cluster padded with zeros.
func (w *Writer) writeData(cs []uint32, data []byte) error {
	csz := w.g.clusterSize
	for i := 0; i < len(cs); {
		j := i + 1
		for j < len(cs) && cs[j] == cs[j-1]+1 {
			j++
		}
		lo, hi := int64(i)*csz, min(int64(j)*csz, int64(len(data)))
		off := w.g.clusterOff(cs[i])
		if _, err := w.rw.WriteAt(data[lo:hi], off); err != nil {
			return fmt.Errorf("fat: writing data at offset %d: %w", off, err)
		}
		if pad := int64(j)*csz - hi; pad > 0 {
			if _, err := w.rw.WriteAt(make([]byte, pad), off+hi-lo); err != nil {
				return fmt.Errorf("fat: writing data at offset %d: %w", off+hi-lo, err)
			}
		}
		i = j
	}
	return nil
}

// growDir adds k zeroed clusters to the directory d and writes the FAT.
func (w *Writer) growDir(d *slotDir, k int) error {
	if k == 0 {
		return nil
	}
	cs := w.pickClusters(k)
	if err := w.zeroClusters(cs); err != nil {
		w.rollback()
		return err
	}
	w.allocate(cs)
	w.setEntry(d.clusters[len(d.clusters)-1], cs[0])
	if err := w.flushFAT(); err != nil {
		return err
	}
	d.clusters = append(d.clusters, cs...)
	d.raw = append(d.raw, make([]byte, int64(k)*w.g.clusterSize)...)
	return nil
}

// putEntries writes entries into consecutive slots of d from start, in
// order, and keeps an end-of-directory marker after them when they extend
// past the old one.
func (w *Writer) putEntries(d *slotDir, start int, ents [][]byte) error {
	for i := 0; i < len(ents); {
		j := i + 1
		for j < len(ents) && w.slotOff(d, start+j) == w.slotOff(d, start+j-1)+dirEntrySize {
			j++
		}
		buf := make([]byte, 0, (j-i)*dirEntrySize)
		for k := i; k < j; k++ {
			buf = append(buf, ents[k]...)
			copy(d.slot(start+k), ents[k])
		}
		if _, err := w.rw.WriteAt(buf, w.slotOff(d, start+i)); err != nil {
			return w.fail(fmt.Errorf("fat: writing directory entry: %w", err))
		}
		i = j
	}
	last := start + len(ents)
	if last > d.end {
		if last < d.slots() && d.raw[last*dirEntrySize] != 0 {
			clear(d.slot(last))
			if _, err := w.rw.WriteAt(d.slot(last), w.slotOff(d, last)); err != nil {
				return w.fail(fmt.Errorf("fat: writing directory entry: %w", err))
			}
		}
		d.end = last
	}
	return nil
}

// fatStamp encodes t (as UTC) as a FAT date, time and 10 ms count, clamped to
// the years FAT can store (1980 to 2107).
func fatStamp(t time.Time) (date, tm uint16, tenth uint8) {
	t = t.UTC()
	switch {
	case t.Year() < 1980:
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	case t.Year() > 2107:
		t = time.Date(2107, 12, 31, 23, 59, 59, 990_000_000, time.UTC)
	}
	date = uint16((t.Year()-1980)<<9 | int(t.Month())<<5 | t.Day())
	tm = uint16(t.Hour()<<11 | t.Minute()<<5 | t.Second()/2)
	tenth = uint8(t.Second()%2*100 + t.Nanosecond()/10_000_000)
	return date, tm, tenth
}

// encodeShort builds a short directory entry. Creation, write and access
// times are set from crt and mod.
func encodeShort(sn [11]byte, attr Attr, ntres uint8, cluster, size uint32, crt, mod time.Time) []byte {
	e := make([]byte, dirEntrySize)
	copy(e, sn[:])
	e[11] = byte(attr)
	e[12] = ntres
	le := binary.LittleEndian
	cd, ct, tenth := fatStamp(crt)
	e[13] = tenth
	le.PutUint16(e[14:], ct)
	le.PutUint16(e[16:], cd)
	setCluster(e, cluster)
	setModTime(e, mod)
	le.PutUint32(e[28:], size)
	return e
}

// setCluster stores the first cluster in a short entry.
func setCluster(e []byte, c uint32) {
	binary.LittleEndian.PutUint16(e[20:], uint16(c>>16))
	binary.LittleEndian.PutUint16(e[26:], uint16(c))
}

// setModTime stores the write time and the access date in a short entry.
func setModTime(e []byte, t time.Time) {
	d, tm, _ := fatStamp(t)
	binary.LittleEndian.PutUint16(e[18:], d)
	binary.LittleEndian.PutUint16(e[22:], tm)
	binary.LittleEndian.PutUint16(e[24:], d)
}

// rewriteEntry writes the short entry e back to where n lies.
func (w *Writer) rewriteEntry(d *slotDir, n *node, e []byte) error {
	if i := w.indexOf(d, n.off); i >= 0 {
		copy(d.slot(i), e)
	}
	if _, err := w.rw.WriteAt(e, n.off); err != nil {
		return w.fail(fmt.Errorf("fat: writing directory entry at offset %d: %w", n.off, err))
	}
	return nil
}

// shortOf returns a copy of n's short entry.
func (w *Writer) shortOf(d *slotDir, n *node) ([]byte, error) {
	i := w.indexOf(d, n.off)
	if i < 0 {
		return nil, formatErr(n.off, "entry %q lies outside its directory", n.name)
	}
	return append([]byte(nil), d.slot(i)...), nil
}

// WriteFile creates the regular file p (slash-separated, from the root)
// with data, or replaces the content of the file that p names. The name
// matches case-insensitively, as on FAT, and an existing file keeps its
// stored name. mode gives the read-only attribute (set when mode has no
// write bit); mtime is stored as the write and access time, and as the
// creation time of a new file. A replaced file's new content is written
// to new clusters before the entry switches to them, so the filesystem
// needs room for the new content while the old one still exists.
func (w *Writer) WriteFile(p string, data []byte, mode iofs.FileMode, mtime time.Time) error {
	const op = "writefile"
	if err := w.usable(op, p); err != nil {
		return err
	}
	if mode&iofs.ModeType != 0 {
		return &iofs.PathError{Op: op, Path: p, Err: fmt.Errorf("mode %v is not a regular file: %w", mode, iofs.ErrInvalid)}
	}
	if int64(len(data)) > 0xFFFFFFFF {
		return &iofs.PathError{Op: op, Path: p, Err: fmt.Errorf("%d bytes is more than a FAT file holds (4 GiB - 1): %w", len(data), iofs.ErrInvalid)}
	}
	d, name, n, err := w.locate(op, p)
	if err != nil {
		return err
	}
	need := w.clustersFor(int64(len(data)))
	readOnly := mode.Perm()&0o222 == 0
	if n != nil {
		if n.isDir() {
			return &iofs.PathError{Op: op, Path: p, Err: errIsDir}
		}
		old, err := w.chainOf(n.cluster, n.off, "file "+p)
		if err != nil {
			return &iofs.PathError{Op: op, Path: p, Err: err}
		}
		e, err := w.shortOf(d, n)
		if err != nil {
			return &iofs.PathError{Op: op, Path: p, Err: err}
		}
		if uint32(need) > w.free {
			return w.fullErr(op, p, need)
		}
		cs := w.pickClusters(need)
		if err := w.writeData(cs, data); err != nil {
			return &iofs.PathError{Op: op, Path: p, Err: err}
		}
		w.allocate(cs)
		if err := w.flushFAT(); err != nil {
			return &iofs.PathError{Op: op, Path: p, Err: err}
		}
		var first uint32
		if len(cs) > 0 {
			first = cs[0]
		}
		setCluster(e, first)
		binary.LittleEndian.PutUint32(e[28:], uint32(len(data)))
		setModTime(e, mtime)
		e[11] = e[11]&^byte(AttrReadOnly) | byte(AttrArchive)
		if readOnly {
			e[11] |= byte(AttrReadOnly)
		}
		if err := w.rewriteEntry(d, n, e); err != nil {
			w.unwind(cs)
			return &iofs.PathError{Op: op, Path: p, Err: err}
		}
		w.release(old)
		if err := w.flushFAT(); err != nil {
			return &iofs.PathError{Op: op, Path: p, Err: err}
		}
		return w.finish(op, p)
	}
	pl, err := w.planEntry(op, p, d, name)
	if err != nil {
		return err
	}
	if uint32(need+pl.grow) > w.free {
		return w.fullErr(op, p, need+pl.grow)
	}
	cs := w.pickClusters(need)
	if err := w.writeData(cs, data); err != nil {
		return &iofs.PathError{Op: op, Path: p, Err: err}
	}
	w.allocate(cs)
	if err := w.growDir(d, pl.grow); err != nil {
		return &iofs.PathError{Op: op, Path: p, Err: err}
	}
	if err := w.flushFAT(); err != nil {
		return &iofs.PathError{Op: op, Path: p, Err: err}
	}
	attr := AttrArchive
	if readOnly {
		attr |= AttrReadOnly
	}
	var first uint32
	if len(cs) > 0 {
		first = cs[0]
	}
	ents := append(pl.lfn, encodeShort(pl.short, attr, pl.ntres, first, uint32(len(data)), mtime, mtime))
	if err := w.putEntries(d, pl.start, ents); err != nil {
		w.unwind(cs)
		return &iofs.PathError{Op: op, Path: p, Err: err}
	}
	return w.finish(op, p)
}

// finish ends a successful change: the FSInfo sector.
func (w *Writer) finish(op, p string) error {
	if err := w.writeFSInfo(); err != nil {
		return &iofs.PathError{Op: op, Path: p, Err: err}
	}
	return nil
}

// Mkdir creates the directory p, whose parent must exist, with "." and
// ".." entries; the Clock gives its times. It fails with fs.ErrExist when
// p exists.
func (w *Writer) Mkdir(p string) error {
	const op = "mkdir"
	if err := w.usable(op, p); err != nil {
		return err
	}
	d, name, n, err := w.locate(op, p)
	if err != nil {
		return err
	}
	if n != nil {
		return &iofs.PathError{Op: op, Path: p, Err: iofs.ErrExist}
	}
	pl, err := w.planEntry(op, p, d, name)
	if err != nil {
		return err
	}
	if uint32(1+pl.grow) > w.free {
		return w.fullErr(op, p, 1+pl.grow)
	}
	now := w.now()
	c := w.pickClusters(1)
	buf := make([]byte, w.g.clusterSize)
	parent := d.first
	if w.g.variant == FAT32 && parent == w.g.rootCluster {
		parent = 0 // ".." names the root directory as cluster 0
	}
	var dot, dotdot [11]byte
	copy(dot[:], ".          ")
	copy(dotdot[:], "..         ")
	copy(buf, encodeShort(dot, AttrDirectory, 0, c[0], 0, now, now))
	copy(buf[dirEntrySize:], encodeShort(dotdot, AttrDirectory, 0, parent, 0, now, now))
	if _, err := w.rw.WriteAt(buf, w.g.clusterOff(c[0])); err != nil {
		return &iofs.PathError{Op: op, Path: p, Err: fmt.Errorf("fat: writing directory cluster %d: %w", c[0], err)}
	}
	w.allocate(c)
	if err := w.growDir(d, pl.grow); err != nil {
		return &iofs.PathError{Op: op, Path: p, Err: err}
	}
	if err := w.flushFAT(); err != nil {
		return &iofs.PathError{Op: op, Path: p, Err: err}
	}
	ents := append(pl.lfn, encodeShort(pl.short, AttrDirectory, pl.ntres, c[0], 0, now, now))
	if err := w.putEntries(d, pl.start, ents); err != nil {
		w.unwind(c)
		return &iofs.PathError{Op: op, Path: p, Err: err}
	}
	return w.finish(op, p)
}

// unwind tries, after a failed directory write, to free again the
// clusters the operation had marked in the FAT, so that none is left
// lost. Errors are ignored: the Writer has already stopped.
func (w *Writer) unwind(cs []uint32) {
	w.release(cs)
	if w.flushFAT() == nil {
		w.writeFSInfo()
	}
}

// MkdirAll creates the directory p and the parents it lacks. Existing
// directories are fine; a file in the way is an error.
func (w *Writer) MkdirAll(p string) error {
	const op = "mkdir"
	if err := w.usable(op, p); err != nil {
		return err
	}
	if !iofs.ValidPath(p) {
		return &iofs.PathError{Op: op, Path: p, Err: iofs.ErrInvalid}
	}
	if p == "." {
		return nil
	}
	parts := strings.Split(p, "/")
	// Find the first missing directory, then check, before creating any,
	// that every missing one has a valid name and that all of them fit:
	// a failure must leave the filesystem as it was.
	first := len(parts)
	for i := range parts {
		sub := strings.Join(parts[:i+1], "/")
		_, _, n, err := w.locate(op, sub)
		if err != nil {
			return err
		}
		if n == nil {
			first = i
			break
		}
		if !n.isDir() {
			return &iofs.PathError{Op: op, Path: sub, Err: fmt.Errorf("a file is in the way: %w", errNotDir)}
		}
	}
	if first == len(parts) {
		return nil
	}
	d, name, _, err := w.locate(op, strings.Join(parts[:first+1], "/"))
	if err != nil {
		return err
	}
	pl, err := w.planEntry(op, p, d, name)
	if err != nil {
		return err
	}
	need := 1 + pl.grow
	per := int(w.g.clusterSize / dirEntrySize)
	for _, name := range parts[first+1:] {
		u, err := checkLongName(name)
		if err != nil {
			return &iofs.PathError{Op: op, Path: p, Err: err}
		}
		// A new directory holds "." and ".."; the entry goes after them.
		count := 1
		if _, _, plain := plainShort(name); !plain {
			count += len(lfnEntries(u, [11]byte{}))
		}
		need += 1 + max(0, (count-(per-2)+per-1)/per)
	}
	if uint32(need) > w.free {
		return w.fullErr(op, p, need)
	}
	for i := first; i < len(parts); i++ {
		if err := w.Mkdir(strings.Join(parts[:i+1], "/")); err != nil {
			return err
		}
	}
	return nil
}

// Remove deletes the file or empty directory p: its long-name entries and
// its short entry are marked deleted, then its clusters are freed.
func (w *Writer) Remove(p string) error {
	const op = "remove"
	if err := w.usable(op, p); err != nil {
		return err
	}
	d, n, err := w.locateExisting(op, p)
	if err != nil {
		return err
	}
	var chain []uint32
	if n.isDir() {
		sub, err := w.loadSlots(n.cluster)
		if err != nil {
			return &iofs.PathError{Op: op, Path: p, Err: err}
		}
		if !sub.isEmpty() {
			return &iofs.PathError{Op: op, Path: p, Err: fmt.Errorf("%w: remove its entries first or use RemoveAll", ErrNotEmpty)}
		}
		chain = sub.clusters
	} else {
		chain, err = w.chainOf(n.cluster, n.off, "file "+p)
		if err != nil {
			return &iofs.PathError{Op: op, Path: p, Err: err}
		}
	}
	// The long-name pieces and the short entry are consecutive: marked
	// with one write per directory cluster they lie in.
	slots := w.entrySlots(d, n)
	ents := make([][]byte, len(slots))
	for k, i := range slots {
		ents[k] = append([]byte{0xE5}, d.slot(i)[1:]...)
	}
	if len(slots) > 0 {
		if err := w.putEntries(d, slots[0], ents); err != nil {
			return &iofs.PathError{Op: op, Path: p, Err: err}
		}
	}
	w.release(chain)
	if err := w.flushFAT(); err != nil {
		return &iofs.PathError{Op: op, Path: p, Err: err}
	}
	return w.finish(op, p)
}

// maxRemoveDepth bounds the directory depth RemoveAll descends.
const maxRemoveDepth = 256

// RemoveAll deletes p and, for a directory, everything below it. A path
// that does not exist is not an error. Each deletion is complete before
// the next starts, so an error part-way leaves a consistent filesystem
// with part of the tree removed.
func (w *Writer) RemoveAll(p string) error {
	const op = "removeall"
	if err := w.usable(op, p); err != nil {
		return err
	}
	return w.removeAll(op, p, 0)
}

func (w *Writer) removeAll(op, p string, depth int) error {
	_, _, n, err := w.locate(op, p)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if n == nil {
		return nil
	}
	if n.isDir() {
		if depth >= maxRemoveDepth {
			return &iofs.PathError{Op: op, Path: p, Err: fmt.Errorf("deeper than %d directories: %w", maxRemoveDepth, ErrCorrupt)}
		}
		sub, err := w.loadSlots(n.cluster)
		if err != nil {
			return &iofs.PathError{Op: op, Path: p, Err: err}
		}
		for _, e := range sub.data.entries {
			if err := w.removeAll(op, p+"/"+e.name, depth+1); err != nil {
				return err
			}
		}
	}
	return w.Remove(p)
}

// Truncate changes the size of the regular file p. A file that grows is
// extended with zeros; one that shrinks gives back the clusters it no
// longer needs. The write time becomes the Clock's time.
func (w *Writer) Truncate(p string, size int64) error {
	const op = "truncate"
	if err := w.usable(op, p); err != nil {
		return err
	}
	if size < 0 || size > 0xFFFFFFFF {
		return &iofs.PathError{Op: op, Path: p, Err: fmt.Errorf("size %d is outside 0 to 4 GiB - 1: %w", size, iofs.ErrInvalid)}
	}
	d, n, err := w.locateExisting(op, p)
	if err != nil {
		return err
	}
	if n.isDir() {
		return &iofs.PathError{Op: op, Path: p, Err: errIsDir}
	}
	chain, err := w.chainOf(n.cluster, n.off, "file "+p)
	if err != nil {
		return &iofs.PathError{Op: op, Path: p, Err: err}
	}
	oldSize := int64(n.size)
	if len(chain) < w.clustersFor(oldSize) {
		return &iofs.PathError{Op: op, Path: p, Err: formatErr(n.off, "file %q: cluster chain shorter than its size; run fsck.vfat", p)}
	}
	e, err := w.shortOf(d, n)
	if err != nil {
		return &iofs.PathError{Op: op, Path: p, Err: err}
	}
	need := w.clustersFor(size)
	have := len(chain)
	csz := w.g.clusterSize
	binary.LittleEndian.PutUint32(e[28:], uint32(size))
	setModTime(e, w.now())
	if size <= oldSize {
		// Entry first: a crash before the FAT is written leaves a chain
		// longer than the file, which fsck.vfat trims without loss.
		if need == 0 {
			setCluster(e, 0)
		}
		if err := w.rewriteEntry(d, n, e); err != nil {
			return &iofs.PathError{Op: op, Path: p, Err: err}
		}
		if need < have {
			if need > 0 {
				w.setEntry(chain[need-1], w.eocMark())
			}
			w.release(chain[need:])
			if err := w.flushFAT(); err != nil {
				return &iofs.PathError{Op: op, Path: p, Err: err}
			}
		}
		return w.finish(op, p)
	}
	extra := max(need-have, 0)
	if uint32(extra) > w.free {
		return w.fullErr(op, p, extra)
	}
	// Zero what lies between the old end and the new one in the old
	// clusters, then fill, mark and link new ones.
	for off := oldSize; off < min(size, int64(have)*csz); {
		k := off / csz
		end := min((k+1)*csz, size)
		disk := w.g.clusterOff(chain[k]) + off%csz
		if _, err := w.rw.WriteAt(make([]byte, end-off), disk); err != nil {
			return &iofs.PathError{Op: op, Path: p, Err: fmt.Errorf("fat: zeroing at offset %d: %w", disk, err)}
		}
		off = end
	}
	if extra > 0 {
		cs := w.pickClusters(extra)
		if err := w.zeroClusters(cs); err != nil {
			return &iofs.PathError{Op: op, Path: p, Err: err}
		}
		w.allocate(cs)
		if have > 0 {
			w.setEntry(chain[have-1], cs[0])
		} else {
			setCluster(e, cs[0])
		}
		if err := w.flushFAT(); err != nil {
			return &iofs.PathError{Op: op, Path: p, Err: err}
		}
		if err := w.rewriteEntry(d, n, e); err != nil {
			if have > 0 {
				w.setEntry(chain[have-1], w.eocMark())
			}
			w.unwind(cs)
			return &iofs.PathError{Op: op, Path: p, Err: err}
		}
		return w.finish(op, p)
	}
	if err := w.rewriteEntry(d, n, e); err != nil {
		return &iofs.PathError{Op: op, Path: p, Err: err}
	}
	return w.finish(op, p)
}

// Chmod maps the owner write permission of mode onto the read-only
// attribute of the file p: FAT stores no permission bits, so a mode
// without 0o200 sets the attribute and a mode with it clears it; every
// other bit of mode is ignored. Directories (and the root, ".") store
// nothing: Chmod leaves them unchanged and returns nil, as the readers
// of FAT ignore the read-only attribute of a directory. Times are not
// changed (FAT has no change time).
func (w *Writer) Chmod(p string, mode iofs.FileMode) error {
	const op = "chmod"
	if err := w.usable(op, p); err != nil {
		return err
	}
	if p == "." {
		return nil
	}
	d, n, err := w.locateExisting(op, p)
	if err != nil {
		return err
	}
	if n.isDir() {
		return nil
	}
	e, err := w.shortOf(d, n)
	if err != nil {
		return &iofs.PathError{Op: op, Path: p, Err: err}
	}
	attr := e[11] &^ byte(AttrReadOnly)
	if mode&0o200 == 0 {
		attr |= byte(AttrReadOnly)
	}
	if attr == e[11] {
		return nil
	}
	e[11] = attr
	if err := w.rewriteEntry(d, n, e); err != nil {
		return &iofs.PathError{Op: op, Path: p, Err: err}
	}
	return nil
}

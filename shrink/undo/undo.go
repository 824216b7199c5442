// Package undo makes in-place changes to an image file crash-safe with an
// undo log kept next to it (IMAGE.imgtool-undo).
//
// A Log is an io.ReaderAt and io.WriterAt over the image. Before a byte
// range is overwritten for the first time, its old content is appended to
// the undo file as a record (offset, length, CRC32C, data; a range that
// held only zeros is stored as a zero record without data) and the undo
// file is fsynced; only then does the write reach the image. Truncate
// first records the original size (in the header) and the ranges the
// caller names as worth keeping beyond the new end, then shortens the file.
// Commit fsyncs the image, removes the undo file and fsyncs the folder.
//
// Rollback (and RecoverIfNeeded, which every command that opens an image
// calls first) restores the original: it re-extends or shortens the image
// to the original size, writes every complete record back, fsyncs, then
// removes the undo file. A record cut short by a crash (its CRC does not
// match or its data is missing) is ignored together with everything after
// it: its write to the image never happened, since that write follows the
// fsync of the record. Rollback is idempotent, so a crash during a rollback
// is repaired by running it again.
//
// Limits: bytes beyond the new end that were never overwritten and that the
// caller of Truncate did not name (free space of the old filesystem) read
// as zeros after a rollback. The undo file must live on the same machine
// as the image; its header identifies the image by its original size and a
// SHA-256 of its original first MiB, checked before anything is restored.
//
// # Testing
//
// The environment variable IMGTOOL_TEST_CRASH_AFTER_WRITES=N, meant for
// tests only, makes the process exit with status 3 right after the Nth
// change to the image (a write, the truncation, or the final fsync before
// the undo file is removed).
package undo

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"

	"imgtool/internal/zero"
)

// Suffix is appended to the image path to name its undo file.
const Suffix = ".imgtool-undo"

// CrashEnv is the environment variable that, for tests, makes the process
// exit(3) after the given number of changes to the image.
const CrashEnv = "IMGTOOL_TEST_CRASH_AFTER_WRITES"

// identBytes is how much of the start of the image the header hashes.
const identBytes = 1 << 20

var (
	// ErrExists is returned by Begin when an undo file is already there:
	// an earlier run was interrupted and must be rolled back first.
	ErrExists = errors.New("undo: an undo file already exists")
	// ErrMismatch is returned by Rollback when the undo file does not
	// belong to the image.
	ErrMismatch = errors.New("undo: undo file does not belong to this image")
	// ErrCorrupt is returned for an undo file whose header is damaged.
	ErrCorrupt = errors.New("undo: undo file is damaged")
)

// castagnoli is built on first use, not at start-up.
var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

var magic = [8]byte{'I', 'M', 'G', 'U', 'N', 'D', 'O', '1'}

// header is the first 64 bytes of an undo file.
type header struct {
	Magic    [8]byte
	OrigSize int64
	Ident    [32]byte // SHA-256 of the original first min(1 MiB, size) bytes
	Dev, Ino uint64   // informational: where the image was
	_        [0]byte
}

const headerSize = 8 + 8 + 32 + 8 + 8 + 4 // + CRC32C of the rest

// record kinds
const (
	kindData = 1
	kindZero = 2
)

const recordMagic = 0x52435244 // "RCRD"

// recHeader precedes each record's data.
type recHeader struct {
	Magic   uint32
	Kind    uint32
	Off     int64
	Len     int64
	DataCRC uint32
	HdrCRC  uint32 // of the 28 bytes before it
}

const recHeaderSize = 32

// Path returns the undo file path of an image.
func Path(image string) string { return image + Suffix }

// Log is an image file opened for crash-safe in-place changes.
type Log struct {
	mu       sync.Mutex
	img      *os.File
	undo     *os.File
	path     string
	origSize int64
	saved    ranges // ranges of the original whose content is in the log
	changes  int    // writes, truncations and the commit fsync, for CrashEnv
	crashAt  int
	closed   bool

	// Group commit: writes wait in memory until their old content is
	// durable in the undo file, so that one fsync of the undo file covers
	// many writes instead of one each.
	pending      []pendingWrite
	pendingBytes int
	unsynced     bool // records appended since the last fsync of the undo file
}

// pendingWrite is a write held back until the undo file is synced.
type pendingWrite struct {
	off  int64
	data []byte
}

// Limits of the writes held back before the undo file is synced and they
// are applied.
const (
	maxPendingBytes  = 32 << 20
	maxPendingWrites = 4096
)

// Begin opens the image at path for reading and writing and creates its
// undo file. It fails with ErrExists when an undo file is already there.
func Begin(path string) (*Log, error) {
	img, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	fi, err := img.Stat()
	if err != nil {
		img.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		img.Close()
		return nil, fmt.Errorf("undo: %s is not a regular file", path)
	}
	size := fi.Size()
	up := Path(path)
	u, err := os.OpenFile(up, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		img.Close()
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("%w: %s (run imgtool shrink --undo %s to restore the image)", ErrExists, up, path)
		}
		return nil, err
	}
	h := header{Magic: magic, OrigSize: size}
	if h.Ident, err = identOf(img, size, nil); err != nil {
		u.Close()
		os.Remove(up)
		img.Close()
		return nil, err
	}
	h.Dev, h.Ino = fileID(fi)
	if _, err := u.Write(encodeHeader(h)); err == nil {
		err = u.Sync()
	}
	if err == nil {
		err = syncDir(filepath.Dir(up))
	}
	if err != nil {
		u.Close()
		os.Remove(up)
		img.Close()
		return nil, fmt.Errorf("undo: writing %s: %w", up, err)
	}
	l := &Log{img: img, undo: u, path: path, origSize: size}
	if s := os.Getenv(CrashEnv); s != "" {
		l.crashAt, _ = strconv.Atoi(s)
	}
	return l, nil
}

// Size returns the original size of the image.
func (l *Log) Size() int64 { return l.origSize }

// Changes returns how many changes (writes, truncation, commit) were made.
func (l *Log) Changes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changes
}

// ReadAt reads the image as it is now, including the writes not yet
// applied to the file.
func (l *Log) ReadAt(p []byte, off int64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.img.ReadAt(p, off)
	for _, w := range l.pending {
		lo, hi := max(off, w.off), min(off+int64(len(p)), w.off+int64(len(w.data)))
		if lo < hi {
			copy(p[lo-off:hi-off], w.data[lo-w.off:hi-w.off])
			if int(hi-off) > n {
				// A write held back extends the file: the bytes between
				// the old end and it read as zeros, as they will.
				clear(p[n : lo-off])
				n = int(hi - off)
			}
		}
	}
	if n == len(p) {
		err = nil
	}
	return n, err
}

// WriteAt saves what p overwrites (the first time each byte is written)
// and then writes p to the image.
func (l *Log) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("undo: negative offset %d", off)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, os.ErrClosed
	}
	if err := l.saveLocked(off, int64(len(p))); err != nil {
		return 0, err
	}
	l.pending = append(l.pending, pendingWrite{off: off, data: append([]byte(nil), p...)})
	l.pendingBytes += len(p)
	if l.pendingBytes >= maxPendingBytes || len(l.pending) >= maxPendingWrites {
		if err := l.flushLocked(); err != nil {
			return 0, err
		}
	}
	l.changedLocked()
	return len(p), nil
}

// flushLocked makes the undo records durable, then applies the writes held
// back, in order.
func (l *Log) flushLocked() error {
	if l.unsynced {
		if err := l.undo.Sync(); err != nil {
			return fmt.Errorf("undo: fsync %s: %w", Path(l.path), err)
		}
		l.unsynced = false
	}
	for _, w := range l.pending {
		if _, err := l.img.WriteAt(w.data, w.off); err != nil {
			return fmt.Errorf("undo: writing %s at %d: %w", l.path, w.off, err)
		}
	}
	l.pending, l.pendingBytes = nil, 0
	return nil
}

// Save records the current content of [off, off+n) (clipped to the
// original size) if it is not already recorded, as Truncate needs for the
// ranges it destroys.
func (l *Log) Save(off, n int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.saveLocked(off, n)
}

// Truncate shortens (or extends) the image to size, after recording the
// keep ranges (absolute offsets; typically what the old filesystem used
// beyond size and a GPT backup header) that the truncation destroys.
func (l *Log) Truncate(size int64, keep []Range) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.flushLocked(); err != nil {
		return err
	}
	for _, r := range keep {
		lo := max(r.Off, size)
		if hi := r.Off + r.Len; hi > lo {
			if err := l.saveLocked(lo, hi-lo); err != nil {
				return err
			}
		}
	}
	if err := l.flushLocked(); err != nil { // the records, durable before the cut
		return err
	}
	if err := l.img.Truncate(size); err != nil {
		return err
	}
	l.changedLocked()
	return nil
}

// Range is a byte range of the image.
type Range struct{ Off, Len int64 }

// Commit makes the changes permanent: it fsyncs the image, removes the
// undo file and fsyncs its folder, then closes the image.
func (l *Log) Commit() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return os.ErrClosed
	}
	if err := l.flushLocked(); err != nil {
		return err
	}
	if err := l.img.Sync(); err != nil {
		return fmt.Errorf("undo: fsync %s: %w", l.path, err)
	}
	l.changedLocked()
	l.closed = true
	l.undo.Close()
	if err := os.Remove(Path(l.path)); err != nil {
		l.img.Close()
		return err
	}
	if err := syncDir(filepath.Dir(l.path)); err != nil {
		l.img.Close()
		return err
	}
	return l.img.Close()
}

// Abort restores the original image from the log (as Rollback does) and
// closes it.
func (l *Log) Abort() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return os.ErrClosed
	}
	l.closed = true
	l.undo.Close()
	l.img.Close()
	l.mu.Unlock()
	_, err := Rollback(l.path)
	return err
}

// changedLocked counts a change and exits for CrashEnv.
func (l *Log) changedLocked() {
	l.changes++
	if l.crashAt > 0 && l.changes == l.crashAt {
		os.Exit(3)
	}
}

// saveLocked appends records for the parts of [off, off+n) that are inside
// the original image and not yet recorded. The undo file is fsynced by
// flushLocked before any write that needs the records reaches the image.
func (l *Log) saveLocked(off, n int64) error {
	end := min(off+n, l.origSize)
	if off >= end {
		return nil
	}
	gaps := l.saved.gaps(off, end)
	if len(gaps) == 0 {
		return nil
	}
	const chunk = 4 << 20
	buf := make([]byte, min(chunk, end-off))
	for _, g := range gaps {
		for o := g.Off; o < g.Off+g.Len; {
			m := min(int64(len(buf)), g.Off+g.Len-o)
			b := buf[:m]
			k, err := l.img.ReadAt(b, o)
			if err != nil && !(errors.Is(err, io.EOF)) {
				return fmt.Errorf("undo: reading %s at %d: %w", l.path, o, err)
			}
			clear(b[k:]) // beyond the current end (after a truncation): zeros
			if err := l.appendRecord(o, b); err != nil {
				return err
			}
			o += m
		}
	}
	l.unsynced = true
	for _, g := range gaps {
		l.saved.add(g.Off, g.Off+g.Len)
	}
	return nil
}

func (l *Log) appendRecord(off int64, b []byte) error {
	kind := uint32(kindData)
	if zero.Is(b) {
		kind = kindZero
	}
	h := recHeader{Magic: recordMagic, Kind: kind, Off: off, Len: int64(len(b))}
	if kind == kindData {
		h.DataCRC = crc32.Checksum(b, castagnoli())
	}
	hb := encodeRec(h)
	out := hb
	if kind == kindData {
		out = append(hb, b...)
	}
	if _, err := l.undo.Write(out); err != nil {
		return fmt.Errorf("undo: writing %s: %w", Path(l.path), err)
	}
	return nil
}

// Exists reports whether the image has an undo file.
func Exists(image string) bool {
	_, err := os.Lstat(Path(image))
	return err == nil
}

// Stats describes a rollback.
type Stats struct {
	Records  int   // complete records restored
	Bytes    int64 // bytes restored
	OrigSize int64 // size the image was given back
	Ignored  bool  // an incomplete last record was ignored
}

// Rollback restores the image from its undo file and removes the file.
// It returns os.ErrNotExist (wrapped) when there is no undo file.
func Rollback(image string) (Stats, error) {
	var st Stats
	up := Path(image)
	data, err := os.ReadFile(up)
	if err != nil {
		return st, err
	}
	if len(data) < headerSize {
		// Begin fsyncs the header before the image is touched: a
		// shorter file means nothing was changed yet.
		return st, removeUndo(up)
	}
	h, err := decodeHeader(data[:headerSize])
	if err != nil {
		return st, fmt.Errorf("%w: %s: %v", ErrCorrupt, up, err)
	}
	recs, ignored := parseRecords(data[headerSize:])
	st.Ignored, st.OrigSize = ignored, h.OrigSize
	img, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		return st, err
	}
	defer img.Close()
	fi, err := img.Stat()
	if err != nil {
		return st, err
	}
	// Identity: the first MiB as it will be after the rollback must hash
	// to what the header says.
	ident, err := identOf(img, min(fi.Size(), h.OrigSize), func(b []byte) {
		for _, r := range recs {
			overlay(b, r)
		}
	})
	if err != nil {
		return st, err
	}
	if ident != h.Ident {
		return st, fmt.Errorf("%w: %s (its first MiB differs; move %s away if the image was replaced on purpose)", ErrMismatch, image, up)
	}
	if fi.Size() != h.OrigSize {
		if err := img.Truncate(h.OrigSize); err != nil {
			return st, err
		}
	}
	for _, r := range recs {
		var err error
		if r.kind == kindZero {
			err = writeZeros(img, r.off, r.len)
		} else {
			_, err = img.WriteAt(r.data, r.off)
		}
		if err != nil {
			return st, fmt.Errorf("undo: restoring %s at %d: %w", image, r.off, err)
		}
		st.Records++
		st.Bytes += r.len
	}
	if err := img.Sync(); err != nil {
		return st, err
	}
	return st, removeUndo(up)
}

func removeUndo(up string) error {
	if err := os.Remove(up); err != nil {
		return err
	}
	return syncDir(filepath.Dir(up))
}

// RecoverIfNeeded rolls the image back when it has an undo file, and
// reports whether it did.
func RecoverIfNeeded(image string) (bool, error) {
	if !Exists(image) {
		return false, nil
	}
	if _, err := Rollback(image); err != nil {
		return false, fmt.Errorf("%s was left half-changed by an interrupted imgtool run and could not be restored: %w", image, err)
	}
	return true, nil
}

type record struct {
	kind     uint32
	off, len int64
	data     []byte
}

func parseRecords(b []byte) (recs []record, ignored bool) {
	for len(b) > 0 {
		if len(b) < recHeaderSize {
			return recs, true
		}
		h, ok := decodeRec(b[:recHeaderSize])
		if !ok || h.Off < 0 || h.Len <= 0 {
			return recs, true
		}
		b = b[recHeaderSize:]
		r := record{kind: h.Kind, off: h.Off, len: h.Len}
		if h.Kind == kindData {
			if int64(len(b)) < h.Len || crc32.Checksum(b[:h.Len], castagnoli()) != h.DataCRC {
				return recs, true
			}
			r.data = b[:h.Len]
			b = b[h.Len:]
		}
		recs = append(recs, r)
	}
	return recs, false
}

// overlay applies record r to b, the image's first len(b) bytes.
func overlay(b []byte, r record) {
	if r.off >= int64(len(b)) {
		return
	}
	end := min(r.off+r.len, int64(len(b)))
	if r.kind == kindZero {
		clear(b[r.off:end])
	} else {
		copy(b[r.off:end], r.data)
	}
}

// identOf hashes the first min(identBytes, size) bytes of f after fix.
func identOf(f io.ReaderAt, size int64, fix func([]byte)) ([32]byte, error) {
	b := make([]byte, min(identBytes, max(size, 0)))
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return [32]byte{}, err
	}
	clear(b[n:])
	if fix != nil {
		fix(b)
	}
	return sha256.Sum256(b), nil
}

func writeZeros(f *os.File, off, n int64) error {
	z := make([]byte, min(n, 1<<20))
	for n > 0 {
		m := min(n, int64(len(z)))
		if _, err := f.WriteAt(z[:m], off); err != nil {
			return err
		}
		off += m
		n -= m
	}
	return nil
}

func encodeHeader(h header) []byte {
	b := make([]byte, headerSize)
	copy(b, h.Magic[:])
	binary.LittleEndian.PutUint64(b[8:], uint64(h.OrigSize))
	copy(b[16:48], h.Ident[:])
	binary.LittleEndian.PutUint64(b[48:], h.Dev)
	binary.LittleEndian.PutUint64(b[56:], h.Ino)
	binary.LittleEndian.PutUint32(b[64:], crc32.Checksum(b[:64], castagnoli()))
	return b
}

func decodeHeader(b []byte) (header, error) {
	var h header
	copy(h.Magic[:], b)
	if h.Magic != magic {
		return h, errors.New("bad magic")
	}
	if crc32.Checksum(b[:64], castagnoli()) != binary.LittleEndian.Uint32(b[64:]) {
		return h, errors.New("header checksum mismatch")
	}
	h.OrigSize = int64(binary.LittleEndian.Uint64(b[8:]))
	copy(h.Ident[:], b[16:48])
	h.Dev = binary.LittleEndian.Uint64(b[48:])
	h.Ino = binary.LittleEndian.Uint64(b[56:])
	if h.OrigSize < 0 {
		return h, errors.New("negative size")
	}
	return h, nil
}

func encodeRec(h recHeader) []byte {
	b := make([]byte, recHeaderSize, recHeaderSize+int(h.Len))
	binary.LittleEndian.PutUint32(b[0:], h.Magic)
	binary.LittleEndian.PutUint32(b[4:], h.Kind)
	binary.LittleEndian.PutUint64(b[8:], uint64(h.Off))
	binary.LittleEndian.PutUint64(b[16:], uint64(h.Len))
	binary.LittleEndian.PutUint32(b[24:], h.DataCRC)
	binary.LittleEndian.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli()))
	return b
}

func decodeRec(b []byte) (recHeader, bool) {
	h := recHeader{
		Magic:   binary.LittleEndian.Uint32(b[0:]),
		Kind:    binary.LittleEndian.Uint32(b[4:]),
		Off:     int64(binary.LittleEndian.Uint64(b[8:])),
		Len:     int64(binary.LittleEndian.Uint64(b[16:])),
		DataCRC: binary.LittleEndian.Uint32(b[24:]),
		HdrCRC:  binary.LittleEndian.Uint32(b[28:]),
	}
	ok := h.Magic == recordMagic && (h.Kind == kindData || h.Kind == kindZero) &&
		crc32.Checksum(b[:28], castagnoli()) == h.HdrCRC
	return h, ok
}

// syncDir fsyncs a folder so that a created or removed name is durable.
// Windows cannot open folders for syncing; there it does nothing.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ranges is a sorted set of disjoint half-open intervals.
type ranges []Range

// gaps returns the parts of [lo, hi) not in the set.
func (s ranges) gaps(lo, hi int64) []Range {
	var out []Range
	i := sort.Search(len(s), func(i int) bool { return s[i].Off+s[i].Len > lo })
	for ; i < len(s) && lo < hi; i++ {
		if s[i].Off >= hi {
			break
		}
		if s[i].Off > lo {
			out = append(out, Range{lo, s[i].Off - lo})
		}
		lo = max(lo, s[i].Off+s[i].Len)
	}
	if lo < hi {
		out = append(out, Range{lo, hi - lo})
	}
	return out
}

// add inserts [lo, hi), merging neighbours.
func (s *ranges) add(lo, hi int64) {
	v := *s
	i := sort.Search(len(v), func(i int) bool { return v[i].Off+v[i].Len >= lo })
	j := i
	for j < len(v) && v[j].Off <= hi {
		lo = min(lo, v[j].Off)
		hi = max(hi, v[j].Off+v[j].Len)
		j++
	}
	v = append(v[:i], append([]Range{{lo, hi - lo}}, v[j:]...)...)
	*s = v
}

package flash

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"
)

// Target is where Write puts an image and what CheckCapacity tests: a block
// device or a regular file opened by OpenTarget, or any other
// implementation (a test may wrap one).
//
// ReadAt and WriteAt may be called from several goroutines at once, on
// different ranges.
type Target interface {
	io.ReaderAt
	io.WriterAt
	// Name is the path the target was opened with, for messages.
	Name() string
	// Size is the size of a device, or the current size of a file.
	Size() int64
	// Sync makes written data durable and drops it from the system's
	// caches, so that later reads come from the medium.
	Sync() error
	// Close closes the target.
	Close() error
}

// DirectMode says whether block devices are written with direct I/O,
// bypassing the page cache (O_DIRECT on Linux, F_NOCACHE on macOS; Windows
// always writes disks unbuffered).
type DirectMode uint8

const (
	// DirectAuto is the measured default: see the package documentation.
	DirectAuto DirectMode = iota
	// DirectOn uses direct I/O on block devices.
	DirectOn
	// DirectOff goes through the page cache.
	DirectOff
)

// OpenOptions configures OpenTarget.
type OpenOptions struct {
	// Direct chooses direct I/O for block devices; files never use it.
	Direct DirectMode
	// Create makes a missing regular file instead of failing.
	Create bool
	// ReadOnly opens the target for reading only (not exclusively), for
	// reading a device back or inspecting it.
	ReadOnly bool
}

// ioAlign is the alignment of buffers, offsets and lengths used with
// direct I/O: a page, which covers every logical sector size in use.
const ioAlign = 4096

// fileTarget is a block device or a regular file.
type fileTarget struct {
	name   string
	f      *os.File // buffered descriptor; exclusive for devices
	d      *os.File // direct descriptor, or nil
	size   int64
	device bool
	// align is the alignment f itself demands (1 where the system accepts
	// any offset and length, the sector size on raw macOS and Windows
	// disks).
	align int64
}

var _ Target = (*fileTarget)(nil)

// OpenTarget opens path for writing: a block device exclusively (on Linux
// with O_EXCL, so that a mounted or otherwise claimed device is refused
// with an error wrapping ErrBusy), or a regular file. A device that cannot
// be opened for lack of rights gets an error saying to run as root or
// administrator.
func OpenTarget(path string, o OpenOptions) (Target, error) {
	t, err := openTarget(path, o)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// openRegular opens a regular-file target.
func openRegular(path string, o OpenOptions) (*fileTarget, error) {
	flag := os.O_RDWR
	if o.ReadOnly {
		flag = os.O_RDONLY
	} else if o.Create {
		flag |= os.O_CREATE
	}
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, fmt.Errorf("flash: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("flash: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("flash: %s is neither a block device nor a regular file; give a disk such as /dev/sdX or an image file", path)
	}
	return &fileTarget{name: path, f: f, size: fi.Size(), align: 1}, nil
}

func (t *fileTarget) Name() string { return t.name }
func (t *fileTarget) Size() int64  { return t.size }

// growable reports whether writing past Size extends the target.
func (t *fileTarget) growable() bool { return !t.device }

// truncate sets a file's size.
func (t *fileTarget) truncate(n int64) error {
	if t.device {
		return nil
	}
	if err := t.f.Truncate(n); err != nil {
		return fmt.Errorf("flash: %w", err)
	}
	t.size = n
	return nil
}

func aligned(p []byte, off int64) bool {
	return len(p) > 0 && off%ioAlign == 0 && len(p)%ioAlign == 0 &&
		uintptr(unsafe.Pointer(&p[0]))%ioAlign == 0
}

// WriteAt writes through the direct descriptor where p and off allow it,
// through the buffered one otherwise; on systems that demand aligned I/O it
// reads, patches and writes the sectors around an unaligned range.
func (t *fileTarget) WriteAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if t.d != nil {
		if aligned(p, off) {
			return t.d.WriteAt(p, off)
		}
		// An aligned head goes direct, the rest buffered.
		if head := len(p) &^ (ioAlign - 1); head > 0 && aligned(p[:head], off) {
			n, err := t.d.WriteAt(p[:head], off)
			if err != nil {
				return n, err
			}
			m, err := t.f.WriteAt(p[head:], off+int64(head))
			return n + m, err
		}
		return t.f.WriteAt(p, off)
	}
	if t.align > 1 && !t.sectorAligned(p, off) {
		return t.patch(p, off)
	}
	return t.f.WriteAt(p, off)
}

// sectorAligned reports whether p and off suit a descriptor that demands
// sector alignment of offsets, lengths and buffer addresses.
func (t *fileTarget) sectorAligned(p []byte, off int64) bool {
	a := t.align
	return off%a == 0 && int64(len(p))%a == 0 && int64(uintptr(unsafe.Pointer(&p[0])))%a == 0
}

// patch writes p at off on a descriptor that takes only whole aligned
// sectors, by reading, changing and writing the sectors it touches.
func (t *fileTarget) patch(p []byte, off int64) (int, error) {
	a := t.align
	start := off / a * a
	end := (off + int64(len(p)) + a - 1) / a * a
	if end > t.size && t.device {
		return 0, fmt.Errorf("flash: write past the end of %s", t.name)
	}
	buf := alignedBuf(int(end - start))
	if _, err := t.readFull(buf, start); err != nil {
		return 0, err
	}
	copy(buf[off-start:], p)
	if _, err := t.f.WriteAt(buf, start); err != nil {
		return 0, err
	}
	return len(p), nil
}

// ReadAt reads through the direct descriptor where p and off allow it.
func (t *fileTarget) ReadAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if t.d != nil && aligned(p, off) {
		return t.d.ReadAt(p, off)
	}
	if t.align > 1 && !t.sectorAligned(p, off) {
		a := t.align
		start := off / a * a
		end := (off + int64(len(p)) + a - 1) / a * a
		buf := alignedBuf(int(end - start))
		n, err := t.readFull(buf, start)
		got := max(0, min(len(p), n-int(off-start)))
		copy(p, buf[off-start:off-start+int64(got)])
		if got < len(p) && err == nil {
			err = io.EOF
		}
		return got, err
	}
	return t.f.ReadAt(p, off)
}

func (t *fileTarget) readFull(buf []byte, off int64) (int, error) {
	n, err := t.f.ReadAt(buf, off)
	if errors.Is(err, io.EOF) && !t.device {
		clear(buf[n:]) // a file may end inside the last sector
		return len(buf), nil
	}
	return n, err
}

// Close closes both descriptors.
func (t *fileTarget) Close() error {
	var err error
	if t.d != nil {
		err = t.d.Close()
	}
	return errors.Join(err, t.f.Close())
}

// alignedBuf returns n bytes starting on an ioAlign boundary, as direct I/O
// requires.
func alignedBuf(n int) []byte {
	b := make([]byte, n+ioAlign)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) % ioAlign); r != 0 {
		skip = ioAlign - r
	}
	return b[skip : skip+n : skip+n]
}

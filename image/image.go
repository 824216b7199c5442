// Package image opens disk images and block devices as random-access byte
// sources.
//
// An Image is an io.ReaderAt with a size and a map of which ranges hold data
// and which are holes or known zeros. Open probes the content of a file (never
// its name) against the container formats passed with WithFormats and falls
// back to a raw image last, so every later layer (partition tables,
// filesystems, commands) works the same on any input.
//
// # Scope
//
// This package holds the Image interface and the two sources every other
// format builds on:
//
//   - raw files ("raw"): a regular file read with pread. On Linux, macOS and
//     FreeBSD, Extents asks the filesystem for holes with lseek SEEK_DATA and
//     SEEK_HOLE, so sparse files report their holes as Zero extents; on other
//     systems, and on filesystems that do not report holes, it returns one
//     Data extent.
//   - block devices ("device"): /dev/sdX, /dev/mmcblkN, loop devices on Linux;
//     /dev/diskN and /dev/rdiskN on macOS; \\.\PhysicalDriveN and \\.\X: on
//     Windows. Devices are always opened read-only; their size comes from the
//     kernel (BLKGETSIZE64, DKIOCGETBLOCKCOUNT × DKIOCGETBLOCKSIZE,
//     IOCTL_DISK_GET_LENGTH_INFO). Where the system requires sector-aligned
//     reads (macOS raw disks, Windows), reads are aligned transparently.
//
// NewReader wraps any io.ReaderAt (a bytes.Reader, a section of another
// image) as a raw Image.
//
// Container formats (xz, gzip, qcow2, …) live in subpackages image/<format>
// that import this package and export a Format value; this package never
// imports them. A caller picks the formats it wants:
//
//	img, err := image.Open(path, image.WithFormats(xz.Format, qcow2.Format))
//
// # Limits
//
// Block devices can be read on Linux, macOS and Windows only; elsewhere Open
// says to copy the device to a file first. Windows files report no holes.
// Nothing is ever written: files and devices are opened read-only.
//
// # Specifications
//
// Holes: lseek(2) SEEK_DATA and SEEK_HOLE as in POSIX.1-2024 (also on
// Linux, macOS and FreeBSD). Device sizes: Linux <linux/fs.h>
// BLKGETSIZE64; macOS <sys/disk.h>; Windows winioctl.h
// IOCTL_DISK_GET_LENGTH_INFO and IOCTL_DISK_GET_DRIVE_GEOMETRY.
//
// # Concurrency
//
// ReadAt of the images of this package may be called from many goroutines at
// once. Extents moves the file offset of the descriptor (lseek), which ReadAt
// does not use (pread takes its own offset), and it uses only the offsets that
// lseek returns, so Extents and ReadAt may run concurrently.
//
// # Security
//
// Images are untrusted input. Container readers must bound every allocation
// by sizes they have verified, bound every loop, and never panic on malformed
// data; they report damage as a *FormatError naming the offset. Open probes
// by content only: a file's name never selects its parser. Reads past Size
// return io.EOF rather than whatever a growing file or device holds beyond it.
package image

import (
	"errors"
	"fmt"
	"io"
)

// ExtentKind says what an Extent holds.
type ExtentKind uint8

const (
	// Data is a range whose bytes must be read.
	Data ExtentKind = iota
	// Zero is a range known to read as zeros (a hole in a sparse file, an
	// unallocated cluster of a VM image).
	Zero
)

// String returns "data" or "zero".
func (k ExtentKind) String() string {
	switch k {
	case Data:
		return "data"
	case Zero:
		return "zero"
	}
	return "unknown"
}

// Extent is a byte range of an image and what it holds.
type Extent struct {
	Off  int64
	Len  int64
	Kind ExtentKind
}

// End returns Off+Len.
func (e Extent) End() int64 { return e.Off + e.Len }

// Image is a disk image opened for reading.
type Image interface {
	io.ReaderAt
	// Size is the image's size in bytes (for a compressed or VM image, the
	// size of the disk it holds).
	Size() int64
	// Extents lists the image's ranges in order, covering [0, Size()) with
	// no gaps. An image that knows nothing of its holes returns one Data
	// extent.
	Extents() ([]Extent, error)
	// Format names the container: "raw", "device", later "xz", "qcow2", …
	Format() string
	// Close releases the underlying file.
	Close() error
}

// ErrWrongType is wrapped by a prober that does not recognise its input, so
// that Open can try the next format.
var ErrWrongType = errors.New("image: not this format")

// ErrNotRegular is wrapped by Open when the path names something that is
// neither a regular file nor a block device (a directory, a pipe, a socket,
// a character device).
var ErrNotRegular = errors.New("image: not a regular file or block device")

// ErrNotDevice is wrapped by DeviceSize when the file is not a block device.
var ErrNotDevice = errors.New("image: not a block device")

// FormatError reports malformed data in a container image. Container readers
// in the subpackages return it (possibly wrapped) for every structural
// problem they find.
type FormatError struct {
	Format string // container format, e.g. "qcow2"
	Off    int64  // byte offset in the container file where the problem is
	Msg    string // what is wrong, e.g. "L2 table offset beyond end of file"
}

// Error returns, for example, "image: qcow2: bad magic at offset 0x0 (0)".
func (e *FormatError) Error() string {
	return fmt.Sprintf("image: %s: %s at offset %#x (%d)", e.Format, e.Msg, e.Off, e.Off)
}

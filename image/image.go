// Package image opens disk images and block devices as random-access byte
// sources.
//
// An Image is an io.ReaderAt with a size and a map of which ranges hold data
// and which are holes or known zeros. Open probes the content of a file (never
// its name) against the registered container formats and falls back to a raw
// image last, so every later layer (partition tables, filesystems, commands)
// works the same on any input.
//
// # Security
//
// Images are untrusted input. Container readers must bound every allocation
// by sizes they have verified and must never panic on malformed data.
package image

import (
	"errors"
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

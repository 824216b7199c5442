package image

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// fileImage is a raw file or a block device.
type fileImage struct {
	f      *os.File
	r      io.ReaderAt // f, or an aligning wrapper around f for devices
	size   int64
	format string // "raw" or "device"
	sparse bool   // ask the filesystem for holes in Extents
}

var _ Image = (*fileImage)(nil)

// ReadAt reads from the file with pread; it never reads past Size.
func (m *fileImage) ReadAt(p []byte, off int64) (int, error) {
	return readAtLimited(m.r, m.size, p, off)
}

// Size returns the size of the file or device, as found when it was opened.
func (m *fileImage) Size() int64 { return m.size }

// Format returns "raw" or "device".
func (m *fileImage) Format() string { return m.format }

// Close closes the file.
func (m *fileImage) Close() error { return m.f.Close() }

// File returns the open file of a raw image, whose bytes are the image's
// own, for callers that copy ranges of it inside the kernel (sendfile,
// copy_file_range). Devices, read through an aligning wrapper, give nil.
func (m *fileImage) File() *os.File {
	if m.format != "raw" {
		return nil
	}
	return m.f
}

// Extents reports the holes of a sparse file as Zero extents where the
// system can tell; otherwise it returns one Data extent.
func (m *fileImage) Extents() ([]Extent, error) {
	if !m.sparse {
		return wholeData(m.size), nil
	}
	ext, err := fileExtents(m.f, m.size)
	if err != nil {
		return nil, fmt.Errorf("image: %s: listing holes: %w", m.f.Name(), err)
	}
	return ext, nil
}

// readAtLimited reads from r as if it ended at size.
func readAtLimited(r io.ReaderAt, size int64, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("image: read at negative offset %d", off)
	}
	if off >= size {
		return 0, io.EOF
	}
	short := false
	if int64(len(p)) > size-off {
		p = p[:size-off]
		short = true
	}
	n, err := r.ReadAt(p, off)
	if err == nil && short {
		err = io.EOF
	}
	if n < len(p) && err == nil {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// wholeData returns one Data extent covering size bytes (none if size is 0).
func wholeData(size int64) []Extent {
	if size <= 0 {
		return []Extent{}
	}
	return []Extent{{Off: 0, Len: size, Kind: Data}}
}

// appendExtent appends e to list, merging it with the last extent when they
// are adjacent and of the same kind. Empty extents are dropped.
func appendExtent(list []Extent, e Extent) []Extent {
	if e.Len <= 0 {
		return list
	}
	if n := len(list); n > 0 && list[n-1].Kind == e.Kind && list[n-1].End() == e.Off {
		list[n-1].Len += e.Len
		return list
	}
	return append(list, e)
}

// readerImage wraps an io.ReaderAt as a raw image.
type readerImage struct {
	r    io.ReaderAt
	size int64
}

// NewReader returns r, of the given size, as a "raw" Image with one Data
// extent and a Close that does nothing. Reads past size return io.EOF. It is
// meant for tests, in-memory images and sections of other images; r must be
// safe for concurrent ReadAt if the Image is read concurrently.
func NewReader(r io.ReaderAt, size int64) Image {
	if size < 0 {
		size = 0
	}
	return &readerImage{r: r, size: size}
}

// ReadAt reads from the wrapped reader; it never reads past Size.
func (m *readerImage) ReadAt(p []byte, off int64) (int, error) {
	if m.r == nil {
		return 0, errors.New("image: NewReader given a nil reader")
	}
	return readAtLimited(m.r, m.size, p, off)
}

// Size returns the size given to NewReader.
func (m *readerImage) Size() int64 { return m.size }

// Extents returns one Data extent covering the image.
func (m *readerImage) Extents() ([]Extent, error) { return wholeData(m.size), nil }

// Format returns "raw".
func (m *readerImage) Format() string { return "raw" }

// Close does nothing.
func (m *readerImage) Close() error { return nil }

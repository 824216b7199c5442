//go:build linux || darwin || freebsd

package image

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// fileExtents maps the holes of f, whose size is taken as size, with lseek
// SEEK_DATA and SEEK_HOLE. The values of these constants differ between
// systems (macOS swaps them), so they come from x/sys/unix.
//
// lseek moves the file offset of the descriptor, but ReadAt uses pread,
// which takes its own offset, and this function uses only the offsets that
// lseek returns; so it never disturbs concurrent reads, nor another Extents
// call running at the same time.
//
// A filesystem that does not report holes either treats the whole file as
// data (the generic behaviour on Linux and macOS) or fails with EINVAL or
// ENOTSUP; both give one Data extent.
func fileExtents(f *os.File, size int64) ([]Extent, error) {
	if size <= 0 {
		return []Extent{}, nil
	}
	conn, err := f.SyscallConn()
	if err != nil {
		return wholeData(size), nil
	}
	var list []Extent
	var seekErr error
	ctlErr := conn.Control(func(fd uintptr) {
		list, seekErr = seekExtents(int(fd), size)
	})
	if ctlErr != nil {
		return nil, ctlErr
	}
	if seekErr != nil {
		if unsupportedSeek(seekErr) {
			return wholeData(size), nil
		}
		return nil, seekErr
	}
	return list, nil
}

// seekExtents walks the file from offset 0 to size. Every iteration moves
// off forward by at least one byte, so the loop ends.
func seekExtents(fd int, size int64) ([]Extent, error) {
	list := make([]Extent, 0, 8)
	off := int64(0)
	for off < size {
		data, err := lseek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			// No data at or after off: the rest is a hole.
			return appendExtent(list, Extent{Off: off, Len: size - off, Kind: Zero}), nil
		}
		if err != nil {
			return nil, err
		}
		if data < off {
			// The filesystem answered nonsense; stop trusting it.
			return nil, unix.EINVAL
		}
		if data >= size {
			// The file grew after it was opened; beyond off all is hole
			// up to the size we report.
			return appendExtent(list, Extent{Off: off, Len: size - off, Kind: Zero}), nil
		}
		list = appendExtent(list, Extent{Off: off, Len: data - off, Kind: Zero})
		hole, err := lseek(fd, data, unix.SEEK_HOLE)
		if errors.Is(err, unix.ENXIO) {
			// The file shrank under us: call the rest data, which reads
			// as whatever is there.
			hole = size
		} else if err != nil {
			return nil, err
		}
		if hole <= data || hole > size {
			hole = size
		}
		list = appendExtent(list, Extent{Off: data, Len: hole - data, Kind: Data})
		off = hole
	}
	return list, nil
}

// lseek retries on EINTR.
func lseek(fd int, off int64, whence int) (int64, error) {
	for {
		n, err := unix.Seek(fd, off, whence)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// unsupportedSeek reports whether err means the filesystem cannot report
// holes.
func unsupportedSeek(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTSUP) ||
		errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS)
}

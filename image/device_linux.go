package image

import (
	"fmt"
	"math"
	"os"

	"golang.org/x/sys/unix"
)

// isDeviceName reports whether path is a device by its name alone; Linux
// devices are recognised by their file type instead.
func isDeviceName(path string) bool { return false }

// isDeviceMode reports whether fi describes a block device.
func isDeviceMode(path string, fi os.FileInfo) bool {
	m := fi.Mode()
	return m&os.ModeDevice != 0 && m&os.ModeCharDevice == 0
}

// openDevice opens a block device read-only.
func openDevice(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY, 0)
}

// deviceAlignment returns 1: Linux block devices accept reads at any offset
// and length through the page cache.
func deviceAlignment(f *os.File, size int64) (int64, error) { return 1, nil }

// deviceAccessHint says what to do when opening a device is not permitted.
func deviceAccessHint(path string) string {
	return "run as root or with sudo to read " + path
}

// DeviceSize returns the size in bytes of the block device open as f, as the
// kernel reports it (ioctl BLKGETSIZE64). It fails with an error wrapping
// ErrNotDevice when f is not a block device.
func DeviceSize(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if !isDeviceMode(f.Name(), fi) {
		return 0, fmt.Errorf("%s: %w", f.Name(), ErrNotDevice)
	}
	conn, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var size uint64
	var ioErr error
	if err := conn.Control(func(fd uintptr) {
		size, ioErr = unix.IoctlGetUint64(int(fd), unix.BLKGETSIZE64)
	}); err != nil {
		return 0, err
	}
	if ioErr != nil {
		return 0, fmt.Errorf("%s: ioctl BLKGETSIZE64: %w", f.Name(), ioErr)
	}
	if size > math.MaxInt64 {
		return 0, fmt.Errorf("%s: device reports an impossible size of %d bytes", f.Name(), size)
	}
	return int64(size), nil
}

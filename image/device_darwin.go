package image

import (
	"fmt"
	"math"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ioctl requests from <sys/disk.h>: _IOR('d', 24, uint32_t) and
// _IOR('d', 25, uint64_t).
const (
	dkiocGetBlockSize  = 0x40046418
	dkiocGetBlockCount = 0x40086419
)

// isDeviceName reports whether path is a device by its name alone; macOS
// devices are recognised by their file type instead.
func isDeviceName(path string) bool { return false }

// isDeviceMode reports whether fi describes a block device, or one of the
// raw disk character devices /dev/rdiskN and /dev/rdiskNsM.
func isDeviceMode(path string, fi os.FileInfo) bool {
	m := fi.Mode()
	if m&os.ModeDevice == 0 {
		return false
	}
	if m&os.ModeCharDevice == 0 {
		return true
	}
	return isDiskName(filepath.Base(path))
}

// isDiskName matches "diskN", "rdiskN", "diskNsM" and "rdiskNsM".
func isDiskName(name string) bool {
	if len(name) > 0 && name[0] == 'r' {
		name = name[1:]
	}
	if len(name) < 5 || name[:4] != "disk" {
		return false
	}
	name = name[4:]
	digits := 0
	for _, c := range name {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == 's' && digits > 0:
			digits = 0
		default:
			return false
		}
	}
	return digits > 0
}

// openDevice opens a disk device read-only.
func openDevice(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY, 0)
}

// deviceAlignment returns the device's block size: raw disk devices accept
// only reads aligned to it.
func deviceAlignment(f *os.File, size int64) (int64, error) {
	bs, _, err := diskGeometry(f)
	return bs, err
}

// deviceAccessHint says what to do when opening a device is not permitted.
func deviceAccessHint(path string) string {
	return "run as root or with sudo to read " + path
}

// diskGeometry asks the kernel for the block size and the block count.
func diskGeometry(f *os.File) (blockSize, blocks int64, err error) {
	conn, err := f.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var bs, count int
	var bsErr, countErr error
	if err := conn.Control(func(fd uintptr) {
		// The kernel writes a uint32 into the low half of the zeroed int;
		// every macOS architecture is little-endian.
		bs, bsErr = unix.IoctlGetInt(int(fd), dkiocGetBlockSize)
		count, countErr = unix.IoctlGetInt(int(fd), dkiocGetBlockCount)
	}); err != nil {
		return 0, 0, err
	}
	if bsErr != nil {
		return 0, 0, fmt.Errorf("%s: ioctl DKIOCGETBLOCKSIZE: %w", f.Name(), bsErr)
	}
	if countErr != nil {
		return 0, 0, fmt.Errorf("%s: ioctl DKIOCGETBLOCKCOUNT: %w", f.Name(), countErr)
	}
	blockSize = int64(uint32(bs))
	blocks = int64(count)
	if blockSize <= 0 || blocks < 0 || blocks > math.MaxInt64/blockSize {
		return 0, 0, fmt.Errorf("%s: device reports %d blocks of %d bytes, which is impossible", f.Name(), blocks, blockSize)
	}
	return blockSize, blocks, nil
}

// DeviceSize returns the size in bytes of the disk device open as f, as the
// kernel reports it (ioctl DKIOCGETBLOCKCOUNT × DKIOCGETBLOCKSIZE). It fails
// with an error wrapping ErrNotDevice when f is not a disk device.
func DeviceSize(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if !isDeviceMode(f.Name(), fi) {
		return 0, fmt.Errorf("%s: %w", f.Name(), ErrNotDevice)
	}
	bs, n, err := diskGeometry(f)
	if err != nil {
		return 0, err
	}
	return bs * n, nil
}

package image

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Control codes from winioctl.h.
const (
	ioctlDiskGetDriveGeometry = 0x00070000
	ioctlDiskGetLengthInfo    = 0x0007405c
)

// diskGeometry is DISK_GEOMETRY from winioctl.h.
type diskGeometry struct {
	Cylinders         int64
	MediaType         uint32
	TracksPerCylinder uint32
	SectorsPerTrack   uint32
	BytesPerSector    uint32
}

// isDeviceName reports whether path is \\.\PhysicalDriveN or \\.\X:.
func isDeviceName(path string) bool { return isWindowsDeviceName(path) }

// isDeviceMode returns false: Windows devices are recognised by name.
func isDeviceMode(path string, fi os.FileInfo) bool { return false }

// openDevice opens a disk or volume for reading, sharing it with other
// readers and writers (a mounted volume stays usable).
func openDevice(path string) (*os.File, error) {
	name, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	h, err := windows.CreateFile(name, windows.GENERIC_READ,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE, nil,
		windows.OPEN_EXISTING, windows.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(h), path), nil
}

// deviceAlignment returns the sector size: Windows accepts only reads of
// disks and volumes whose offset and length are multiples of it. When the
// geometry cannot be read, it assumes 4096-byte sectors if the size allows
// it, 512 otherwise.
func deviceAlignment(f *os.File, size int64) (int64, error) {
	var g diskGeometry
	if err := deviceIoControl(f, ioctlDiskGetDriveGeometry, unsafe.Pointer(&g), uint32(unsafe.Sizeof(g))); err == nil && g.BytesPerSector > 0 {
		return int64(g.BytesPerSector), nil
	}
	if size%4096 == 0 {
		return 4096, nil
	}
	return 512, nil
}

// deviceAccessHint says what to do when opening a device is not permitted.
func deviceAccessHint(path string) string {
	return "run imgtool from a command prompt opened with \"Run as administrator\" to read " + path
}

// deviceIoControl runs a control code that only returns data.
func deviceIoControl(f *os.File, code uint32, out unsafe.Pointer, outSize uint32) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	if err := conn.Control(func(fd uintptr) {
		var n uint32
		ioErr = windows.DeviceIoControl(windows.Handle(fd), code, nil, 0, (*byte)(out), outSize, &n, nil)
		if ioErr == nil && n < outSize {
			ioErr = fmt.Errorf("short answer (%d of %d bytes)", n, outSize)
		}
	}); err != nil {
		return err
	}
	return ioErr
}

// DeviceSize returns the size in bytes of the disk or volume open as f, as
// Windows reports it (IOCTL_DISK_GET_LENGTH_INFO). It fails with an error
// wrapping ErrNotDevice when f is not a disk or volume.
func DeviceSize(f *os.File) (int64, error) {
	var length int64
	err := deviceIoControl(f, ioctlDiskGetLengthInfo, unsafe.Pointer(&length), uint32(unsafe.Sizeof(length)))
	if errors.Is(err, windows.ERROR_INVALID_FUNCTION) || errors.Is(err, windows.ERROR_NOT_SUPPORTED) {
		return 0, fmt.Errorf("%s: %w", f.Name(), ErrNotDevice)
	}
	if err != nil {
		return 0, fmt.Errorf("%s: IOCTL_DISK_GET_LENGTH_INFO: %w", f.Name(), err)
	}
	if length < 0 {
		return 0, fmt.Errorf("%s: device reports a negative size", f.Name())
	}
	return length, nil
}

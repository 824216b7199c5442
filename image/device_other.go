//go:build !linux && !darwin && !windows

package image

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// errNoDevices says what to do on systems where devices cannot be read.
var errNoDevices = fmt.Errorf("reading block devices is not supported on %s; copy the device to a file first (for example with dd) and open the file: %w",
	runtime.GOOS, errors.ErrUnsupported)

// isDeviceName returns false: no device names are recognised here.
func isDeviceName(path string) bool { return false }

// isDeviceMode reports whether fi is a device node, so that Open can say
// that devices are not supported rather than that the path is not a file.
// (BSD disks are character devices.)
func isDeviceMode(path string, fi os.FileInfo) bool { return fi.Mode()&os.ModeDevice != 0 }

// openDevice fails: this system is not supported.
func openDevice(path string) (*os.File, error) { return nil, errNoDevices }

// deviceAlignment is never reached, since openDevice fails.
func deviceAlignment(f *os.File, size int64) (int64, error) { return 1, nil }

// deviceAccessHint says what to do when opening a device is not permitted.
func deviceAccessHint(path string) string {
	return "run as root to read " + path
}

// DeviceSize fails: reading devices is not supported on this system.
func DeviceSize(f *os.File) (int64, error) { return 0, errNoDevices }

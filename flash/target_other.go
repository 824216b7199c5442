//go:build !linux && !darwin && !windows

package flash

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// errNoDevices says what to do on systems without device support.
var errNoDevices = fmt.Errorf("flash: writing and listing disks is not supported on %s; write the image on Linux, macOS or Windows, or give a regular file as the target: %w",
	runtime.GOOS, errors.ErrUnsupported)

func listDevices(all bool) ([]Device, error) { return nil, errNoDevices }

// openTarget opens regular files only.
func openTarget(path string, o OpenOptions) (*fileTarget, error) {
	fi, err := os.Stat(path)
	if err == nil && !fi.Mode().IsRegular() {
		return nil, errNoDevices
	}
	return openRegular(path, o)
}

// Sync flushes a file.
func (t *fileTarget) Sync() error {
	if err := t.f.Sync(); err != nil {
		return fmt.Errorf("flash: flushing %s: %w", t.name, err)
	}
	return nil
}

// Unmount is not supported here.
func Unmount(d Device) error { return errNoDevices }

//go:build !linux

package shrink

import (
	"errors"
	"os"
)

var errUnsupported = errors.New("not supported on this system")

// cloneFile reports that reflink copies are not available here.
func cloneFile(dst, src *os.File) error { return errUnsupported }

// punchHole reports that holes cannot be punched here; zeros are written
// instead.
func punchHole(f *os.File, off, n int64) error { return errUnsupported }

package spool

import (
	"errors"
	"syscall"
)

// diskFull reports whether err means the disk is full: ERROR_DISK_FULL or
// ERROR_HANDLE_DISK_FULL on Windows.
func diskFull(err error) bool {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno == 112 || errno == 39
	}
	return errors.Is(err, syscall.ENOSPC)
}

//go:build !windows

package spool

import (
	"errors"
	"syscall"
)

// diskFull reports whether err means the disk is full (ENOSPC, or EDQUOT
// for a user over quota).
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

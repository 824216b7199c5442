//go:build linux || darwin

package spool

import (
	"os"
	"syscall"
	"testing"
)

// allocated returns the bytes the filesystem allocated to f.
func allocated(t *testing.T, f *os.File) int64 {
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1
	}
	return st.Blocks * 512
}

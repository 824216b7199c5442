//go:build unix

package convert

import (
	"os"
	"syscall"
	"testing"
)

// allocated is the space a file takes on disk.
func allocated(t testing.TB, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0
	}
	return int64(st.Blocks) * 512
}

package shrink

import (
	"os"

	"golang.org/x/sys/unix"
)

// cloneFile makes dst a reflink copy of src (FICLONE) where the
// filesystem supports it.
func cloneFile(dst, src *os.File) error {
	return unix.IoctlFileClone(int(dst.Fd()), int(src.Fd()))
}

// punchHole deallocates [off, off+n) of f, which then reads as zeros.
func punchHole(f *os.File, off, n int64) error {
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

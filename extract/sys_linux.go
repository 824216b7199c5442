package extract

import (
	iofs "io/fs"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"imgtool/fs/meta"
)

// mknod creates a FIFO or device node at rel with mknodat on the checked
// parent directory.
func mknod(r *os.Root, rel string, m iofs.FileMode, dev meta.Dev) error {
	mode, err := nodeMode(m)
	if err != nil {
		return err
	}
	return atParent(r, rel, func(fd int, base string) error {
		return unix.Mknodat(fd, base, mode, devNumber(dev))
	})
}

// setxattrAt sets an extended attribute on rel without following a symbolic
// link there: lsetxattr on /proc/self/fd/N/base, where N is the checked
// parent directory, so no path outside the destination is resolved.
func setxattrAt(r *os.Root, rel, name string, value []byte) error {
	return atParent(r, rel, func(fd int, base string) error {
		return unix.Lsetxattr("/proc/self/fd/"+strconv.Itoa(fd)+"/"+base, name, value, 0)
	})
}

//go:build linux || darwin

package extract

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path"
	"time"

	"golang.org/x/sys/unix"

	"imgtool/fs/meta"
)

// openDirChecked opens the directory rel through r and makes sure the
// descriptor is the directory Lstat sees at rel, so that no symbolic link
// was followed on the last step.
func openDirChecked(r *os.Root, rel string) (*os.File, error) {
	fi, err := r.Lstat(rel)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: %w", rel, unix.ENOTDIR)
	}
	d, err := r.Open(rel)
	if err != nil {
		return nil, err
	}
	di, err := d.Stat()
	if err != nil || !os.SameFile(fi, di) {
		d.Close()
		if err == nil {
			err = fmt.Errorf("%s changed while being opened", rel)
		}
		return nil, err
	}
	return d, nil
}

// atParent calls fn with a descriptor of the checked parent directory of rel
// and rel's last component.
func atParent(r *os.Root, rel string, fn func(dirfd int, base string) error) error {
	dir, base := path.Split(rel)
	if dir == "" {
		dir = "."
	}
	d, err := openDirChecked(r, dir)
	if err != nil {
		return err
	}
	defer d.Close()
	rc, err := d.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd), base) }); err != nil {
		return err
	}
	return ferr
}

// lutimes sets the times of rel without following a symbolic link there.
func lutimes(r *os.Root, rel string, atime, mtime time.Time) error {
	a, err := unix.TimeToTimespec(atime)
	if err != nil {
		return err
	}
	m, err := unix.TimeToTimespec(mtime)
	if err != nil {
		return err
	}
	return atParent(r, rel, func(fd int, base string) error {
		return unix.UtimesNanoAt(fd, base, []unix.Timespec{a, m}, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// fsetxattr sets an extended attribute on an open file.
func fsetxattr(f *os.File, name string, value []byte) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fsetxattr(int(fd), name, value, 0) }); err != nil {
		return err
	}
	return serr
}

// nodeMode is the S_IFMT type of a FIFO or device, with permissions 0600
// until the stored mode is applied.
func nodeMode(m iofs.FileMode) (uint32, error) {
	switch {
	case m&iofs.ModeNamedPipe != 0:
		return unix.S_IFIFO | 0o600, nil
	case m&iofs.ModeCharDevice != 0:
		return unix.S_IFCHR | 0o600, nil
	case m&iofs.ModeDevice != 0:
		return unix.S_IFBLK | 0o600, nil
	}
	return 0, errors.New("not a FIFO or device")
}

func devNumber(d meta.Dev) int {
	return int(unix.Mkdev(d.Major, d.Minor))
}

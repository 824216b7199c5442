//go:build !linux && !darwin

package extract

import (
	"errors"
	iofs "io/fs"
	"os"
	"time"

	"imgtool/fs/meta"
)

var errNoSupport = errors.New("not supported on this operating system")

// lutimes is not available here; symbolic links keep the time of their
// creation.
func lutimes(r *os.Root, rel string, atime, mtime time.Time) error { return errNoSupport }

// mknod is not available here; FIFOs and devices are skipped.
func mknod(r *os.Root, rel string, m iofs.FileMode, dev meta.Dev) error { return errNoSupport }

// fsetxattr is not available here.
func fsetxattr(f *os.File, name string, value []byte) error { return errNoSupport }

// setxattrAt is not available here.
func setxattrAt(r *os.Root, rel, name string, value []byte) error { return errNoSupport }

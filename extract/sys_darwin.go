package extract

import (
	iofs "io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"imgtool/fs/meta"
)

// hostPath is the path of rel after its parent was checked to be a real
// directory. macOS lacks mknodat and an *at form of setxattr, so a local
// process racing the copy could swap the parent; the image cannot.
func hostPath(r *os.Root, rel string) (string, error) {
	d, err := openDirChecked(r, filepath.ToSlash(filepath.Dir(rel)))
	if err != nil {
		return "", err
	}
	d.Close()
	return filepath.Join(r.Name(), filepath.FromSlash(rel)), nil
}

// mknod creates a FIFO or device node at rel.
func mknod(r *os.Root, rel string, m iofs.FileMode, dev meta.Dev) error {
	mode, err := nodeMode(m)
	if err != nil {
		return err
	}
	p, err := hostPath(r, rel)
	if err != nil {
		return err
	}
	if m&iofs.ModeNamedPipe != 0 {
		return unix.Mkfifo(p, mode&0o777)
	}
	return unix.Mknod(p, mode, devNumber(dev))
}

// setxattrAt sets an extended attribute on rel without following a symbolic
// link there (XATTR_NOFOLLOW).
func setxattrAt(r *os.Root, rel, name string, value []byte) error {
	p, err := hostPath(r, rel)
	if err != nil {
		return err
	}
	return unix.Lsetxattr(p, name, value, 0)
}

package ext4

import (
	iofs "io/fs"
	"path"
	"strings"
	"time"
)

// putTime stores t in the inode's 32-bit seconds field at off and, when
// the inode is large enough to hold it, in the extra field at xoff (two
// epoch bits that extend the seconds past 2038, and nanoseconds).
func putTime(in *inode, off, xoff int, t time.Time) {
	sec := t.Unix()
	sle.PutUint32(in.raw[off:], uint32(sec))
	if in.hasExtra(xoff, 4) {
		epoch := uint32((sec-int64(int32(sec)))>>32) & 3
		sle.PutUint32(in.raw[xoff:], uint32(t.Nanosecond())<<2|epoch)
	}
}

// find reads the inode that name names; "" and "." name the root
// directory. Symbolic links are not followed.
func (w *Writer) find(name string) (*inode, error) {
	if strings.TrimPrefix(path.Clean("/"+name), "/") == "" {
		return w.readInode(RootIno)
	}
	parent, base, err := w.resolve(name)
	if err != nil {
		return nil, err
	}
	return w.lookupInode(parent, name, base)
}

// Chmod sets the permission bits of name ("." is the root directory) and
// its setuid, setgid and sticky bits from mode; the file type is kept and
// other bits of mode are ignored. The change time becomes the Writer's
// time. A symbolic link named by name is changed itself, not followed.
func (w *Writer) Chmod(name string, mode iofs.FileMode) error {
	in, err := w.find(name)
	if err != nil {
		return err
	}
	sle.PutUint16(in.raw[0:], sle.Uint16(in.raw[0:])&SIFMT|unixMode(mode))
	putTime(in, 0xC, 0x84, w.now())
	return w.writeInode(in)
}

// Chown sets the owner and group of name ("." is the root directory) to
// the 32-bit ids uid and gid, stored as low and high halves. Unlike
// chown(2), setuid and setgid bits are kept: an image is being prepared,
// not a running system protected. A symbolic link is changed itself, not
// followed. The change time becomes the Writer's time.
func (w *Writer) Chown(name string, uid, gid uint32) error {
	in, err := w.find(name)
	if err != nil {
		return err
	}
	raw := in.raw
	sle.PutUint16(raw[2:], uint16(uid))
	sle.PutUint16(raw[0x78:], uint16(uid>>16))
	sle.PutUint16(raw[0x18:], uint16(gid))
	sle.PutUint16(raw[0x7A:], uint16(gid>>16))
	putTime(in, 0xC, 0x84, w.now())
	return w.writeInode(in)
}

// Chtimes sets the access and modification times of name ("." is the
// root directory); a zero time leaves that time unchanged. The change
// time becomes the Writer's time. Times are stored with nanoseconds when
// the inode has room for them (inodes larger than 128 bytes).
func (w *Writer) Chtimes(name string, atime, mtime time.Time) error {
	in, err := w.find(name)
	if err != nil {
		return err
	}
	if !atime.IsZero() {
		putTime(in, 0x8, 0x8C, atime)
	}
	if !mtime.IsZero() {
		putTime(in, 0x10, 0x88, mtime)
	}
	putTime(in, 0xC, 0x84, w.now())
	return w.writeInode(in)
}

package fusemount

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"imgtool/fs/meta"
)

var (
	_ gofs.NodeStatxer = (*node)(nil)
	_ gofs.NodeStatxer = (*topNode)(nil)
	_ gofs.NodeStatxer = (*rawNode)(nil)
)

// statx mask bits (linux/stat.h).
const (
	statxBasicStats = 0x7ff
	statxBtime      = 0x800
)

// Statx adds the creation time (ext4 i_crtime, FAT creation time) to
// what Getattr says.
func (n *node) Statx(ctx context.Context, f gofs.FileHandle, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	fillStatx(&out.Statx, n.st, n.ino, n.t.bsize)
	return 0
}

// Statx describes the top folder.
func (r *topNode) Statx(ctx context.Context, f gofs.FileHandle, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	fillStatx(&out.Statx, r.stat(), 1, 4096)
	return 0
}

// Statx describes the raw file.
func (r *rawNode) Statx(ctx context.Context, f gofs.FileHandle, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	fillStatx(&out.Statx, r.stat(), r.ino, 4096)
	return 0
}

func fillStatx(x *fuse.Statx, st *meta.Stat, ino uint64, bsize uint32) {
	var a fuse.Attr
	fillAttr(&a, st, ino, bsize)
	x.Mask = statxBasicStats
	x.Blksize = a.Blksize
	x.Nlink = a.Nlink
	x.Uid, x.Gid = a.Uid, a.Gid
	x.Mode = uint16(a.Mode)
	x.Ino = ino
	x.Size = a.Size
	x.Blocks = a.Blocks
	x.Atime = fuse.SxTime{Sec: a.Atime, Nsec: a.Atimensec}
	x.Mtime = fuse.SxTime{Sec: a.Mtime, Nsec: a.Mtimensec}
	x.Ctime = fuse.SxTime{Sec: a.Ctime, Nsec: a.Ctimensec}
	if !st.Crtime.IsZero() {
		x.Mask |= statxBtime
		sec, nsec := unixTime(st.Crtime)
		x.Btime = fuse.SxTime{Sec: sec, Nsec: nsec}
	}
	x.RdevMajor, x.RdevMinor = st.Rdev.Major, st.Rdev.Minor
}

package ext4

import (
	iofs "io/fs"
	"time"

	"imgtool/fs/meta"
)

// goMode converts an i_mode to Go's FileMode.
func goMode(m uint16) iofs.FileMode {
	mode := iofs.FileMode(m & 0o777)
	if m&SISUID != 0 {
		mode |= iofs.ModeSetuid
	}
	if m&SISGID != 0 {
		mode |= iofs.ModeSetgid
	}
	if m&SISVTX != 0 {
		mode |= iofs.ModeSticky
	}
	switch m & SIFMT {
	case SIFDIR:
		mode |= iofs.ModeDir
	case SIFLNK:
		mode |= iofs.ModeSymlink
	case SIFCHR:
		mode |= iofs.ModeDevice | iofs.ModeCharDevice
	case SIFBLK:
		mode |= iofs.ModeDevice
	case SIFIFO:
		mode |= iofs.ModeNamedPipe
	case SIFSOCK:
		mode |= iofs.ModeSocket
	case SIFREG:
	default:
		mode |= iofs.ModeIrregular
	}
	return mode
}

// xtime decodes a timestamp: signed 32-bit seconds, and with the extra
// field two epoch bits and 30 bits of nanoseconds.
func xtime(sec, extra uint32, hasExtra bool) time.Time {
	s := int64(int32(sec))
	var ns int64
	if hasExtra {
		s += int64(extra&3) << 32
		ns = int64(extra >> 2)
		if ns > 999999999 {
			ns = 999999999
		}
	}
	return time.Unix(s, ns)
}

// blocks512 returns st_blocks in 512-byte units.
func (f *FS) blocks512(in *inode) int64 {
	b := uint64(in.BlocksLo)
	if f.hugeFile {
		b |= uint64(in.BlocksHigh) << 32
		if in.hasFlag(InodeHugeFileFl) {
			b *= uint64(f.blockSize / 512)
		}
	}
	return int64(b)
}

// stat builds the full metadata of an inode. Xattrs and the symlink target
// are best effort: a damaged xattr block leaves them out.
func (f *FS) stat(in *inode) *meta.Stat {
	st := &meta.Stat{
		Ino:    uint64(in.ino),
		Mode:   goMode(in.Mode),
		Unix:   uint32(in.Mode),
		Nlink:  uint32(in.LinksCount),
		Uid:    uint32(in.UIDLo) | uint32(in.UIDHigh)<<16,
		Gid:    uint32(in.GIDLo) | uint32(in.GIDHigh)<<16,
		Size:   in.size(),
		Blocks: f.blocks512(in),
		Flags:  in.Flags,
		Atime:  xtime(in.Atime, in.AtimeExtra, in.hasExtra(0x8C, 4)),
		Mtime:  xtime(in.Mtime, in.MtimeExtra, in.hasExtra(0x88, 4)),
		Ctime:  xtime(in.Ctime, in.CtimeExtra, in.hasExtra(0x84, 4)),
	}
	if in.hasExtra(inodeOffCrtime, 4) {
		st.Crtime = xtime(in.Crtime, in.CrtimeExtra, in.hasExtra(inodeOffCrtimeX, 4))
	}
	switch in.mode() {
	case SIFCHR, SIFBLK:
		if d := in.Block[0]; d != 0 {
			st.Rdev = meta.Dev{Major: d >> 8 & 0xFF, Minor: d & 0xFF}
		} else {
			d := in.Block[1]
			st.Rdev = meta.Dev{Major: d & 0xFFF00 >> 8, Minor: d&0xFF | d>>12&0xFFF00}
		}
	case SIFLNK:
		if t, err := f.readLink(in); err == nil {
			st.Link = t
		}
	}
	if xs, _ := f.xattrs(in); len(xs) > 0 {
		st.Xattrs = make(map[string][]byte, len(xs))
		for _, x := range xs {
			if x.name == "system.data" {
				continue
			}
			st.Xattrs[x.name] = x.value
		}
		if len(st.Xattrs) == 0 {
			st.Xattrs = nil
		}
	}
	return st
}

package ext4

import (
	"encoding/binary"
	"fmt"
	"io"
)

type xattr struct {
	name  string
	value []byte
}

// xattrPrefixes maps e_name_index to the name prefix.
var xattrPrefixes = map[uint8]string{
	1: "user.",
	2: "system.posix_acl_access",
	3: "system.posix_acl_default",
	4: "trusted.",
	6: "security.",
	7: "system.",
	8: "system.richacl",
}

// parseXattrs decodes the entries of an xattr area. entries holds the
// entry list; values is the region e_value_offs counts from.
func (f *FS) parseXattrs(entries, values []byte, blk int64, what string, out []xattr) ([]xattr, error) {
	le := binary.LittleEndian
	pos := 0
	for pos+4 <= len(entries) {
		if le.Uint32(entries[pos:]) == 0 {
			return out, nil
		}
		if pos+xattrEntryHeadSize > len(entries) {
			break
		}
		e := entries[pos:]
		nameLen := int(e[0])
		index := e[1]
		offs := int(le.Uint16(e[2:]))
		inum := le.Uint32(e[4:])
		vsize := int64(le.Uint32(e[8:]))
		if pos+xattrEntryHeadSize+nameLen > len(entries) {
			break
		}
		name := string(e[xattrEntryHeadSize : xattrEntryHeadSize+nameLen])
		prefix, ok := xattrPrefixes[index]
		if !ok {
			prefix = fmt.Sprintf("unknown%d.", index)
		}
		if vsize > maxXattrValue {
			return out, corruptf(blk, what, "xattr %q value of %d bytes too large", prefix+name, vsize)
		}
		var value []byte
		if inum != 0 {
			if f.sb.FeatureIncompat&IncompatEAInode == 0 {
				return out, corruptf(blk, what, "xattr %q stored in inode %d without ea_inode", prefix+name, inum)
			}
			v, err := f.eaInodeValue(inum, vsize)
			if err != nil {
				return out, err
			}
			value = v
		} else {
			if int64(offs)+vsize > int64(len(values)) {
				return out, corruptf(blk, what, "xattr %q value outside its area", prefix+name)
			}
			value = append([]byte{}, values[offs:int64(offs)+vsize]...)
		}
		out = append(out, xattr{name: prefix + name, value: value})
		pos += (xattrEntryHeadSize + nameLen + 3) &^ 3
	}
	return out, corruptf(blk, what, "xattr entries run past their area")
}

func (f *FS) eaInodeValue(inum uint32, size int64) ([]byte, error) {
	in, err := f.readInode(inum)
	if err != nil {
		return nil, err
	}
	if !in.hasFlag(InodeEAInodeFl) || in.size() < size {
		return nil, corruptf(-1, fmt.Sprintf("inode %d", inum), "not an xattr value inode")
	}
	c, err := f.content(in)
	if err != nil {
		return nil, err
	}
	v := make([]byte, size)
	if _, err := c.ReadAt(v, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return v, nil
}

// inodeXattrs returns the xattrs stored in the inode body.
func (f *FS) inodeXattrs(in *inode) ([]xattr, error) {
	start := GoodOldInodeSize + in.extra
	if in.extra == 0 || start+4 > len(in.raw) {
		return nil, nil
	}
	area := in.raw[start:]
	if binary.LittleEndian.Uint32(area) != XattrMagic {
		return nil, nil
	}
	off, _, _ := f.inodeLoc(in.ino)
	return f.parseXattrs(area[4:], area[4:], off/f.blockSize, fmt.Sprintf("inode %d xattrs", in.ino), nil)
}

// xattrs returns every xattr of the inode: in the body, then in its block.
func (f *FS) xattrs(in *inode) ([]xattr, error) {
	out, err := f.inodeXattrs(in)
	if err != nil {
		return out, err
	}
	blk := in.fileACL()
	if blk == 0 {
		return out, nil
	}
	what := fmt.Sprintf("inode %d xattr block", in.ino)
	buf := make([]byte, f.blockSize)
	if err := f.readBlock(buf, blk); err != nil {
		return out, err
	}
	return f.parseXattrBlock(buf, blk, what, out)
}

func (f *FS) parseXattrBlock(buf []byte, blk uint64, what string, out []xattr) ([]xattr, error) {
	le := binary.LittleEndian
	if le.Uint32(buf) != XattrMagic || le.Uint32(buf[8:]) != 1 {
		return out, corruptf(int64(blk), what, "bad xattr block header")
	}
	if f.verify && f.metaCsum {
		if xattrBlockCsum(f.seed, blk, buf) != le.Uint32(buf[0x10:]) {
			return out, csumError(int64(blk), what)
		}
	}
	return f.parseXattrs(buf[32:], buf, int64(blk), what, out)
}

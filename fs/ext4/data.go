package ext4

import (
	"errors"
	"fmt"
	"io"

	"imgtool/fs/meta"
)

// content reads the data of an inode: through its extents or block map, or
// from the inode itself (inline data, fast symlinks).
type content struct {
	f      *FS
	in     *inode
	m      *mapper
	inline []byte // whole content when stored in the inode
	size   int64
}

func (f *FS) content(in *inode) (*content, error) {
	c := &content{f: f, in: in, size: in.size()}
	if in.hasFlag(InodeInlineDataFl) {
		data, err := f.inlineData(in)
		if err != nil {
			return nil, err
		}
		c.inline = data
		c.size = min(c.size, int64(len(data)))
		return c, nil
	}
	if f.isFastSymlink(in) {
		c.inline = in.raw[0x28 : 0x28+c.size]
		return c, nil
	}
	c.m = newMapper(f, in)
	return c, nil
}

// inlineData returns i_block followed by the system.data xattr value.
func (f *FS) inlineData(in *inode) ([]byte, error) {
	data := append([]byte(nil), in.raw[0x28:0x28+60]...)
	xs, err := f.inodeXattrs(in)
	if err != nil {
		return nil, err
	}
	for _, x := range xs {
		if x.name == "system.data" {
			data = append(data, x.value...)
		}
	}
	return data, nil
}

// ReadAt reads file content at off, zero-filling holes and uninitialised
// extents, reading each contiguous run of blocks with one ReadAt.
func (c *content) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("ext4: negative offset")
	}
	if off >= c.size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > c.size-off {
		p = p[:c.size-off]
	}
	if c.inline != nil || c.m == nil {
		n := copy(p, c.inline[min(int64(len(c.inline)), off):])
		clear(p[n:])
		n = len(p)
		if n < want {
			return n, io.EOF
		}
		return n, nil
	}
	bs := c.f.blockSize
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		lblk := uint64(pos / bs)
		within := pos % bs
		r, err := c.m.lookup(lblk)
		if err != nil {
			return done, err
		}
		avail := int64(len(p) - done)
		if r.n < uint64(avail/bs)+2 {
			avail = min(avail, int64(r.n)*bs-within)
		}
		chunk := p[done : done+int(avail)]
		if r.zero {
			clear(chunk)
		} else if err := c.f.readAt(chunk, int64(r.pblk)*bs+within); err != nil {
			return done, fmt.Errorf("ext4: inode %d: %w", c.in.ino, err)
		}
		done += len(chunk)
	}
	if done < want {
		return done, io.EOF
	}
	return done, nil
}

// isFastSymlink reports whether a symlink's target is stored in i_block:
// as the kernel decides, when it owns no blocks besides its xattr block.
func (f *FS) isFastSymlink(in *inode) bool {
	if !in.isLink() || in.size() >= 60 {
		return false
	}
	var ea int64
	if in.fileACL() != 0 {
		ea = int64(f.clusterRatio) * f.blockSize / 512
	}
	return f.blocks512(in)-ea <= 0
}

// place calls fn for each run of [off, off+n): a byte offset in f.r, or -1
// for zeros. It checks each run against the filesystem's size, as readAt
// does.
func (c *content) place(off, n int64, fn func(dev, length int64) error) error {
	if c.inline != nil || c.m == nil {
		return meta.ErrNotPlaced
	}
	if off < 0 || n < 0 {
		return errors.New("ext4: negative offset or length")
	}
	end := min(off+n, c.size)
	bs := c.f.blockSize
	for pos := off; pos < end; {
		r, err := c.m.lookup(uint64(pos / bs))
		if err != nil {
			return err
		}
		within := pos % bs
		length := min(end-pos, int64(r.n)*bs-within)
		if length <= 0 {
			return fmt.Errorf("ext4: inode %d: empty run at byte %d", c.in.ino, pos)
		}
		dev := int64(-1)
		if !r.zero {
			dev = int64(r.pblk)*bs + within
			if dev < 0 || dev+length > c.f.size {
				return &FormatError{Block: int64(r.pblk), Off: dev, What: fmt.Sprintf("inode %d", c.in.ino), Msg: "data run beyond the end of the filesystem"}
			}
		}
		if err := fn(dev, length); err != nil {
			return err
		}
		pos += length
	}
	return nil
}

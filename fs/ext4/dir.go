package ext4

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// recLen decodes a directory entry's rec_len (64 KiB blocks encode
// lengths of 65536 and more in the low bits).
func (f *FS) recLen(v uint16) int {
	if f.blockSize < 65536 {
		return int(v)
	}
	if v == 0xFFFF || v == 0 {
		return int(f.blockSize)
	}
	return int(v&0xFFFC) | int(v&3)<<16
}

// dirFn receives a directory entry; it returns false to stop the scan.
type dirFn func(name []byte, ino uint32, ft uint8) bool

// parseDirBlock walks the entries of one directory block (or inline
// area). It returns false when fn asked to stop.
func (f *FS) parseDirBlock(b []byte, blk int64, what string, fn dirFn) (bool, error) {
	le := binary.LittleEndian
	filetype := f.sb.FeatureIncompat&IncompatFiletype != 0
	pos := 0
	for pos < len(b) {
		if pos+dirEntryHeadSize > len(b) {
			return true, corruptf(blk, what, "directory entry at byte %d truncated", pos)
		}
		ino := le.Uint32(b[pos:])
		rl := f.recLen(le.Uint16(b[pos+4:]))
		nl := int(b[pos+6])
		ft := b[pos+7]
		if !filetype {
			ft = FtUnknown
		}
		if rl < dirEntryHeadSize || rl%4 != 0 || rl > len(b)-pos || dirEntryHeadSize+nl > rl {
			return true, corruptf(blk, what, "bad directory entry at byte %d (rec_len %d, name_len %d)", pos, rl, nl)
		}
		if ino != 0 && nl > 0 {
			if ino > f.inodes {
				return true, corruptf(blk, what, "entry at byte %d points at inode %d beyond %d", pos, ino, f.inodes)
			}
			name := b[pos+dirEntryHeadSize : pos+dirEntryHeadSize+nl]
			if !validName(name) {
				if string(name) != "." && string(name) != ".." {
					f.hidden.Add(fmt.Sprintf("hid the entry %q (inode %d) in %s: not a safe file name", name, ino, what))
				}
			} else if !fn(name, ino, ft) {
				return false, nil
			}
		}
		pos += rl
	}
	return true, nil
}

// validName rejects names an io/fs path element cannot hold, and "." and
// "..".
func validName(name []byte) bool {
	if len(name) == 0 || string(name) == "." || string(name) == ".." {
		return false
	}
	return bytes.IndexByte(name, '/') < 0 && bytes.IndexByte(name, 0) < 0
}

// verifyDirBlock checks the checksum in a leaf block's tail. Blocks
// without a tail (htree interior blocks) are not checked here.
func (f *FS) verifyDirBlock(in *inode, b []byte, blk int64, what string) error {
	if !f.verify || !f.metaCsum || len(b) < 12 {
		return nil
	}
	if f.isDxBlock(in, b) {
		// An htree root or interior node: its checksum is in its dx_tail,
		// and its last 12 bytes may look like a leaf's tail (e2fsprogs
		// leaves one there when it builds an index).
		return nil
	}
	t := b[len(b)-12:]
	le := binary.LittleEndian
	if le.Uint32(t) != 0 || le.Uint16(t[4:]) != 12 || t[6] != 0 || t[7] != DirTailFileType {
		return nil
	}
	if crc32c(f.inodeSeed(in), b[:len(b)-12]) != le.Uint32(t[8:]) {
		return csumError(blk, what)
	}
	return nil
}

// scanDir calls fn for every entry of directory in except "." and "..".
// It reads the directory in runs of contiguous blocks.
func (f *FS) scanDir(in *inode, fn dirFn) error {
	what := fmt.Sprintf("directory inode %d", in.ino)
	if !in.isDir() {
		return ErrNotDir
	}
	if in.hasFlag(InodeEncryptFl) || in.hasFlag(InodeCasefoldFl) {
		return &FormatError{Block: -1, Off: -1, What: what, Msg: "encrypted or casefolded directory not supported", Err: ErrUnsupported}
	}
	if in.hasFlag(InodeInlineDataFl) {
		data, err := f.inlineData(in)
		if err != nil {
			return err
		}
		if len(data) < 4 {
			return corruptf(-1, what, "inline directory too short")
		}
		more, err := f.parseDirBlock(data[4:60], -1, what, fn)
		if err != nil || !more || len(data) <= 60 {
			return err
		}
		_, err = f.parseDirBlock(data[60:], -1, what, fn)
		return err
	}
	size := in.size()
	if size > f.size {
		return &FormatError{Block: -1, Off: -1, What: what, Msg: fmt.Sprintf("directory size %d exceeds the image", size), Err: ErrTooLarge}
	}
	bs := f.blockSize
	nblocks := uint64((size + bs - 1) / bs)
	chunk := uint64(max(1, maxDirChunk/bs))
	m := newMapper(f, in)
	buf := make([]byte, min(nblocks, chunk)*uint64(bs))
	for lblk := uint64(0); lblk < nblocks; {
		r, err := m.lookup(lblk)
		if err != nil {
			return err
		}
		n := min(r.n, chunk, nblocks-lblk)
		if r.zero {
			lblk += n
			continue
		}
		b := buf[:n*uint64(bs)]
		if err := f.readAt(b, int64(r.pblk)*bs); err != nil {
			return err
		}
		for i := uint64(0); i < n; i++ {
			blk := int64(r.pblk + i)
			block := b[int64(i)*bs : int64(i+1)*bs]
			if err := f.verifyDirBlock(in, block, blk, what); err != nil {
				return err
			}
			more, err := f.parseDirBlock(block, blk, what, fn)
			if err != nil || !more {
				return err
			}
		}
		lblk += n
	}
	return nil
}

// lookup finds name in directory in. Directories larger than a block are
// read once into a name index kept in a bounded cache, so that resolving
// every entry of a large directory does not rescan it each time.
func (f *FS) lookup(in *inode, name string) (uint32, error) {
	if in.size() > f.blockSize && !in.hasFlag(InodeInlineDataFl) {
		if idx, err := f.dirIndex(in); err != nil || idx != nil {
			return idx[name], err
		}
	}
	var found uint32
	err := f.scanDir(in, func(n []byte, ino uint32, _ uint8) bool {
		if string(n) == name {
			found = ino
			return false
		}
		return true
	})
	return found, err
}

type dirent struct {
	name string
	ino  uint32
	ft   uint8
}

// listDir returns the entries of directory in, in directory order.
func (f *FS) listDir(in *inode) ([]dirent, error) {
	var out []dirent
	var tooMany bool
	err := f.scanDir(in, func(n []byte, ino uint32, ft uint8) bool {
		if len(out) >= maxDirEntries {
			tooMany = true
			return false
		}
		out = append(out, dirent{name: string(n), ino: ino, ft: ft})
		return true
	})
	if err == nil && tooMany {
		err = &FormatError{Block: -1, Off: -1, What: fmt.Sprintf("directory inode %d", in.ino), Msg: "too many entries", Err: ErrTooLarge}
	}
	return out, err
}

// dirIndex returns the name index of a large directory, building and
// caching it; nil when the directory is too large to cache.
func (f *FS) dirIndex(in *inode) (map[string]uint32, error) {
	f.mu.Lock()
	idx, ok := f.dirMaps[in.ino]
	f.mu.Unlock()
	if ok {
		return idx, nil
	}
	idx = make(map[string]uint32)
	err := f.scanDir(in, func(n []byte, ino uint32, _ uint8) bool {
		idx[string(n)] = ino
		return len(idx) <= maxIndexedEntries
	})
	if err != nil {
		return nil, err
	}
	if len(idx) > maxIndexedEntries {
		return nil, nil
	}
	f.mu.Lock()
	if f.dirMapEntries+len(idx) > maxIndexedEntries {
		clear(f.dirMaps)
		f.dirMapEntries = 0
	}
	f.dirMaps[in.ino] = idx
	f.dirMapEntries += len(idx)
	f.mu.Unlock()
	return idx, nil
}

// isDxBlock reports whether b, a block of directory in, is an htree index
// block: the root ("." of 12 bytes, then ".." spanning the rest) or an
// interior node (one empty entry spanning the block).
func (f *FS) isDxBlock(in *inode, b []byte) bool {
	if !in.hasFlag(InodeIndexFl) || len(b) < 24 {
		return false
	}
	le := binary.LittleEndian
	bs := len(b)
	if le.Uint32(b) == 0 && f.recLen(le.Uint16(b[4:])) == bs {
		return true
	}
	return f.recLen(le.Uint16(b[4:])) == 12 && b[6] == 1 && b[8] == '.' &&
		f.recLen(le.Uint16(b[16:])) == bs-12 && b[18] == 2 && b[20] == '.' && b[21] == '.'
}

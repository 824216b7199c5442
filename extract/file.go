package extract

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
)

const (
	bufSize   = 256 << 10 // the one copy buffer
	holeBlock = 4 << 10   // all-zero blocks of this size become holes
)

var zeroBlock [holeBlock]byte

// copyRegular writes a regular file, or a hard link to an earlier copy of
// the same inode.
func (c *copier) copyRegular(e entry) error {
	multi := e.st != nil && e.st.Ino != 0 && e.st.Nlink > 1
	if multi {
		if done, err := c.tryHardLink(e); done || err != nil {
			return err
		}
	}
	if err := c.prepare(e); err != nil {
		return err
	}
	// O_EXCL: never open through whatever appeared at this name.
	f, err := e.dir.OpenFile(e.name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, iofs.ErrExist) {
			return fmt.Errorf("%w: %s; use --force to overwrite", ErrExist, c.host(e.rel))
		}
		return fmt.Errorf("extract: %w", err)
	}
	err = c.fill(f, e)
	if err == nil {
		c.applyMeta(e, f)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("extract: %w", cerr)
	}
	if err != nil {
		e.dir.Remove(e.name) // do not leave a truncated file looking complete
		return err
	}
	c.setTimes(e, false)
	c.res.Files++
	if multi {
		if fi, err := e.dir.Lstat(e.name); err == nil {
			c.links[e.st.Ino] = linkRec{rel: e.rel, host: fi}
		}
	}
	return nil
}

// tryHardLink links e to the first copy of its inode when that copy is a
// regular file this copy wrote and it is still there, unchanged in identity.
func (c *copier) tryHardLink(e entry) (bool, error) {
	first, ok := c.links[e.st.Ino]
	if !ok {
		return false, nil
	}
	fi, err := c.root.Lstat(first.rel)
	if err != nil || !fi.Mode().IsRegular() || !os.SameFile(fi, first.host) {
		return false, nil
	}
	if err := c.prepare(e); err != nil {
		return true, err
	}
	if err := c.root.Link(first.rel, e.rel); err != nil {
		c.warn(e.fsPath, "hard link to %s not created (%v); writing a copy", first.rel, err)
		return false, nil
	}
	c.res.HardLinks++
	return true, nil
}

// fill streams the content of e into f through one bounded buffer, leaving
// all-zero blocks as holes, and sets the final size.
func (c *copier) fill(f *os.File, e entry) error {
	size := e.info.Size()
	if size < 0 {
		return fmt.Errorf("extract: %s: negative size %d", e.fsPath, size)
	}
	src, err := c.fsys.Open(e.fsPath)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	defer src.Close()
	if c.buf == nil {
		c.buf = make([]byte, bufSize)
	}
	var off int64
	for off < size {
		if err := c.canceled(); err != nil {
			return err
		}
		n := int64(len(c.buf))
		if size-off < n {
			n = size - off
		}
		m, err := io.ReadFull(src, c.buf[:n])
		if m > 0 {
			if werr := writeSparse(f, c.buf[:m], off); werr != nil {
				return fmt.Errorf("extract: %w", werr)
			}
			off += int64(m)
			c.res.Bytes += int64(m)
			c.progress()
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("extract: %s: read %d of %d bytes: %w", e.fsPath, off, size, io.ErrUnexpectedEOF)
		}
		if err != nil {
			return fmt.Errorf("extract: %s: %w", e.fsPath, err)
		}
	}
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	return nil
}

// writeSparse writes p at off, skipping whole zero blocks (off is a multiple
// of holeBlock, so blocks line up with the file's).
func writeSparse(f *os.File, p []byte, off int64) error {
	for len(p) > 0 {
		// skip zero blocks
		for len(p) > 0 {
			n := min(len(p), holeBlock)
			if !bytes.Equal(p[:n], zeroBlock[:n]) {
				break
			}
			p, off = p[n:], off+int64(n)
		}
		// write the run of non-zero blocks
		run := 0
		for run < len(p) {
			n := min(len(p)-run, holeBlock)
			if bytes.Equal(p[run:run+n], zeroBlock[:n]) {
				break
			}
			run += n
		}
		if run > 0 {
			if _, err := f.WriteAt(p[:run], off); err != nil {
				return err
			}
			p, off = p[run:], off+int64(run)
		}
	}
	return nil
}

package convert

import (
	"fmt"
	"io"
	"os"
	"sync"

	"imgtool/image"
	"imgtool/internal/zero"
)

// rawWriter writes the image as it is. On a regular file, Zero extents
// (and, when sparse, all-zero 4 KiB blocks) become holes; elsewhere they
// are written as zeros.
type rawWriter struct {
	w      io.Writer
	f      *os.File // set when holes can be made
	base   int64    // f's offset where the image starts
	sparse bool
	size   int64
	ext    []image.Extent
	ei     int
	pos    int64
	closed bool
}

func newRaw(w io.Writer, size int64, ext []image.Extent, o Options) (Writer, error) {
	return makeRaw(w, size, ext, false)
}

func newSparse(w io.Writer, size int64, ext []image.Extent, o Options) (Writer, error) {
	return makeRaw(w, size, ext, true)
}

func makeRaw(w io.Writer, size int64, ext []image.Extent, sparse bool) (Writer, error) {
	ext, err := normalize(ext, size)
	if err != nil {
		return nil, err
	}
	r := &rawWriter{w: w, size: size, ext: ext, sparse: sparse}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			if base, err := f.Seek(0, io.SeekCurrent); err == nil {
				r.f, r.base = f, base
			}
		}
	}
	return r, nil
}

// zeroBuf is a read-only buffer of zeros, allocated on first use so that
// starting imgtool costs nothing.
var zeroBuf = sync.OnceValue(func() []byte { return make([]byte, 1<<20) })

// WriteZeros writes n zero bytes to w.
func WriteZeros(w io.Writer, n int64) error {
	z := zeroBuf()
	for n > 0 {
		k := min(n, int64(len(z)))
		if _, err := w.Write(z[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// skip advances n bytes of zeros.
func (r *rawWriter) skip(n int64) error {
	if n <= 0 {
		return nil
	}
	r.pos += n
	if r.f != nil {
		_, err := r.f.Seek(n, io.SeekCurrent)
		return err
	}
	return WriteZeros(r.w, n)
}

func (r *rawWriter) skipZeros() error {
	for r.ei < len(r.ext) && r.ext[r.ei].Kind != image.Data {
		if err := r.skip(r.ext[r.ei].End() - r.pos); err != nil {
			return err
		}
		r.ei++
	}
	return nil
}

func (r *rawWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if err := r.skipZeros(); err != nil {
			return total - len(p), err
		}
		if r.ei >= len(r.ext) {
			return total - len(p), fmt.Errorf("convert: %d bytes more than the Data extents hold", len(p))
		}
		e := r.ext[r.ei]
		n := int(min(int64(len(p)), e.End()-r.pos))
		if err := r.writeData(p[:n]); err != nil {
			return total - len(p), err
		}
		p = p[n:]
		if r.pos == e.End() {
			r.ei++
		}
	}
	return total, nil
}

// writeData writes p at r.pos, leaving all-zero aligned 4 KiB blocks as
// holes when sparse.
func (r *rawWriter) writeData(p []byte) error {
	if !r.sparse || r.f == nil {
		_, err := r.w.Write(p)
		r.pos += int64(len(p))
		return err
	}
	for len(p) > 0 {
		// Up to the next 4 KiB boundary of the image.
		n := int(min(int64(len(p)), 4096-r.pos%4096))
		if n == 4096 && zero.Is(p[:n]) {
			if err := r.skip(int64(n)); err != nil {
				return err
			}
		} else {
			// Take as many non-zero blocks as follow.
			for n < len(p) {
				k := min(len(p)-n, 4096)
				if k == 4096 && zero.Is(p[n:n+k]) {
					break
				}
				n += k
			}
			if _, err := r.f.Write(p[:n]); err != nil {
				return err
			}
			r.pos += int64(n)
		}
		p = p[n:]
	}
	return nil
}

func (r *rawWriter) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.f != nil {
		// Holes at the end: size the file without writing them.
		for r.ei < len(r.ext) && r.ext[r.ei].Kind != image.Data {
			r.pos = r.ext[r.ei].End()
			r.ei++
		}
		if r.pos != r.size {
			return fmt.Errorf("convert: the Data extents were not all written: stopped at byte %d of %d", r.pos, r.size)
		}
		// The file may not start at offset 0 (stdout redirected into a
		// file being appended to): size it from where the image began.
		return r.f.Truncate(r.base + r.size)
	}
	if err := r.skipZeros(); err != nil {
		return err
	}
	if r.pos != r.size {
		return fmt.Errorf("convert: the Data extents were not all written: stopped at byte %d of %d", r.pos, r.size)
	}
	return nil
}

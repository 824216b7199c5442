package main

import (
	"context"
	"errors"
	"io"
	iofs "io/fs"
	"os"

	"imgtool/fs/meta"
	"imgtool/image"
)

// errNoDirect means an in-kernel copy is not possible here; the caller
// copies through memory instead.
var errNoDirect = errors.New("no in-kernel copy")

// directChunk bounds one in-kernel copy, so that Ctrl-C is seen between
// chunks.
const directChunk = 16 << 20

// catDirect copies the whole of f to dst inside the kernel (sendfile) when
// f's content lies in a raw image file that is read as it is (no journal
// replayed over it) and dst is a file the system can copy into. It returns
// errNoDirect, having written nothing, when it cannot; any other error
// comes after a partial write.
func catDirect(ctx context.Context, dst io.Writer, f iofs.File) (int64, error) {
	out, ok := dst.(*os.File)
	if !ok {
		return 0, errNoDirect
	}
	pf, ok := f.(meta.PlacedFile)
	if !ok {
		return 0, errNoDirect
	}
	src, base, ok := imageFile(pf)
	if !ok {
		return 0, errNoDirect
	}
	st, err := f.Stat()
	if err != nil {
		return 0, errNoDirect
	}
	var written int64
	err = pf.Place(0, st.Size(), func(dev, n int64) error {
		for n > 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			k := min(n, directChunk)
			var m int64
			var err error
			if dev < 0 {
				m, err = writeZeros(out, k)
			} else {
				m, err = sendFile(out, src, base+dev, k)
				dev += m
			}
			written += m
			n -= m
			if err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, meta.ErrNotPlaced) && written == 0 {
		return 0, errNoDirect
	}
	return written, err
}

// imageFile finds the raw image file under a placed file's device: the
// device must be a partition section of the image (or the image itself),
// not an overlay such as a replayed journal.
func imageFile(pf meta.PlacedFile) (*os.File, int64, bool) {
	r, size := pf.Device()
	var base int64
	if sr, ok := r.(*io.SectionReader); ok {
		if sr.Size() < size {
			return nil, 0, false
		}
		var n int64
		r, base, n = sr.Outer()
		if n < size {
			return nil, 0, false
		}
	}
	img, ok := r.(image.Image)
	if !ok {
		return nil, 0, false
	}
	fi, ok := img.(interface{ File() *os.File })
	if !ok || fi.File() == nil || base+size > img.Size() {
		return nil, 0, false
	}
	return fi.File(), base, true
}

// zeros is a block of zeros for holes.
var zeros = make([]byte, 64<<10)

func writeZeros(w io.Writer, n int64) (int64, error) {
	var done int64
	for done < n {
		k, err := w.Write(zeros[:min(n-done, int64(len(zeros)))])
		done += int64(k)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

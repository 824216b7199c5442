package disktest

import (
	"bytes"
	"errors"
	"io"

	"imgtool/image"
)

// ReadAll opens b with newImage and reads its extents and up to 8 MiB of
// its content, returning the first error. It panics when opening fails
// with neither an *image.FormatError nor one of the errors in allowed, or
// when want is not nil and the image reads without error but differs from
// it.
func ReadAll[I image.Image](newImage func(io.ReaderAt, int64) (I, error), b, want []byte, allowed ...error) error {
	img, err := newImage(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		var fe *image.FormatError
		if !errors.As(err, &fe) && !isAny(err, allowed) {
			panic("unexpected error type: " + err.Error())
		}
		return err
	}
	if _, err := img.Extents(); err != nil {
		return err
	}
	size := min(img.Size(), 8<<20)
	got := make([]byte, size)
	n, err := img.ReadAt(got, 0)
	if err != nil && err != io.EOF {
		return err
	}
	if want != nil && (int64(n) != size || !bytes.Equal(got, want)) {
		panic("damaged image read without error but content differs")
	}
	return nil
}

// isAny reports whether err matches one of targets.
func isAny(err error, targets []error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

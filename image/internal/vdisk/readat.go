package vdisk

import (
	"fmt"
	"io"
)

// ReadAt is the io.ReaderAt frame the VM-image readers share: it checks
// off, clips p to a disk of size bytes (returning io.EOF when the read
// reaches the end) and fills p run by run with fill, which writes the bytes
// of the disk at pos into dst — or a prefix of them, up to the end of the
// run that pos lies in — and returns how many it wrote (at least one).
// format names the reader in errors.
func ReadAt(p []byte, off, size int64, format string, fill func(pos int64, dst []byte) (int, error)) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", format, off)
	}
	if off >= size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > size-off {
		p = p[:size-off]
		eof = io.EOF
	}
	done := 0
	for done < len(p) {
		n, err := fill(off+int64(done), p[done:])
		if err != nil {
			return done, err
		}
		if n <= 0 {
			return done, fmt.Errorf("%s: no progress reading at offset %d", format, off+int64(done))
		}
		done += n
	}
	return done, eof
}

package image

import (
	"fmt"
	"io"
)

// maxAlign caps the sector size a device may report, and so the buffer used
// for the unaligned head and tail of a read.
const maxAlign = 1 << 16

// checkAlign validates a sector size reported by a device.
func checkAlign(align int64) error {
	if align < 1 || align > maxAlign || align&(align-1) != 0 {
		return fmt.Errorf("device reports an unusable sector size of %d bytes", align)
	}
	return nil
}

// alignedReader serves reads at any offset and length from a device that
// accepts only reads whose offset and length are multiples of align (macOS
// raw disks, Windows disks and volumes). The caller keeps reads within
// [0, size); size is a multiple of align for real devices, and the last
// block is read only up to size otherwise.
type alignedReader struct {
	r     io.ReaderAt
	align int64 // a power of two, at most maxAlign
	size  int64
}

// ReadAt reads the aligned middle of p directly and the unaligned head and
// tail through a one-block buffer.
func (a *alignedReader) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	var block []byte
	for n < len(p) {
		cur := off + int64(n)
		rest := int64(len(p) - n)
		if cur%a.align == 0 && rest >= a.align {
			l := rest - rest%a.align
			m, err := a.r.ReadAt(p[n:int64(n)+l], cur)
			n += m
			if err != nil {
				return n, err
			}
			continue
		}
		start := cur - cur%a.align
		end := min(start+a.align, a.size)
		if end <= cur {
			return n, io.EOF
		}
		if block == nil {
			block = make([]byte, a.align)
		}
		buf := block[:end-start]
		m, err := a.r.ReadAt(buf, start)
		got := 0
		if int64(m) > cur-start {
			got = copy(p[n:], buf[cur-start:m])
		}
		n += got
		if err != nil && n < len(p) {
			return n, err
		}
		if got == 0 {
			return n, io.ErrUnexpectedEOF
		}
	}
	return n, nil
}

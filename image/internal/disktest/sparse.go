package disktest

// Images made by qemu-img are mostly zeros (aligned metadata, padding,
// regions aligned to 1 MiB); the fuzzer is slow on such inputs. The fuzz
// tests therefore take a sparse file: runs of [8-byte offset][2-byte
// length][data], laid over zeros.

import (
	"encoding/binary"
	"io"
)

// SparseFile is a file of zeros with runs of data laid over it, an
// io.ReaderAt.
type SparseFile struct {
	runs []sparseRun
	size int64
}

type sparseRun struct {
	off  int64
	data []byte
}

// DecodeSparse reads the runs of b, [8-byte offset][2-byte length][data]
// each, at most 1000 of them.
func DecodeSparse(b []byte) *SparseFile {
	f := &SparseFile{}
	for len(b) >= 10 && len(f.runs) < 1000 {
		off := int64(binary.LittleEndian.Uint64(b) % (1 << 36))
		n := min(int(binary.LittleEndian.Uint16(b[8:])), len(b)-10)
		f.runs = append(f.runs, sparseRun{off, b[10 : 10+n]})
		f.size = max(f.size, off+int64(n))
		b = b[10+n:]
	}
	return f
}

// EncodeSparse returns the runs that give back file, its non-zero parts,
// and its last byte to keep its length.
func EncodeSparse(file []byte) []byte {
	var out []byte
	for off := 0; off < len(file); {
		if file[off] == 0 {
			off++
			continue
		}
		end := off
		for zeros := 0; end < len(file) && end-off < 65535 && zeros < 32; end++ {
			if file[end] == 0 {
				zeros++
			} else {
				zeros = 0
			}
		}
		out = binary.LittleEndian.AppendUint64(out, uint64(off))
		out = binary.LittleEndian.AppendUint16(out, uint16(end-off))
		out = append(out, file[off:end]...)
		off = end
	}
	// Keep the file length.
	out = binary.LittleEndian.AppendUint64(out, uint64(len(file)-1))
	out = binary.LittleEndian.AppendUint16(out, 1)
	return append(out, file[len(file)-1])
}

// Size returns the length of the file.
func (f *SparseFile) Size() int64 { return f.size }

// ReadAt reads the file at off, zeros where no run lies.
func (f *SparseFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= f.size {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > f.size-off {
		n = int(f.size - off)
	}
	clear(p[:n])
	for _, r := range f.runs {
		lo, hi := max(off, r.off), min(off+int64(n), r.off+int64(len(r.data)))
		if lo < hi {
			copy(p[lo-off:hi-off], r.data[lo-r.off:hi-r.off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

package shrink

import (
	"context"
	"os"

	"imgtool/fs"
	"imgtool/internal/zero"
	"imgtool/part"
)

// zeroFree makes the free space of every filesystem of the image read as
// zeros: holes where the system can punch them, else zeros written over
// what is not zero already. It returns the bytes of free space handled.
// It runs after the shrink is committed: free space holds nothing that a
// rollback would need.
func zeroFree(ctx context.Context, path string, prog Progress) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	tbl, err := part.Read(f, fi.Size())
	if err != nil {
		return 0, err
	}
	var free []span
	for _, p := range tbl.Partitions {
		if p.Extended || p.Truncated {
			continue
		}
		fsys, _, err := fs.Open(p.Section(), p.Size, fs.Options{})
		if err != nil {
			continue
		}
		rs, err := fsys.Allocated()
		if err != nil {
			continue
		}
		pos := int64(0)
		for _, r := range rs {
			if r.Off > pos {
				free = append(free, span{p.Start + pos, r.Off - pos})
			}
			pos = max(pos, r.Off+r.Len)
		}
		if pos < p.Size {
			free = append(free, span{p.Start + pos, p.Size - pos})
		}
	}
	var total int64
	for _, s := range free {
		total += s.n
	}
	prog.Phase("zero", total)
	var done int64
	buf := make([]byte, 1<<20)
	for _, s := range free {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		if punchHole(f, s.off, s.n) != nil {
			if err := zeroRange(f, s.off, s.n, buf); err != nil {
				return done, err
			}
		}
		done += s.n
		prog.Update(s.n)
	}
	return done, f.Sync()
}

// zeroRange writes zeros over the non-zero parts of [off, off+n).
func zeroRange(f *os.File, off, n int64, buf []byte) error {
	for n > 0 {
		b := buf[:min(n, int64(len(buf)))]
		k, err := f.ReadAt(b, off)
		if k < len(b) {
			return err
		}
		if !zero.Is(b) {
			clear(b)
			if _, err := f.WriteAt(b, off); err != nil {
				return err
			}
		}
		off += int64(len(b))
		n -= int64(len(b))
	}
	return nil
}

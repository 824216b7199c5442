package shrink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"imgtool/fs"
	"imgtool/internal/zero"
	"imgtool/part"
)

// copyImage copies src to a new file dst for a shrink that must leave src
// alone: a reflink clone where the filesystem offers one, else a sparse
// copy of the bytes that matter (everything outside the filesystems, and
// inside them what they allocate — or everything, with KeepFreeData),
// skipping blocks of zeros.
func copyImage(ctx context.Context, src, dst string, opts Options, prog Progress) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s already exists; remove it or choose another OUTPUT", dst)
		}
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	size := fi.Size()
	if cloneFile(out, in) == nil {
		return out.Sync()
	}
	if err := out.Truncate(size); err != nil {
		return err
	}
	ranges := []span{{0, size}}
	if !opts.KeepFreeData {
		ranges = copyRanges(in, size)
	}
	var total int64
	for _, r := range ranges {
		total += r.n
	}
	prog.Phase("copy", total)
	buf := make([]byte, 1<<20)
	for _, r := range ranges {
		for off := r.off; off < r.off+r.n; {
			if err := ctx.Err(); err != nil {
				return err
			}
			b := buf[:min(int64(len(buf)), r.off+r.n-off)]
			n, err := in.ReadAt(b, off)
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			b = b[:n]
			if n == 0 {
				break
			}
			if !zero.Is(b) {
				if _, err := out.WriteAt(b, off); err != nil {
					return err
				}
			}
			off += int64(n)
			prog.Update(int64(n))
		}
	}
	return out.Sync()
}

type span struct{ off, n int64 }

// copyRanges lists the bytes of the image worth copying: all but the free
// space of the filesystems imgtool can read.
func copyRanges(r io.ReaderAt, size int64) []span {
	tbl, err := part.Read(r, size)
	if err != nil {
		return []span{{0, size}}
	}
	type hole struct{ off, end int64 }
	var used []span
	var fsAreas []hole
	for _, p := range tbl.Partitions {
		if p.Extended {
			continue
		}
		f, _, err := fs.Open(p.Section(), p.Size, fs.Options{NoVerify: true})
		if err != nil {
			continue
		}
		rs, err := f.Allocated()
		if err != nil {
			continue
		}
		fsAreas = append(fsAreas, hole{p.Start, p.Start + p.Size})
		for _, x := range rs {
			used = append(used, span{p.Start + x.Off, x.Len})
		}
	}
	sort.Slice(fsAreas, func(i, j int) bool { return fsAreas[i].off < fsAreas[j].off })
	pos := int64(0)
	for _, a := range fsAreas {
		if a.off > pos {
			used = append(used, span{pos, a.off - pos})
		}
		pos = max(pos, a.end)
	}
	if pos < size {
		used = append(used, span{pos, size - pos})
	}
	sort.Slice(used, func(i, j int) bool { return used[i].off < used[j].off })
	return used
}

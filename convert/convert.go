package convert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"imgtool/blockmap"
	"imgtool/bmap"
	"imgtool/image"
	"imgtool/image/spool"
)

// Options tunes Convert and the writers.
type Options struct {
	// Level is the compression level (xz and gzip 1–9, zstd 1–22); 0 means
	// the format's default (xz 6, gzip 6, zstd 3).
	Level int
	// NoSeekable writes a plain zstd stream without a seek table.
	NoSeekable bool
	// Compress stores qcow2 clusters compressed (as qemu-img convert -c);
	// the output must then be a file.
	Compress bool
	// Workers bounds the goroutines that compress; 0 means GOMAXPROCS.
	Workers int
	// ChunkSize is the uncompressed size of each xz block, gzip member or
	// zstd frame; 0 picks the format's default (xz 8 MiB or the
	// dictionary size, gzip and zstd 4 MiB).
	ChunkSize int
	// KeepFreeData copies every byte of the image, free filesystem space
	// included (only the image's own holes are skipped).
	KeepFreeData bool
	// Bmap, when set, receives a block map (bmap-tools format 2.0) of the
	// output's Data blocks with a SHA-256 per range.
	Bmap io.Writer
	// Progress, when set, is told how many data bytes have been copied.
	Progress Progress
}

// Progress receives progress reports; Update may be called from another
// goroutine than Phase.
type Progress interface {
	Phase(name string, total int64)
	Update(n int64)
}

// Result summarises a conversion.
type Result struct {
	Format          string
	Size            int64 // bytes of the image
	DataBytes       int64 // bytes copied from the image (the rest is zeros)
	OutputBytes     int64 // bytes written to the output (0 for raw, sparse and VM formats: measure the file)
	FilesystemAware bool  // free filesystem space was skipped
	Warnings        []string
}

// BlockSize is the granularity of the Data extents Convert copies (and of
// the block map).
const BlockSize = 4096

// Plan returns the extents Convert copies: with keepFree, the image's own
// extents; otherwise blockmap's, where free filesystem space is Zero. Data
// extents are rounded out to BlockSize. When the filesystems cannot be
// mapped, Plan falls back to the image's extents and says why in warnings.
func Plan(img image.Image, keepFree bool) (ext []image.Extent, aware bool, warnings []string, err error) {
	if !keepFree {
		m, err := blockmap.Compute(img, blockmap.Options{ZeroHoles: true})
		if err == nil {
			return roundData(m.Extents, img.Size()), true, nil, nil
		}
		warnings = append(warnings, fmt.Sprintf("cannot map the filesystems (%v); copying every byte", err))
	}
	ext, err = img.Extents()
	if err != nil {
		return nil, false, warnings, err
	}
	return roundData(ext, img.Size()), false, warnings, nil
}

// roundData rounds the Data extents out to BlockSize, merges them and
// fills the gaps with Zero extents so that the result covers [0, size).
func roundData(ext []image.Extent, size int64) []image.Extent {
	var data []image.Extent
	for _, e := range ext {
		if e.Kind != image.Data || e.Len <= 0 || e.Off >= size {
			continue
		}
		off := e.Off &^ (BlockSize - 1)
		end := min(size, (e.End()+BlockSize-1)&^(BlockSize-1))
		if n := len(data); n > 0 && data[n-1].End() >= off {
			data[n-1].Len = max(data[n-1].End(), end) - data[n-1].Off
			continue
		}
		data = append(data, image.Extent{Off: off, Len: end - off, Kind: image.Data})
	}
	var out []image.Extent
	var pos int64
	for _, d := range data {
		if d.Off > pos {
			out = append(out, image.Extent{Off: pos, Len: d.Off - pos, Kind: image.Zero})
		}
		out = append(out, d)
		pos = d.End()
	}
	if pos < size {
		out = append(out, image.Extent{Off: pos, Len: size - pos, Kind: image.Zero})
	}
	return out
}

// Convert writes img to w in the named format (see Lookup).
func Convert(ctx context.Context, img image.Image, w io.Writer, format string, o Options) (*Result, error) {
	f, ok := Lookup(format)
	if !ok {
		return nil, fmt.Errorf("convert: unknown format %q", format)
	}
	ext, aware, warnings, err := Plan(img, o.KeepFreeData)
	if err != nil {
		return nil, err
	}
	res := &Result{Format: f.Name, Size: img.Size(), FilesystemAware: aware, Warnings: warnings}
	if !f.counted {
		// Writers that seek (holes, qcow2 with compression) need the file
		// itself; the caller measures it.
		return res, Copy(ctx, img, ext, w, f, o, res)
	}
	return res, Copy(ctx, img, ext, &countWriter{w: w, n: &res.OutputBytes}, f, o, res)
}

// Copy writes the Data extents of ext (which must cover the image in
// order) through a Writer of format f; it fills res.DataBytes.
func Copy(ctx context.Context, img image.Image, ext []image.Extent, w io.Writer, f Format, o Options, res *Result) error {
	size := img.Size()
	fw, err := f.New(w, size, ext, o)
	if err != nil {
		return err
	}
	var total int64
	for _, e := range ext {
		if e.Kind == image.Data {
			total += e.Len
		}
	}
	if o.Progress != nil {
		o.Progress.Phase("convert", total)
	}
	var bm *bmap.Map
	if o.Bmap != nil {
		bm = &bmap.Map{Version: "2.0", ImageSize: size, BlockSize: BlockSize,
			BlocksCount: (size + BlockSize - 1) / BlockSize, ChecksumType: "sha256"}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan []byte, 3)
	free := make(chan []byte, 5)
	rerr := make(chan error, 1)
	go func() {
		defer close(chunks)
		rerr <- produce(ctx, img, ext, chunks, free)
	}()

	var h hash.Hash
	ei := -1
	var left int64 // bytes left in extent ei
	var werr error
	for c := range chunks {
		if werr == nil {
			_, werr = fw.Write(c)
		}
		if werr == nil && bm != nil {
			for p := c; len(p) > 0; {
				for left == 0 {
					ei++
					for ext[ei].Kind != image.Data {
						ei++
					}
					left = ext[ei].Len
					h = sha256.New()
				}
				n := int(min(int64(len(p)), left))
				h.Write(p[:n])
				p, left = p[n:], left-int64(n)
				if left == 0 {
					e := ext[ei]
					bm.Ranges = append(bm.Ranges, bmap.Range{First: e.Off / BlockSize, Last: (e.End() - 1) / BlockSize,
						Checksum: hex.EncodeToString(h.Sum(nil))})
				}
			}
		}
		res.DataBytes += int64(len(c))
		if o.Progress != nil {
			o.Progress.Update(int64(len(c)))
		}
		if werr != nil {
			cancel()
		}
		select {
		case free <- c:
		default:
		}
	}
	if err := <-rerr; err != nil && werr == nil {
		werr = err
	}
	if cerr := fw.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return werr
	}
	if res.DataBytes != total {
		return fmt.Errorf("convert: copied %d of %d data bytes", res.DataBytes, total)
	}
	if bm != nil {
		return bmap.Write(o.Bmap, bm)
	}
	return nil
}

// readChunk is the size of each read from the image.
const readChunk = 4 << 20

// produce reads the Data extents in order into chunks: from the image's
// Stream when it has one (discarding the bytes of Zero extents), else with
// ReadAt.
func produce(ctx context.Context, img image.Image, ext []image.Extent, out chan<- []byte, free chan []byte) error {
	get := func() []byte {
		select {
		case b := <-free:
			return b[:cap(b)]
		default:
			return make([]byte, readChunk)
		}
	}
	send := func(b []byte) error {
		select {
		case out <- b:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s, ok := image.As[spool.Streamer](img); ok {
		rc, err := s.Stream()
		if err != nil {
			return err
		}
		defer rc.Close()
		skip := make([]byte, 1<<20)
		for _, e := range ext {
			for off := e.Off; off < e.End(); {
				if err := ctx.Err(); err != nil {
					return err
				}
				if e.Kind != image.Data {
					n := int(min(int64(len(skip)), e.End()-off))
					if _, err := io.ReadFull(rc, skip[:n]); err != nil {
						return streamErr(err, off)
					}
					off += int64(n)
					continue
				}
				b := get()
				n := int(min(int64(len(b)), e.End()-off))
				if _, err := io.ReadFull(rc, b[:n]); err != nil {
					return streamErr(err, off)
				}
				if err := send(b[:n]); err != nil {
					return err
				}
				off += int64(n)
			}
		}
		return nil
	}
	for _, e := range ext {
		if e.Kind != image.Data {
			continue
		}
		for off := e.Off; off < e.End(); {
			b := get()
			n := int(min(int64(len(b)), e.End()-off))
			if m, err := img.ReadAt(b[:n], off); err != nil && !(errors.Is(err, io.EOF) && m == n) {
				return fmt.Errorf("reading the image at byte %d: %w", off, err)
			}
			if err := send(b[:n]); err != nil {
				return err
			}
			off += int64(n)
		}
	}
	return nil
}

func streamErr(err error, off int64) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("reading the image: it ends at byte %d, before its stated size: %w", off, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("reading the image near byte %d: %w", off, err)
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n *int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}

package convert

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"

	"imgtool/image"
	"imgtool/image/sizemark"
	"imgtool/internal/zero"
)

// zstdChunk is the uncompressed size of each frame.
const zstdChunk = 4 << 20

// Seekable format constants.
const (
	skippableSeekMagic = 0x184D2A5E
	seekableMagic      = 0x8F92EAB1
	seekFlagChecksum   = 0x80
)

type zstdCodec struct {
	enc      *zstd.Encoder
	seekable bool
	entries  []byte // seek table entries
	frames   uint32
	// outs holds output buffers written already, for reuse: without it
	// each frame would allocate (and grow) its own.
	outs chan []byte
}

func newZstd(w io.Writer, size int64, ext []image.Extent, o Options) (Writer, error) {
	level := o.Level
	if level == 0 {
		level = 3
	}
	if level < 1 || level > 22 {
		return nil, fmt.Errorf("convert: zstd level %d is out of range 1–22", level)
	}
	chunk := o.ChunkSize
	if chunk == 0 {
		chunk = zstdChunk
	}
	if chunk >= 1<<31 {
		return nil, fmt.Errorf("convert: zstd frames must be under 2 GiB")
	}
	workers := o.Workers
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		zstd.WithEncoderCRC(true),
		zstd.WithEncoderConcurrency(max(1, workers, numWorkers())),
		zstd.WithWindowSize(max(zstd.MinWindowSize, min(chunk, zstd.MaxWindowSize))),
		zstd.WithZeroFrames(true))
	if err != nil {
		return nil, err
	}
	c := &zstdCodec{enc: enc, seekable: !o.NoSeekable, outs: make(chan []byte, max(1, workers, numWorkers())+4)}
	// A skippable frame first declares the image's size, so that a file cut
	// between two frames (or without its seek table) is recognised as
	// damaged (package sizemark). The seek table lists it as a frame that
	// decompresses to nothing.
	mark := sizemark.ZstdFrame(size)
	if _, err := w.Write(mark); err != nil {
		enc.Close()
		return nil, err
	}
	c.entries = binary.LittleEndian.AppendUint32(c.entries, uint32(len(mark)))
	c.entries = binary.LittleEndian.AppendUint32(c.entries, 0)
	c.entries = binary.LittleEndian.AppendUint32(c.entries, uint32(xxhash.Sum64(nil)))
	c.frames++
	return newChunked(w, size, ext, c, chunk, workers, int64(3*chunk+8<<20), 400<<20)
}

func (c *zstdCodec) encode(in []byte) (encoded, error) {
	if zero.Is(in) {
		// Free space: a frame of RLE blocks, which readers fill (or skip)
		// without decoding, where the encoder would write compressed
		// blocks of long matches.
		out := zeroFrame(len(in))
		return encoded{data: out, n: len(in), sum: out[len(out)-4:], shared: true}, nil
	}
	var buf []byte
	select {
	case buf = <-c.outs:
	default:
	}
	if need := c.enc.MaxEncodedSize(len(in)); cap(buf) < need {
		buf = make([]byte, 0, need)
	}
	out := c.enc.EncodeAll(in, buf[:0])
	// The frame ends with the checksum of its content (WithEncoderCRC),
	// the value the seek table records too.
	return encoded{data: out, n: len(in), sum: out[len(out)-4:]}, nil
}

// zeroFrame returns a zstd frame of n zero bytes made of RLE blocks
// (RFC 8878 section 3.1.1.2): a single-segment header with the content
// size, one four-byte block per 128 KiB and the content checksum.
func zeroFrame(n int) []byte {
	b := binary.LittleEndian.AppendUint32(nil, zstdFrameMagic)
	const single, checksum = 1 << 5, 1 << 2
	switch {
	case n < 256:
		b = append(b, single|checksum, byte(n))
	case n < 65536+256:
		b = append(b, 1<<6|single|checksum)
		b = binary.LittleEndian.AppendUint16(b, uint16(n-256))
	case int64(n) < 1<<32:
		b = append(b, 2<<6|single|checksum)
		b = binary.LittleEndian.AppendUint32(b, uint32(n))
	default:
		b = append(b, 3<<6|single|checksum)
		b = binary.LittleEndian.AppendUint64(b, uint64(n))
	}
	const blockMax = 128 << 10
	for left := n; ; {
		k := min(left, blockMax)
		left -= k
		h := uint32(k)<<3 | 1<<1 // RLE block
		if left == 0 {
			h |= 1 // last
		}
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 0)
		if left == 0 {
			break
		}
	}
	h := xxhash.New()
	var zeros [64 << 10]byte
	for left := n; left > 0; left -= min(left, len(zeros)) {
		h.Write(zeros[:min(left, len(zeros))])
	}
	return binary.LittleEndian.AppendUint32(b, uint32(h.Sum64()))
}

const zstdFrameMagic = 0xFD2FB528

func (c *zstdCodec) emit(w io.Writer, e encoded) error {
	if _, err := w.Write(e.data); err != nil {
		return err
	}
	if !e.shared {
		defer func() {
			select {
			case c.outs <- e.data[:0]:
			default:
			}
		}()
	}
	if len(e.data) >= 1<<32 {
		return fmt.Errorf("convert: zstd frame too large for the seek table")
	}
	c.entries = binary.LittleEndian.AppendUint32(c.entries, uint32(len(e.data)))
	c.entries = binary.LittleEndian.AppendUint32(c.entries, uint32(e.n))
	c.entries = append(c.entries, e.sum...)
	c.frames++
	return nil
}

// finish writes the seek table: a skippable frame holding one entry per
// frame (compressed size, decompressed size, checksum) and the footer
// (frame count, descriptor, magic).
func (c *zstdCodec) finish(w io.Writer) error {
	c.enc.Close()
	if !c.seekable {
		return nil
	}
	body := len(c.entries) + 9
	t := binary.LittleEndian.AppendUint32(nil, skippableSeekMagic)
	t = binary.LittleEndian.AppendUint32(t, uint32(body))
	t = append(t, c.entries...)
	t = binary.LittleEndian.AppendUint32(t, c.frames)
	t = append(t, seekFlagChecksum)
	t = binary.LittleEndian.AppendUint32(t, seekableMagic)
	_, err := w.Write(t)
	return err
}

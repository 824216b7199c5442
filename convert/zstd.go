package convert

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"

	"imgtool/image"
	"imgtool/image/sizemark"
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
	c := &zstdCodec{enc: enc, seekable: !o.NoSeekable}
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
	out := c.enc.EncodeAll(in, make([]byte, 0, len(in)/2+1024))
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], uint32(xxhash.Sum64(in)))
	return encoded{data: out, n: len(in), sum: sum[:]}, nil
}

func (c *zstdCodec) emit(w io.Writer, e encoded) error {
	if _, err := w.Write(e.data); err != nil {
		return err
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

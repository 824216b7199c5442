package qcow2

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"
)

// decompressor inflates one compressed cluster.
type decompressor interface {
	// decompress fills out (one cluster) from the compressed bytes in.
	decompress(out, in []byte) error
}

func newDecompressor(t CompressionType) decompressor {
	if t == CompressionZstd {
		return zstdDec
	}
	return deflateDec
}

// Decoders are pooled for the whole package: images come and go (one per
// probe), decoders are expensive to set up.
var (
	deflateDec = &deflateDecompressor{}
	zstdDec    = &zstdDecompressor{window: 2 * (1 << MaxClusterBits)}
)

// deflateDecompressor reads raw deflate streams (qcow2's "zlib" type).
type deflateDecompressor struct{ pool sync.Pool }

func (z *deflateDecompressor) decompress(out, in []byte) error {
	br := bytes.NewReader(in)
	fr, _ := z.pool.Get().(io.ReadCloser)
	if fr == nil {
		fr = flate.NewReader(br)
	} else if err := fr.(flate.Resetter).Reset(br, nil); err != nil {
		return err
	}
	defer z.pool.Put(fr)
	if _, err := io.ReadFull(fr, out); err != nil {
		return fmt.Errorf("deflate: %w", noEOF(err))
	}
	return nil
}

// zstdDecompressor reads zstd frames.
type zstdDecompressor struct {
	window uint64
	pool   sync.Pool
}

func (z *zstdDecompressor) decompress(out, in []byte) error {
	br := bytes.NewReader(in)
	dec, _ := z.pool.Get().(*zstd.Decoder)
	if dec == nil {
		var err error
		dec, err = zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(z.window), zstd.WithDecoderMaxMemory(z.window*2))
		if err != nil {
			return err
		}
	} else if err := dec.Reset(br); err != nil {
		return err
	}
	defer z.pool.Put(dec)
	if _, err := io.ReadFull(dec, out); err != nil {
		return fmt.Errorf("zstd: %w", noEOF(err))
	}
	return nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("compressed data ends before the cluster is complete")
	}
	return err
}

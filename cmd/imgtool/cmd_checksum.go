package main

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/spf13/cobra"

	"imgtool/image"
	"imgtool/image/spool"
)

type checksumOptions struct {
	algo   string
	sha256 string
	json   bool
}

func newChecksumCmd(g *globalOptions) *cobra.Command {
	var opts checksumOptions
	cmd := &cobra.Command{
		Use:   "checksum IMAGE",
		Short: "Print the checksum of the disk inside an image (after decompression)",
		Long: `Print the checksum of the disk an image holds: the bytes a card gets when the image
is flashed, whatever the container (.img, .img.xz, .img.zst, qcow2, …). Two images
with the same disk have the same checksum, however they are compressed.

The line has the format of sha256sum (checksum, two spaces, name). To check the file
as it was downloaded (the compressed file), pass the published checksum with --sha256.
blake3 is not available: no pure-Go module for it is a dependency of imgtool.`,
		Example: `  imgtool checksum raspios.img.xz
  imgtool checksum --algo sha512 backup.qcow2
  imgtool checksum --sha256 raspios.img.xz.sha256 raspios.img.xz`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runChecksum(cmd.Context(), opts, args, g)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.algo, "algo", "sha256", "checksum `ALGORITHM`: sha256, sha512, sha1 or md5")
	f.StringVar(&opts.sha256, "sha256", "", sha256Flag)
	f.BoolVar(&opts.json, "json", false, "print a JSON summary")
	return cmd
}

type checksumSummary struct {
	Image    string  `json:"image"`
	Format   string  `json:"format"`
	Size     int64   `json:"size"`
	Algo     string  `json:"algo"`
	Checksum string  `json:"checksum"`
	Seconds  float64 `json:"seconds"`
}

func newHash(algo string) (hash.Hash, error) {
	switch algo {
	case "sha256":
		return sha256.New(), nil
	case "sha512":
		return sha512.New(), nil
	case "sha1":
		return sha1.New(), nil
	case "md5":
		return md5.New(), nil
	case "blake3":
		return nil, usagef("--algo blake3 is not available (imgtool has no BLAKE3 implementation); use sha256, sha512, sha1 or md5")
	}
	return nil, usagef("--algo %s is not known; use sha256, sha512, sha1 or md5", algo)
}

func runChecksum(ctx context.Context, opts checksumOptions, args []string, g *globalOptions) error {
	h, err := newHash(opts.algo)
	if err != nil {
		return err
	}
	path := args[0]
	if err := verifyInputChecksum(path, opts.sha256); err != nil {
		return err
	}
	img, err := openImage(path)
	if err != nil {
		return err
	}
	defer img.Close()
	var bar *progressBar
	if isTerminal(g.stderr) && !opts.json {
		bar = newProgressBar(g.stderr)
		bar.Phase("checksum", img.Size())
	}
	start := time.Now()
	err = hashImage(ctx, img, h, bar)
	if bar != nil {
		bar.Done()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	sum := checksumSummary{Image: path, Format: img.Format(), Size: img.Size(), Algo: opts.algo,
		Checksum: hex.EncodeToString(h.Sum(nil)), Seconds: time.Since(start).Seconds()}
	if opts.json {
		return writeJSON(g.stdout, sum)
	}
	fmt.Fprintf(g.stdout, "%s  %s\n", sum.Checksum, path)
	return nil
}

// hashImage feeds the whole disk of img to h: from its Stream when it has
// one, else with large reads, one read ahead of the hashing.
func hashImage(ctx context.Context, img image.Image, h hash.Hash, bar *progressBar) error {
	var r io.Reader
	if s, ok := image.As[spool.Streamer](img); ok {
		rc, err := s.Stream()
		if err != nil {
			return err
		}
		defer rc.Close()
		r = io.LimitReader(rc, img.Size())
	} else {
		r = io.NewSectionReader(img, 0, img.Size())
	}
	const chunk = 4 << 20
	bufs := make(chan []byte, 2)
	full := make(chan []byte, 2)
	bufs <- make([]byte, chunk)
	bufs <- make([]byte, chunk)
	rerr := make(chan error, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(full)
		for {
			var b []byte
			select {
			case b = <-bufs:
			case <-ctx.Done():
				rerr <- ctx.Err()
				return
			}
			n, err := io.ReadFull(r, b)
			if n > 0 {
				full <- b[:n]
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				rerr <- nil
				return
			}
			if err != nil {
				rerr <- err
				return
			}
		}
	}()
	var total int64
	for b := range full {
		h.Write(b)
		total += int64(len(b))
		if bar != nil {
			bar.Update(int64(len(b)))
		}
		bufs <- b[:cap(b)]
	}
	if err := <-rerr; err != nil {
		return err
	}
	if total != img.Size() {
		return fmt.Errorf("the image ends at byte %d, before its stated size %d", total, img.Size())
	}
	return nil
}

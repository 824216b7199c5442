package spool_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"imgtool/image"
	"imgtool/image/bzip2"
	"imgtool/image/gzip"
	"imgtool/image/spool"
	"imgtool/image/spool/spooltest"
	"imgtool/image/xz"
	"imgtool/image/zip"
	"imgtool/image/zstd"
)

// TestOpen compresses one image with each tool and opens every result with
// image.Open offering all formats: each must be recognised by its own
// prober only, and read back the original bytes.
func TestOpen(t *testing.T) {
	data := spooltest.Content(1*spooltest.MiB+512, 1)
	formats := image.WithFormats(xz.Format, gzip.Format, zstd.Format, bzip2.Format, zip.Format)
	for _, tc := range []struct {
		format, out, tool, cmd string
	}{
		{"xz", "disk.img.xz", "xz", "xz -0 -T0 --block-size=256KiB -k disk.img"},
		{"gzip", "disk.img.gz", "gzip", "gzip -1 -k disk.img"},
		{"zstd", "disk.img.zst", "zstd", "zstd -q -1 disk.img"},
		{"bzip2", "disk.img.bz2", "bzip2", "bzip2 -1 -k disk.img"},
		{"zip", "disk.zip", "zip", "zip -q -1 disk.zip disk.img"},
		{"raw", "disk.img", "true", "true"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			b := spooltest.Compress(t, data, tc.out, []string{tc.tool}, tc.cmd)
			path := filepath.Join(t.TempDir(), tc.out)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			img, err := image.Open(path, formats)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if img.Format() != tc.format {
				t.Fatalf("Format = %q, want %q", img.Format(), tc.format)
			}
			buf := make([]byte, img.Size())
			if n, err := img.ReadAt(buf, 0); (err != nil && err != io.EOF) || n != len(data) || !bytes.Equal(buf, data) {
				t.Fatalf("ReadAt: %d, %v; content differs", n, err)
			}
			var inner image.Image = img
			if u, ok := img.(interface{ Unwrap() image.Image }); ok {
				inner = u.Unwrap()
			}
			if _, ok := inner.(spool.Streamer); !ok && tc.format != "raw" {
				// image.Open's wrapper hides optional interfaces; check the
				// prober's own image.
				p, err := probeAs(tc.format, b)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				inner = p
			}
			if s, ok := inner.(spool.Streamer); ok {
				rc, err := s.Stream()
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("Stream: %v", err)
				}
			} else if tc.format != "raw" {
				t.Errorf("%s image does not implement spool.Streamer", tc.format)
			}
		})
	}
}

func probeAs(format string, b []byte) (image.Image, error) {
	for _, f := range []image.Format{xz.Format, gzip.Format, zstd.Format, bzip2.Format, zip.Format} {
		if f.Name == format {
			return f.Probe(bytes.NewReader(b), int64(len(b)))
		}
	}
	return nil, os.ErrNotExist
}

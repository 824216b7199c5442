package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Rows for flash and read. They need root and loop devices: setup attaches
// a loop device to a sparse file of the image's size under the bench
// folder (or to the image itself, read-only, for read), teardown detaches
// it.

// loops are the loop devices made by setup, by row name.
var loops = map[string]string{}

// attachLoop attaches a loop device to file (read-only when ro).
func attachLoop(file string, ro bool) (string, error) {
	args := []string{"-f", "--show"}
	if ro {
		args = append(args, "-r")
	}
	out, err := exec.Command("losetup", append(args, file)...).Output()
	if err != nil {
		return "", fmt.Errorf("losetup (needs root): %w", err)
	}
	dev := strings.TrimSpace(string(out))
	if !strings.HasPrefix(dev, "/dev/loop") {
		return "", fmt.Errorf("losetup gave %q", dev)
	}
	return dev, nil
}

// targetLoop returns a setup that attaches a loop device to a new sparse
// file as large as the image.
func targetLoop(name string) func(e *env) error {
	return func(e *env) error {
		fi, err := os.Stat(e.img)
		if err != nil {
			return err
		}
		file := filepath.Join(e.dir, "flash-target.img")
		os.Remove(file)
		f, err := os.Create(file)
		if err != nil {
			return err
		}
		err = f.Truncate(fi.Size())
		f.Close()
		if err != nil {
			return err
		}
		dev, err := attachLoop(file, false)
		loops[name] = dev
		return err
	}
}

// bmapSetup makes the image's .bmap once, then the target loop.
func bmapSetup(name string) func(e *env) error {
	return func(e *env) error {
		bm := e.img + ".bmap"
		if _, err := os.Stat(bm); err != nil {
			if out, err := exec.Command("bmaptool", "create", "-o", bm, e.img).CombinedOutput(); err != nil {
				os.Remove(bm)
				return fmt.Errorf("bmaptool create: %v: %s", err, firstLine(string(out)))
			}
		}
		return targetLoop(name)(e)
	}
}

func detach(name string) func(e *env) {
	return func(e *env) {
		if dev := loops[name]; dev != "" {
			exec.Command("losetup", "-d", dev).Run()
			delete(loops, name)
		}
		os.Remove(filepath.Join(e.dir, "flash-target.img"))
		os.Remove(filepath.Join(e.dir, "read-ours.img"))
		os.Remove(filepath.Join(e.dir, "read-dd.img"))
		os.Remove(filepath.Join(e.dir, "read-ours.img.zst"))
		os.Remove(filepath.Join(e.dir, "read-dd.img.zst"))
	}
}

const (
	rowFlashDD      = "flash vs dd bs=4M oflag=direct conv=fsync"
	rowFlashBmap    = "flash (filesystem map) vs bmaptool copy"
	rowFlashBmapArg = "flash --bmap --no-verify vs bmaptool copy"
	rowRead         = "read (to .img) vs dd bs=4M conv=fsync"
	rowFlashFull    = "flash --full --no-verify vs dd bs=4M oflag=direct conv=fsync"
	rowFlashZst     = "flash from .img.zst --full --no-verify vs zstd -dc | dd"
	rowReadZst      = "read (to .img.zst) vs dd | zstd -T0"
	rowVerify       = "flash --full (write + verify) vs dd + cmp of the device"
	rowFlashOurZst  = "flash (filesystem map) from imgtool's .img.zst vs from the .img"
	rowFlashOurZstF = "flash --full --no-verify from imgtool's .img.zst vs from the .img"
	rowFlashXz      = "flash from imgtool's .img.xz --full --no-verify vs xz -dc | dd"
)

// ourCompressed returns a setup that makes the image's .zst or .xz with
// imgtool convert once (seekable or indexed: frames or blocks that decode
// independently), then the target loop.
func ourCompressed(name, ext string) func(e *env) error {
	return func(e *env) error {
		out := e.img + ".imgtool" + ext
		if _, err := os.Stat(out); err != nil {
			if b, err := exec.Command(e.imgtool, "convert", e.img, out).CombinedOutput(); err != nil {
				os.Remove(out)
				return fmt.Errorf("imgtool convert: %v: %s", err, firstLine(string(b)))
			}
		}
		return targetLoop(name)(e)
	}
}

func init() {
	rows = append(rows,
		row{
			// The same bytes on both sides: every byte, no read-back.
			name:     rowFlashFull,
			setup:    targetLoop(rowFlashFull),
			teardown: detach(rowFlashFull),
			ours: func(e *env) []string {
				return []string{e.imgtool, "flash", "--yes", "--full", "--no-verify", e.img, loops[rowFlashFull]}
			},
			peer: func(e *env) [][]string {
				return [][]string{{"dd", "if=" + e.img, "of=" + loops[rowFlashFull], "bs=4M", "oflag=direct", "conv=fsync", "status=none"}}
			},
		},
		row{
			// Decoding while writing, against the C decoder piped into dd.
			name: rowFlashZst,
			setup: func(e *env) error {
				zst := e.img + ".zst"
				if _, err := os.Stat(zst); err != nil {
					if out, err := exec.Command("zstd", "-q", "-T0", "-3", e.img, "-o", zst).CombinedOutput(); err != nil {
						return fmt.Errorf("zstd: %v: %s", err, firstLine(string(out)))
					}
				}
				return targetLoop(rowFlashZst)(e)
			},
			teardown: detach(rowFlashZst),
			ours: func(e *env) []string {
				return []string{e.imgtool, "flash", "--yes", "--full", "--no-verify", e.img + ".zst", loops[rowFlashZst]}
			},
			peer: func(e *env) [][]string {
				return [][]string{shell("zstd -dcq %q | dd of=%q bs=4M oflag=direct iflag=fullblock conv=fsync status=none", e.img+".zst", loops[rowFlashZst])}
			},
		},
		row{
			// The common case: imgtool's own compressed image, written with
			// the filesystem map and verified, against the same from the
			// raw image. Frames of free space are not decoded.
			name:     rowFlashOurZst,
			setup:    ourCompressed(rowFlashOurZst, ".zst"),
			teardown: detach(rowFlashOurZst),
			ours: func(e *env) []string {
				return []string{e.imgtool, "flash", "--yes", e.img + ".imgtool.zst", loops[rowFlashOurZst]}
			},
			peer: func(e *env) [][]string {
				return [][]string{{e.imgtool, "flash", "--yes", e.img, loops[rowFlashOurZst]}}
			},
		},
		row{
			// Every byte of imgtool's .zst (frames decoded on every core)
			// against every byte of the raw image.
			name:     rowFlashOurZstF,
			setup:    ourCompressed(rowFlashOurZstF, ".zst"),
			teardown: detach(rowFlashOurZstF),
			ours: func(e *env) []string {
				return []string{e.imgtool, "flash", "--yes", "--full", "--no-verify", e.img + ".imgtool.zst", loops[rowFlashOurZstF]}
			},
			peer: func(e *env) [][]string {
				return [][]string{{e.imgtool, "flash", "--yes", "--full", "--no-verify", e.img, loops[rowFlashOurZstF]}}
			},
		},
		row{
			// imgtool's .xz decoded while writing, against the C decoder
			// piped into dd (for speed and peak memory).
			name:     rowFlashXz,
			setup:    ourCompressed(rowFlashXz, ".xz"),
			teardown: detach(rowFlashXz),
			ours: func(e *env) []string {
				return []string{e.imgtool, "flash", "--yes", "--full", "--no-verify", e.img + ".imgtool.xz", loops[rowFlashXz]}
			},
			peer: func(e *env) [][]string {
				return [][]string{shell("xz -dcq -T0 %q | dd of=%q bs=4M oflag=direct iflag=fullblock conv=fsync status=none", e.img+".imgtool.xz", loops[rowFlashXz])}
			},
		},
		row{
			// Ours writes only what the filesystems use, then reads it back
			// to verify; dd writes every byte and does not verify.
			name:     rowFlashDD,
			setup:    targetLoop(rowFlashDD),
			teardown: detach(rowFlashDD),
			ours: func(e *env) []string {
				return []string{e.imgtool, "flash", "--yes", e.img, loops[rowFlashDD]}
			},
			peer: func(e *env) [][]string {
				return [][]string{{"dd", "if=" + e.img, "of=" + loops[rowFlashDD], "bs=4M", "oflag=direct", "conv=fsync", "status=none"}}
			},
		},
		row{
			// Both write a block map; ours also reads the device back.
			name:     rowFlashBmap,
			setup:    bmapSetup(rowFlashBmap),
			teardown: detach(rowFlashBmap),
			ours: func(e *env) []string {
				return []string{e.imgtool, "flash", "--yes", e.img, loops[rowFlashBmap]}
			},
			peer: func(e *env) [][]string {
				return [][]string{{"bmaptool", "-q", "copy", "--bmap", e.img + ".bmap", e.img, loops[rowFlashBmap]}}
			},
		},
		row{
			// The same .bmap, checksums checked while writing, no read-back:
			// the same job as bmaptool copy.
			name:     rowFlashBmapArg,
			setup:    bmapSetup(rowFlashBmapArg),
			teardown: detach(rowFlashBmapArg),
			ours: func(e *env) []string {
				return []string{e.imgtool, "flash", "--yes", "--no-verify", "--bmap", e.img + ".bmap", e.img, loops[rowFlashBmapArg]}
			},
			peer: func(e *env) [][]string {
				return [][]string{{"bmaptool", "-q", "copy", "--bmap", e.img + ".bmap", e.img, loops[rowFlashBmapArg]}}
			},
		},
		row{
			// A compressed backup in one pass against dd piped into zstd.
			name: rowReadZst,
			setup: func(e *env) error {
				dev, err := attachLoop(e.img, true)
				loops[rowReadZst] = dev
				return err
			},
			teardown: detach(rowReadZst),
			ours: func(e *env) []string {
				return []string{e.imgtool, "read", "--force", loops[rowReadZst], filepath.Join(e.dir, "read-ours.img.zst")}
			},
			peer: func(e *env) [][]string {
				return [][]string{shell("dd if=%q bs=4M status=none | zstd -T0 -3 -q -c > %q", loops[rowReadZst], filepath.Join(e.dir, "read-dd.img.zst"))}
			},
			size: func(e *env) (int64, int64) {
				return fileSize(filepath.Join(e.dir, "read-ours.img.zst")), fileSize(filepath.Join(e.dir, "read-dd.img.zst"))
			},
		},
		row{
			// Writing and checking every byte: ours reads the device back
			// bypassing the cache; the peer is dd followed by cmp of the
			// device against the image.
			name:     rowVerify,
			setup:    targetLoop(rowVerify),
			teardown: detach(rowVerify),
			ours: func(e *env) []string {
				return []string{e.imgtool, "flash", "--yes", "--full", e.img, loops[rowVerify]}
			},
			peer: func(e *env) [][]string {
				return [][]string{
					{"dd", "if=" + e.img, "of=" + loops[rowVerify], "bs=4M", "oflag=direct", "conv=fsync", "status=none"},
					shell("dd if=%q bs=4M iflag=direct status=none | cmp - %q", loops[rowVerify], e.img),
				}
			},
		},
		row{
			// A backup of a disk holding the image: ours reads up to the end
			// of the last partition and skips free space; dd reads it all.
			name: rowRead,
			setup: func(e *env) error {
				dev, err := attachLoop(e.img, true)
				loops[rowRead] = dev
				return err
			},
			teardown: detach(rowRead),
			ours: func(e *env) []string {
				return []string{e.imgtool, "read", "--force", loops[rowRead], filepath.Join(e.dir, "read-ours.img")}
			},
			peer: func(e *env) [][]string {
				return [][]string{{"dd", "if=" + loops[rowRead], "of=" + filepath.Join(e.dir, "read-dd.img"), "bs=4M", "conv=fsync", "status=none"}}
			},
		},
	)
}

// fileSize returns the size of a file, 0 when it is missing.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

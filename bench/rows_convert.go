package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Rows for convert: compressing the image against the peer compressors
// (output sizes are reported too), decompressing what each wrote, the
// block map against bmaptool create, and reading a multi-block .img.xz at
// random against decompressing it first.

func init() {
	rows = append(rows,
		compressRow("convert → .img.xz vs xz -T0 -6", ".img.xz", []string{"xz", "-T0", "-6", "-c"}),
		compressRow("convert → .img.zst vs zstd -T0 -3", ".img.zst", []string{"zstd", "-T0", "-3", "-c", "-q"}),
		compressRow("convert → .img.gz vs pigz -6", ".img.gz", []string{"pigz", "-6", "-c"}),
		row{
			name: "convert -c → .qcow2 vs qemu-img convert -c",
			ours: func(e *env) []string {
				return []string{e.imgtool, "convert", "--force", "-c", e.img, e.out("ours.qcow2")}
			},
			peer: func(e *env) [][]string {
				return [][]string{{"qemu-img", "convert", "-c", "-O", "qcow2", e.img, e.out("peer.qcow2")}}
			},
			size: sizes("ours.qcow2", "peer.qcow2"),
		},
		row{
			name: "convert --bmap vs bmaptool create",
			ours: func(e *env) []string {
				return []string{e.imgtool, "convert", "--force", "--format", "raw", "--bmap=" + e.out("ours.bmap"), e.img, os.DevNull}
			},
			peer: func(e *env) [][]string {
				return [][]string{{"bmaptool", "create", "-o", e.out("peer.bmap"), e.img}}
			},
			size: sizes("ours.bmap", "peer.bmap"),
		},
		decompressRow("convert .img.xz → .img vs xz -dc", ".img.xz", "xz -dc"),
		decompressRow("convert .img.zst → .img vs zstd -dc", ".img.zst", "zstd -dcq"),
		decompressRow("convert .img.gz → .img vs pigz -dc", ".img.gz", "pigz -dc"),
		row{
			name:  "inspect .img.xz (multi-block) vs xz -dc + inspect",
			setup: needCompressed(".img.xz", []string{"xz", "-T0", "-6", "-c"}),
			ours:  func(e *env) []string { return []string{e.imgtool, "inspect", e.out("ours.img.xz")} },
			peer: func(e *env) [][]string {
				return [][]string{shell("xz -dc %q > %q", e.out("ours.img.xz"), e.out("tmp.img")), {e.imgtool, "inspect", e.out("tmp.img")}}
			},
		},
		row{
			name:  "cat /etc/hostname from .img.xz vs xz -dc + cat",
			setup: needCompressed(".img.xz", []string{"xz", "-T0", "-6", "-c"}),
			ours:  func(e *env) []string { return []string{e.imgtool, "cat", e.out("ours.img.xz"), "2:/etc/hostname"} },
			peer: func(e *env) [][]string {
				return [][]string{shell("xz -dc %q > %q", e.out("ours.img.xz"), e.out("tmp.img")), {e.imgtool, "cat", e.out("tmp.img"), "2:/etc/hostname"}}
			},
		},
	)
}

// out names a file in the bench folder.
func (e *env) out(name string) string { return filepath.Join(e.dir, "convert-"+name) }

func shell(format string, args ...any) []string {
	return []string{"sh", "-c", fmt.Sprintf(format, args...)}
}

func sizes(ours, peer string) func(e *env) (int64, int64) {
	return func(e *env) (int64, int64) {
		var a, b int64
		if fi, err := os.Stat(e.out(ours)); err == nil {
			a = fi.Size()
		}
		if fi, err := os.Stat(e.out(peer)); err == nil {
			b = fi.Size()
		}
		return a, b
	}
}

func compressRow(name, ext string, peer []string) row {
	return row{
		name: name,
		ours: func(e *env) []string {
			return []string{e.imgtool, "convert", "--force", e.img, e.out("ours" + ext)}
		},
		peer: func(e *env) [][]string {
			return [][]string{peerCompress(e, peer, ext)}
		},
		size: sizes("ours"+ext, "peer"+ext),
	}
}

func peerCompress(e *env, peer []string, ext string) []string {
	cmd := ""
	for _, a := range peer {
		cmd += fmt.Sprintf("%q ", a)
	}
	return shell("%s%q > %q", cmd, e.img, e.out("peer"+ext))
}

// needCompressed makes ours and the peer's compressed files when a
// compress row has not.
func needCompressed(ext string, peer []string) func(e *env) error {
	return func(e *env) error {
		for _, argv := range [][]string{
			{e.imgtool, "convert", "--force", e.img, e.out("ours" + ext)},
			peerCompress(e, peer, ext),
		} {
			if _, err := os.Stat(e.out("ours" + ext)); err == nil && argv[0] == e.imgtool {
				continue
			}
			if _, err := os.Stat(e.out("peer" + ext)); err == nil && argv[0] == "sh" {
				continue
			}
			if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
				return fmt.Errorf("%v: %v: %s", argv, err, firstLine(string(out)))
			}
		}
		return nil
	}
}

// decompressRow times turning each side's own compressed file back into a
// raw image file.
func decompressRow(name, ext, peer string) row {
	peers := map[string][]string{".img.xz": {"xz", "-T0", "-6", "-c"}, ".img.zst": {"zstd", "-T0", "-3", "-c", "-q"}, ".img.gz": {"pigz", "-6", "-c"}}
	return row{
		name:  name,
		setup: needCompressed(ext, peers[ext]),
		ours: func(e *env) []string {
			return []string{e.imgtool, "convert", "--force", e.out("ours" + ext), e.out("back.img")}
		},
		peer: func(e *env) [][]string {
			return [][]string{shell("%s %q > %q", peer, e.out("peer"+ext), e.out("back-peer.img"))}
		},
	}
}

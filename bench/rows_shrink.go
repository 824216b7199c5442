package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
)

// The shrink row: imgtool shrink on a fresh copy of the bench image
// against PiShrink's core sequence (e2fsck -pf, resize2fs -M, sfdisk to
// resize the partition, truncate) on another fresh copy. The copies are
// made by prepare before every timed run and are not timed.

func init() {
	rows = append(rows, row{
		name: "shrink vs e2fsck + resize2fs -M + sfdisk + truncate",
		prepare: func(e *env) error {
			for _, n := range []string{"shrink-ours.img", "shrink-peer.img", "shrink-peer.part"} {
				exec.Command("rm", "-f", filepath.Join(e.dir, n), filepath.Join(e.dir, n)+".imgtool-undo").Run()
			}
			for _, n := range []string{"shrink-ours.img", "shrink-peer.img"} {
				if out, err := exec.Command("cp", "--sparse=always", "--reflink=never", e.img, filepath.Join(e.dir, n)).CombinedOutput(); err != nil {
					return fmt.Errorf("cp: %v: %s", err, out)
				}
			}
			return nil
		},
		ours: func(e *env) []string {
			return []string{e.imgtool, "shrink", "--no-expand", "--keep-free-data", filepath.Join(e.dir, "shrink-ours.img")}
		},
		peer: func(e *env) [][]string {
			img := filepath.Join(e.dir, "shrink-peer.img")
			// PiShrink works on a loop device of the partition; without
			// root, the same tools run on the partition's bytes through
			// e2fsprogs' ?offset= syntax, and the script below does the
			// table and the truncation as PiShrink computes them.
			fsArg := fmt.Sprintf("%s?offset=%d", img, e.rootOff)
			script := fmt.Sprintf(`set -e
img=%[1]s; off=%[2]d
bs=$(dumpe2fs -h "$img?offset=$off" 2>/dev/null | sed -n 's/^Block size: *//p')
blocks=$(dumpe2fs -h "$img?offset=$off" 2>/dev/null | sed -n 's/^Block count: *//p')
end=$((off + blocks * bs))
echo ", $((blocks * bs / 512))" | sfdisk -q -N 2 "$img"
truncate -s "$end" "$img"`, img, e.rootOff)
			return [][]string{
				{"e2fsck", "-pf", fsArg},
				{"resize2fs", "-M", fsArg},
				{"sh", "-c", script},
			}
		},
	})
}

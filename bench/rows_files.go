package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Rows for reading files out of the image (ls, cat): imgtool against
// debugfs/e2cp on the root partition copied out to its own file (what a user
// of those tools must do first), mtools on the boot partition, and a kernel
// loop mount as the physical floor (needs root).

// rootPart returns the root partition copied out (made once).
func rootPart(e *env) (string, error) {
	p := filepath.Join(e.dir, "root.part")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	err := exec.Command("dd", "if="+e.img, "of="+p, "bs=4M", "iflag=skip_bytes,count_bytes",
		fmt.Sprintf("skip=%d", e.rootOff), fmt.Sprintf("count=%d", e.rootLen), "conv=sparse", "status=none").Run()
	if err != nil {
		os.Remove(p)
		return "", fmt.Errorf("copying the root partition out: %w", err)
	}
	return p, nil
}

// rootMount is the loop mount of the root partition (read-only).
var rootMount struct {
	dev, dir string
}

func mountRoot(e *env) error {
	if rootMount.dir != "" {
		return nil
	}
	out, err := exec.Command("losetup", "-f", "--show", "-r", "-o", fmt.Sprint(e.rootOff),
		"--sizelimit", fmt.Sprint(e.rootLen), e.img).Output()
	if err != nil {
		return fmt.Errorf("losetup (needs root): %w", err)
	}
	dev := strings.TrimSpace(string(out))
	dir := filepath.Join(e.dir, "mnt-root")
	os.MkdirAll(dir, 0o755)
	if err := exec.Command("mount", "-o", "ro", dev, dir).Run(); err != nil {
		exec.Command("losetup", "-d", dev).Run()
		return fmt.Errorf("mount: %w", err)
	}
	rootMount.dev, rootMount.dir = dev, dir
	return nil
}

func unmountRoot(*env) {
	if rootMount.dir == "" {
		return
	}
	exec.Command("umount", rootMount.dir).Run()
	exec.Command("losetup", "-d", rootMount.dev).Run()
	rootMount.dev, rootMount.dir = "", ""
}

func withRootPart(e *env) error { _, err := rootPart(e); return err }

func partPath(e *env) string { return filepath.Join(e.dir, "root.part") }

func init() {
	rows = append(rows,
		row{
			name:  "cat /etc/hostname vs e2cp (partition copied out)",
			setup: withRootPart,
			ours:  func(e *env) []string { return []string{e.imgtool, "cat", e.img, "2:/etc/hostname"} },
			peer:  func(e *env) [][]string { return [][]string{{"e2cp", partPath(e) + ":/etc/hostname", "-"}} },
		},
		row{
			name:  "cat /etc/hostname vs debugfs -R cat (partition copied out)",
			setup: withRootPart,
			ours:  func(e *env) []string { return []string{e.imgtool, "cat", e.img, "2:/etc/hostname"} },
			peer: func(e *env) [][]string {
				return [][]string{{"debugfs", "-R", "cat /etc/hostname", partPath(e)}}
			},
		},
		row{
			name:  "cat /etc/hostname vs cat on a loop mount (floor)",
			setup: mountRoot,
			ours:  func(e *env) []string { return []string{e.imgtool, "cat", e.img, "2:/etc/hostname"} },
			peer: func(e *env) [][]string {
				return [][]string{{"cat", filepath.Join(rootMount.dir, "etc/hostname")}}
			},
			teardown: unmountRoot,
		},
		row{
			name:  "cat large file vs debugfs -R dump",
			setup: withRootPart,
			ours:  func(e *env) []string { return []string{e.imgtool, "cat", e.img, "2:/usr/bin/big.bin"} },
			peer: func(e *env) [][]string {
				return [][]string{{"debugfs", "-R", "dump /usr/bin/big.bin /dev/null", partPath(e)}}
			},
		},
		row{
			name:  "cat large file vs cat on a loop mount (floor)",
			setup: mountRoot,
			ours:  func(e *env) []string { return []string{e.imgtool, "cat", e.img, "2:/usr/bin/big.bin"} },
			peer: func(e *env) [][]string {
				return [][]string{{"cat", filepath.Join(rootMount.dir, "usr/bin/big.bin")}}
			},
			teardown: unmountRoot,
		},
		row{
			name:     "ls -R of the rootfs vs find on a loop mount",
			setup:    mountRoot,
			ours:     func(e *env) []string { return []string{e.imgtool, "ls", "-R", "-l", e.img, "2:/"} },
			peer:     func(e *env) [][]string { return [][]string{{"find", rootMount.dir, "-ls"}} },
			teardown: unmountRoot,
		},
		row{
			name: "FAT: cat config.txt vs mtype",
			ours: func(e *env) []string { return []string{e.imgtool, "cat", e.img, "1:/config.txt"} },
			peer: func(e *env) [][]string {
				return [][]string{{"mtype", "-i", fmt.Sprintf("%s@@%d", e.img, e.bootOff), "::/config.txt"}}
			},
		},
		row{
			name: "FAT: ls -R vs mdir -/",
			ours: func(e *env) []string { return []string{e.imgtool, "ls", "-R", "-l", e.img, "1:/"} },
			peer: func(e *env) [][]string {
				return [][]string{{"mdir", "-/", "-i", fmt.Sprintf("%s@@%d", e.img, e.bootOff), "::"}}
			},
		},
		row{
			name: "FAT: get kernel8.img vs mcopy",
			ours: func(e *env) []string {
				return []string{e.imgtool, "get", "--force", e.img, "1:/kernel8.img", filepath.Join(e.dir, "k-ours")}
			},
			peer: func(e *env) [][]string {
				return [][]string{{"mcopy", "-o", "-i", fmt.Sprintf("%s@@%d", e.img, e.bootOff), "::/kernel8.img", filepath.Join(e.dir, "k-peer")}}
			},
		},
	)
}

package fusemount

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"imgtool/fs/meta"
)

// noAttr is the errno for a missing extended attribute.
const noAttr = syscall.ENOATTR

// encodeDev packs a device number as macOS does (8-bit major, 24-bit
// minor).
func encodeDev(d meta.Dev) uint32 {
	return (d.Major&0xff)<<24 | d.Minor&0xffffff
}

func platformMountOptions(mo *fuse.MountOptions) {}

// preflight says what to install when macFUSE is missing.
func preflight() error {
	for _, p := range []string{"/Library/Filesystems/macfuse.fs", "/Library/Filesystems/osxfuse.fs"} {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%w: macFUSE is not installed: install it (brew install --cask macfuse, then allow its system extension), or use imgtool get to copy files out", ErrNotAvailable)
}

// Unmount unmounts the filesystem at mountpoint with umount(8). It
// reports ErrBusy while a program has a file or folder open inside; lazy
// forces the unmount (umount -f).
func Unmount(mountpoint string, lazy bool) error {
	mp, err := filepath.Abs(mountpoint)
	if err != nil {
		return fmt.Errorf("fusemount: %w", err)
	}
	args := []string{}
	if lazy {
		args = append(args, "-f")
	}
	cmd := exec.Command("/sbin/umount", append(args, mp)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		switch {
		case strings.Contains(msg, "busy"):
			return fmt.Errorf("%w: %s: a program still has a file or folder open in it (lsof +D %s lists them)", ErrBusy, mp, mp)
		case strings.Contains(msg, "not currently mounted"), strings.Contains(msg, "Invalid argument"):
			return fmt.Errorf("%w: nothing is mounted on %s", ErrNotMounted, mp)
		}
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("fusemount: unmounting %s: %s", mp, msg)
	}
	return nil
}

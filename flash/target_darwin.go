//go:build darwin

package flash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"imgtool/image"
)

// ioctl requests from <sys/disk.h>.
const (
	dkiocGetBlockSize        = 0x40046418 // _IOR('d', 24, uint32_t)
	dkiocSynchronizeCache    = 0x20006416 // _IO('d', 22)
	diskutilTimeout          = 30 * time.Second
	diskutilMaxOutput        = 16 << 20
	diskutilMissingToolError = "diskutil not found; imgtool needs macOS's diskutil to list disks"
)

// diskutil runs diskutil with the given arguments and returns its output.
func diskutil(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), diskutilTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "diskutil", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, errors.New("flash: " + diskutilMissingToolError)
		}
		return nil, fmt.Errorf("flash: diskutil %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	if out.Len() > diskutilMaxOutput {
		return nil, errors.New("flash: diskutil printed too much")
	}
	return out.Bytes(), nil
}

// listDevices asks diskutil for the physical disks (all disks when all),
// then for details of each.
func listDevices(all bool) ([]Device, error) {
	args := []string{"list", "-plist", "physical"}
	if all {
		args = args[:2]
	}
	out, err := diskutil(args...)
	if err != nil {
		return nil, err
	}
	devs, err := diskutilDisks(bytes.NewReader(out))
	if err != nil {
		return nil, err
	}
	for i := range devs {
		info, err := diskutil("info", "-plist", devs[i].Name)
		if err != nil {
			return nil, err
		}
		if err := applyDiskutilInfo(&devs[i], bytes.NewReader(info)); err != nil {
			return nil, err
		}
	}
	sortDevices(devs)
	return devs, nil
}

// rawPath turns /dev/diskN into /dev/rdiskN, which is much faster to write.
func rawPath(path string) string {
	dir, base := filepath.Split(path)
	if dir == "/dev/" && strings.HasPrefix(base, "disk") {
		return dir + "r" + base
	}
	return path
}

// openTarget opens the raw disk for /dev/diskN, or a regular file. With
// direct I/O the descriptor is set to F_NOCACHE.
func openTarget(path string, o OpenOptions) (*fileTarget, error) {
	fi, err := os.Stat(path)
	if err != nil && !(o.Create && errors.Is(err, fs.ErrNotExist)) {
		return nil, fmt.Errorf("flash: %w", err)
	}
	if err != nil || fi.Mode().IsRegular() {
		return openRegular(path, o)
	}
	if fi.Mode()&os.ModeDevice == 0 {
		return nil, fmt.Errorf("flash: %s is neither a disk nor a regular file; give a disk such as /dev/disk4 or an image file", path)
	}
	flag := os.O_RDWR
	if o.ReadOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(rawPath(path), flag, 0)
	if err != nil {
		switch {
		case errors.Is(err, unix.EBUSY):
			return nil, fmt.Errorf("flash: %s is in use; run diskutil unmountDisk %s (or imgtool flash --unmount) and try again: %w: %w", path, path, ErrBusy, err)
		case errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("flash: %w; run with sudo to write %s", err, path)
		}
		return nil, fmt.Errorf("flash: %w", err)
	}
	t := &fileTarget{name: path, f: f, device: true, align: 512}
	if t.size, err = image.DeviceSize(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("flash: %w", err)
	}
	if bs, err := unix.IoctlGetInt(int(f.Fd()), dkiocGetBlockSize); err == nil && bs > 0 && bs <= 1<<16 {
		t.align = int64(uint32(bs))
	}
	if o.Direct != DirectOff {
		unix.FcntlInt(f.Fd(), unix.F_NOCACHE, 1)
	}
	return t, nil
}

// Sync flushes the descriptor and asks the disk to empty its cache.
func (t *fileTarget) Sync() error {
	if err := t.f.Sync(); err != nil {
		return fmt.Errorf("flash: flushing %s: %w", t.name, err)
	}
	if t.device {
		unix.Syscall(unix.SYS_IOCTL, t.f.Fd(), dkiocSynchronizeCache, 0)
	} else {
		unix.FcntlInt(t.f.Fd(), unix.F_FULLFSYNC, 0)
	}
	return nil
}

// Unmount runs diskutil unmountDisk on the disk.
func Unmount(d Device) error {
	if _, err := diskutil("unmountDisk", d.Path); err != nil {
		return fmt.Errorf("%w; close the programs using the disk and try again", err)
	}
	return nil
}

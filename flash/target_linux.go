//go:build linux

package flash

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"imgtool/image"
)

// directDefault is what DirectAuto means on Linux; see the package
// documentation for the measurement behind it.
const directDefault = true

// listDevices reads /sys/block, /proc/self/mountinfo and /proc/swaps.
func listDevices(all bool) ([]Device, error) {
	in := sysInput{root: "/sys", all: all}
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		defer f.Close()
		in.mountinfo = f
	}
	if f, err := os.Open("/proc/swaps"); err == nil {
		defer f.Close()
		in.swaps = f
	}
	return readSysfs(in)
}

// openTarget opens a block device with O_EXCL (and a second, direct
// descriptor when asked), or a regular file.
func openTarget(path string, o OpenOptions) (*fileTarget, error) {
	fi, err := os.Stat(path)
	if err != nil && !(o.Create && errors.Is(err, fs.ErrNotExist)) {
		return nil, fmt.Errorf("flash: %w", err)
	}
	if err != nil || fi.Mode().IsRegular() {
		return openRegular(path, o)
	}
	if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return nil, fmt.Errorf("flash: %s is neither a block device nor a regular file; give a disk such as /dev/sdX or an image file", path)
	}
	flag := os.O_RDWR | unix.O_EXCL | unix.O_CLOEXEC
	if o.ReadOnly {
		flag = os.O_RDONLY | unix.O_CLOEXEC
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, explainOpen(path, err)
	}
	t := &fileTarget{name: path, f: f, device: true, align: 1}
	if t.size, err = image.DeviceSize(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("flash: %w", err)
	}
	if o.Direct == DirectOn || (o.Direct == DirectAuto && directDefault) {
		dflag := os.O_RDWR | unix.O_DIRECT | unix.O_CLOEXEC
		if o.ReadOnly {
			dflag = os.O_RDONLY | unix.O_DIRECT | unix.O_CLOEXEC
		}
		// Not exclusive: this process already holds the claim through f.
		if d, err := os.OpenFile(path, dflag, 0); err == nil {
			t.d = d
		} else if o.Direct == DirectOn {
			f.Close()
			return nil, fmt.Errorf("flash: opening %s for direct I/O: %w", path, err)
		}
	}
	return t, nil
}

// explainOpen says what to do about an error from opening a device.
func explainOpen(path string, err error) error {
	switch {
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("flash: %s is in use (mounted, or opened by another program); unmount its partitions (imgtool flash --unmount) and close programs using it, then try again: %w: %w", path, ErrBusy, err)
	case errors.Is(err, unix.EROFS):
		return fmt.Errorf("flash: %s is read-only; if it is an SD card, slide its lock switch away from LOCK and reinsert it: %w: %w", path, ErrReadOnly, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("flash: %w; run as root or with sudo to write %s", err, path)
	}
	return fmt.Errorf("flash: %w", err)
}

// ioctlNoArg runs an ioctl whose argument is ignored or zero.
func ioctlNoArg(f *os.File, req uint) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	if err := conn.Control(func(fd uintptr) {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, fd, uintptr(req), 0)
		if e != 0 {
			ioErr = e
		}
	}); err != nil {
		return err
	}
	return ioErr
}

// Sync flushes written data to the medium and empties the caches: fsync
// and BLKFLSBUF for a device, fsync and posix_fadvise(DONTNEED) for a file.
func (t *fileTarget) Sync() error {
	if err := t.f.Sync(); err != nil {
		return fmt.Errorf("flash: flushing %s: %w", t.name, err)
	}
	if t.d != nil {
		if err := t.d.Sync(); err != nil {
			return fmt.Errorf("flash: flushing %s: %w", t.name, err)
		}
	}
	if t.device {
		if err := ioctlNoArg(t.f, unix.BLKFLSBUF); err != nil {
			return fmt.Errorf("flash: flushing the buffers of %s (BLKFLSBUF): %w", t.name, err)
		}
		return nil
	}
	if err := unix.Fadvise(int(t.f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("flash: dropping cached pages of %s: %w", t.name, err)
	}
	return nil
}

// discard tells a device that a range is unused (BLKDISCARD), or punches a
// hole in a file. The range is shrunk to whole sectors. It returns
// errors.ErrUnsupported when the device cannot discard.
func (t *fileTarget) discard(off, n int64) error {
	if !t.device {
		err := unix.Fallocate(int(t.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
		if errors.Is(err, unix.EOPNOTSUPP) {
			return errors.ErrUnsupported
		}
		return err
	}
	start := (off + 511) &^ 511
	end := (off + n) &^ 511
	if end <= start {
		return nil
	}
	rng := [2]uint64{uint64(start), uint64(end - start)}
	conn, err := t.f.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	if err := conn.Control(func(fd uintptr) {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, fd, unix.BLKDISCARD, uintptr(unsafe.Pointer(&rng)))
		if e != 0 {
			ioErr = e
		}
	}); err != nil {
		return err
	}
	if errors.Is(ioErr, unix.EOPNOTSUPP) || errors.Is(ioErr, unix.ENOTTY) {
		return errors.ErrUnsupported
	}
	return ioErr
}

// rereadPartitions asks the kernel to read the partition table again
// (BLKRRPART). Loop devices without partition scanning answer EINVAL,
// which is not an error here.
func (t *fileTarget) rereadPartitions() error {
	if !t.device {
		return nil
	}
	err := ioctlNoArg(t.f, unix.BLKRRPART)
	if err == nil || errors.Is(err, unix.EINVAL) {
		return nil
	}
	return fmt.Errorf("flash: the kernel could not reread the partition table of %s (BLKRRPART: %v); unplug and replug the device before using it", t.name, err)
}

// Unmount unmounts every mount point of d and its partitions (deepest
// first) with umount2. It does not turn off swap: a disk with active swap
// is a system disk, which callers should refuse.
func Unmount(d Device) error {
	points := d.MountPoints()
	sort.Slice(points, func(i, j int) bool {
		return strings.Count(points[i], "/") > strings.Count(points[j], "/")
	})
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", p, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("flash: %w; close the programs using these folders (lsof +f -- FOLDER shows them) and try again", errors.Join(errs...))
	}
	return nil
}

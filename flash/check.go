package flash

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Sentinels for the safety checks; the errors returned wrap them.
var (
	// ErrTooSmall: the target is smaller than the image.
	ErrTooSmall = errors.New("flash: target too small")
	// ErrSystemDisk: the target holds the running system.
	ErrSystemDisk = errors.New("flash: target is a system disk")
	// ErrMounted: a partition of the target is mounted.
	ErrMounted = errors.New("flash: target is mounted")
	// ErrReadOnly: the target is read-only (a write-protect switch).
	ErrReadOnly = errors.New("flash: target is read-only")
	// ErrBusy: the target is in use by another program or the kernel.
	ErrBusy = errors.New("flash: target is busy")
)

// systemMounts are mount points that mark the disk holding them as the
// running system's.
var systemMounts = map[string]bool{
	"/": true, "/boot": true, "/boot/efi": true, "/boot/firmware": true, "/efi": true,
	"/usr": true, "/var": true, "/home": true, "/opt": true, "/srv": true,
	"/System/Volumes/Data": true, "/System/Volumes/Preboot": true, "/System/Volumes/VM": true,
}

// mediaPrefixes are folders where removable media are mounted; a disk whose
// mounts all lie below them is not a system disk.
var mediaPrefixes = []string{"/media/", "/run/media/", "/mnt/", "/Volumes/"}

// isMediaMount reports whether a mount point is a removable-media mount:
// below one of mediaPrefixes, or on Windows a drive letter other than the
// system drive.
func isMediaMount(p string) bool {
	for _, pre := range mediaPrefixes {
		if strings.HasPrefix(p, pre) && len(p) > len(pre) {
			return true
		}
	}
	if len(p) >= 2 && p[1] == ':' && (len(p) == 2 || p[2] == '\\' || p[2] == '/') {
		sys := os.Getenv("SystemDrive")
		if sys == "" {
			sys = "C:"
		}
		return !strings.EqualFold(p[:2], sys[:min(2, len(sys))])
	}
	return false
}

// IsSystemDisk reports whether d holds the running system, with the reason:
// a partition (or a device stacked on one, such as LVM or LUKS) mounted at
// /, /boot, /boot/efi, /usr, /var, /home and the like, active swap, or any
// mounted partition outside the removable-media folders (/media/,
// /run/media/, /mnt/, /Volumes/; on Windows any drive letter but the
// system drive's). It only looks at d as List filled it in.
func IsSystemDisk(d Device) (bool, string) {
	type use struct {
		path   string
		mounts []Mount
		swap   bool
	}
	uses := []use{{d.Path, d.Mounts, d.Swap}}
	for _, p := range d.Partitions {
		uses = append(uses, use{p.Path, p.Mounts, p.Swap})
	}
	// The most telling reason first: the root filesystem, other system
	// folders, swap, then any mount outside the media folders.
	for _, u := range uses {
		for _, m := range u.mounts {
			if m.Point == "/" {
				return true, fmt.Sprintf("%s is mounted at /%s", u.path, via(m))
			}
		}
	}
	for _, u := range uses {
		for _, m := range u.mounts {
			if systemMounts[m.Point] {
				return true, fmt.Sprintf("%s is mounted at %s%s", u.path, m.Point, via(m))
			}
		}
	}
	for _, u := range uses {
		if u.swap {
			return true, fmt.Sprintf("%s is in use as swap space", u.path)
		}
	}
	for _, u := range uses {
		for _, m := range u.mounts {
			if !isMediaMount(m.Point) {
				return true, fmt.Sprintf("%s is mounted at %s%s, outside the removable-media folders", u.path, m.Point, via(m))
			}
		}
	}
	return false, ""
}

func via(m Mount) string {
	if m.Via == "" {
		return ""
	}
	return " (through " + m.Via + ")"
}

// TooSmallError is returned (wrapping ErrTooSmall) when an image does not
// fit its target.
type TooSmallError struct {
	Target    string
	ImageSize int64
	Size      int64 // the target's size
	// LastPartitionEnd is where the image's last partition ends, when the
	// caller knew it (0 otherwise).
	LastPartitionEnd int64
}

// Shortfall is how many bytes the target lacks.
func (e *TooSmallError) Shortfall() int64 { return e.ImageSize - e.Size }

// Error says by how much the image is too large and what to do.
func (e *TooSmallError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "flash: the image is %s larger than %s (image %d bytes, target %d bytes)",
		ibytes(e.Shortfall()), e.Target, e.ImageSize, e.Size)
	switch {
	case e.LastPartitionEnd > 0 && e.LastPartitionEnd <= e.Size:
		fmt.Fprintf(&b, "; its last partition ends at byte %d, which fits, so only unpartitioned space is in the way: run imgtool shrink IMAGE", e.LastPartitionEnd)
	case e.LastPartitionEnd > 0:
		fmt.Fprintf(&b, "; its last partition ends at byte %d, %s past the end of the target: run imgtool shrink IMAGE to shrink the last filesystem, or use a larger card",
			e.LastPartitionEnd, ibytes(e.LastPartitionEnd-e.Size))
	default:
		b.WriteString("; run imgtool shrink IMAGE, or use a larger card")
	}
	return b.String()
}

// Unwrap returns ErrTooSmall.
func (e *TooSmallError) Unwrap() error { return ErrTooSmall }

// CheckFits returns a *TooSmallError when an image of imageSize bytes does
// not fit a target of targetSize bytes. lastPartitionEnd (0 if unknown) is
// the byte where the image's last partition ends; it makes the message say
// whether shrinking would help.
func CheckFits(target string, imageSize, targetSize, lastPartitionEnd int64) error {
	if imageSize <= targetSize {
		return nil
	}
	return &TooSmallError{Target: target, ImageSize: imageSize, Size: targetSize, LastPartitionEnd: lastPartitionEnd}
}

// CheckDevice runs the checks a caller should make before asking the user to
// confirm writing an image of imageSize bytes to d: size (see CheckFits),
// system disk, mounted partitions and read-only. It returns nil or the
// problems joined (errors.Is finds ErrTooSmall, ErrSystemDisk, ErrMounted,
// ErrReadOnly). A system disk is reported instead of, not as well as, its
// mounts.
func CheckDevice(d Device, imageSize, lastPartitionEnd int64) error {
	var errs []error
	if err := CheckFits(d.Path, imageSize, d.Size, lastPartitionEnd); err != nil {
		errs = append(errs, err)
	}
	if sys, why := IsSystemDisk(d); sys {
		errs = append(errs, fmt.Errorf("%w: %s holds the running system (%s); choose another disk", ErrSystemDisk, d.Path, why))
	} else if mps := d.MountPoints(); len(mps) > 0 {
		errs = append(errs, fmt.Errorf("%w: %s has mounted partitions (%s); unmount them first (imgtool flash --unmount)", ErrMounted, d.Path, strings.Join(mps, ", ")))
	}
	if d.ReadOnly {
		errs = append(errs, fmt.Errorf("%w: %s; if it is an SD card, slide its lock switch away from LOCK and reinsert it", ErrReadOnly, d.Path))
	}
	return errors.Join(errs...)
}

// MountedReadWrite returns the mount points of the disk at path (and its
// partitions) that are mounted read-write: a backup read from such a disk
// may be inconsistent, since files can change while it is read.
func MountedReadWrite(path string) ([]string, error) {
	d, err := Find(path)
	if err != nil {
		return nil, err
	}
	return readWriteMounts(d), nil
}

func readWriteMounts(d Device) []string {
	var out []string
	add := func(ms []Mount) {
		for _, m := range ms {
			if !m.ReadOnly {
				out = append(out, m.Point)
			}
		}
	}
	add(d.Mounts)
	for _, p := range d.Partitions {
		add(p.Mounts)
	}
	return out
}

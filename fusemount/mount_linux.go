package fusemount

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"imgtool/fs/meta"
)

// noAttr is the errno for a missing extended attribute.
const noAttr = syscall.ENODATA

// encodeDev packs a device number as the kernel's FUSE attribute expects
// it (new_encode_dev: 12-bit major, 20-bit minor).
func encodeDev(d meta.Dev) uint32 {
	return d.Minor&0xff | (d.Major&0xfff)<<8 | (d.Minor&^0xff)<<12
}

// platformMountOptions mounts directly as root (no fusermount3 needed),
// read-only, nosuid and nodev.
func platformMountOptions(mo *fuse.MountOptions) {
	if os.Geteuid() == 0 {
		mo.DirectMount = true
		mo.DirectMountFlags = syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV
	}
}

// preflight says what to install when FUSE cannot work here.
func preflight() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("%w: /dev/fuse is missing: install the fuse3 package and load the fuse module (modprobe fuse); in a container, pass the device (docker run --device /dev/fuse --cap-add SYS_ADMIN)", ErrNotAvailable)
	}
	if os.Geteuid() != 0 {
		if _, err := fusermount(); err != nil {
			return fmt.Errorf("%w: fusermount3 not found: install the fuse3 package (apt install fuse3, dnf install fuse3), or run as root", ErrNotAvailable)
		}
		if err := syscall.Access("/dev/fuse", 6); err != nil {
			return fmt.Errorf("%w: /dev/fuse cannot be opened by this user (%v); it is normally mode 0666: fix it as root (chmod 666 /dev/fuse) or run as root", ErrNotAvailable, err)
		}
	}
	return nil
}

// fusermount finds fusermount3, or the older fusermount.
func fusermount() (string, error) {
	for _, name := range []string{"fusermount3", "fusermount"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		for _, dir := range []string{"/bin", "/usr/bin"} {
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p, nil
			}
		}
	}
	return "", exec.ErrNotFound
}

// Unmount unmounts the FUSE filesystem at mountpoint: unmount(2) as root,
// fusermount3 -u otherwise. It refuses paths that are not FUSE mounts
// (ErrNotMounted) and reports ErrBusy while a program has a file or
// folder open inside. lazy detaches the mount at once instead; it goes
// away when the last open file is closed.
func Unmount(mountpoint string, lazy bool) error {
	mp, err := canonical(mountpoint)
	if err != nil {
		return fmt.Errorf("fusemount: %w", err)
	}
	fstype, ok, err := mountType(mp)
	if err != nil {
		return fmt.Errorf("fusemount: reading the mount table: %w", err)
	}
	if !ok {
		return fmt.Errorf("%w: nothing is mounted on %s", ErrNotMounted, mp)
	}
	if fstype != "fuse" && !strings.HasPrefix(fstype, "fuse.") {
		return fmt.Errorf("%w: %s holds a %s filesystem, not a FUSE one; use umount", ErrNotMounted, mp, fstype)
	}
	if os.Geteuid() == 0 {
		flags := 0
		if lazy {
			flags = syscall.MNT_DETACH
		}
		err := syscall.Unmount(mp, flags)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EBUSY):
			return busy(mp)
		}
		return fmt.Errorf("fusemount: unmounting %s: %w", mp, err)
	}
	bin, err := fusermount()
	if err != nil {
		return fmt.Errorf("%w: fusermount3 not found: install the fuse3 package", ErrNotAvailable)
	}
	args := []string{"-u"}
	if lazy {
		args = append(args, "-z")
	}
	cmd := exec.Command(bin, append(args, mp)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "busy") {
			return busy(mp)
		}
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("fusemount: unmounting %s: %s", mp, msg)
	}
	return nil
}

func busy(mp string) error {
	return fmt.Errorf("%w: %s: a program still has a file or folder open in it (fuser -vm %s lists them)", ErrBusy, mp, mp)
}

// canonical makes mountpoint absolute and resolves symbolic links in its
// parent, without touching the mount point itself (whose server may be
// gone).
func canonical(mountpoint string) (string, error) {
	mp, err := filepath.Abs(mountpoint)
	if err != nil {
		return "", err
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(mp)); err == nil {
		mp = filepath.Join(dir, filepath.Base(mp))
	}
	return mp, nil
}

// mountType returns the type of the topmost filesystem mounted on mp.
func mountType(mp string) (fstype string, found bool, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - type source superoptions
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 || unescapeMountinfo(fields[4]) != mp {
			continue
		}
		for i := 6; i < len(fields)-1; i++ {
			if fields[i] == "-" {
				fstype, found = fields[i+1], true
				break
			}
		}
	}
	return fstype, found, sc.Err()
}

// unescapeMountinfo decodes the \040-style octal escapes of mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

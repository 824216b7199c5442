//go:build windows

package flash

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/windows"

	"imgtool/image"
)

// Control codes from winioctl.h.
const (
	ioctlStorageQueryProperty   = 0x002d1400
	ioctlStorageGetDeviceNumber = 0x002d1080
	ioctlDiskGetDriveGeometry   = 0x00070000
	ioctlDiskUpdateProperties   = 0x00070140
	ioctlDiskIsWritable         = 0x00070024
	fsctlLockVolume             = 0x00090018
	fsctlDismountVolume         = 0x00090020
	maxPhysicalDrives           = 64
)

// openHandle opens a device name with the given access, sharing it.
func openHandle(path string, access uint32, flags uint32) (windows.Handle, error) {
	name, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return windows.InvalidHandle, err
	}
	return windows.CreateFile(name, access, windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE, nil,
		windows.OPEN_EXISTING, flags, 0)
}

func ioctl(h windows.Handle, code uint32, in []byte, out []byte) (int, error) {
	var n uint32
	var inp, outp *byte
	if len(in) > 0 {
		inp = &in[0]
	}
	if len(out) > 0 {
		outp = &out[0]
	}
	err := windows.DeviceIoControl(h, code, inp, uint32(len(in)), outp, uint32(len(out)), &n, nil)
	return int(n), err
}

// listDevices probes \\.\PhysicalDrive0 … 63, then maps drive letters to
// disks with IOCTL_STORAGE_GET_DEVICE_NUMBER.
func listDevices(all bool) ([]Device, error) {
	var devs []Device
	index := map[uint32]int{}
	for n := uint32(0); n < maxPhysicalDrives; n++ {
		path := fmt.Sprintf(`\\.\PhysicalDrive%d`, n)
		h, err := openHandle(path, 0, 0)
		if err != nil {
			continue
		}
		d := Device{Path: path, Name: fmt.Sprintf("PhysicalDrive%d", n)}
		query := make([]byte, 12) // StorageDeviceProperty, PropertyStandardQuery
		out := make([]byte, 1024)
		if m, err := ioctl(h, ioctlStorageQueryProperty, query, out); err == nil {
			if si, ok := parseStorageDescriptor(out[:m]); ok {
				d.Vendor, d.Model, d.Serial, d.Transport = si.vendor, si.product, si.serial, si.transport
				d.Removable = si.removable || si.transport == TransportUSB || si.transport == TransportMMC
			}
		}
		windows.CloseHandle(h)
		if f, err := os.Open(path); err == nil {
			d.Size, _ = image.DeviceSize(f)
			var geo [24]byte
			if _, err := deviceIoctl(f, ioctlDiskGetDriveGeometry, nil, geo[:]); err == nil {
				d.SectorSize = int(binary.LittleEndian.Uint32(geo[20:]))
			}
			if _, err := deviceIoctl(f, ioctlDiskIsWritable, nil, nil); errors.Is(err, windows.ERROR_WRITE_PROTECT) {
				d.ReadOnly = true
			}
			f.Close()
		}
		if !all && d.Size == 0 {
			continue
		}
		index[n] = len(devs)
		devs = append(devs, d)
	}
	for c := 'A'; c <= 'Z'; c++ {
		vol := `\\.\` + string(c) + ":"
		h, err := openHandle(vol, 0, 0)
		if err != nil {
			continue
		}
		var num [12]byte
		_, err = ioctl(h, ioctlStorageGetDeviceNumber, nil, num[:])
		windows.CloseHandle(h)
		if err != nil {
			continue
		}
		disk := binary.LittleEndian.Uint32(num[4:])
		i, ok := index[disk]
		if !ok {
			continue
		}
		devs[i].Partitions = append(devs[i].Partitions, Partition{
			Path:   vol,
			Name:   string(c) + ":",
			Number: int(binary.LittleEndian.Uint32(num[8:])),
			Mounts: []Mount{{Point: string(c) + `:\`}},
		})
	}
	sortDevices(devs)
	return devs, nil
}

func deviceIoctl(f *os.File, code uint32, in, out []byte) (int, error) {
	conn, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var ioErr error
	if err := conn.Control(func(fd uintptr) { n, ioErr = ioctl(windows.Handle(fd), code, in, out) }); err != nil {
		return 0, err
	}
	return n, ioErr
}

// openTarget opens a physical drive unbuffered and write-through, or a
// regular file.
func openTarget(path string, o OpenOptions) (*fileTarget, error) {
	if !strings.HasPrefix(path, `\\.\`) && !strings.HasPrefix(path, `\\?\`) {
		if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("flash: %s is neither a disk nor a regular file; give a disk such as \\\\.\\PhysicalDrive2 or an image file", path)
		}
		return openRegular(path, o)
	}
	access := uint32(windows.GENERIC_READ | windows.GENERIC_WRITE)
	if o.ReadOnly {
		access = windows.GENERIC_READ
	}
	h, err := openHandle(path, access, windows.FILE_FLAG_NO_BUFFERING|windows.FILE_FLAG_WRITE_THROUGH)
	if err != nil {
		switch {
		case errors.Is(err, windows.ERROR_ACCESS_DENIED) || errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("flash: %w; run imgtool from a command prompt opened with \"Run as administrator\" to write %s", err, path)
		case errors.Is(err, windows.ERROR_SHARING_VIOLATION):
			return nil, fmt.Errorf("flash: %s is in use; close programs using it and try again: %w: %w", path, ErrBusy, err)
		}
		return nil, fmt.Errorf("flash: opening %s: %w", path, err)
	}
	f := os.NewFile(uintptr(h), path)
	t := &fileTarget{name: path, f: f, device: true, align: 512}
	if t.size, err = image.DeviceSize(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("flash: %w", err)
	}
	var geo [24]byte
	if _, err := deviceIoctl(f, ioctlDiskGetDriveGeometry, nil, geo[:]); err == nil {
		if bs := int64(binary.LittleEndian.Uint32(geo[20:])); bs >= 512 && bs <= 1<<16 && bs&(bs-1) == 0 {
			t.align = bs
		}
	}
	return t, nil
}

// Sync flushes the handle (FlushFileBuffers). Disks are opened unbuffered
// and write-through, so reads after it come from the disk.
func (t *fileTarget) Sync() error {
	if err := t.f.Sync(); err != nil {
		return fmt.Errorf("flash: flushing %s: %w", t.name, err)
	}
	return nil
}

// rereadPartitions asks Windows to read the partition table again.
func (t *fileTarget) rereadPartitions() error {
	if !t.device {
		return nil
	}
	if _, err := deviceIoctl(t.f, ioctlDiskUpdateProperties, nil, nil); err != nil {
		return fmt.Errorf("flash: Windows could not reread the partition table of %s (%v); unplug and replug the device before using it", t.name, err)
	}
	return nil
}

// lockedVolumes keeps the volumes that Unmount locked: a lock lasts as long
// as its handle, so they stay open until the process exits.
var (
	lockedMu      sync.Mutex
	lockedVolumes []windows.Handle
)

// Unmount locks and dismounts every volume (drive letter) of d, so that
// Windows lets the disk be written. The volumes stay locked until imgtool
// exits.
func Unmount(d Device) error {
	var errs []error
	for _, p := range d.Partitions {
		h, err := openHandle(p.Path, windows.GENERIC_READ|windows.GENERIC_WRITE, 0)
		if err != nil {
			errs = append(errs, fmt.Errorf("opening %s: %w", p.Path, err))
			continue
		}
		if _, err := ioctl(h, fsctlLockVolume, nil, nil); err != nil {
			windows.CloseHandle(h)
			errs = append(errs, fmt.Errorf("locking %s: %w", p.Path, err))
			continue
		}
		if _, err := ioctl(h, fsctlDismountVolume, nil, nil); err != nil {
			windows.CloseHandle(h)
			errs = append(errs, fmt.Errorf("dismounting %s: %w", p.Path, err))
			continue
		}
		lockedMu.Lock()
		lockedVolumes = append(lockedVolumes, h)
		lockedMu.Unlock()
	}
	if len(errs) > 0 {
		return fmt.Errorf("flash: %w; close the programs and windows using these drives and try again", errors.Join(errs...))
	}
	return nil
}

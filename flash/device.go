package flash

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// Transport says how a disk is attached.
type Transport uint8

const (
	// TransportUnknown is a disk whose bus could not be told.
	TransportUnknown Transport = iota
	// TransportUSB is a USB stick or a card in a USB reader.
	TransportUSB
	// TransportMMC is an SD card or eMMC on an MMC/SD host controller.
	TransportMMC
	// TransportSATA is a SATA, PATA or SAS disk.
	TransportSATA
	// TransportNVMe is an NVMe disk.
	TransportNVMe
	// TransportVirtual is a virtual machine's disk (virtio, Xen, Hyper-V) or
	// a disk image attached by the system (macOS "Disk Image").
	TransportVirtual
	// TransportLoop is a Linux loop device.
	TransportLoop
)

var transportNames = [...]string{"unknown", "usb", "mmc", "sata", "nvme", "virtual", "loop"}

// String returns "usb", "mmc", "sata", "nvme", "virtual", "loop" or
// "unknown".
func (t Transport) String() string {
	if int(t) < len(transportNames) {
		return transportNames[t]
	}
	return "unknown"
}

// MarshalText returns the name given by String, so that JSON shows names.
func (t Transport) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText accepts the names given by String.
func (t *Transport) UnmarshalText(b []byte) error {
	for i, n := range transportNames {
		if n == string(b) {
			*t = Transport(i)
			return nil
		}
	}
	return fmt.Errorf("flash: unknown transport %q", b)
}

// Mount is one place where a partition (or a whole disk) is mounted.
type Mount struct {
	Point    string `json:"point"`
	FSType   string `json:"fstype,omitempty"`
	ReadOnly bool   `json:"read_only"`
	// Via names the device-mapper, RAID or loop device stacked on the
	// partition that is actually mounted, when it is not the partition
	// itself (for example "dm-0" for LVM or LUKS).
	Via string `json:"via,omitempty"`
}

// Partition is a partition of a Device as the system sees it.
type Partition struct {
	Path   string  `json:"path"`
	Name   string  `json:"name"`
	Number int     `json:"number,omitempty"`
	Start  int64   `json:"start"` // bytes from the start of the disk
	Size   int64   `json:"size"`  // bytes
	Mounts []Mount `json:"mounts,omitempty"`
	// Swap is true when the partition (or a device stacked on it) is
	// active swap space.
	Swap bool `json:"swap,omitempty"`
}

// Device is a whole-disk block device.
type Device struct {
	Path      string    `json:"path"` // /dev/sdb, /dev/disk4, \\.\PhysicalDrive2
	Name      string    `json:"name"` // sdb, disk4, PhysicalDrive2
	Size      int64     `json:"size"` // bytes
	Model     string    `json:"model,omitempty"`
	Vendor    string    `json:"vendor,omitempty"`
	Serial    string    `json:"serial,omitempty"`
	Transport Transport `json:"transport"`
	// Removable is true for removable media: the kernel's removable flag,
	// any USB disk, and SD cards (but not soldered eMMC).
	Removable bool `json:"removable"`
	ReadOnly  bool `json:"read_only"`
	// SectorSize is the logical block size in bytes (0 if unknown).
	SectorSize int `json:"sector_size,omitempty"`
	// Mounts lists where the whole disk itself is mounted (a disk
	// formatted without a partition table).
	Mounts     []Mount     `json:"mounts,omitempty"`
	Swap       bool        `json:"swap,omitempty"`
	Partitions []Partition `json:"partitions,omitempty"`
}

// MountPoints returns every mount point of the disk and its partitions.
func (d Device) MountPoints() []string {
	var out []string
	for _, m := range d.Mounts {
		out = append(out, m.Point)
	}
	for _, p := range d.Partitions {
		for _, m := range p.Mounts {
			out = append(out, m.Point)
		}
	}
	return out
}

// String returns a one-line description such as
// "/dev/sdb: 32.0 GB usb SanDisk Ultra (removable)".
func (d Device) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s %s", d.Path, humanBytes(d.Size), d.Transport)
	if name := strings.TrimSpace(d.Vendor + " " + d.Model); name != "" {
		b.WriteString(" " + name)
	}
	if d.Removable {
		b.WriteString(" (removable)")
	}
	if d.ReadOnly {
		b.WriteString(" (read-only)")
	}
	return b.String()
}

// ErrNoDevice is wrapped by Find when no listed disk matches a path.
var ErrNoDevice = errors.New("flash: no such disk")

// List returns the whole-disk block devices of the system, sorted by path,
// leaving out RAM disks, zram, device-mapper and RAID devices, unattached
// loop devices and empty card readers. See ListAll.
func List() ([]Device, error) { return listDevices(false) }

// ListAll is List including RAM disks, zram, device-mapper and RAID devices
// and devices of size zero.
func ListAll() ([]Device, error) { return listDevices(true) }

// Find returns the disk listed by ListAll whose path is path, following
// symbolic links (such as /dev/disk/by-id/…). A partition's path is refused
// with an error that names its disk.
func Find(path string) (Device, error) {
	devs, err := ListAll()
	if err != nil {
		return Device{}, err
	}
	return findIn(devs, path)
}

func findIn(devs []Device, path string) (Device, error) {
	want := []string{path}
	if r, err := filepath.EvalSymlinks(path); err == nil && r != path {
		want = append(want, r)
	}
	for _, w := range want {
		for _, d := range devs {
			if d.Path == w || strings.EqualFold(d.Path, w) {
				return d, nil
			}
		}
	}
	for _, w := range want {
		for _, d := range devs {
			for _, p := range d.Partitions {
				if p.Path == w {
					return Device{}, fmt.Errorf("flash: %s is a partition of %s; give the whole disk %s instead: %w", path, d.Path, d.Path, ErrNoDevice)
				}
			}
		}
	}
	return Device{}, fmt.Errorf("flash: %s is not a disk this system lists; run imgtool flash --list to see the disks: %w", path, ErrNoDevice)
}

func sortDevices(devs []Device) {
	sort.Slice(devs, func(i, j int) bool {
		a, b := devs[i].Path, devs[j].Path
		if len(a) != len(b) && strings.TrimRight(a, "0123456789") == strings.TrimRight(b, "0123456789") {
			return len(a) < len(b) // disk2 before disk10
		}
		return a < b
	})
	for i := range devs {
		sort.Slice(devs[i].Partitions, func(a, b int) bool {
			pa, pb := devs[i].Partitions[a], devs[i].Partitions[b]
			if pa.Start != pb.Start {
				return pa.Start < pb.Start
			}
			return pa.Number < pb.Number
		})
	}
}

// humanBytes formats n in decimal units as disk vendors do.
func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"kB", "MB", "GB", "TB", "PB"} {
		f /= unit
		if f < unit {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return fmt.Sprintf("%.1f EB", f/unit)
}

// ibytes formats n in binary units, exactly when n is small.
func ibytes(n int64) string {
	if n < 1<<10 {
		return fmt.Sprintf("%d bytes", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		f /= 1024
		if f < 1024 {
			return fmt.Sprintf("%.1f %s (%d bytes)", f, u, n)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}

package flash

// Linux device discovery from sysfs, /proc/self/mountinfo and /proc/swaps.
// This file has no build tag: it only reads files under a root folder, so it
// is tested on every system against the recorded trees in testdata.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// sysInput is what readSysfs reads: a sysfs root (normally "/sys"), the
// text of a mountinfo file and of a swaps file (either may be nil).
type sysInput struct {
	root      string
	mountinfo io.Reader
	swaps     io.Reader
	all       bool // include ram, zram, dm-, md, sr and empty devices
}

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	dev    string // "MAJ:MIN" of the mounted filesystem
	point  string
	fstype string
	source string
	ro     bool
}

// maxMountLines bounds the mountinfo and swaps lines read.
const maxMountLines = 100000

// parseMountinfo reads /proc/self/mountinfo lines (see proc(5)).
func parseMountinfo(r io.Reader) ([]mountEntry, error) {
	if r == nil {
		return nil, nil
	}
	var out []mountEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 0; sc.Scan(); n++ {
		if n > maxMountLines {
			return out, errors.New("flash: mountinfo: too many lines")
		}
		f := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 6 || sep < 0 || sep+2 >= len(f) {
			continue // malformed line: ignore it rather than fail listing
		}
		e := mountEntry{
			dev:    f[2],
			point:  unescapeMount(f[4]),
			fstype: f[sep+1],
			source: unescapeMount(f[sep+2]),
		}
		e.ro = hasOption(f[5], "ro")
		if sep+3 < len(f) && hasOption(f[sep+3], "ro") {
			e.ro = true
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("flash: reading mountinfo: %w", err)
	}
	return out, nil
}

func hasOption(opts, want string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// unescapeMount undoes the octal escapes (\040 for a space, \011, \012,
// \134) that the kernel writes in mountinfo and swaps.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
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

// parseSwaps returns the file names of /proc/swaps (header skipped).
func parseSwaps(r io.Reader) ([]string, error) {
	if r == nil {
		return nil, nil
	}
	var out []string
	sc := bufio.NewScanner(r)
	for n := 0; sc.Scan(); n++ {
		if n > maxMountLines {
			break
		}
		f := strings.Fields(sc.Text())
		if n == 0 && len(f) > 0 && f[0] == "Filename" {
			continue
		}
		if len(f) > 0 {
			out = append(out, unescapeMount(f[0]))
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("flash: reading swaps: %w", err)
	}
	return out, nil
}

// readAttr reads a sysfs attribute, trimmed; "" when absent.
func readAttr(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 4096))
	return strings.TrimSpace(string(b))
}

func readInt(path string) int64 {
	v, err := strconv.ParseInt(readAttr(path), 10, 64)
	if err != nil || v < 0 {
		return 0
	}
	return v
}

// skippedName reports block devices that List leaves out by default.
func skippedName(name string) bool {
	for _, p := range []string{"ram", "zram", "dm-", "md", "sr", "fd", "nbd", "zd"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// transportFromPath tells the bus from the resolved sysfs path of a disk.
func transportFromPath(name, resolved string) Transport {
	p := filepath.ToSlash(resolved)
	switch {
	case strings.HasPrefix(name, "loop") && strings.Contains(p, "/virtual/"):
		return TransportLoop
	case strings.Contains(p, "/usb"):
		return TransportUSB
	case strings.Contains(p, "/mmc_host/"):
		return TransportMMC
	case strings.Contains(p, "/nvme/") || strings.Contains(p, "/nvme-subsystem/"):
		return TransportNVMe
	case strings.Contains(p, "/ata"):
		return TransportSATA
	case strings.Contains(p, "virtio") || strings.Contains(p, "/xen") || strings.Contains(p, "/vmbus") || strings.Contains(p, "/virtual/"):
		return TransportVirtual
	}
	return TransportUnknown
}

// usbSerial walks up from a USB disk's sysfs folder to the USB device and
// returns its serial number ("" if none).
func usbSerial(root, resolved string) string {
	stop := filepath.Clean(root)
	for dir := filepath.Dir(resolved); len(dir) > len(stop) && dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "idVendor")); err == nil {
			return readAttr(filepath.Join(dir, "serial"))
		}
	}
	return ""
}

// readSysfs lists the disks under in.root/block.
func readSysfs(in sysInput) ([]Device, error) {
	blockDir := filepath.Join(in.root, "block")
	entries, err := os.ReadDir(blockDir)
	if err != nil {
		return nil, fmt.Errorf("flash: listing disks: %w", err)
	}
	mounts, err := parseMountinfo(in.mountinfo)
	if err != nil {
		return nil, err
	}
	swaps, err := parseSwaps(in.swaps)
	if err != nil {
		return nil, err
	}
	// Device-mapper names, so that /dev/mapper/X in swaps or mountinfo
	// can be matched with dm-N.
	mapper := map[string]string{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "dm-") {
			if n := readAttr(filepath.Join(blockDir, e.Name(), "dm", "name")); n != "" {
				mapper[n] = e.Name()
			}
		}
	}
	ctx := &sysCtx{root: in.root, mounts: mounts, swaps: swaps, mapper: mapper}
	var devs []Device
	for _, e := range entries {
		name := e.Name()
		if !in.all && skippedName(name) {
			continue
		}
		d, err := ctx.device(name)
		if err != nil {
			return nil, err
		}
		if !in.all && d.Size == 0 {
			continue
		}
		devs = append(devs, d)
	}
	sortDevices(devs)
	return devs, nil
}

type sysCtx struct {
	root   string
	mounts []mountEntry
	swaps  []string
	mapper map[string]string
}

func (c *sysCtx) device(name string) (Device, error) {
	dir := filepath.Join(c.root, "block", name)
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return Device{}, fmt.Errorf("flash: reading %s: %w", dir, err)
	}
	d := Device{
		Path:       "/dev/" + name,
		Name:       name,
		Size:       readInt(filepath.Join(dir, "size")) * 512,
		Transport:  transportFromPath(name, resolved),
		ReadOnly:   readAttr(filepath.Join(dir, "ro")) == "1",
		SectorSize: int(readInt(filepath.Join(dir, "queue", "logical_block_size"))),
	}
	dev := filepath.Join(dir, "device")
	d.Model = readAttr(filepath.Join(dev, "model"))
	d.Vendor = readAttr(filepath.Join(dev, "vendor"))
	d.Serial = readAttr(filepath.Join(dev, "serial"))
	removable := readAttr(filepath.Join(dir, "removable")) == "1"
	switch d.Transport {
	case TransportMMC:
		if d.Model == "" {
			d.Model = readAttr(filepath.Join(dev, "name"))
		}
		// An SD card is removable even when the host reports a fixed slot;
		// soldered eMMC reports the type "MMC".
		if readAttr(filepath.Join(dev, "type")) == "SD" {
			removable = true
		}
	case TransportUSB:
		removable = true
		if d.Serial == "" {
			d.Serial = usbSerial(c.root, resolved)
		}
	case TransportLoop:
		if d.Model == "" {
			if bf := readAttr(filepath.Join(dir, "loop", "backing_file")); bf != "" {
				d.Model = bf
			}
		}
	}
	d.Removable = removable
	devNum := readAttr(filepath.Join(dir, "dev"))
	d.Mounts, d.Swap = c.usage(name, devNum, filepath.Join(dir, "holders"))

	parts, err := os.ReadDir(dir)
	if err != nil {
		return Device{}, fmt.Errorf("flash: reading %s: %w", dir, err)
	}
	for _, p := range parts {
		pdir := filepath.Join(dir, p.Name())
		if _, err := os.Stat(filepath.Join(pdir, "partition")); err != nil {
			continue
		}
		part := Partition{
			Path:   "/dev/" + p.Name(),
			Name:   p.Name(),
			Number: int(readInt(filepath.Join(pdir, "partition"))),
			Start:  readInt(filepath.Join(pdir, "start")) * 512,
			Size:   readInt(filepath.Join(pdir, "size")) * 512,
		}
		part.Mounts, part.Swap = c.usage(p.Name(), readAttr(filepath.Join(pdir, "dev")), filepath.Join(pdir, "holders"))
		d.Partitions = append(d.Partitions, part)
	}
	return d, nil
}

// usage finds the mounts and swap use of a block device and of the
// devices stacked on it (holders, one level deep and then their holders).
func (c *sysCtx) usage(name, devNum, holdersDir string) ([]Mount, bool) {
	mounts, swap := c.direct(name, devNum, "")
	seen := map[string]bool{name: true}
	queue := []string{holdersDir}
	for depth := 0; depth < 4 && len(queue) > 0; depth++ {
		var next []string
		for _, hd := range queue {
			hs, _ := os.ReadDir(hd)
			for _, h := range hs {
				hn := h.Name()
				if seen[hn] {
					continue
				}
				seen[hn] = true
				hdir := filepath.Join(c.root, "block", hn)
				m, s := c.direct(hn, readAttr(filepath.Join(hdir, "dev")), hn)
				mounts = append(mounts, m...)
				swap = swap || s
				next = append(next, filepath.Join(hdir, "holders"))
			}
		}
		queue = next
	}
	return mounts, swap
}

// direct finds the mounts and swap use of one block device.
func (c *sysCtx) direct(name, devNum, via string) ([]Mount, bool) {
	var out []Mount
	for _, m := range c.mounts {
		if (devNum != "" && m.dev == devNum) || c.sameDev(m.source, name) {
			out = append(out, Mount{Point: m.point, FSType: m.fstype, ReadOnly: m.ro, Via: via})
		}
	}
	swap := false
	for _, s := range c.swaps {
		if c.sameDev(s, name) {
			swap = true
		}
	}
	return out, swap
}

// sameDev reports whether the device path src names the block device name.
func (c *sysCtx) sameDev(src, name string) bool {
	if src == "/dev/"+name {
		return true
	}
	if m, ok := strings.CutPrefix(src, "/dev/mapper/"); ok {
		return c.mapper[m] == name
	}
	return false
}

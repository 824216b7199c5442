package flash

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// loadTree copies testdata/NAME into a temporary folder, creates the
// symbolic links listed in its symlinks.txt and returns the input for
// readSysfs.
func loadTree(t *testing.T, name string) sysInput {
	t.Helper()
	src := filepath.Join("testdata", name)
	root := filepath.Join(t.TempDir(), "sys")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(root, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(src, "symlinks.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		link, target, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok {
			continue
		}
		p := filepath.Join(root, link)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	mi, err := os.Open(filepath.Join(root, "mountinfo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mi.Close() })
	sw, err := os.Open(filepath.Join(root, "swaps"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	return sysInput{root: root, mountinfo: mi, swaps: sw}
}

func TestSysfsTrees(t *testing.T) {
	type part struct {
		name   string
		start  int64
		mounts []string
		swap   bool
	}
	tests := []struct {
		tree      string
		path      string
		transport Transport
		removable bool
		size      int64
		model     string
		vendor    string
		serial    string
		parts     []part
		system    bool
		reason    string
	}{
		{tree: "sysfs-mmc", path: "/dev/mmcblk0", transport: TransportMMC, removable: true, size: 62333952 * 512,
			model: "SD32G", serial: "0x1a2b3c4d",
			parts: []part{{"mmcblk0p1", 8192 * 512, []string{"/media/pi/boot fs"}, false}, {"mmcblk0p2", 1056768 * 512, []string{"/media/pi/rootfs"}, false}}},
		{tree: "sysfs-usb", path: "/dev/sda", transport: TransportUSB, removable: true, size: 60063744 * 512,
			model: "Ultra", vendor: "SanDisk", serial: "4C530001230101115353",
			parts: []part{{"sda1", 2048 * 512, []string{"/media/user/STICK"}, false}}},
		{tree: "sysfs-nvme", path: "/dev/nvme0n1", transport: TransportNVMe, size: 1953525168 * 512,
			model: "Samsung SSD 970 EVO Plus 1TB", serial: "S4EWNX0R123456",
			parts:  []part{{"nvme0n1p1", 2048 * 512, []string{"/boot/efi"}, false}, {"nvme0n1p2", 1050624 * 512, []string{"/"}, false}, {"nvme0n1p3", 1919272960 * 512, nil, true}},
			system: true, reason: "/dev/nvme0n1p2 is mounted at /"},
		{tree: "sysfs-sata", path: "/dev/sda", transport: TransportSATA, size: 1953525168 * 512,
			model: "WDC WD10EZEX-08W", vendor: "ATA",
			parts:  []part{{"sda1", 2048 * 512, []string{"/home"}, false}},
			system: true, reason: "/dev/sda1 is mounted at /home (through dm-0)"},
		{tree: "sysfs-loop", path: "/dev/loop0", transport: TransportLoop, size: 524288 * 512, model: "/srv/images/pi os.img"},
	}
	for _, tc := range tests {
		t.Run(tc.tree, func(t *testing.T) {
			devs, err := readSysfs(loadTree(t, tc.tree))
			if err != nil {
				t.Fatal(err)
			}
			if len(devs) != 1 {
				t.Fatalf("got %d disks, want 1: %+v", len(devs), devs)
			}
			d := devs[0]
			if d.Path != tc.path || d.Transport != tc.transport || d.Removable != tc.removable || d.Size != tc.size ||
				d.Model != tc.model || d.Vendor != tc.vendor || d.Serial != tc.serial || d.ReadOnly || d.SectorSize != 512 {
				t.Errorf("got %+v", d)
			}
			if len(d.Partitions) != len(tc.parts) {
				t.Fatalf("got partitions %+v, want %+v", d.Partitions, tc.parts)
			}
			for i, p := range tc.parts {
				g := d.Partitions[i]
				var mps []string
				for _, m := range g.Mounts {
					mps = append(mps, m.Point)
				}
				if g.Name != p.name || g.Path != "/dev/"+p.name || g.Start != p.start || g.Number != i+1 ||
					!reflect.DeepEqual(mps, p.mounts) || g.Swap != p.swap {
					t.Errorf("partition %d: got %+v, want %+v", i, g, p)
				}
			}
			sys, why := IsSystemDisk(d)
			if sys != tc.system || why != tc.reason {
				t.Errorf("IsSystemDisk = %v, %q; want %v, %q", sys, why, tc.system, tc.reason)
			}
		})
	}
}

func TestSysfsAll(t *testing.T) {
	in := loadTree(t, "sysfs-loop")
	in.all = true
	devs, err := readSysfs(in)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range devs {
		names = append(names, d.Name)
	}
	if want := []string{"loop0", "loop1", "ram0"}; !reflect.DeepEqual(names, want) {
		t.Errorf("ListAll names = %v, want %v", names, want)
	}
}

func TestIsSystemDisk(t *testing.T) {
	// The root filesystem on the NVMe disk, the USB stick under /media.
	nvme, err := readSysfs(loadTree(t, "sysfs-nvme"))
	if err != nil {
		t.Fatal(err)
	}
	in := loadTree(t, "sysfs-usb")
	usb, err := readSysfs(in)
	if err != nil {
		t.Fatal(err)
	}
	// Only the swap partition in use: still a system disk.
	d := nvme[0]
	d.Partitions[0].Mounts, d.Partitions[1].Mounts = nil, nil
	if sys, why := IsSystemDisk(d); !sys || why != "/dev/nvme0n1p3 is in use as swap space" {
		t.Errorf("swap only: %v %q", sys, why)
	}
	d.Partitions[2].Swap = false
	d.Partitions[1].Mounts = []Mount{{Point: "/"}}
	if sys, why := IsSystemDisk(d); !sys || why != "/dev/nvme0n1p2 is mounted at /" {
		t.Errorf("root only: %v %q", sys, why)
	}
	if sys, why := IsSystemDisk(usb[0]); sys {
		t.Errorf("usb stick under /media: %v %q", sys, why)
	}
	// The same stick mounted at /srv/data is treated as part of the system.
	u := usb[0]
	u.Partitions = append([]Partition(nil), u.Partitions...)
	u.Partitions[0].Mounts = []Mount{{Point: "/srv/data/x"}}
	if sys, why := IsSystemDisk(u); !sys || !strings.Contains(why, "outside the removable-media folders") {
		t.Errorf("stick at /srv/data/x: %v %q", sys, why)
	}
	err = CheckDevice(usb[0], 1<<30, 0)
	if err == nil || !strings.Contains(err.Error(), "/media/user/STICK") {
		t.Errorf("CheckDevice on a mounted stick: %v", err)
	}
	if rw := readWriteMounts(usb[0]); !reflect.DeepEqual(rw, []string{"/media/user/STICK"}) {
		t.Errorf("read-write mounts = %v", rw)
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/media/a\040b`:  "/media/a b",
		`/x\011y\012z`:   "/x\ty\nz",
		`/back\134slash`: `/back\slash`,
		`/end\04`:        `/end\04`,
		`/plain`:         "/plain",
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFindIn(t *testing.T) {
	devs, err := readSysfs(loadTree(t, "sysfs-mmc"))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := findIn(devs, "/dev/mmcblk0"); err != nil || d.Name != "mmcblk0" {
		t.Errorf("findIn disk: %v %v", d, err)
	}
	if _, err := findIn(devs, "/dev/mmcblk0p2"); err == nil || !strings.Contains(err.Error(), "give the whole disk /dev/mmcblk0") {
		t.Errorf("findIn partition: %v", err)
	}
}

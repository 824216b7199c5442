package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"imgtool/inspect"
	"imgtool/internal/testimg"
)

// sfdiskTable is what `sfdisk --json` prints.
type sfdiskTable struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		SectorSize int    `json:"sectorsize"`
		Partitions []struct {
			Node     string `json:"node"`
			Start    int64  `json:"start"`
			Size     int64  `json:"size"`
			Type     string `json:"type"`
			UUID     string `json:"uuid"`
			Name     string `json:"name"`
			Bootable bool   `json:"bootable"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

var nodeNumber = regexp.MustCompile(`(\d+)$`)

// checkAgainstSfdisk compares an inspect report with sfdisk's view of dev
// (the image file, or a loop device holding it for 4096-byte sectors).
func checkAgainstSfdisk(t *testing.T, rep *inspect.Report, dev string) {
	t.Helper()
	var sf sfdiskTable
	if err := json.Unmarshal([]byte(testimg.Run(t, "sfdisk", "--json", dev)), &sf); err != nil {
		t.Fatal(err)
	}
	pt := sf.PartitionTable
	wantTable := map[string]string{"dos": "mbr", "gpt": "gpt"}[pt.Label]
	if rep.Table != wantTable {
		t.Fatalf("table %q, sfdisk says %q", rep.Table, pt.Label)
	}
	ss := int64(pt.SectorSize)
	if ss == 0 {
		ss = 512
	}
	if int64(rep.SectorSize) != ss {
		t.Errorf("sector size %d, sfdisk says %d", rep.SectorSize, ss)
	}
	wantID := strings.ToLower(strings.TrimPrefix(pt.ID, "0x"))
	if rep.DiskID != wantID {
		t.Errorf("disk id %q, sfdisk says %q", rep.DiskID, wantID)
	}
	if len(rep.Partitions) != len(pt.Partitions) {
		t.Fatalf("%d partitions, sfdisk lists %d", len(rep.Partitions), len(pt.Partitions))
	}
	var end int64
	for i, sp := range pt.Partitions {
		p := rep.Partitions[i]
		num, _ := strconv.Atoi(nodeNumber.FindString(sp.Node))
		if p.Number != num {
			t.Errorf("partition %d: number %d, sfdisk %s", i, p.Number, sp.Node)
		}
		if p.Start != sp.Start*ss || p.Size != sp.Size*ss || p.End != p.Start+p.Size {
			t.Errorf("partition %d: start %d size %d end %d; sfdisk start %d size %d (×%d)", num, p.Start, p.Size, p.End, sp.Start, sp.Size, ss)
		}
		if p.End > end {
			end = p.End
		}
		if pt.Label == "dos" {
			typ, _ := strconv.ParseUint(sp.Type, 16, 8)
			if p.Type != fmt.Sprintf("0x%02x", typ) {
				t.Errorf("partition %d: type %q, sfdisk %q", num, p.Type, sp.Type)
			}
			if want := fmt.Sprintf("%s-%02x", wantID, num); p.UUID != want {
				t.Errorf("partition %d: uuid %q, want %q", num, p.UUID, want)
			}
			if p.Bootable != sp.Bootable {
				t.Errorf("partition %d: bootable %v, sfdisk %v", num, p.Bootable, sp.Bootable)
			}
		} else {
			if p.Type != strings.ToLower(sp.Type) || p.UUID != strings.ToLower(sp.UUID) || p.Name != sp.Name {
				t.Errorf("partition %d: type %q uuid %q name %q; sfdisk %q %q %q", num, p.Type, p.UUID, p.Name, sp.Type, sp.UUID, sp.Name)
			}
		}
	}
	if rep.EndOfLastPartition != end {
		t.Errorf("end_of_last_partition %d, want %d", rep.EndOfLastPartition, end)
	}
}

// blkid probes the filesystem at [off, off+size) of img.
func blkid(t *testing.T, img string, off, size int64) map[string]string {
	t.Helper()
	testimg.NeedTools(t, "blkid")
	prog, _ := testimg.LookPath("blkid")
	// Exit status 2 means nothing was found: an empty map.
	out, _ := exec.Command(prog, "-p", "-O", fmt.Sprint(off), "-S", fmt.Sprint(size), "-o", "export", img).Output()
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// checkFilesystems compares each recognised filesystem with blkid, and
// ext4 free space with dumpe2fs, FAT free space with minfo.
func checkFilesystems(t *testing.T, rep *inspect.Report, img string) {
	t.Helper()
	for _, p := range rep.Partitions {
		if p.Extended {
			continue
		}
		b := blkid(t, img, p.Start, p.Size)
		f := p.Filesystem
		if b["TYPE"] == "" {
			if f != nil {
				t.Errorf("partition %d: inspect says %s, blkid finds nothing", p.Number, f.Type)
			}
			continue
		}
		if f == nil {
			t.Errorf("partition %d: no filesystem, blkid says %s", p.Number, b["TYPE"])
			continue
		}
		if f.Type != b["TYPE"] || f.Label != b["LABEL"] || !strings.EqualFold(f.UUID, b["UUID"]) {
			t.Errorf("partition %d: %s %q %q; blkid %s %q %q", p.Number, f.Type, f.Label, f.UUID, b["TYPE"], b["LABEL"], b["UUID"])
		}
		if f.Type == "vfat" && f.Variant != b["VERSION"] {
			t.Errorf("partition %d: variant %s, blkid %s", p.Number, f.Variant, b["VERSION"])
		}
		switch f.Type {
		case "ext2", "ext3", "ext4":
			h := testimg.Run(t, "dumpe2fs", "-h", fmt.Sprintf("%s?offset=%d", img, p.Start))
			free, bs := dumpField(t, h, "Free blocks"), dumpField(t, h, "Block size")
			if f.Free != free*bs {
				t.Errorf("partition %d: free %d, dumpe2fs %d×%d", p.Number, f.Free, free, bs)
			}
			if f.Size != dumpField(t, h, "Block count")*bs || f.Used != f.Size-f.Free {
				t.Errorf("partition %d: size %d used %d free %d", p.Number, f.Size, f.Used, f.Free)
			}
		case "vfat":
			out := testimg.Run(t, "minfo", "-i", fmt.Sprintf("%s@@%d", img, p.Start))
			m := regexp.MustCompile(`free clusters=(\d+)`).FindStringSubmatch(out)
			if m == nil {
				continue // FAT12/16: minfo prints no free count; checked by the reader's tests
			}
			free, _ := strconv.ParseInt(m[1], 10, 64)
			if f.Free != free*f.BlockSize {
				t.Errorf("partition %d: free %d, minfo %d clusters × %d", p.Number, f.Free, free, f.BlockSize)
			}
		}
	}
}

func dumpField(t *testing.T, out, name string) int64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `:\s+(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("dumpe2fs output has no %q", name)
	}
	v, _ := strconv.ParseInt(m[1], 10, 64)
	return v
}

func inspectJSON(t *testing.T, img string, extra ...string) *inspect.Report {
	t.Helper()
	var rep inspect.Report
	mustJSON(t, &rep, append([]string{"inspect", img}, extra...)...)
	return &rep
}

func TestInspectPiMBR(t *testing.T) {
	dir := t.TempDir()
	img := testimg.PiImage(t, dir, testimg.PiOptions{})
	testimg.NeedTools(t, "blkid", "dumpe2fs", "minfo")
	rep := inspectJSON(t, img)
	checkAgainstSfdisk(t, rep, img)
	checkFilesystems(t, rep, img)
	if rep.Format != "raw" || rep.Path != img {
		t.Errorf("format %q path %q", rep.Format, rep.Path)
	}
	for _, p := range rep.Partitions {
		if p.Filesystem == nil || p.Filesystem.UsageSource != "bitmap" {
			t.Errorf("partition %d: want exact usage from the allocation map, got %+v", p.Number, p.Filesystem)
		}
	}
	if rep.FirstBoot != nil {
		t.Errorf("nothing is armed on a fresh image: %+v", rep.FirstBoot)
	}
	// Counters from the headers agree on a clean image.
	rc := inspectJSON(t, img, "--counters")
	checkFilesystems(t, rc, img)
}

func TestInspectFits(t *testing.T) {
	dir := t.TempDir()
	img := testimg.PiImage(t, dir, testimg.PiOptions{Size: 256 << 20})
	for _, c := range []struct {
		card             string
		whole, partition bool
	}{{"300M", true, true}, {"256M", true, true}, {"200M", false, false}, {"8GB", true, true}} {
		rep := inspectJSON(t, img, "--fits", c.card)
		if rep.Fits == nil || rep.Fits.Whole != c.whole || rep.Fits.Partitions != c.partition {
			t.Errorf("--fits %s: %+v", c.card, rep.Fits)
		}
		out, _, code := imgtool(t, "inspect", img, "--fits", c.card)
		want := "yes"
		if !c.partition {
			want = "no"
		}
		if code != 0 || !strings.Contains(out, "card: "+want) {
			t.Errorf("--fits %s text output lacks %q:\n%s", c.card, want, out)
		}
	}
	// The file is larger than what its partitions need.
	small := testimg.PiImage(t, t.TempDir(), testimg.PiOptions{Size: 256 << 20, RootSize: 100 << 20})
	rep := inspectJSON(t, small, "--fits", "200M")
	if !rep.Fits.Partitions || rep.Fits.Whole || rep.Fits.Margin != 200<<20-rep.EndOfLastPartition {
		t.Errorf("partitions fit but the file does not: %+v (end %d)", rep.Fits, rep.EndOfLastPartition)
	}
}

func TestInspectLogicalPartitions(t *testing.T) {
	testimg.NeedTools(t, "sfdisk", "blkid", "mkfs.ext4")
	img := filepath.Join(t.TempDir(), "logical.img")
	testimg.Sparse(t, img, 64<<20)
	testimg.RunIn(t, []byte("label: dos\nlabel-id: 0xdeadbeef\n2048,8192,83,*\n10240,,5\n12288,8192,83\n22528,8192,82\n32768,,b\n"), "sfdisk", "-q", img)
	part := filepath.Join(t.TempDir(), "p5")
	testimg.Sparse(t, part, 8192*512)
	testimg.Run(t, "mkfs.ext4", "-q", "-F", "-L", "logical5", part)
	testimg.CopyInto(t, img, part, 12288*512)
	rep := inspectJSON(t, img)
	checkAgainstSfdisk(t, rep, img)
	checkFilesystems(t, rep, img)
	var logical int
	for _, p := range rep.Partitions {
		if p.Logical {
			logical++
		}
	}
	if logical != 3 {
		t.Errorf("%d logical partitions, want 3", logical)
	}
}

func TestInspectGPT(t *testing.T) {
	testimg.NeedTools(t, "sgdisk", "sfdisk", "mkfs.vfat", "mkfs.ext4", "blkid", "dumpe2fs", "minfo")
	dir := t.TempDir()
	img := filepath.Join(dir, "gpt.img")
	testimg.Sparse(t, img, 128<<20)
	testimg.Run(t, "sgdisk", "-U", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
		"-n", "1:2048:+32M", "-t", "1:ef00", "-c", "1:EFI system",
		"-n", "2:0:0", "-t", "2:8300", "-c", "2:rootfs", "-A", "2:set:2", img)
	rep := inspectJSON(t, img)
	boot := filepath.Join(dir, "boot")
	testimg.Sparse(t, boot, rep.Partitions[0].Size)
	testimg.Run(t, "mkfs.vfat", "-F", "16", "-n", "EFI", boot)
	testimg.CopyInto(t, img, boot, rep.Partitions[0].Start)
	root := filepath.Join(dir, "root")
	testimg.Sparse(t, root, rep.Partitions[1].Size)
	testimg.Run(t, "mkfs.ext4", "-q", "-F", "-L", "root", root)
	testimg.CopyInto(t, img, root, rep.Partitions[1].Start)

	rep = inspectJSON(t, img)
	checkAgainstSfdisk(t, rep, img)
	checkFilesystems(t, rep, img)
	if rep.DiskID != "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0" {
		t.Errorf("disk id %q", rep.DiskID)
	}
	if !rep.Partitions[1].Bootable {
		t.Errorf("partition 2 has the legacy BIOS bootable attribute (sgdisk -A 2:set:2)")
	}
}

func TestInspectGPT4096(t *testing.T) {
	testimg.NeedRoot(t)
	testimg.NeedTools(t, "losetup", "sfdisk")
	img := filepath.Join(t.TempDir(), "gpt4k.img")
	testimg.Sparse(t, img, 64<<20)
	dev := strings.TrimSpace(testimg.Run(t, "losetup", "-f", "--show", "--sector-size", "4096", img))
	t.Cleanup(func() { testimg.Run(t, "losetup", "-d", dev) })
	testimg.RunIn(t, []byte("label: gpt\nsize=4096, type=L, name=boot\ntype=L, name=data\n"), "sfdisk", "-q", "--no-reread", dev)
	rep := inspectJSON(t, img)
	if rep.SectorSize != 4096 {
		t.Fatalf("sector size %d, want 4096", rep.SectorSize)
	}
	checkAgainstSfdisk(t, rep, dev)
}

func TestInspectHybridMBR(t *testing.T) {
	testimg.NeedTools(t, "sgdisk", "sfdisk")
	img := filepath.Join(t.TempDir(), "hybrid.img")
	testimg.Sparse(t, img, 64<<20)
	testimg.Run(t, "sgdisk", "-n", "1:2048:+16M", "-t", "1:0700", "-n", "2:0:0", "-t", "2:8300", img)
	testimg.Run(t, "sgdisk", "-h", "1", img)
	rep := inspectJSON(t, img)
	if rep.Table != "gpt" {
		t.Fatalf("hybrid MBR image reads as %q, want gpt", rep.Table)
	}
	checkAgainstSfdisk(t, rep, img)
}

func TestInspectBareFilesystems(t *testing.T) {
	testimg.NeedTools(t, "mkfs.ext4", "mkfs.vfat", "blkid", "dumpe2fs", "minfo", "mkswap")
	dir := t.TempDir()
	for _, c := range []struct {
		name, typ string
		mk        func(path string)
	}{
		{"ext4", "ext4", func(p string) { testimg.Run(t, "mkfs.ext4", "-q", "-F", "-L", "bare", p) }},
		{"fat32", "vfat", func(p string) { testimg.Run(t, "mkfs.vfat", "-F", "32", "-n", "BARE", p) }},
		{"swap", "swap", func(p string) { testimg.Run(t, "mkswap", "-L", "sw", p) }},
	} {
		img := filepath.Join(dir, c.name)
		testimg.Sparse(t, img, 64<<20)
		c.mk(img)
		rep := inspectJSON(t, img)
		if rep.Table != "none" || len(rep.Partitions) != 1 || rep.Partitions[0].Start != 0 || rep.Partitions[0].Size != 64<<20 {
			t.Errorf("%s: table %q partitions %+v", c.name, rep.Table, rep.Partitions)
			continue
		}
		if f := rep.Partitions[0].Filesystem; f == nil || f.Type != c.typ {
			t.Errorf("%s: filesystem %+v", c.name, f)
			continue
		}
		if c.typ != "swap" {
			checkFilesystems(t, rep, img)
		}
	}
	// Nothing recognisable: filesystem null, not an error.
	zero := filepath.Join(dir, "zero")
	testimg.Sparse(t, zero, 1<<20)
	out, _, code := imgtool(t, "inspect", "--json", zero)
	if code != 0 || !strings.Contains(out, `"filesystem": null`) {
		t.Errorf("all-zero image: exit %d\n%s", code, out)
	}
}

func TestInspectTruncated(t *testing.T) {
	img := testimg.PiImage(t, t.TempDir(), testimg.PiOptions{})
	st, _ := os.Stat(img)
	if err := os.Truncate(img, st.Size()-50<<20); err != nil {
		t.Fatal(err)
	}
	rep := inspectJSON(t, img)
	last := rep.Partitions[len(rep.Partitions)-1]
	if !last.Truncated || len(rep.Warnings) == 0 {
		t.Errorf("truncated image: last partition %+v, warnings %v", last, rep.Warnings)
	}
	if last.End != st.Size() || rep.EndOfLastPartition != st.Size() {
		t.Errorf("the table's view of the end must be kept: end %d, want %d", last.End, st.Size())
	}
	out, _, code := imgtool(t, "inspect", img)
	if code != 0 || !strings.Contains(out, "past end of image") {
		t.Errorf("text output does not flag the truncation (exit %d):\n%s", code, out)
	}
}

func TestInspectCorruptPrimaryGPT(t *testing.T) {
	testimg.NeedTools(t, "sgdisk", "sfdisk")
	dir := t.TempDir()
	img := filepath.Join(dir, "gpt.img")
	testimg.Sparse(t, img, 64<<20)
	testimg.Run(t, "sgdisk", "-n", "1:2048:+16M", "-c", "1:one", "-n", "2:0:0", "-c", "2:two", img)
	before := inspectJSON(t, img)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("garbage!"), 512+16); err != nil { // inside the header CRC field
		t.Fatal(err)
	}
	f.Close()
	after := inspectJSON(t, img)
	if len(after.Warnings) == 0 || !strings.Contains(strings.ToLower(strings.Join(after.Warnings, " ")), "backup") {
		t.Errorf("no warning about using the backup GPT: %v", after.Warnings)
	}
	if len(after.Partitions) != len(before.Partitions) {
		t.Fatalf("partitions differ after corrupting the primary header")
	}
	for i := range before.Partitions {
		b, a := before.Partitions[i], after.Partitions[i]
		if a.Start != b.Start || a.Size != b.Size || a.UUID != b.UUID || a.Name != b.Name {
			t.Errorf("partition %d: %+v, before %+v", b.Number, a, b)
		}
	}
}

// TestInspectFirstBoot checks the "First boot" section on an image whose
// boot partition holds files in the shapes Raspberry Pi Imager writes.
func TestInspectFirstBoot(t *testing.T) {
	dir := t.TempDir()
	boot := filepath.Join(dir, "boot")
	must(t, os.MkdirAll(boot, 0o755))
	for name, text := range map[string]string{
		"cmdline.txt": "console=tty1 root=PARTUUID=1234abcd-02 rootwait quiet systemd.run=/boot/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target cfg80211.ieee80211_regdom=NL\n",
		"firstrun.sh": "#!/bin/sh\nset +e\nif [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then\n" +
			"   /usr/lib/raspberrypi-sys-mods/imager_custom set_hostname lab-pi\n" +
			"   /usr/lib/raspberrypi-sys-mods/imager_custom enable_ssh -k 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey lab@host'\nfi\n" +
			"if [ -f /usr/lib/userconf-pi/userconf ]; then\n   /usr/lib/userconf-pi/userconf 'lab' '$6$salt$SECRETHASH'\nfi\n" +
			"/usr/lib/raspberrypi-sys-mods/imager_custom set_wlan 'Lab Net' 'SECRETPSK' 'NL'\n" +
			"/usr/lib/raspberrypi-sys-mods/imager_custom set_timezone 'Europe/Amsterdam'\n" +
			"rm -f /boot/firstrun.sh\nsed -i 's| systemd.run.*||g' /boot/cmdline.txt\nexit 0\n",
		"ssh": "",
	} {
		must(t, os.WriteFile(filepath.Join(boot, name), []byte(text), 0o644))
	}
	img := testimg.PiImage(t, dir, testimg.PiOptions{BootFiles: boot})
	out, stderr, code := imgtool(t, "inspect", img)
	if code != 0 {
		t.Fatal(stderr)
	}
	for _, want := range []string{
		"First boot (armed):\n",
		"  firstrun.sh  boot:/firstrun.sh — systemd.run=/boot/firstrun.sh in cmdline.txt\n",
		"  ssh          boot:/ssh — enables the SSH server on boot",
		"  host name    lab-pi\n",
		"  user         lab (password set)\n",
		"  SSH          enabled, 1 authorized key, password login disabled\n",
		"  Wi-Fi        \"Lab Net\" (key set), country NL\n",
		"  time zone    Europe/Amsterdam\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "SECRET") {
		t.Errorf("inspect shows a secret:\n%s", out)
	}
	rep := inspectJSON(t, img)
	fb := rep.FirstBoot
	if fb == nil || len(fb.Sources) != 2 || fb.Hostname != "lab-pi" || fb.User != "lab" || !fb.PasswordSet || fb.SSHKeys != 1 ||
		fb.SSHPasswordAuth != "disabled" || fb.WifiSSID != "Lab Net" || fb.WifiCountry != "NL" || fb.Timezone != "Europe/Amsterdam" {
		t.Errorf("first_boot %+v", fb)
	}
	js, _, _ := imgtool(t, "inspect", "--json", img)
	if strings.Contains(js, "SECRET") || !strings.Contains(js, `"first_boot": {`) {
		t.Errorf("inspect --json:\n%s", js)
	}
}

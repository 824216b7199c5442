package shrink

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"imgtool/expand"
	"imgtool/fs"
	"imgtool/internal/testimg"
)

// TestFallbackScriptGrowsLoopDevice writes a shrunk image onto a larger
// file, attaches it (and its root partition, with an offset) to loop
// devices and runs the installed script on them: the partition and the
// filesystem must reach the end of the disk.
func TestFallbackScriptGrowsLoopDevice(t *testing.T) { testFallbackScript(t, false) }

// TestFallbackScriptGrowsGPT does the same on a GPT image: the script must
// move the backup header to the end of the larger disk first.
func TestFallbackScriptGrowsGPT(t *testing.T) { testFallbackScript(t, true) }

func testFallbackScript(t *testing.T, gpt bool) {
	testimg.NeedRoot(t)
	testimg.NeedTools(t, "losetup", "sfdisk", "mkfs.ext4", "mkfs.vfat", "mcopy", "e2fsck", "resize2fs", "dumpe2fs", "fsck.vfat")
	useEngine(t)
	dir := t.TempDir()
	opts := testimg.PiOptions{Size: 256 * MiB, RootFiles: rootFiles(t, 10), BootFiles: bootFiles(t, piCmdline)}
	if gpt {
		testimg.NeedTools(t, "sgdisk")
		opts.RootSize = 256*MiB - 68*MiB - MiB // room for the GPT backup
	}
	img := testimg.PiImage(t, dir, opts)
	if gpt {
		testimg.Run(t, "sgdisk", "-g", img)
		if tbl, _ := readTable(t, img); tbl.Kind.String() != "gpt" {
			t.Fatalf("the image did not become GPT")
		}
	}
	res, err := Apply(context.Background(), img, Options{Slack: -1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Expansion == nil || res.Expansion.Mechanism != expand.Imgtool {
		t.Fatalf("expansion %+v", res.Expansion)
	}
	// The script as written into the image.
	tbl, _ := readTable(t, img)
	rootPart := tbl.Partitions[1]
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fsys, _, err := fs.Open(io.NewSectionReader(f, rootPart.Start, rootPart.Size), rootPart.Size, fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	script, err := fsys.ReadFile(expand.ScriptPath)
	if err != nil {
		t.Fatal(err)
	}
	scriptFile := filepath.Join(dir, "expand.sh")
	os.WriteFile(scriptFile, script, 0o755)

	const diskSize = 768 * MiB
	disk := filepath.Join(dir, "card.img")
	testimg.Sparse(t, disk, diskSize)
	testimg.CopyInto(t, disk, img, 0)
	loop := func(args ...string) string {
		out, err := exec.Command("losetup", append([]string{"-f", "--show"}, args...)...).Output()
		if err != nil {
			t.Fatalf("losetup: %v", err)
		}
		dev := strings.TrimSpace(string(out))
		t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
		return dev
	}
	diskDev := loop(disk)
	partDev := loop("-o", strconv.FormatInt(rootPart.Start, 10), disk)
	root := filepath.Join(dir, "sysroot")
	link := filepath.Join(root, expand.WantsLink)
	os.MkdirAll(filepath.Dir(link), 0o755)
	os.Symlink(expand.LinkTarget, link)

	cmd := exec.Command("sh", scriptFile)
	cmd.Env = append(os.Environ(), "IMGTOOL_EXPAND_DEVICE="+diskDev, "IMGTOOL_EXPAND_PARTITION="+partDev, "IMGTOOL_EXPAND_ROOT="+root)
	out, err := cmd.CombinedOutput()
	t.Logf("script:\n%s", out)
	if err != nil {
		t.Fatalf("script: %v", err)
	}
	exec.Command("losetup", "-d", partDev).Run()
	exec.Command("losetup", "-d", diskDev).Run()
	if _, err := os.Lstat(link); err == nil {
		t.Error("the script did not disable its unit")
	}
	var dump struct {
		PartitionTable struct {
			Partitions []struct{ Start, Size int64 } `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(testimg.Run(t, "sfdisk", "--json", disk)), &dump); err != nil {
		t.Fatal(err)
	}
	p := dump.PartitionTable.Partitions[1]
	end := (p.Start + p.Size) * 512
	if p.Start*512 != rootPart.Start || end < diskSize-MiB {
		t.Errorf("partition 2 is %d+%d sectors; want start %d and an end near %d", p.Start, p.Size, rootPart.Start/512, diskSize/512)
	}
	h := testimg.Run(t, "dumpe2fs", "-h", fmt.Sprintf("%s?offset=%d", disk, rootPart.Start))
	blocks := field(t, h, "Block count")
	bs := field(t, h, "Block size")
	if fsBytes := blocks * bs; fsBytes > p.Size*512 || fsBytes < p.Size*512-bs {
		t.Errorf("filesystem is %d bytes, partition %d", fsBytes, p.Size*512)
	}
	if gpt {
		if out := testimg.Run(t, "sgdisk", "-v", disk); !strings.Contains(out, "No problems found") {
			t.Errorf("sgdisk -v after the script:\n%s", out)
		}
	}
	fsckAll(t, disk)
}

func field(t *testing.T, dump, name string) int64 {
	m := regexp.MustCompile(`(?m)^` + name + `:\s+(\d+)`).FindStringSubmatch(dump)
	if m == nil {
		t.Fatalf("dumpe2fs: no %s", name)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

package part_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"imgtool/internal/testimg"
	"imgtool/part"
	"imgtool/part/gpt"
	"imgtool/part/mbr"
)

const mib = testimg.MiB

func TestKindString(t *testing.T) {
	for k, want := range map[part.Kind]string{part.None: "none", part.MBR: "mbr", part.GPT: "gpt"} {
		if k.String() != want {
			t.Errorf("%d: %q, want %q", k, k.String(), want)
		}
	}
}

func TestMBRPi(t *testing.T) {
	dir := t.TempDir()
	img := testimg.PiImage(t, dir, testimg.PiOptions{Size: 100 * mib, BootSize: 40 * mib})
	tbl := readImage(t, img)
	compareSfdisk(t, tbl, sfdiskJSON(t, img))
	if tbl.DiskID != "1234abcd" || len(tbl.Partitions) != 2 {
		t.Fatalf("disk id %q, %d partitions", tbl.DiskID, len(tbl.Partitions))
	}
	p := tbl.Partitions[0]
	if p.TypeName != "W95 FAT32 (LBA)" || p.UUID != "1234abcd-01" || tbl.Partitions[1].TypeName != "Linux" {
		t.Errorf("partition 1: %+v", p)
	}
	if len(tbl.Warnings) != 0 {
		t.Errorf("warnings: %q", tbl.Warnings)
	}
	// The section holds the FAT boot sector written by mkfs.vfat.
	b := make([]byte, 512)
	if _, err := p.Section().ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	if string(b[82:90]) != "FAT32   " {
		t.Errorf("partition 1 does not start with a FAT32 boot sector: %q", b[82:90])
	}
}

// logicalImage makes a 32 MiB MBR image with a primary, an extended
// partition and three logical partitions.
func logicalImage(t *testing.T, dir string) string {
	img := filepath.Join(dir, "logical.img")
	testimg.Sparse(t, img, 32*mib)
	script := "label: dos\nlabel-id: 0x1234abcd\n2048,2048,c,*\n4096,30720,5\n6144,2048,83\n10240,2048,82\n14336,,83\n"
	testimg.RunIn(t, []byte(script), "sfdisk", "-q", img)
	return img
}

func TestMBRLogical(t *testing.T) {
	testimg.NeedTools(t, "sfdisk")
	img := logicalImage(t, t.TempDir())
	tbl := readImage(t, img)
	compareSfdisk(t, tbl, sfdiskJSON(t, img))
	if n := len(tbl.Partitions); n != 5 {
		t.Fatalf("%d partitions, want 5", n)
	}
	if p := tbl.Partitions[2]; p.Number != 5 || !p.Logical || p.UUID != "1234abcd-05" || p.TypeName != "Linux" {
		t.Errorf("first logical: %+v", p)
	}
	if p := tbl.Partitions[1]; !p.Extended || p.TypeName != "Extended" {
		t.Errorf("extended: %+v", p)
	}
}

func TestEmptyMBR(t *testing.T) {
	testimg.NeedTools(t, "sfdisk")
	img := filepath.Join(t.TempDir(), "empty.img")
	testimg.Sparse(t, img, 4*mib)
	testimg.RunIn(t, []byte("label: dos\nlabel-id: 0xdeadbeef\n"), "sfdisk", "-q", img)
	tbl := readImage(t, img)
	compareSfdisk(t, tbl, sfdiskJSON(t, img))
	if tbl.Kind != part.MBR || len(tbl.Partitions) != 0 || tbl.DiskID != "deadbeef" {
		t.Errorf("%+v", tbl)
	}
}

// gptImage makes a 16 MiB GPT image with three partitions, names and
// attributes.
func gptImage(t *testing.T, dir string) string {
	testimg.NeedTools(t, "sgdisk")
	img := filepath.Join(dir, "gpt.img")
	testimg.Sparse(t, img, 16*mib)
	testimg.Run(t, "sgdisk",
		"-n", "1:2048:+2M", "-t", "1:ef00", "-c", "1:EFI system",
		"-n", "2:0:+3M", "-t", "2:8300", "-c", "2:rööt ✓", "-A", "2:set:2", "-A", "2:set:60",
		"-n", "4:0:+1M", "-t", "4:8200", "-c", "4:swap", "-A", "4:set:0",
		img)
	return img
}

func TestGPT512(t *testing.T) {
	testimg.NeedTools(t, "sgdisk", "sfdisk")
	img := gptImage(t, t.TempDir())
	tbl := readImage(t, img)
	compareSfdisk(t, tbl, sfdiskJSON(t, img))
	compareSgdisk(t, tbl, img)
	if tbl.Hybrid || tbl.MBR == nil || !tbl.MBR.Protective() || len(tbl.Warnings) != 0 {
		t.Errorf("hybrid %v, mbr %+v, warnings %q", tbl.Hybrid, tbl.MBR, tbl.Warnings)
	}
	names := []string{"EFI System", "Linux filesystem", "Linux swap"}
	for i, p := range tbl.Partitions {
		if p.TypeName != names[i] {
			t.Errorf("partition %d: type name %q, want %q", p.Number, p.TypeName, names[i])
		}
	}
	if a := gpt.Attributes(tbl.Partitions[1].Attributes); a.TypeSpecific() != 1<<12 || a.String() != "legacy-bios-bootable,bit60" {
		t.Errorf("attributes %v", a)
	}
}

// loopDevice attaches img with the given logical sector size and returns
// the device; it is detached in t.Cleanup.
func loopDevice(t *testing.T, img string, sectorSize int) string {
	t.Helper()
	testimg.NeedRoot(t)
	testimg.NeedTools(t, "losetup")
	dev := strings.TrimSpace(testimg.Run(t, "losetup", "--find", "--show", "--sector-size", strconv.Itoa(sectorSize), img))
	if !strings.HasPrefix(dev, "/dev/loop") {
		t.Fatalf("losetup gave %q", dev)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v %s", dev, err, out)
		}
	})
	return dev
}

// gpt4096Image makes a GPT with 4096-byte sectors on a loop device and
// returns the image with sfdisk's view of it.
func gpt4096Image(t *testing.T, dir string) (string, sfTable) {
	testimg.NeedTools(t, "sfdisk", "sgdisk")
	img := filepath.Join(dir, "gpt4k.img")
	testimg.Sparse(t, img, 16*mib)
	dev := loopDevice(t, img, 4096)
	testimg.RunIn(t, []byte("label: gpt\n,2M,U\n,4M,L\n"), "sfdisk", "-q", dev)
	testimg.Run(t, "sgdisk", "-c", "1:esp", "-c", "2:root", "-A", "2:set:2", dev)
	sf := sfdiskJSON(t, dev)
	if sf.PartitionTable.SectorSize != 4096 {
		t.Fatalf("sfdisk reports %d-byte sectors on the loop device", sf.PartitionTable.SectorSize)
	}
	return img, sf
}

func TestGPT4096(t *testing.T) {
	img, sf := gpt4096Image(t, t.TempDir())
	tbl := readImage(t, img)
	compareSfdisk(t, tbl, sf)
	if tbl.SectorSize != 4096 || len(tbl.Partitions) != 2 || tbl.Partitions[0].Name != "esp" || !tbl.Partitions[1].Bootable {
		t.Errorf("%+v", tbl)
	}
	if tbl.MBR == nil || tbl.MBR.SectorSize != 4096 || !tbl.MBR.Protective() {
		t.Errorf("protective MBR %+v", tbl.MBR)
	}
}

func TestHybridMBR(t *testing.T) {
	testimg.NeedTools(t, "sgdisk", "sfdisk")
	img := gptImage(t, t.TempDir())
	testimg.Run(t, "sgdisk", "-h", "1", img)
	tbl := readImage(t, img)
	compareSfdisk(t, tbl, sfdiskJSON(t, img))
	if !tbl.Hybrid || tbl.Kind != part.GPT {
		t.Fatalf("kind %v hybrid %v", tbl.Kind, tbl.Hybrid)
	}
	var mirrored bool
	for _, p := range tbl.MBR.Partitions {
		if p.Type != mbr.GPTProtect && int64(p.Start)*512 == tbl.Partitions[0].Start {
			mirrored = true
		}
	}
	if !mirrored {
		t.Errorf("hybrid MBR does not mirror partition 1: %+v", tbl.MBR.Partitions)
	}
}

func checkNone(t *testing.T, img string, size int64, fsType string) {
	t.Helper()
	tbl := readImage(t, img)
	if tbl.Kind != part.None || tbl.DiskID != "" || len(tbl.Partitions) != 1 {
		t.Fatalf("kind %v, id %q, partitions %+v", tbl.Kind, tbl.DiskID, tbl.Partitions)
	}
	p := tbl.Partitions[0]
	if p.Number != 1 || p.Start != 0 || p.Size != size || p.Type != "" || p.Section().Size() != size {
		t.Errorf("pseudo-partition %+v", p)
	}
	// libblkid agrees: a filesystem and no partition table. (sfdisk
	// reports an empty DOS table for any sector ending in 0x55AA.)
	out := testimg.Run(t, "blkid", "-p", "-o", "export", img)
	if strings.Contains(out, "PTTYPE=") || !strings.Contains(out, "TYPE="+fsType+"\n") {
		t.Errorf("blkid -p:\n%s", out)
	}
}

func TestBareExt4(t *testing.T) {
	testimg.NeedTools(t, "mkfs.ext4", "blkid")
	img := filepath.Join(t.TempDir(), "ext4.img")
	testimg.Sparse(t, img, 8*mib)
	testimg.Run(t, "mkfs.ext4", "-q", "-F", img)
	checkNone(t, img, 8*mib, "ext4")
}

func TestBareFAT32(t *testing.T) {
	testimg.NeedTools(t, "mkfs.vfat", "blkid")
	img := filepath.Join(t.TempDir(), "fat.img")
	testimg.Sparse(t, img, 40*mib)
	testimg.Run(t, "mkfs.vfat", "-F", "32", img)
	checkNone(t, img, 40*mib, "vfat")
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := mbr.Read(f, 40*mib, 512); !errors.Is(err, mbr.ErrNotPartitionTable) {
		t.Errorf("mbr.Read: %v, want ErrNotPartitionTable", err)
	}
}

func TestZeroImage(t *testing.T) {
	tbl, err := part.Read(bytes.NewReader(make([]byte, 64<<10)), 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Kind != part.None || len(tbl.Partitions) != 1 || tbl.Partitions[0].Size != 64<<10 {
		t.Errorf("%+v", tbl)
	}
	for _, size := range []int64{0, 100} {
		tbl, err := part.Read(bytes.NewReader(make([]byte, size)), size)
		if err != nil || tbl.Kind != part.None || tbl.Partitions[0].Size != size {
			t.Errorf("size %d: %+v, %v", size, tbl, err)
		}
	}
	if _, err := part.Read(bytes.NewReader(nil), -1); !errors.Is(err, part.ErrInvalidSize) {
		t.Errorf("negative size: %v", err)
	}
}

func TestTruncatedMBR(t *testing.T) {
	testimg.NeedTools(t, "sfdisk")
	img := logicalImage(t, t.TempDir())
	full := readImage(t, img)
	last := full.Partitions[len(full.Partitions)-1]
	cut := last.Start + last.Size/2
	if err := os.Truncate(img, cut); err != nil {
		t.Fatal(err)
	}
	tbl := readImage(t, img)
	if len(tbl.Partitions) != len(full.Partitions) {
		t.Fatalf("%d partitions after truncation, want %d", len(tbl.Partitions), len(full.Partitions))
	}
	for i, p := range tbl.Partitions {
		wantTrunc := p.End() > cut
		if p.Truncated != wantTrunc || p.Start != full.Partitions[i].Start || p.Size != full.Partitions[i].Size {
			t.Errorf("partition %d: %+v (truncated want %v)", p.Number, p, wantTrunc)
		}
	}
	if got := tbl.Partitions[len(tbl.Partitions)-1].Section().Size(); got != cut-last.Start {
		t.Errorf("section of the truncated partition: %d bytes, want %d", got, cut-last.Start)
	}
	if !hasWarning(tbl, "past the end") {
		t.Errorf("no truncation warning: %q", tbl.Warnings)
	}
}

func TestTruncatedGPT(t *testing.T) {
	img := gptImage(t, t.TempDir())
	full := readImage(t, img)
	last := full.Partitions[len(full.Partitions)-1]
	cut := last.Start + last.Size/2
	if err := os.Truncate(img, cut); err != nil {
		t.Fatal(err)
	}
	tbl := readImage(t, img)
	if tbl.Kind != part.GPT || len(tbl.Partitions) != 3 || !tbl.Partitions[2].Truncated || tbl.Partitions[1].Truncated {
		t.Fatalf("%+v", tbl.Partitions)
	}
	if !hasWarning(tbl, "backup GPT header") || !hasWarning(tbl, "past the end") {
		t.Errorf("warnings %q", tbl.Warnings)
	}
}

// corrupt overwrites n bytes at off with 0xff.
func corrupt(t *testing.T, img string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xff}, n), off); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptPrimaryGPT(t *testing.T) {
	img := gptImage(t, t.TempDir())
	want := sfdiskJSON(t, img) // before the damage
	corrupt(t, img, 512+24, 8) // MyLBA of the primary header
	tbl := readImage(t, img)
	compareSfdisk(t, tbl, want)
	compareSgdisk(t, tbl, img)
	if !tbl.GPT.UsedBackup || !hasWarning(tbl, "primary GPT header at LBA 1 is corrupt; using the backup at LBA 32767") {
		t.Errorf("used backup %v, warnings %q", tbl.GPT.UsedBackup, tbl.Warnings)
	}
}

func TestCorruptBackupGPT(t *testing.T) {
	img := gptImage(t, t.TempDir())
	want := sfdiskJSON(t, img)
	corrupt(t, img, 16*mib-512+40, 4) // FirstUsableLBA of the backup header
	tbl := readImage(t, img)
	compareSfdisk(t, tbl, want)
	if tbl.GPT.UsedBackup || !hasWarning(tbl, "backup GPT header at LBA 32767 is corrupt") {
		t.Errorf("used backup %v, warnings %q", tbl.GPT.UsedBackup, tbl.Warnings)
	}
}

func TestCorruptBothGPT(t *testing.T) {
	img := gptImage(t, t.TempDir())
	corrupt(t, img, 512, 8)
	corrupt(t, img, 16*mib-512, 8)
	tbl := readImage(t, img)
	// The protective MBR is shown, with a warning.
	if tbl.Kind != part.MBR || !hasWarning(tbl, "no valid GPT") {
		t.Errorf("kind %v, warnings %q", tbl.Kind, tbl.Warnings)
	}
	f, _ := os.Open(img)
	defer f.Close()
	_, err := gpt.Read(f, 16*mib)
	var fe *gpt.FormatError
	if !errors.Is(err, gpt.ErrNoHeader) || !errors.As(err, &fe) || fe.Off != 512 {
		t.Errorf("gpt.Read: %v", err)
	}
}

func TestPartitionWriterAt(t *testing.T) {
	testimg.NeedTools(t, "sfdisk")
	img := logicalImage(t, t.TempDir())
	tbl := readImage(t, img)
	p := tbl.Partitions[2]
	buf := &memImage{b: make([]byte, 32*mib)}
	w := p.WriterAt(buf)
	if _, err := w.WriteAt([]byte("end"), p.Size-3); err != nil {
		t.Fatal(err)
	}
	if string(buf.b[p.End()-3:p.End()]) != "end" {
		t.Errorf("write landed elsewhere")
	}
	for _, off := range []int64{-1, p.Size - 2, p.Size, 1 << 62} {
		if n, err := w.WriteAt([]byte("xyz"), off); !errors.Is(err, part.ErrOutside) || n != 0 {
			t.Errorf("write at %d: %d, %v", off, n, err)
		}
	}
}

// memImage is an in-memory io.WriterAt and io.ReaderAt.
type memImage struct{ b []byte }

func (m *memImage) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, io.ErrShortWrite
	}
	return copy(m.b[off:], p), nil
}

func (m *memImage) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(m.b).ReadAt(p, off)
}

package fat

import (
	"bytes"
	"imgtool/internal/testimg"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReplaceFile grows and shrinks a file in place on FAT12/16/32 images
// made by mkfs.vfat and checks the result with fsck.vfat -n and the reader.
func TestReplaceFile(t *testing.T) {
	testimg.NeedTools(t, "mkfs.vfat", "mcopy", "fsck.vfat")
	for _, bits := range []string{"12", "16", "32"} {
		t.Run("FAT"+bits, func(t *testing.T) {
			dir := t.TempDir()
			img := filepath.Join(dir, "f.img")
			size := map[string]int64{"12": 4 << 20, "16": 32 << 20, "32": 64 << 20}[bits]
			os.WriteFile(img, nil, 0o644)
			os.Truncate(img, size)
			runTool(t, "mkfs.vfat", "-F", bits, img)
			src := filepath.Join(dir, "cmdline.txt")
			os.WriteFile(src, []byte("console=tty1 root=/dev/mmcblk0p2\n"), 0o644)
			runTool(t, "mcopy", "-i", img, src, "::/cmdline.txt")
			os.WriteFile(src, []byte("other"), 0o644)
			runTool(t, "mcopy", "-i", img, src, "::/after.txt")
			for _, data := range [][]byte{
				[]byte("console=tty1 root=/dev/mmcblk0p2 init=/usr/lib/raspberrypi-sys-mods/firstboot\n"),
				bytes.Repeat([]byte("x"), 70000), // several clusters
				[]byte("short\n"),
				{},
				[]byte("again\n"),
			} {
				f, err := os.OpenFile(img, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				if err := ReplaceFile(f, size, "cmdline.txt", data); err != nil {
					t.Fatal(err)
				}
				fsys, err := New(f, size)
				if err != nil {
					t.Fatal(err)
				}
				got, err := fsys.ReadFile("cmdline.txt")
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("read back %d bytes (%v), want %d", len(got), err, len(data))
				}
				if b, _ := fsys.ReadFile("after.txt"); string(b) != "other" {
					t.Fatalf("other file changed: %q", b)
				}
				f.Close()
				if out, err := exec.Command("fsck.vfat", "-n", img).CombinedOutput(); err != nil || strings.Contains(string(out), "differ") {
					t.Fatalf("fsck.vfat -n after writing %d bytes: %v\n%s", len(data), err, out)
				}
			}
		})
	}
}

func runTool(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

package ext4

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"imgtool/internal/testimg"
)

func TestCheckCorruptedBitmaps(t *testing.T) {
	testimg.NeedTools(t, "mkfs.ext4", "debugfs", "e2fsck")
	for _, mkfs := range [][]string{{"-b", "4096"}, {"-b", "1024", "-O", "^metadata_csum,^64bit"}, {"-t", "ext3"}} {
		t.Run(strings.Join(mkfs, ""), func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src")
			os.MkdirAll(src, 0o755)
			os.WriteFile(filepath.Join(src, "a"), bytes.Repeat([]byte("a"), 300000), 0o644)
			os.WriteFile(filepath.Join(src, "b"), []byte("b"), 0o644)
			img := filepath.Join(dir, "fs.img")
			testimg.Sparse(t, img, 64<<20)
			testimg.Run(t, "mkfs.ext4", append(append([]string{"-q", "-F"}, mkfs...), "-d", src, img)...)
			clean, _ := os.ReadFile(img)
			rep, err := Check(bytes.NewReader(clean), int64(len(clean)))
			if err != nil || len(rep.Warnings) > 0 {
				t.Fatalf("clean image: %v, warnings %v", err, rep.Warnings)
			}
			f, err := New(bytes.NewReader(clean), int64(len(clean)))
			if err != nil {
				t.Fatal(err)
			}
			used, err := strconv.Atoi(strings.TrimSpace(testimg.Run(t, "debugfs", "-R", "bmap /a 3", img)))
			if err != nil {
				t.Fatal(err)
			}
			free := f.blocks - 5
			out := testimg.Run(t, "debugfs", "-R", "stat /b", img)
			var ino int
			fmt.Sscanf(out[strings.Index(out, "Inode:"):], "Inode: %d", &ino)
			testimg.RunIn(t, []byte(fmt.Sprintf("freeb %d\nsetb %d\nfreei <%d>\n", used, free, ino)), "debugfs", "-w", "-f", "-", img)
			bad, _ := os.ReadFile(img)
			// e2fsck agrees that this is broken.
			if out, rc := runRC(t, "e2fsck", "-fn", img); rc == 0 {
				t.Fatalf("e2fsck -fn finds nothing:\n%s", out)
			}
			rep, err = Check(bytes.NewReader(bad), int64(len(bad)))
			var ce *CheckError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Check: %v; want a *CheckError", err)
			}
			if !strings.Contains(err.Error(), "run e2fsck -f") {
				t.Errorf("error does not say what to do: %v", err)
			}
			grp := (uint64(used) - f.firstData) / f.bpg
			want := fmt.Sprintf("block %d (group %d) is used by inode ", used, grp)
			found, inodeFree := false, false
			for _, it := range rep.Errors {
				if strings.Contains(it.Msg, want) && it.Kind == CheckUsedButFree && it.Group == int64(grp) {
					found = true
				}
				if it.Kind == CheckInodeFree && it.Inode == int64(ino) {
					inodeFree = true
				}
				if it.Kind == CheckLeak {
					t.Errorf("a leak among the errors: %s", it.Msg)
				}
			}
			if !found || !inodeFree {
				t.Errorf("errors %v; want %q and inode %d free", rep.Errors, want, ino)
			}
			leak := false
			for _, it := range rep.Warnings {
				if it.Kind == CheckLeak && it.Block == int64(free) && it.Count == 1 {
					leak = true
				}
			}
			if !leak {
				t.Errorf("warnings %v; want block %d leaked", rep.Warnings, free)
			}
			// A leak alone is a warning, not an error.
			leakOnly := bytes.Clone(clean)
			p := writeTemp(t, dir, "leak.img", leakOnly)
			testimg.Run(t, "debugfs", "-w", "-R", fmt.Sprintf("setb %d", free), p)
			leakOnly, _ = os.ReadFile(p)
			rep, err = Check(bytes.NewReader(leakOnly), int64(len(leakOnly)))
			if err != nil || len(rep.Warnings) == 0 {
				t.Errorf("leak only: %v, warnings %v", err, rep.Warnings)
			}
		})
	}
}

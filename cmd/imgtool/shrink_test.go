package main

import (
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/internal/testimg"
)

func fileSHA(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestShrinkCLI(t *testing.T) {
	testimg.NeedTools(t, "sfdisk", "mkfs.ext4", "mkfs.vfat", "mcopy")
	dir := t.TempDir()
	boot := t.TempDir()
	os.WriteFile(filepath.Join(boot, "cmdline.txt"), []byte("console=tty1 root=PARTUUID=1234abcd-02 rootwait\n"), 0o644)
	img := testimg.PiImage(t, dir, testimg.PiOptions{Size: 256 * testimg.MiB, BootFiles: boot})
	h := fileSHA(t, img)

	var plan struct {
		Size    int64 `json:"size"`
		NewSize int64 `json:"new_size"`
	}
	mustJSON(t, &plan, "shrink", "--dry-run", img)
	if plan.Size != 256*testimg.MiB || plan.NewSize >= plan.Size {
		t.Errorf("plan %+v", plan)
	}
	if fileSHA(t, img) != h {
		t.Fatal("--dry-run changed the image")
	}
	out, errOut, code := imgtool(t, "shrink", "--dry-run", img)
	if code != 0 || !strings.Contains(out, "Result:") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errOut)
	}

	small := filepath.Join(dir, "small.img")
	var res struct {
		NewSize   int64 `json:"new_size"`
		Expansion *struct {
			Mechanism string `json:"mechanism"`
		} `json:"expansion"`
	}
	out, errOut, code = imgtool(t, "shrink", "--json", "--no-expand", img, small)
	if code != 0 {
		t.Fatalf("shrink: exit %d: %s", code, errOut)
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if fileSHA(t, img) != h {
		t.Fatal("shrink with OUTPUT changed the input")
	}
	fi, err := os.Stat(small)
	if err != nil || fi.Size() != res.NewSize || res.NewSize >= 256*testimg.MiB || res.Expansion != nil {
		t.Fatalf("output %v, result %+v", fi, res)
	}
	var rep struct {
		EndOfLastPartition int64 `json:"end_of_last_partition"`
		Size               int64 `json:"size"`
	}
	mustJSON(t, &rep, "inspect", small)
	if rep.EndOfLastPartition != rep.Size {
		t.Errorf("inspect: last partition ends at %d, image is %d bytes", rep.EndOfLastPartition, rep.Size)
	}

	// --undo without an undo log says so on one line.
	_, errOut, code = imgtool(t, "shrink", "--undo", small)
	if code != 1 || !strings.Contains(errOut, "nothing to undo") {
		t.Errorf("--undo: exit %d: %q", code, errOut)
	}
	_, _, code = imgtool(t, "shrink", "--slack", "lots", img)
	if code != 2 {
		t.Errorf("--slack lots: exit %d, want 2", code)
	}
}

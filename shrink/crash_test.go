package shrink

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"imgtool/internal/testimg"
	"imgtool/shrink/undo"
)

// TestMain lets the crash test re-run this test binary as a shrink that
// gets killed (IMGTOOL_TEST_CRASH_AFTER_WRITES) after some change.
func TestMain(m *testing.M) {
	if img := os.Getenv("IMGTOOL_TEST_SHRINK_HELPER"); img != "" {
		if d := os.Getenv("IMGTOOL_TEST_E2FS_HELPER"); d != "" {
			if os.Getenv("IMGTOOL_TEST_E2FS_ENGINE") != "" {
				engine = e2fsEngine{dir: d}
			}
		}
		if _, err := Apply(context.Background(), img, Options{Slack: -1}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestCrashAtEveryStep(t *testing.T) {
	testimg.NeedTools(t, "sfdisk", "mkfs.ext4", "mkfs.vfat", "mcopy", "e2fsck", "fsck.vfat")
	name := useEngine(t)
	dir := t.TempDir()
	// The imgtool binary, whose inspect must roll back.
	bin := filepath.Join(dir, "imgtool")
	build := exec.Command("go", "build", "-o", bin, "imgtool/cmd/imgtool")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	orig := testimg.PiImage(t, dir, testimg.PiOptions{Size: 256 * MiB, RootFiles: rootFiles(t, 24), BootFiles: bootFiles(t, piCmdline)})
	want := sha(t, orig)
	before := tree(t, orig)
	work := filepath.Join(dir, "work.img")
	helper := func(n int) (int, string) {
		testimg.Run(t, "cp", "--sparse=always", orig, work)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "IMGTOOL_TEST_SHRINK_HELPER="+work, undo.CrashEnv+"="+strconv.Itoa(n))
		if name != "fs/ext4" {
			cmd.Env = append(cmd.Env, "IMGTOOL_TEST_E2FS_HELPER="+t.TempDir())
		}
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	// A full run counts the changes.
	code, out := helper(0)
	if code != 0 {
		t.Fatalf("shrink: exit %d: %s", code, out)
	}
	fsckAll(t, work)
	diffTrees(t, before, tree(t, work), noExpandChanges)
	f, _ := os.Open(work)
	fi, _ := f.Stat()
	f.Close()
	total := countChanges(t, orig, work, helper)
	t.Logf("engine %s: %d changes, result %d bytes", name, total, fi.Size())
	for _, n := range samplePoints(total, 30) {
		code, out := helper(n)
		if n <= total && code != 3 {
			t.Fatalf("kill after change %d: exit %d: %s", n, code, out)
		}
		if !undoExists(work) {
			t.Fatalf("kill after change %d: no undo file", n)
		}
		if out, err := exec.Command(bin, "inspect", work).CombinedOutput(); err != nil {
			t.Fatalf("kill after change %d: imgtool inspect: %v\n%s", n, err, out)
		}
		if undoExists(work) {
			t.Fatalf("kill after change %d: inspect left the undo file", n)
		}
		if got := sha(t, work); got != want {
			t.Fatalf("kill after change %d of %d: rolled-back image differs from the original", n, total)
		}
		fsckAll(t, work)
	}
	// Not killed: the finished shrink (timestamps differ between runs).
	if code, out := helper(total + 1); code != 0 || undoExists(work) {
		t.Fatalf("run past the last change: exit %d: %s", code, out)
	}
	fsckAll(t, work)
	diffTrees(t, before, tree(t, work), noExpandChanges)
}

// countChanges runs the shrink with kills at growing points until one
// finishes, to learn how many changes it makes.
func countChanges(t *testing.T, orig, work string, helper func(int) (int, string)) int {
	lo, hi := 1, 1
	for {
		code, out := helper(hi)
		if code == 0 {
			break
		}
		if code != 3 {
			t.Fatalf("kill after %d: exit %d: %s", hi, code, out)
		}
		lo, hi = hi, hi*2
	}
	for lo+1 < hi { // the last killing point is lo, the first finishing hi
		mid := (lo + hi) / 2
		if code, _ := helper(mid); code == 0 {
			hi = mid
		} else {
			lo = mid
		}
	}
	return lo
}

// samplePoints returns up to k points of 1..total: the first and last few,
// and the rest spread evenly.
func samplePoints(total, k int) []int {
	seen := map[int]bool{}
	var out []int
	add := func(n int) {
		if n >= 1 && n <= total && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	for i := 1; i <= 5; i++ {
		add(i)
		add(total + 1 - i)
	}
	for i := 1; len(out) < k && i < k; i++ {
		add(total * i / k)
	}
	return out
}

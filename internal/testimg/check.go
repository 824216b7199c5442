package testimg

import (
	"crypto/sha256"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
)

// FileSum hashes a whole file, such as an image that a refused operation
// must leave unchanged.
func FileSum(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// DebugfsStat runs debugfs -R 'stat PATH' on the ext2/3/4 filesystem dev
// (an image file, or "IMAGE?offset=N" for a partition) and returns its
// standard output and error together; for a path that does not exist
// that is debugfs's "not found" message.
func DebugfsStat(t testing.TB, dev, path string) string {
	t.Helper()
	bin, err := LookPath("debugfs")
	if err != nil {
		Skip(t, "debugfs not installed")
	}
	out, err := exec.Command(bin, "-R", "stat "+path, dev).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs stat %s: %v\n%s", path, err, out)
	}
	return string(out)
}

// Field reads the number after "Name:" in the output of debugfs stat or
// dumpe2fs -h (octal for Mode, decimal otherwise); -1 when absent.
func Field(out, name string) int64 {
	m := regexp.MustCompile(`\b` + name + `:\s+(\d+)`).FindStringSubmatch(out)
	if m == nil {
		return -1
	}
	base := 10
	if name == "Mode" {
		base = 8
	}
	v, _ := strconv.ParseInt(m[1], base, 64)
	return v
}

// E2fsckOptimize runs e2fsck -fyD on the ext2/3/4 filesystem dev, which
// rebuilds large directories as htrees; exit status 1 means it changed
// the filesystem, as intended.
func E2fsckOptimize(t testing.TB, dev string) {
	t.Helper()
	NeedTools(t, "e2fsck")
	p, _ := LookPath("e2fsck")
	out, err := exec.Command(p, "-fyD", dev).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() > 1) {
		t.Fatalf("e2fsck -fyD: %v\n%s", err, out)
	}
}

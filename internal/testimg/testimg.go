// Package testimg builds disk-image fixtures for tests at test time with the
// real tools (sfdisk, sgdisk, mkfs.vfat, mkfs.ext4, mtools) and says when a
// test cannot run.
//
// When the environment variable IMGTOOL_STRICT is set (CI sets it), a test
// that would be skipped for a missing tool or missing root fails instead.
package testimg

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Strict reports whether skips for missing tools or privileges must fail.
func Strict() bool { return os.Getenv("IMGTOOL_STRICT") != "" }

// Skip skips the test, or fails it in strict mode.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	if Strict() {
		t.Fatalf("IMGTOOL_STRICT: would skip: "+format, args...)
	}
	t.Skipf(format, args...)
}

// NeedTools skips (or fails in strict mode) unless every named program is
// on PATH (also searched in /sbin and /usr/sbin).
func NeedTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := LookPath(tool); err != nil {
			Skip(t, "%s not installed", tool)
		}
	}
}

// NeedRoot skips (or fails in strict mode) unless the test runs as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root")
	}
}

// LookPath finds a program on PATH or in the sbin folders.
func LookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return exec.LookPath(name)
}

// Run runs a program and returns its standard output; it fails the test on
// error, showing standard error.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return RunIn(t, nil, name, args...)
}

// RunIn is Run with standard input.
func RunIn(t testing.TB, stdin []byte, name string, args ...string) string {
	t.Helper()
	p, err := LookPath(name)
	if err != nil {
		Skip(t, "%s not installed", name)
	}
	cmd := exec.Command(p, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "LC_ALL=C", "MTOOLS_SKIP_CHECK=1", "E2FSPROGS_FAKE_TIME=")
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// Sparse creates (or truncates) a sparse file of the given size.
func Sparse(t testing.TB, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// MiB is 1<<20.
const MiB = 1 << 20

// PiOptions describes a Raspberry Pi–like image: an MBR with a FAT32 boot
// partition and an ext4 root partition.
type PiOptions struct {
	Size      int64  // whole image; default 256 MiB
	BootStart int64  // default 4 MiB
	BootSize  int64  // default 64 MiB
	RootSize  int64  // default: to the end of the image
	BootFiles string // folder copied into the FAT partition (mcopy); optional
	RootFiles string // folder given to mkfs.ext4 -d; optional
	DiskID    string // MBR disk identifier, e.g. "0x1234abcd"; default 0x1234abcd
	Ext4Opts  []string
}

// PiImage writes a Pi-like image into dir and returns its path. It needs
// sfdisk, mkfs.vfat, mkfs.ext4 and (with BootFiles) mcopy.
func PiImage(t testing.TB, dir string, o PiOptions) string {
	t.Helper()
	NeedTools(t, "sfdisk", "mkfs.vfat", "mkfs.ext4")
	if o.Size == 0 {
		o.Size = 256 * MiB
	}
	if o.BootStart == 0 {
		o.BootStart = 4 * MiB
	}
	if o.BootSize == 0 {
		o.BootSize = 64 * MiB
	}
	if o.DiskID == "" {
		o.DiskID = "0x1234abcd"
	}
	rootStart := o.BootStart + o.BootSize
	if o.RootSize == 0 {
		o.RootSize = o.Size - rootStart
	}
	img := filepath.Join(dir, "pi.img")
	Sparse(t, img, o.Size)
	script := "label: dos\nlabel-id: " + o.DiskID + "\n" +
		itoa(o.BootStart/512) + " " + itoa(o.BootSize/512) + " c\n" +
		itoa(rootStart/512) + " " + itoa(o.RootSize/512) + " 83\n"
	RunIn(t, []byte(script), "sfdisk", "-q", img)

	boot := filepath.Join(dir, "boot.part")
	Sparse(t, boot, o.BootSize)
	Run(t, "mkfs.vfat", "-F", "32", "-n", "BOOTFS", "-i", "a1b2c3d4", boot)
	if o.BootFiles != "" {
		NeedTools(t, "mcopy")
		entries, err := os.ReadDir(o.BootFiles)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			Run(t, "mcopy", "-s", "-p", "-m", "-i", boot, filepath.Join(o.BootFiles, e.Name()), "::/"+e.Name())
		}
	}
	root := filepath.Join(dir, "root.part")
	Sparse(t, root, o.RootSize)
	args := []string{"-q", "-F", "-L", "rootfs", "-U", "11111111-2222-3333-4444-555555555555"}
	args = append(args, o.Ext4Opts...)
	if o.RootFiles != "" {
		args = append(args, "-d", o.RootFiles)
	}
	args = append(args, root)
	Run(t, "mkfs.ext4", args...)

	CopyInto(t, img, boot, o.BootStart)
	CopyInto(t, img, root, rootStart)
	os.Remove(boot)
	os.Remove(root)
	return img
}

// CopyInto copies file src into dst at byte offset off, keeping holes.
func CopyInto(t testing.TB, dst, src string, off int64) {
	t.Helper()
	Run(t, "dd", "if="+src, "of="+dst, "bs=1M", "seek="+itoa(off), "oflag=seek_bytes", "conv=notrunc,sparse", "status=none")
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// CorpusDir returns the folder of corrupted filesystem images kept beside the
// repository (shared/corpus/SUB), skipping (failing in strict mode) when it
// is absent. SUB is "e2fsprogs" or "dosfstools".
func CorpusDir(t testing.TB, sub string) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		Skip(t, "corpus: %v", err)
	}
	dir := filepath.Join(filepath.Dir(root), "shared", "corpus", sub)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		Skip(t, "corpus folder %s not found", dir)
	}
	return dir
}

// Gunzip reads a gzip file whole. Corpus images are small.
func Gunzip(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(io.LimitReader(zr, 1<<30))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

// RunEnv is Run with extra environment variables ("NAME=value") that take
// precedence over Run's defaults, e.g. LC_ALL=C.UTF-8 so that mtools keeps
// non-ASCII file names.
func RunEnv(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	p, err := LookPath(name)
	if err != nil {
		Skip(t, "%s not installed", name)
	}
	cmd := exec.Command(p, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "LC_ALL=C", "MTOOLS_SKIP_CHECK=1")
	cmd.Env = append(cmd.Env, env...)
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

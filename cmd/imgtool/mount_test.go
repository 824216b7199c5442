package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"imgtool/fusemount"
	"imgtool/internal/testimg"
)

// needFUSE skips (fails under IMGTOOL_STRICT) where FUSE cannot mount.
func needFUSE(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("the FUSE tests run on Linux, not %s", runtime.GOOS)
	}
	if err := fusemount.Available(); err != nil {
		testimg.Skip(t, "%v", err)
	}
}

// mountFixture builds a Pi-like image with a few files in each partition.
func mountFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	boot, root := filepath.Join(dir, "boot"), filepath.Join(dir, "root")
	for _, d := range []string{boot, filepath.Join(root, "etc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		filepath.Join(boot, "config.txt"):     "dtparam=audio=on\n",
		filepath.Join(root, "etc/hostname"):   "raspberrypi\n",
		filepath.Join(root, "etc/os-release"): "PRETTY_NAME=\"Test\"\n",
		filepath.Join(root, "etc/motd"):       strings.Repeat("welcome\n", 5000),
	}
	for p, s := range files {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return testimg.PiImage(t, dir, testimg.PiOptions{Size: 100 << 20, BootSize: 40 << 20, BootFiles: boot, RootFiles: root})
}

// buildImgtool builds the command into a test folder.
func buildImgtool(t *testing.T) string {
	t.Helper()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			testimg.Skip(t, "go toolchain not found")
		}
	}
	bin := filepath.Join(t.TempDir(), "imgtool")
	cmd := exec.Command(gobin, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runBin runs the built binary and returns stderr and the exit status.
func runBin(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("imgtool %s did not return", strings.Join(args, " "))
	}
	return stderr.String(), cmd.ProcessState.ExitCode()
}

// isMounted reports whether dir is a mount point, from /proc/self/mountinfo.
func isMounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// waitExit waits until process pid is gone (or a zombie).
func waitExit(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Contains(string(b), ") Z ") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("background process %d still running", pid)
}

// TestMountDaemon runs the built binary with --daemon, reads through the
// mount, checks that umount reports a busy mount point clearly, then
// unmounts and sees the background process exit.
func TestMountDaemon(t *testing.T) {
	needFUSE(t)
	img := mountFixture(t)
	bin := buildImgtool(t)
	pidRe := regexp.MustCompile(`process (\d+)`)

	mp := t.TempDir()
	stderr, code := runBin(t, bin, "mount", "--daemon", img, "rootfs", mp)
	if code != 0 {
		t.Fatalf("mount --daemon: exit %d: %s", code, stderr)
	}
	t.Cleanup(func() {
		if isMounted(t, mp) {
			fusemount.Unmount(mp, true)
		}
	})
	m := pidRe.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("mount --daemon did not say which process serves: %q", stderr)
	}
	pid, _ := strconv.Atoi(m[1])
	if b, err := os.ReadFile(filepath.Join(mp, "etc/hostname")); err != nil || string(b) != "raspberrypi\n" {
		t.Fatalf("etc/hostname through the mount: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "etc/motd")); err != nil || string(b) != strings.Repeat("welcome\n", 5000) {
		t.Errorf("etc/motd through the mount: %d bytes, %v", len(b), err)
	}

	fl, err := os.Open(filepath.Join(mp, "etc/os-release"))
	if err != nil {
		t.Fatal(err)
	}
	stderr, code = runBin(t, bin, "umount", mp)
	if code != 1 || !strings.Contains(stderr, "busy") || !strings.Contains(stderr, "--lazy") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("umount while a file is open: exit %d, %q; want 1 and a one-line busy message", code, stderr)
	}
	if !isMounted(t, mp) {
		t.Fatalf("a busy umount unmounted anyway")
	}
	fl.Close()
	stderr, code = runBin(t, bin, "umount", mp)
	if code != 0 {
		t.Fatalf("umount: exit %d: %s", code, stderr)
	}
	if isMounted(t, mp) {
		t.Errorf("%s still mounted after umount", mp)
	}
	waitExit(t, pid)

	// The whole image: a folder per partition and the raw partitions.
	mp2 := t.TempDir()
	stderr, code = runBin(t, bin, "mount", "-d", img, mp2)
	if code != 0 {
		t.Fatalf("mount --daemon of the whole image: exit %d: %s", code, stderr)
	}
	t.Cleanup(func() {
		if isMounted(t, mp2) {
			fusemount.Unmount(mp2, true)
		}
	})
	ents, err := os.ReadDir(mp2)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "1-BOOTFS 2-rootfs p1.img p2.img" {
		t.Errorf("whole-image mount holds %q", got)
	}
	if b, err := os.ReadFile(filepath.Join(mp2, "1-BOOTFS/config.txt")); err != nil || string(b) != "dtparam=audio=on\n" {
		t.Errorf("1-BOOTFS/config.txt: %q, %v", b, err)
	}
	if stderr, code := runBin(t, bin, "umount", mp2); code != 0 {
		t.Errorf("umount: exit %d: %s", code, stderr)
	}

	// Errors of the background process reach the caller.
	stderr, code = runBin(t, bin, "mount", "--daemon", img, "rootfs", filepath.Join(mp, "missing"))
	if code != 1 || !strings.Contains(stderr, "does not exist") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("mount --daemon on a missing folder: exit %d, %q", code, stderr)
	}
}

// TestMountForeground mounts in-process and stops as Ctrl-C does, by
// cancelling the context.
func TestMountForeground(t *testing.T) {
	needFUSE(t)
	img := mountFixture(t)
	mp := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		var stdout, stderr bytes.Buffer
		code := run(ctx, []string{"mount", img, "2", mp}, strings.NewReader(""), &stdout, &stderr)
		done <- result{code, stdout.String(), stderr.String()}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !isMounted(t, mp) {
		select {
		case r := <-done:
			t.Fatalf("mount returned early: exit %d: %s", r.code, r.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("not mounted after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "etc/hostname")); err != nil || string(b) != "raspberrypi\n" {
		t.Errorf("etc/hostname: %q, %v", b, err)
	}
	cancel()
	select {
	case r := <-done:
		if r.code != 0 || !strings.Contains(r.stderr, "imgtool umount") {
			t.Errorf("after Ctrl-C: exit %d, stderr %q", r.code, r.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("mount did not stop after the context was cancelled")
	}
	if isMounted(t, mp) {
		fusemount.Unmount(mp, true)
		t.Errorf("still mounted after Ctrl-C")
	}
}

func TestMountUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"mount", "x.img"}, 2, "accepts between 2 and 3"},
		{[]string{"mount", "a", "b", "c", "d"}, 2, "accepts between 2 and 3"},
		{[]string{"umount"}, 2, "accepts 1 arg"},
		{[]string{"mount", "/nonexistent/x.img", "2", "/tmp"}, 1, "x.img"},
		{[]string{"umount", "/"}, 1, "not a FUSE"},
	} {
		if runtime.GOOS != "linux" && c.args[0] == "umount" && c.code == 1 {
			continue
		}
		_, stderr, code := imgtool(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.msg) {
			t.Errorf("imgtool %v: exit %d, %q; want %d and %q", c.args, code, stderr, c.code, c.msg)
		}
	}
}

// TestMountNotAvailable: where FUSE cannot work, mount says what to do
// instead.
func TestMountNotAvailable(t *testing.T) {
	if fusemount.Available() == nil {
		t.Skip("FUSE is available here")
	}
	_, stderr, code := imgtool(t, "mount", "x.img", "2", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "FUSE") {
		t.Errorf("mount without FUSE: exit %d, %q", code, stderr)
	}
	if runtime.GOOS == "windows" && !strings.Contains(stderr, "imgtool get") {
		t.Errorf("mount on Windows does not suggest imgtool get: %q", stderr)
	}
}

// TestMountCompressedAndVM mounts the root partition straight from a
// multi-block .img.xz and from a compressed qcow2 of the same image and
// reads files through the mount.
func TestMountCompressedAndVM(t *testing.T) {
	needFUSE(t)
	testimg.NeedTools(t, "xz", "qemu-img")
	img := mountFixture(t)
	xzPath := img + ".xz"
	must(t, os.WriteFile(xzPath, []byte(testimg.Run(t, "xz", "-T2", "--block-size=2MiB", "-c", img)), 0o644))
	qcow := img + ".qcow2"
	testimg.Run(t, "qemu-img", "convert", "-c", "-O", "qcow2", img, qcow)
	motd := strings.Repeat("welcome\n", 5000)
	for _, src := range []string{xzPath, qcow} {
		t.Run(filepath.Ext(src), func(t *testing.T) {
			mp := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan string, 1)
			go func() {
				var stdout, stderr bytes.Buffer
				code := run(ctx, []string{"mount", src, "rootfs", mp}, strings.NewReader(""), &stdout, &stderr)
				done <- fmt.Sprintf("exit %d: %s", code, stderr.String())
			}()
			deadline := time.Now().Add(20 * time.Second)
			for !isMounted(t, mp) {
				select {
				case r := <-done:
					cancel()
					t.Fatalf("mount returned early: %s", r)
				default:
				}
				if time.Now().After(deadline) {
					cancel()
					t.Fatal("not mounted after 20s")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if b, err := os.ReadFile(filepath.Join(mp, "etc/motd")); err != nil || string(b) != motd {
				t.Errorf("etc/motd through the mount of %s: %d bytes, %v", src, len(b), err)
			}
			if b, err := os.ReadFile(filepath.Join(mp, "etc/hostname")); err != nil || string(b) != "raspberrypi\n" {
				t.Errorf("etc/hostname: %q, %v", b, err)
			}
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("mount did not stop")
			}
			if isMounted(t, mp) {
				fusemount.Unmount(mp, true)
				t.Errorf("still mounted after cancel")
			}
		})
	}
}

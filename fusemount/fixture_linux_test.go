package fusemount_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"imgtool/fs"
	"imgtool/fusemount"
	"imgtool/internal/testimg"
	"imgtool/part"

	"golang.org/x/sys/unix"
)

// makeTree fills dir with what a root filesystem holds: nested folders,
// files of many sizes (empty, inline-sized, multi-extent, sparse),
// symbolic links (short, long, absolute, dangling), hard links, special
// bits, odd owners, nanosecond times, device nodes, a FIFO and extended
// attributes including security.capability. It needs root (chown,
// mknod, trusted xattrs).
func makeTree(t *testing.T, dir string) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(name string, size int) {
		t.Helper()
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		must(os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		must(os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
	for _, d := range []string{"etc", "usr/bin", "usr/lib/deep/er/still", "home/pi/.ssh", "dev", "tmp", "var/empty", "srv/many"} {
		must(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	write("etc/hostname", 12)
	write("etc/empty", 0)
	write("usr/bin/tool", 70000)
	write("usr/lib/deep/er/still/lib.so", 1<<20+123)
	write("home/pi/.ssh/authorized_keys", 400)
	for i := range 120 {
		write(fmt.Sprintf("srv/many/f%03d", i), r.IntN(9000))
	}
	// A sparse file with data islands: several extents and holes.
	f, err := os.Create(filepath.Join(dir, "srv/sparse.bin"))
	must(err)
	for i := range 12 {
		_, err := f.WriteAt([]byte(fmt.Sprintf("island %d", i)), int64(i)*(1<<20)+int64(i)*4096)
		must(err)
	}
	must(f.Truncate(14 << 20))
	must(f.Close())

	must(os.Symlink("hostname", filepath.Join(dir, "etc/short-link")))
	must(os.Symlink("/usr/lib/deep/er/still/lib.so", filepath.Join(dir, "usr/abs-link")))
	must(os.Symlink(strings.Repeat("long/", 30)+"target", filepath.Join(dir, "usr/long-link")))
	must(os.Symlink("nowhere", filepath.Join(dir, "tmp/dangling")))
	must(os.Symlink("../usr", filepath.Join(dir, "home/dir-link")))
	must(os.Link(filepath.Join(dir, "usr/bin/tool"), filepath.Join(dir, "usr/bin/tool-hard")))
	must(os.Link(filepath.Join(dir, "usr/bin/tool"), filepath.Join(dir, "etc/tool-hard2")))

	write("usr/bin/sudo", 5000)
	must(syscall.Chmod(filepath.Join(dir, "usr/bin/sudo"), 0o4755))
	write("usr/bin/wall", 3000)
	must(syscall.Chmod(filepath.Join(dir, "usr/bin/wall"), 0o2755))
	must(syscall.Chmod(filepath.Join(dir, "tmp"), 0o1777))
	must(syscall.Chmod(filepath.Join(dir, "home/pi/.ssh"), 0o700))
	must(syscall.Chmod(filepath.Join(dir, "home/pi/.ssh/authorized_keys"), 0o600))
	must(os.Lchown(filepath.Join(dir, "home/pi"), 1000, 1000))
	must(os.Lchown(filepath.Join(dir, "home/pi/.ssh"), 1000, 1000))
	must(os.Lchown(filepath.Join(dir, "home/pi/.ssh/authorized_keys"), 1000, 1000))
	must(os.Lchown(filepath.Join(dir, "usr/bin/wall"), 0, 5))
	must(os.Lchown(filepath.Join(dir, "srv/many/f007"), 123456, 654321))
	must(os.Lchown(filepath.Join(dir, "tmp/dangling"), 1000, 1000))

	must(syscall.Mknod(filepath.Join(dir, "dev/null"), syscall.S_IFCHR|0o666, int(mkdev(1, 3))))
	must(syscall.Mknod(filepath.Join(dir, "dev/sda1"), syscall.S_IFBLK|0o660, int(mkdev(8, 1))))
	must(syscall.Mknod(filepath.Join(dir, "dev/big"), syscall.S_IFCHR|0o600, int(mkdev(259, 300000))))
	must(syscall.Mkfifo(filepath.Join(dir, "dev/fifo"), 0o644))

	testimg.Run(t, "setfattr", "-n", "user.comment", "-v", "hello world", filepath.Join(dir, "etc/hostname"))
	testimg.Run(t, "setfattr", "-n", "user.empty", filepath.Join(dir, "etc/hostname"))
	testimg.Run(t, "setfattr", "-n", "user.big", "-v", "0x"+strings.Repeat("ab", 2000), filepath.Join(dir, "usr/lib/deep/er/still/lib.so"))
	testimg.Run(t, "setfattr", "-n", "trusted.overlay", "-v", "y", filepath.Join(dir, "var/empty"))
	// cap_net_raw+ep, as ping carries it (VFS_CAP_REVISION_2).
	testimg.Run(t, "setfattr", "-n", "security.capability", "-v", "0x0000000202000000000000000000000000000000", filepath.Join(dir, "usr/bin/sudo"))

}

// retime sets times with nanoseconds, before 1970 and after 2038, through
// a read-write kernel mount of the partition: mkfs.ext4 -d keeps whole
// seconds only.
func retime(t *testing.T, img string, p part.Partition) {
	t.Helper()
	loop := strings.TrimSpace(testimg.Run(t, "losetup", "-f", "--show", "-o", fmt.Sprint(p.Start), "--sizelimit", fmt.Sprint(p.Size), img))
	defer exec.Command("losetup", "-d", loop).Run()
	dir := t.TempDir()
	testimg.Run(t, "mount", loop, dir)
	times := map[string]time.Time{
		"etc/hostname":  time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC),
		"usr/bin/tool":  time.Date(1969, 7, 20, 20, 17, 40, 5, time.UTC),
		"usr/bin/sudo":  time.Date(2040, 1, 2, 3, 4, 5, 999999999, time.UTC),
		"srv/many/f000": time.Date(2001, 1, 1, 0, 0, 0, 1, time.UTC),
		"usr/lib/deep":  time.Date(2024, 2, 29, 23, 59, 59, 500000000, time.UTC),
	}
	for name, tm := range times {
		must(t, os.Chtimes(filepath.Join(dir, name), tm.Add(-time.Hour-time.Nanosecond), tm))
	}
	lt := []unix.Timespec{unix.NsecToTimespec(1600000000123456789), unix.NsecToTimespec(1600000001987654321)}
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(dir, "etc/short-link"), lt, unix.AT_SYMLINK_NOFOLLOW))
	testimg.Run(t, "umount", dir)
}

func mkdev(major, minor uint32) uint64 { return unix.Mkdev(major, minor) }

// piImage builds a Pi-like image whose root partition is made from a
// tree from makeTree, and returns the image path and its partitions.
func piImage(t *testing.T) (img string, src string, tbl *part.Table) {
	t.Helper()
	testimg.NeedRoot(t)
	testimg.NeedTools(t, "setfattr", "getfattr", "mkfs.ext4", "losetup", "mount", "umount", "diff", "stat", "find")
	dir := t.TempDir()
	src = filepath.Join(dir, "root")
	boot := filepath.Join(dir, "boot")
	must(t, os.MkdirAll(filepath.Join(boot, "overlays"), 0o755))
	must(t, os.WriteFile(filepath.Join(boot, "config.txt"), []byte("arm_64bit=1\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(boot, "overlays/README"), bytes.Repeat([]byte("overlay\n"), 1000), 0o644))
	makeTree(t, src)
	img = testimg.PiImage(t, dir, testimg.PiOptions{Size: 160 << 20, BootSize: 40 << 20, BootFiles: boot, RootFiles: src, Ext4Opts: []string{"-b", "4096"}})
	tbl = readTable(t, img)
	retime(t, img, tbl.Partitions[1])
	return img, src, tbl
}

func readTable(t *testing.T, img string) *part.Table {
	t.Helper()
	f, err := os.Open(img)
	must(t, err)
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	must(t, err)
	tbl, err := part.Read(f, st.Size())
	must(t, err)
	return tbl
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// openFS opens the filesystem of partition p.
func openFS(t testing.TB, p part.Partition) fs.FS {
	t.Helper()
	sec := p.Section()
	fsys, _, err := fs.Open(sec, sec.Size(), fs.Options{})
	must(t, err)
	return fsys
}

// fuseMount mounts fsys on a fresh folder, unmounted at cleanup.
func fuseMount(t testing.TB, fsys fs.FS, opts fusemount.Options) (string, *fusemount.Server) {
	t.Helper()
	needFUSE(t)
	mp := t.TempDir()
	srv, err := fusemount.Mount(mp, fsys, opts)
	must(t, err)
	t.Cleanup(func() { unmountCleanup(t, srv) })
	return mp, srv
}

func unmountCleanup(t testing.TB, srv *fusemount.Server) {
	select {
	case <-srv.Done():
		return
	default:
	}
	if err := srv.Unmount(); err != nil {
		t.Errorf("unmount %s: %v", srv.Mountpoint(), err)
		srv.UnmountLazy()
	}
}

// scratchDir returns a folder for many small files: a tmpfs of its own
// when running as root (creating 50,000 files on a disk-backed folder can
// take a minute), a test folder otherwise.
func scratchDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		return dir
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1g"); err != nil {
		t.Logf("tmpfs: %v", err)
		return dir
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount tmpfs %s: %v", dir, err)
		}
	})
	return dir
}

// kernelMount loop-mounts the byte range [off, off+size) of img read-only
// with the kernel's own driver.
func kernelMount(t testing.TB, img string, off, size int64) string {
	t.Helper()
	testimg.NeedRoot(t)
	loop := strings.TrimSpace(testimg.Run(t, "losetup", "-r", "-f", "--show", "-o", fmt.Sprint(off), "--sizelimit", fmt.Sprint(size), img))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
	mp := t.TempDir()
	testimg.Run(t, "mount", "-o", "ro", loop, mp)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mp).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mp, err, out)
		}
	})
	return mp
}

// listPaths returns every path under dir, relative, sorted, without
// following links; the lost+found folder of mkfs is kept.
func listPaths(t testing.TB, dir string) []string {
	t.Helper()
	out := testimg.RunIn(t, nil, "sh", "-c", "cd \"$0\" && find . -mindepth 1 -print0", dir)
	var paths []string
	for _, p := range strings.Split(out, "\x00") {
		if p != "" {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	return paths
}

// runIn runs a program in dir and returns its standard output.
func runIn(t testing.TB, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), dir, err, stderr.String())
	}
	return stdout.String()
}

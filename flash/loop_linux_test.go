//go:build linux

package flash

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"imgtool/image"
	"imgtool/internal/testimg"
)

// newLoop creates a backing file of size bytes, sparse, with 4 KiB blocks
// of the byte fill every 64 KiB unless fill is 0, attaches a loop device to
// it and detaches it when the test ends. It returns the device path and the
// backing file's path.
func newLoop(t testing.TB, size int64, fill byte) (string, string) {
	t.Helper()
	testimg.NeedRoot(t)
	testimg.NeedTools(t, "losetup")
	backing := filepath.Join(t.TempDir(), "backing.img")
	testimg.Sparse(t, backing, size)
	if fill != 0 {
		f, err := os.OpenFile(backing, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		stamp := bytes.Repeat([]byte{fill}, 4096)
		for off := int64(0); off+4096 <= size; off += 64 << 10 {
			if _, err := f.WriteAt(stamp, off); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
	}
	dev := strings.TrimSpace(testimg.Run(t, "losetup", "-f", "--show", backing))
	if !strings.HasPrefix(dev, "/dev/loop") {
		t.Fatalf("losetup gave %q", dev)
	}
	t.Cleanup(func() { testimg.Run(t, "losetup", "-d", dev) })
	return dev, backing
}

// readDev reads n bytes of a device from offset 0 with our own reads.
func readDev(t testing.TB, dev string, n int64) []byte {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWritePiImageLoop(t *testing.T) {
	testimg.NeedTools(t, "cmp")
	dir := t.TempDir()
	src := testimg.PiImage(t, dir, testimg.PiOptions{Size: 128 << 20})
	img := openImage(t, src)
	dev, backing := newLoop(t, img.Size()+8<<20, 0x5a)
	orig, _ := os.ReadFile(backing)
	tg := openTargetT(t, dev, OpenOptions{})
	res, err := Write(context.Background(), img, []Target{tg}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tg.Close()
	testimg.Run(t, "cmp", "-n", strconv.FormatInt(img.Size(), 10), src, dev)

	want, _ := os.ReadFile(src)
	s := sha256.Sum256(want)
	if !res.Verified || res.SHA256 != hex.EncodeToString(s[:]) || res.BytesWritten != img.Size() || res.BytesSkipped != 0 {
		t.Errorf("result %+v", res)
	}
	// The device past the image is untouched.
	tail := readDev(t, dev, img.Size()+8<<20)[img.Size():]
	if !bytes.Equal(tail, orig[img.Size():]) || bytes.Count(tail, []byte{0x5a}) == 0 {
		t.Error("bytes past the image were changed")
	}
}

// sparseImage makes a 32 MiB sparse image with data at three places.
func sparseImage(t testing.TB, dir string) (string, []byte) {
	t.Helper()
	p := filepath.Join(dir, "sparse.img")
	testimg.Sparse(t, p, 32<<20)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	data := randomFile(t, filepath.Join(dir, "rnd"), 3<<20, 7)
	for _, r := range [][2]int64{{0, 64 << 10}, {5 << 20, 1 << 20}, {20<<20 + 4096, 100 << 10}} {
		if _, err := f.WriteAt(data[r[0]%(2<<20):][:r[1]], r[0]); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	b, _ := os.ReadFile(p)
	return p, b
}

func TestWriteBlockMapLoop(t *testing.T) {
	dir := t.TempDir()
	src, want := sparseImage(t, dir)
	img := openImage(t, src)
	ext, err := img.Extents()
	if err != nil {
		t.Fatal(err)
	}
	var m []image.Extent
	var mapped int64
	for _, e := range ext {
		if e.Kind == image.Data {
			m = append(m, e)
			mapped += e.Len
		}
	}
	if len(m) < 3 || mapped > 4<<20 {
		t.Fatalf("the test filesystem reports no holes: %+v", ext)
	}
	inMap := func(off int64) bool {
		for _, e := range m {
			if off >= e.Off && off < e.End() {
				return true
			}
		}
		return false
	}
	dev, backing := newLoop(t, 40<<20, 0xa5)
	orig, _ := os.ReadFile(backing)

	// Leave the unmapped ranges alone.
	tg := openTargetT(t, dev, OpenOptions{})
	res, err := Write(context.Background(), img, []Target{tg}, Options{BlockMap: m})
	if err != nil {
		t.Fatal(err)
	}
	if res.BytesWritten != mapped || res.BytesSkipped != img.Size()-mapped || res.SHA256 != "" || !res.Verified {
		t.Errorf("result %+v (mapped %d)", res, mapped)
	}
	got := readDev(t, dev, img.Size())
	for off := int64(0); off < img.Size(); off += 4096 {
		exp := want[off : off+4096]
		if !inMap(off) {
			exp = orig[off : off+4096]
			if off%(64<<10) == 0 && exp[0] != 0xa5 {
				t.Fatalf("backing file not prepared at %d", off)
			}
		}
		if !bytes.Equal(got[off:off+4096], exp) {
			t.Fatalf("block at %d: mapped=%v, wrong content", off, inMap(off))
		}
	}

	// ZeroUnmapped makes the device equal to the image.
	res, err = Write(context.Background(), img, []Target{tg}, Options{BlockMap: m, Unmapped: ZeroUnmapped})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readDev(t, dev, img.Size()), want) || res.BytesWritten != img.Size() {
		t.Errorf("ZeroUnmapped: device differs from the image; result %+v", res)
	}
}

func TestWriteTwoLoops(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	want := randomFile(t, src, 24<<20+4096+512, 8)
	img := openImage(t, src)
	dev1, _ := newLoop(t, 32<<20, 0x11)
	dev2, _ := newLoop(t, 32<<20, 0x22)
	t1 := openTargetT(t, dev1, OpenOptions{})
	t2 := openTargetT(t, dev2, OpenOptions{Direct: DirectOff})
	if _, err := Write(context.Background(), img, []Target{t1, t2}, Options{Buffers: 4}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dev1, dev2} {
		if !bytes.Equal(readDev(t, d, int64(len(want))), want) {
			t.Errorf("%s differs from the image", d)
		}
	}
}

func TestVerifyCatchesCorruption(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	want := randomFile(t, src, 24<<20, 9)
	img := openImage(t, src)
	dev, backing := newLoop(t, 24<<20, 0)
	tg := openTargetT(t, dev, OpenOptions{})
	// Flip 3 bytes at 5000003 and one at 20000000 in the backing file.
	testHookBeforeVerify = func(Target) {
		f, err := os.OpenFile(backing, os.O_RDWR, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		for _, r := range [][2]int{{5000003, 3}, {20000000, 1}} {
			bad := make([]byte, r[1])
			for i := range bad {
				bad[i] = ^want[r[0]+i]
			}
			f.WriteAt(bad, int64(r[0]))
		}
		f.Sync()
	}
	defer func() { testHookBeforeVerify = nil }()
	res, err := Write(context.Background(), img, []Target{tg}, Options{})
	var ve *VerifyError
	if !errors.As(err, &ve) || !errors.Is(err, ErrVerify) {
		t.Fatalf("err = %v", err)
	}
	if ve.FirstBad != 5000003 || ve.BadBytes != 4 || ve.Target != dev || res.Verified {
		t.Errorf("got %+v, verified %v", ve, res.Verified)
	}
	if !strings.Contains(err.Error(), "check-capacity") {
		t.Errorf("message lacks the capacity hint: %v", err)
	}
}

func TestWriteTooSmallLoop(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	randomFile(t, src, 40<<20+512, 10)
	img := openImage(t, src)
	dev, _ := newLoop(t, 32<<20, 0)
	_, err := Write(context.Background(), img, []Target{openTargetT(t, dev, OpenOptions{})}, Options{LastPartitionEnd: 36 << 20})
	var ts *TooSmallError
	if !errors.As(err, &ts) || ts.Shortfall() != 8<<20+512 || ts.Size != 32<<20 {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "(8389120 bytes) larger than "+dev) || !strings.Contains(err.Error(), "imgtool shrink IMAGE") {
		t.Errorf("message: %v", err)
	}
}

func TestOpenExclusiveRefused(t *testing.T) {
	dev, _ := newLoop(t, 8<<20, 0)
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenTarget(dev, OpenOptions{})
	unix.Close(fd)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("err = %v", err)
	}
	// Free again: opening works.
	tg, err := OpenTarget(dev, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tg.Close()
}

// wrapTarget pretends to be claimed bytes large but stores offset % real,
// like a counterfeit card.
type wrapTarget struct {
	Target
	claimed int64
}

func (w *wrapTarget) Size() int64 { return w.claimed }
func (w *wrapTarget) WriteAt(p []byte, off int64) (int, error) {
	return w.Target.WriteAt(p, off%w.Target.Size())
}
func (w *wrapTarget) ReadAt(p []byte, off int64) (int, error) {
	return w.Target.ReadAt(p, off%w.Target.Size())
}

func TestCheckCapacityLoop(t *testing.T) {
	dev, _ := newLoop(t, 64<<20, 0)
	tg := openTargetT(t, dev, OpenOptions{})
	var c Counter
	if err := CheckCapacity(context.Background(), tg, &c); err != nil {
		t.Fatalf("honest device: %v", err)
	}
	if ph, total, done := c.Load(); ph != "capacity-read" || total != done || total < 1000*4096 {
		t.Errorf("progress %s %d/%d", ph, done, total)
	}
	fake := &wrapTarget{Target: tg, claimed: 4 * tg.Size()}
	err := CheckCapacity(context.Background(), fake, nil)
	var ce *CapacityError
	if !errors.As(err, &ce) || !errors.Is(err, ErrFakeCapacity) {
		t.Fatalf("fake device: err = %v", err)
	}
	if ce.WrapsAt != 64<<20 || ce.FirstBad != 0 || ce.Claimed != 256<<20 {
		t.Errorf("got %+v", ce)
	}
}

func TestReadDeviceLoop(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	want := randomFile(t, src, 8<<20, 11)
	dev, _ := newLoop(t, 8<<20, 0)
	tg := openTargetT(t, dev, OpenOptions{})
	if _, err := Write(context.Background(), openImage(t, src), []Target{tg}, Options{}); err != nil {
		t.Fatal(err)
	}
	img, err := ReadDevice(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	got := make([]byte, img.Size())
	if _, err := img.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) || img.Size() != int64(len(want)) {
		t.Fatalf("read back: %v", err)
	}
	if _, err := ReadDevice(src); err == nil {
		t.Error("ReadDevice accepted a regular file")
	}
}

func TestListFindsLoop(t *testing.T) {
	dev, backing := newLoop(t, 8<<20, 0)
	d, err := Find(dev)
	if err != nil {
		t.Fatal(err)
	}
	if d.Transport != TransportLoop || d.Size != 8<<20 || d.Model != backing {
		t.Errorf("got %+v", d)
	}
	if sys, why := IsSystemDisk(d); sys {
		t.Errorf("a fresh loop device is a system disk: %s", why)
	}
	if rw, err := MountedReadWrite(dev); err != nil || len(rw) != 0 {
		t.Errorf("MountedReadWrite = %v, %v", rw, err)
	}
}

func benchmarkWriteLoop(b *testing.B, mode DirectMode) {
	const size = 256 << 20
	dir := b.TempDir()
	src := filepath.Join(dir, "src.img")
	randomFile(b, src, size, 12)
	img := openImage(b, src)
	dev, _ := newLoop(b, size, 0)
	tg := openTargetT(b, dev, OpenOptions{Direct: mode})
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Write(context.Background(), img, []Target{tg}, Options{NoVerify: true}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteLoop(b *testing.B) {
	b.Run("direct", func(b *testing.B) { benchmarkWriteLoop(b, DirectOn) })
	b.Run("buffered", func(b *testing.B) { benchmarkWriteLoop(b, DirectOff) })
}

func TestUnmountLoop(t *testing.T) {
	testimg.NeedTools(t, "mkfs.ext4", "mount", "umount")
	dev, _ := newLoop(t, 16<<20, 0)
	testimg.Run(t, "mkfs.ext4", "-q", "-F", dev)
	mnt := t.TempDir()
	testimg.Run(t, "mount", dev, mnt)
	t.Cleanup(func() { unix.Unmount(mnt, 0) })

	d, err := Find(dev)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Mounts) != 1 || d.Mounts[0].Point != mnt || d.Mounts[0].FSType != "ext4" {
		t.Fatalf("mounts %+v", d.Mounts)
	}
	if rw, _ := MountedReadWrite(dev); len(rw) != 1 || rw[0] != mnt {
		t.Errorf("MountedReadWrite = %v", rw)
	}
	if sys, why := IsSystemDisk(d); !sys || !strings.Contains(why, "outside the removable-media folders") {
		t.Errorf("IsSystemDisk = %v %q", sys, why)
	}
	if _, err := OpenTarget(dev, OpenOptions{}); !errors.Is(err, ErrBusy) {
		t.Errorf("opening a mounted device: %v", err)
	}
	if err := Unmount(d); err != nil {
		t.Fatal(err)
	}
	if d, err = Find(dev); err != nil || len(d.MountPoints()) != 0 {
		t.Fatalf("after Unmount: %+v %v", d, err)
	}
	tg, err := OpenTarget(dev, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tg.Close()
}

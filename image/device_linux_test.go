package image_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"imgtool/image"
	"imgtool/internal/testimg"
)

func TestLoopDevice(t *testing.T) {
	testimg.NeedRoot(t)
	testimg.NeedTools(t, "losetup")
	path := filepath.Join(t.TempDir(), "backing.img")
	const size = 16 * mib
	want := writeSparse(t, path, size, []image.Extent{{Off: 0, Len: mib}, {Off: 9 * mib, Len: 3 * mib}})
	dev := strings.TrimSpace(testimg.Run(t, "losetup", "-f", "--show", "-r", path))
	t.Cleanup(func() { testimg.Run(t, "losetup", "-d", dev) })

	if !image.IsDevice(dev) {
		t.Fatalf("IsDevice(%s) = false", dev)
	}
	if image.IsDevice(path) {
		t.Fatalf("IsDevice(%s) = true for a regular file", path)
	}
	img := openT(t, dev)
	if img.Format() != "device" || img.Size() != size {
		t.Fatalf("Format %q Size %d, want device %d", img.Format(), img.Size(), size)
	}
	if !bytes.Equal(readAll(t, img), want) {
		t.Fatal("device content differs from the backing file")
	}
	testReadAtEOF(t, img, want)
	ext, err := img.Extents()
	if err != nil || fmt.Sprint(ext) != fmt.Sprint([]image.Extent{{Off: 0, Len: size, Kind: image.Data}}) {
		t.Fatalf("Extents = %v, %v; want one Data extent", ext, err)
	}

	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := image.DeviceSize(f); n != size || err != nil {
		t.Fatalf("DeviceSize = %d, %v; want %d", n, err, size)
	}
}

func TestDeviceSizeOfFile(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "file.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := image.DeviceSize(f); !errors.Is(err, image.ErrNotDevice) {
		t.Fatalf("DeviceSize of a regular file: %v, want ErrNotDevice", err)
	}
}

func TestOpenFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		img, err := image.Open(path)
		if err == nil {
			img.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, image.ErrNotRegular) || !strings.Contains(err.Error(), "named pipe") {
			t.Fatalf("Open(fifo) = %v, want ErrNotRegular naming a pipe", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Open(fifo) hangs")
	}
}

func TestOpenCharDevice(t *testing.T) {
	// /dev/zero exists on every Linux system; it is not a disk.
	_, err := image.Open("/dev/zero")
	if !errors.Is(err, image.ErrNotRegular) || !strings.Contains(err.Error(), "character device") {
		t.Fatalf("Open(/dev/zero) = %v, want ErrNotRegular", err)
	}
	if image.IsDevice("/dev/zero") {
		t.Fatal("IsDevice(/dev/zero) = true")
	}
}

package image

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// strictDevice fails every read that is not aligned, as Windows disks and
// macOS raw disks do.
type strictDevice struct {
	data  []byte
	align int64
	reads int
}

func (d *strictDevice) ReadAt(p []byte, off int64) (int, error) {
	d.reads++
	if off%d.align != 0 || (int64(len(p))%d.align != 0 && off+int64(len(p)) != int64(len(d.data))) {
		return 0, fmt.Errorf("unaligned read of %d bytes at %d", len(p), off)
	}
	if off >= int64(len(d.data)) {
		return 0, io.EOF
	}
	n := copy(p, d.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func TestAlignedReader(t *testing.T) {
	for _, align := range []int64{512, 4096} {
		data := make([]byte, 16*align+align/2) // a last partial block too
		for i := range data {
			data[i] = byte(i*7 + i/251)
		}
		size := int64(len(data))
		dev := &strictDevice{data: data, align: align}
		r := &alignedReader{r: dev, align: align, size: size}
		cases := [][2]int64{
			{0, 1}, {0, align}, {1, align}, {align - 1, 2}, {3, 5 * align},
			{align, 3 * align}, {align * 2, 1}, {size - 10, 10}, {size - align - 3, align + 3},
			{7, size - 7}, {0, size},
		}
		for _, c := range cases {
			off, n := c[0], c[1]
			buf := make([]byte, n)
			got, err := readAtLimited(r, size, buf, off)
			if err != nil && err != io.EOF {
				t.Fatalf("align %d: ReadAt(%d, %d): %v", align, off, n, err)
			}
			if got != int(n) || !bytes.Equal(buf, data[off:off+n]) {
				t.Fatalf("align %d: ReadAt(%d, %d) = %d bytes, wrong content", align, off, n, got)
			}
		}
		// A large aligned read goes straight through in one call.
		dev.reads = 0
		if _, err := r.ReadAt(make([]byte, 8*align), 2*align); err != nil || dev.reads != 1 {
			t.Errorf("align %d: aligned read took %d device reads (%v), want 1", align, dev.reads, err)
		}
	}
}

func TestCheckAlign(t *testing.T) {
	for _, a := range []int64{1, 512, 4096, 65536} {
		if err := checkAlign(a); err != nil {
			t.Errorf("checkAlign(%d) = %v", a, err)
		}
	}
	for _, a := range []int64{0, -512, 520, 1 << 20} {
		if err := checkAlign(a); err == nil {
			t.Errorf("checkAlign(%d) accepted", a)
		}
	}
}

func TestWindowsDeviceNames(t *testing.T) {
	for name, want := range map[string]bool{
		`\\.\PhysicalDrive0`:   true,
		`\\.\physicaldrive12`:  true,
		`\\?\PhysicalDrive3`:   true,
		`//./PhysicalDrive1`:   true,
		`\\.\E:`:               true,
		`\\.\e:`:               true,
		`\\.\PhysicalDrive`:    false,
		`\\.\PhysicalDrive1x`:  false,
		`\\.\PhysicalDrive-1`:  false,
		`\\.\E:\`:              false,
		`\\.\1:`:               false,
		`C:\images\pi.img`:     false,
		`E:`:                   false,
		`\\server\share\x.img`: false,
		`\\.\`:                 false,
		``:                     false,
	} {
		if got := isWindowsDeviceName(name); got != want {
			t.Errorf("isWindowsDeviceName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestAppendExtent(t *testing.T) {
	var l []Extent
	for _, e := range []Extent{
		{0, 10, Zero}, {10, 5, Zero}, {15, 0, Data}, {15, 5, Data}, {20, 5, Data}, {25, 1, Zero},
	} {
		l = appendExtent(l, e)
	}
	want := []Extent{{0, 15, Zero}, {15, 10, Data}, {25, 1, Zero}}
	if fmt.Sprint(l) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", l, want)
	}
}

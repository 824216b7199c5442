package main

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/blockmap"
	"imgtool/bmap"
	"imgtool/convert"
	"imgtool/image"
	"imgtool/image/zstd"
	"imgtool/internal/testimg"
)

// convertFixture makes a Pi-like image with a file of random data, puts
// stale random bytes into free space of the root filesystem, and returns
// it with the data-only image convert must produce (zeros where the
// filesystems hold nothing).
func convertFixture(t *testing.T) (dir, img string, dataOnly []byte) {
	testimg.NeedTools(t, "sfdisk", "mkfs.vfat", "mkfs.ext4")
	dir = t.TempDir()
	root := filepath.Join(dir, "rootsrc")
	must(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte("convertpi\n"), 0o644))
	big := make([]byte, 3<<20)
	rand.Read(big)
	must(t, os.WriteFile(filepath.Join(root, "big.bin"), big, 0o644))
	img = testimg.PiImage(t, dir, testimg.PiOptions{Size: 96 << 20, BootSize: 16 << 20, RootFiles: root})

	m := blockMap(t, img)
	// Stale bytes in the largest free range inside the root partition.
	var free image.Extent
	for _, e := range m.Extents {
		if e.Kind == image.Zero && e.Len > free.Len && e.End() < m.Size-(1<<20) {
			free = e
		}
	}
	if free.Len < 8<<20 {
		t.Fatalf("no free range to put stale data in: %+v", free)
	}
	stale := make([]byte, 4<<20)
	rand.Read(stale)
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteAt(stale, free.Off+(1<<20))
	must(t, err)
	must(t, f.Close())

	raw, err := os.ReadFile(img)
	must(t, err)
	dataOnly = make([]byte, len(raw))
	for _, e := range convert.Layout(blockMap(t, img).Extents, int64(len(raw))) {
		if e.Kind == image.Data {
			copy(dataOnly[e.Off:e.End()], raw[e.Off:e.End()])
		}
	}
	if bytes.Equal(dataOnly, raw) {
		t.Fatal("the fixture has no stale data to drop")
	}
	return dir, img, dataOnly
}

func blockMap(t *testing.T, path string) *blockmap.Map {
	t.Helper()
	im, err := openImage(path)
	must(t, err)
	defer im.Close()
	m, err := blockmap.Compute(im, blockmap.Options{ZeroHoles: true})
	must(t, err)
	return m
}

func sha256Hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func fileSHA256(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	must(t, err)
	return sha256Hex(b)
}

// checksumOf runs imgtool checksum.
func checksumOf(t *testing.T, path string, args ...string) string {
	t.Helper()
	var s checksumSummary
	mustJSON(t, &s, append([]string{"checksum", path}, args...)...)
	return s.Checksum
}

func TestConvertRoundTrip(t *testing.T) {
	dir, img, dataOnly := convertFixture(t)
	want := sha256Hex(dataOnly)
	whole := fileSHA256(t, img)
	if got := checksumOf(t, img); got != whole {
		t.Fatalf("checksum of the raw image: %s, sha256 %s", got, whole)
	}
	formats := []string{".img", ".img.xz", ".img.gz", ".img.zst", ".qcow2", ".vhd", ".vmdk", ".simg"}
	for _, ext := range formats {
		out := filepath.Join(dir, "out"+ext)
		var s convertSummary
		mustJSON(t, &s, "convert", img, out)
		if !s.FilesystemAware || s.DataBytes >= s.ImageSize || s.OutputSize == 0 {
			t.Errorf("%s: summary %+v", ext, s)
		}
		if got := checksumOf(t, out); got != want {
			t.Errorf("%s: read back %s, want the data-only image %s", ext, got, want)
		}
		// --keep-free-data: the identical image.
		keep := filepath.Join(dir, "keep"+ext)
		mustJSON(t, &s, "convert", "--keep-free-data", img, keep)
		if got := checksumOf(t, keep); got != whole {
			t.Errorf("%s --keep-free-data: read back %s, want the image %s", ext, got, whole)
		}
		// And back from the container to raw.
		back := filepath.Join(dir, "back"+ext+".img")
		mustJSON(t, &s, "convert", out, back)
		if got := fileSHA256(t, back); got != want {
			t.Errorf("%s → .img: %s, want %s", ext, got, want)
		}
	}
	// The VM format against qemu-img, with the same zeroing.
	if _, err := testimg.LookPath("qemu-img"); err == nil {
		ref := filepath.Join(dir, "dataonly.img")
		must(t, os.WriteFile(ref, dataOnly, 0o644))
		testimg.Run(t, "qemu-img", "check", filepath.Join(dir, "out.qcow2"))
		testimg.Run(t, "qemu-img", "compare", "-f", "qcow2", "-F", "raw", filepath.Join(dir, "out.qcow2"), ref)
		c := filepath.Join(dir, "c.qcow2")
		mustJSON(t, new(convertSummary), "convert", "-c", img, c)
		testimg.Run(t, "qemu-img", "check", c)
		testimg.Run(t, "qemu-img", "compare", "-f", "qcow2", "-F", "raw", c, ref)
		testimg.Run(t, "qemu-img", "check", filepath.Join(dir, "out.vmdk"))
		testimg.Run(t, "qemu-img", "compare", "-f", "vmdk", "-F", "raw", filepath.Join(dir, "out.vmdk"), ref)
		testimg.Run(t, "qemu-img", "compare", "-f", "vpc", "-F", "raw", filepath.Join(dir, "out.vhd"), ref)
		fixed := filepath.Join(dir, "fixed.vhd")
		mustJSON(t, new(convertSummary), "convert", "--format", "vhd-fixed", img, fixed)
		testimg.Run(t, "qemu-img", "compare", "-f", "vpc", "-F", "raw", fixed, ref)
		if _, err := testimg.LookPath("simg2img"); err == nil {
			back := filepath.Join(dir, "simg-back.img")
			testimg.Run(t, "simg2img", filepath.Join(dir, "out.simg"), back)
			if got := fileSHA256(t, back); got != want {
				t.Errorf("simg2img of our .simg: %s, want %s", got, want)
			}
		} else {
			testimg.Skip(t, "simg2img is not installed: .simg not checked against it")
		}
	} else {
		testimg.Skip(t, "qemu-img is not installed: qcow2 not checked against it")
	}
}

func TestConvertPeers(t *testing.T) {
	testimg.NeedTools(t, "xz", "gzip", "zstd")
	dir, img, dataOnly := convertFixture(t)
	for _, tc := range []struct {
		ext  string
		test []string
		cat  []string
	}{
		{".img.xz", []string{"xz", "-t"}, []string{"xz", "-dc"}},
		{".img.gz", []string{"gzip", "-t"}, []string{"gzip", "-dc"}},
		{".img.zst", []string{"zstd", "-tq"}, []string{"zstd", "-dcq"}},
	} {
		out := filepath.Join(dir, "peer"+tc.ext)
		// Small blocks so that even this image has several.
		_, errOut, code := imgtool(t, "convert", "--level", "1", img, out)
		if code != 0 {
			t.Fatalf("convert %s: %s", tc.ext, errOut)
		}
		testimg.Run(t, tc.test[0], append(tc.test[1:], out)...)
		got, err := exec.Command(tc.cat[0], append(tc.cat[1:], out)...).Output()
		if err != nil || !bytes.Equal(got, dataOnly) {
			t.Errorf("%s: %s does not give the data-only image (%v)", tc.ext, tc.cat[0], err)
		}
		if tc.ext == ".img.xz" {
			list := testimg.Run(t, "xz", "--robot", "-lv", out)
			if n := strings.Count(list, "\nblock\t"); n < 2 {
				t.Errorf("xz -l lists %d blocks, want several", n)
			}
		}
	}
}

func TestConvertBmap(t *testing.T) {
	testimg.NeedTools(t, "bmaptool")
	dir, img, dataOnly := convertFixture(t)
	out := filepath.Join(dir, "pi.img.xz")
	mustJSON(t, new(convertSummary), "convert", "--bmap", img, out)
	bm := filepath.Join(dir, "pi.img.bmap")
	f, err := os.Open(bm)
	must(t, err)
	m, err := bmap.Parse(f)
	f.Close()
	must(t, err)
	dest := filepath.Join(dir, "dest.img")
	testimg.Run(t, "bmaptool", "copy", "--bmap", bm, out, dest)
	got, err := os.ReadFile(dest)
	must(t, err)
	if len(got) != len(dataOnly) || len(m.Ranges) == 0 {
		t.Fatalf("bmaptool wrote %d bytes, want %d (%d ranges)", len(got), len(dataOnly), len(m.Ranges))
	}
	for _, r := range m.Ranges {
		off, n := m.Off(r), m.Len(r)
		if !bytes.Equal(got[off:off+n], dataOnly[off:off+n]) {
			t.Fatalf("range %d-%d differs after bmaptool copy", r.First, r.Last)
		}
	}
}

func TestConvertStdoutChecksumsAndErrors(t *testing.T) {
	dir, img, dataOnly := convertFixture(t)
	want := sha256Hex(dataOnly)

	// OUTPUT - writes to stdout.
	out, errOut, code := imgtool(t, "convert", "--format", "zst", img, "-")
	if code != 0 {
		t.Fatalf("convert to stdout: %s", errOut)
	}
	z, err := zstd.New(bytes.NewReader([]byte(out)), int64(len(out)))
	must(t, err)
	got := make([]byte, z.Size())
	_, err = z.ReadAt(got, 0)
	must(t, err)
	if !z.Seekable() || sha256Hex(got) != want {
		t.Errorf("stdout zst: seekable %v, content differs", z.Seekable())
	}
	if _, _, code := imgtool(t, "convert", img, "-"); code != 2 {
		t.Errorf("convert to - without --format: exit %d, want 2", code)
	}

	// --sha256 checks the input file as it is.
	xzOut := filepath.Join(dir, "pi.img.xz")
	mustJSON(t, new(convertSummary), "convert", img, xzOut)
	sum := fileSHA256(t, xzOut)
	sumFile := filepath.Join(dir, "pi.img.xz.sha256")
	must(t, os.WriteFile(sumFile, []byte("0000000000000000000000000000000000000000000000000000000000000000  other.img.xz\n"+sum+"  pi.img.xz\n"), 0o644))
	bad := strings.Repeat("ab", 32)
	for _, args := range [][]string{
		{"checksum", xzOut},
		{"inspect", xzOut},
		{"convert", xzOut, filepath.Join(dir, "x.img")},
	} {
		name := args[0]
		for _, spec := range []string{sum, sumFile} {
			a := append(append([]string{}, args...), "--sha256", spec)
			if _, errOut, code := imgtool(t, a...); code != 0 {
				t.Errorf("%s --sha256 %s: exit %d: %s", name, spec, code, errOut)
			}
			os.Remove(filepath.Join(dir, "x.img"))
		}
		a := append(append([]string{}, args...), "--sha256", bad)
		_, errOut, code := imgtool(t, a...)
		if code != 1 || !strings.Contains(errOut, "download it again") {
			t.Errorf("%s --sha256 BAD: exit %d: %s", name, code, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.img")); err == nil {
		t.Error("convert with a bad --sha256 created OUTPUT")
	}

	// checksum of the decompressed image, other algorithms.
	if got := checksumOf(t, xzOut); got != want {
		t.Errorf("checksum .xz: %s, want %s", got, want)
	}
	m := md5.Sum(dataOnly)
	if got := checksumOf(t, xzOut, "--algo", "md5"); got != hex.EncodeToString(m[:]) {
		t.Errorf("checksum --algo md5: %s", got)
	}
	if _, errOut, code := imgtool(t, "checksum", "--algo", "blake3", xzOut); code != 2 || !strings.Contains(errOut, "not available") {
		t.Errorf("--algo blake3: exit %d: %s", code, errOut)
	}

	// An existing OUTPUT is kept without --force.
	if _, errOut, code := imgtool(t, "convert", img, xzOut); code != 1 || !strings.Contains(errOut, "--force") {
		t.Errorf("convert over an existing file: exit %d: %s", code, errOut)
	}

	// imgtool read writes compressed backups through the same writers.
	rawBackup := filepath.Join(dir, "backup.img")
	zstBackup := filepath.Join(dir, "backup.img.zst")
	mustJSON(t, new(readSummary), "read", img, rawBackup)
	mustJSON(t, new(readSummary), "read", img, zstBackup)
	if a, b := checksumOf(t, rawBackup), checksumOf(t, zstBackup); a != b {
		t.Errorf("read into .img.zst gives %s, into .img %s", b, a)
	}
}

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/inspect"
	"imgtool/internal/testimg"
)

// TestReadEveryContainer inspects and reads a file from the same Pi-like
// image wrapped in every container the peers write, and checks the answers
// equal those for the raw image.
func TestReadEveryContainer(t *testing.T) {
	testimg.NeedTools(t, "xz", "zstd", "gzip", "bzip2", "zip", "qemu-img")
	dir := t.TempDir()
	root := filepath.Join(dir, "rootsrc")
	must(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte("containerpi\n"), 0o644))
	img := testimg.PiImage(t, dir, testimg.PiOptions{Size: 96 << 20, RootFiles: root})
	want := inspectJSON(t, img)

	sh := func(name string, args ...string) { testimg.Run(t, name, args...) }
	variants := map[string]func() string{
		"xz multi-block": func() string {
			out := img + ".mb.xz"
			data := testimg.Run(t, "xz", "-T2", "--block-size=4MiB", "-c", img)
			must(t, os.WriteFile(out, []byte(data), 0o644))
			return out
		},
		"xz single-block": func() string {
			out := img + ".sb.xz"
			must(t, os.WriteFile(out, []byte(testimg.Run(t, "xz", "-T1", "-c", img)), 0o644))
			return out
		},
		"zstd": func() string {
			out := img + ".zst"
			sh("zstd", "-q", "-f", img, "-o", out)
			return out
		},
		"gzip": func() string {
			out := img + ".gz"
			must(t, os.WriteFile(out, []byte(testimg.Run(t, "gzip", "-c", img)), 0o644))
			return out
		},
		"bzip2": func() string {
			out := img + ".bz2"
			must(t, os.WriteFile(out, []byte(testimg.Run(t, "bzip2", "-c", img)), 0o644))
			return out
		},
		"zip member": func() string {
			out := filepath.Join(dir, "archive.zip")
			sh("zip", "-q", "-j", out, img)
			return out + ":pi.img"
		},
		"qcow2 compressed": func() string {
			out := img + ".qcow2"
			sh("qemu-img", "convert", "-c", "-O", "qcow2", img, out)
			return out
		},
		"vmdk streamOptimized": func() string {
			out := img + ".vmdk"
			sh("qemu-img", "convert", "-O", "vmdk", "-o", "subformat=streamOptimized", img, out)
			return out
		},
	}
	for name, make := range variants {
		t.Run(name, func(t *testing.T) {
			path := make()
			var got inspect.Report
			mustJSON(t, &got, "inspect", path)
			if got.Size != want.Size || got.Table != want.Table || got.DiskID != want.DiskID || len(got.Partitions) != len(want.Partitions) {
				t.Fatalf("inspect %s: size %d table %s id %s, raw image: %d %s %s", name, got.Size, got.Table, got.DiskID, want.Size, want.Table, want.DiskID)
			}
			for i := range want.Partitions {
				w, g := want.Partitions[i], got.Partitions[i]
				if g.Start != w.Start || g.Size != w.Size || g.Filesystem == nil || g.Filesystem.UUID != w.Filesystem.UUID || g.Filesystem.Used != w.Filesystem.Used {
					t.Errorf("partition %d differs from the raw image's", w.Number)
				}
			}
			if got.Format == "raw" {
				t.Errorf("format reported as raw")
			}
			out, stderr, code := imgtool(t, "cat", path, "rootfs:/etc/hostname")
			if code != 0 || out != "containerpi\n" {
				t.Errorf("cat from %s: exit %d %q %s", name, code, out, stderr)
			}
		})
	}
}

// TestDamagedContainers cuts and flips bytes in every container the peers
// write and checks that imgtool fails with one line and exit status 1 (or,
// for a flip the format cannot notice, reads the same bytes), never a panic
// or silently short data.
func TestDamagedContainers(t *testing.T) {
	testimg.NeedTools(t, "xz", "zstd", "gzip", "bzip2", "qemu-img")
	dir := t.TempDir()
	img := testimg.PiImage(t, dir, testimg.PiOptions{Size: 64 << 20, BootSize: 16 << 20})
	want := checksumOf(t, img)
	made := map[string]string{}
	put := func(name string, data string) {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, []byte(data), 0o644))
		made[name] = p
	}
	put("x.img.xz", testimg.Run(t, "xz", "-T2", "--block-size=4MiB", "-c", img))
	put("x.img.zst", testimg.Run(t, "zstd", "-q", "-c", img))
	put("x.img.gz", testimg.Run(t, "gzip", "-c", img))
	put("x.img.bz2", testimg.Run(t, "bzip2", "-c", img))
	q := filepath.Join(dir, "x.qcow2")
	testimg.Run(t, "qemu-img", "convert", "-c", "-O", "qcow2", img, q)
	made["x.qcow2"] = q
	for name, p := range made {
		data, err := os.ReadFile(p)
		must(t, err)
		for _, cut := range []int{len(data) / 3, len(data) - 100, len(data) - 1} {
			bad := filepath.Join(dir, "cut-"+name)
			must(t, os.WriteFile(bad, data[:cut], 0o644))
			out, stderr, code := imgtool(t, "checksum", bad)
			switch {
			case code == 0 && !strings.Contains(out, want):
				t.Errorf("%s cut at %d of %d: read without error but wrong data", name, cut, len(data))
			case code != 0 && (code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0):
				t.Errorf("%s cut at %d of %d: exit %d, stderr %q", name, cut, len(data), code, stderr)
			}
		}
		flipped := append([]byte(nil), data...)
		flipped[len(flipped)/2] ^= 0x40
		bad := filepath.Join(dir, "flip-"+name)
		must(t, os.WriteFile(bad, flipped, 0o644))
		out, stderr, code := imgtool(t, "checksum", bad)
		if code == 0 && !strings.Contains(out, want) {
			t.Errorf("%s with a flipped byte: read without error but wrong data", name)
		} else if code != 0 && code != 1 {
			t.Errorf("%s with a flipped byte: exit %d: %s", name, code, stderr)
		}
	}
}

// TestCutBetweenMembers cuts our own .gz and .zst outputs exactly between
// two members or frames — what gzip and zstd themselves accept as a valid,
// shorter stream — and checks that imgtool refuses them.
func TestCutBetweenMembers(t *testing.T) {
	testimg.NeedTools(t, "gzip", "zstd")
	dir := t.TempDir()
	img := testimg.PiImage(t, dir, testimg.PiOptions{Size: 64 << 20, BootSize: 16 << 20})
	for _, c := range []struct {
		out   string
		args  []string
		magic []byte
		test  []string
	}{
		{"x.img.gz", nil, []byte{0x1f, 0x8b, 0x08}, []string{"gzip", "-t"}},
		{"x.img.zst", nil, []byte{0x28, 0xb5, 0x2f, 0xfd}, []string{"zstd", "-q", "-t"}},
		{"y.img.zst", []string{"--no-seekable"}, []byte{0x28, 0xb5, 0x2f, 0xfd}, []string{"zstd", "-q", "-t"}},
	} {
		out := filepath.Join(dir, c.out)
		mustJSON(t, new(convertSummary), append(append([]string{"convert", "--keep-free-data"}, c.args...), img, out)...)
		data, err := os.ReadFile(out)
		must(t, err)
		// The last member or frame start whose prefix the peer tool accepts.
		cut := -1
		for i := len(data) - 1; i > 64 && cut < 0; i-- {
			if !bytes.HasPrefix(data[i:], c.magic) {
				continue
			}
			p := filepath.Join(dir, "prefix")
			must(t, os.WriteFile(p, data[:i], 0o644))
			if exec.Command(c.test[0], append(c.test[1:], p)...).Run() == nil {
				cut = i
			}
		}
		if cut < 0 {
			t.Fatalf("%s: no member boundary found", c.out)
		}
		bad := filepath.Join(dir, "cut-"+c.out)
		must(t, os.WriteFile(bad, data[:cut], 0o644))
		if _, stderr, code := imgtool(t, "checksum", bad); code != 1 {
			t.Errorf("%s cut between members at %d: exit %d (%s); %s accepts it, we must not", c.out, cut, code, stderr, c.test[0])
		}
	}
}

package main

import (
	"os"
	"path/filepath"
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

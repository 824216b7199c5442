package ext4

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/internal/testimg"
)

func TestWriter(t *testing.T) {
	testimg.NeedTools(t, "mkfs.ext4", "e2fsck")
	for _, c := range writerVariants[:4] {
		t.Run(c.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src")
			makeTree(t, src, treeOpts{manyFiles: 2000})
			os.MkdirAll(filepath.Join(src, "etc", "systemd", "system"), 0o755)
			img := mkfs(t, src, 64<<20, c.args...)
			// e2fsck -D indexes the large directory (htree): adding to it
			// exercises the conversion to a linear directory.
			testimg.E2fsckOptimize(t, img)
			if out := testimg.Run(t, "debugfs", "-R", "stat /many", img); !strings.Contains(out, "Flags: 0x81000") {
				t.Logf("many/ is not indexed: %s", out[:min(len(out), 200)])
			}
			w := openWriter(t, img)
			unit := []byte("[Unit]\nDescription=expand the root filesystem\n")
			script := bytes.Repeat([]byte("#!/bin/sh\necho expanding\n"), 400)
			steps := []error{
				w.WriteFile("etc/systemd/system/imgtool-expand.service", unit, 0o644, 0, 0),
				w.Mkdir("usr", 0o755, 0, 0),
				w.Mkdir("usr/local", 0o755, 0, 0),
				w.Mkdir("usr/local/sbin", 0o755, 0, 0),
				w.WriteFile("usr/local/sbin/imgtool-expand", script, 0o755, 0, 0),
				w.Mkdir("etc/systemd/system/multi-user.target.wants", 0o755, 0, 0),
				w.Symlink("/etc/systemd/system/imgtool-expand.service", "etc/systemd/system/multi-user.target.wants/imgtool-expand.service"),
				w.Symlink(strings.Repeat("long/", 20)+"target", "etc/longlink"),
				w.WriteFile("etc/hostname", []byte("replaced\n"), 0o600, 1000, 1000),
				w.WriteFile("many/added-to-htree", []byte("new entry"), 0o644, 0, 0),
				w.Remove("files/f13_1048699"),
				w.Remove("hard/two"),
				w.Remove("many/file-with-a-longish-name-00007"),
			}
			for i, err := range steps {
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			shrinkFsck(t, img)
			f := openImage(t, img)
			for name, want := range map[string][]byte{
				"etc/systemd/system/imgtool-expand.service": unit,
				"usr/local/sbin/imgtool-expand":             script,
				"etc/hostname":                              []byte("replaced\n"),
				"many/added-to-htree":                       []byte("new entry"),
			} {
				got, err := f.ReadFile(name)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("ReadFile(%s) = %q, %v", name, got, err)
				}
			}
			if l, err := f.ReadLink("etc/systemd/system/multi-user.target.wants/imgtool-expand.service"); err != nil || l != "/etc/systemd/system/imgtool-expand.service" {
				t.Errorf("ReadLink = %q, %v", l, err)
			}
			for _, gone := range []string{"files/f13_1048699", "hard/two", "many/file-with-a-longish-name-00007"} {
				if _, err := f.Stat(gone); err == nil {
					t.Errorf("%s still exists", gone)
				}
			}
			ents, err := f.ReadDir("many")
			if err != nil || len(ents) != 2000 {
				t.Errorf("many/ has %d entries (%v), want 2000", len(ents), err)
			}
			fi, err := f.Stat("usr/local/sbin/imgtool-expand")
			if err != nil || fi.Mode().Perm() != 0o755 {
				t.Errorf("mode %v, %v", fi, err)
			}
			_ = fmt.Sprint
		})
	}
}

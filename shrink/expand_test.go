package shrink

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/expand"
	"imgtool/internal/testimg"
)

func TestExpansionMechanisms(t *testing.T) {
	testimg.NeedTools(t, "sfdisk", "mkfs.ext4", "mkfs.vfat", "mcopy", "e2fsck", "fsck.vfat")
	useEngine(t)
	const trixieUnit = "[Unit]\nDescription=Resize root\nConditionFirstBoot=yes\nConditionPathExists=/usr/lib/raspberrypi-sys-mods/rpi-resize\n[Service]\nType=oneshot\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
	base := strings.TrimSuffix(piCmdline, "\n")
	for _, c := range []struct {
		name, marker, content, mech, cmdline string
	}{
		{"bookworm", expand.FirstbootPath, "#!/bin/sh\n", expand.RPiFirstboot, base + " init=/usr/lib/raspberrypi-sys-mods/firstboot\n"},
		{"trixie", "usr/lib/systemd/system/rpi-resize.service", trixieUnit, expand.RPiResize, base + " resize\n"},
		{"legacy", expand.InitResizePath, "#!/bin/sh\n", expand.RPiInitResize, base + " init=/usr/lib/raspi-config/init_resize.sh\n"},
		{"other", "etc/debian_version", "13.0\n", expand.Imgtool, piCmdline},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := rootFiles(t, 2)
			p := filepath.Join(root, c.marker)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(c.content), 0o755); err != nil {
				t.Fatal(err)
			}
			img := testimg.PiImage(t, t.TempDir(), testimg.PiOptions{Size: 256 * MiB, RootFiles: root, BootFiles: bootFiles(t, piCmdline)})
			before := tree(t, img)
			res, err := Apply(context.Background(), img, Options{Slack: -1})
			if err != nil {
				t.Fatal(err)
			}
			if res.Expansion == nil || res.Expansion.Mechanism != c.mech || !res.Expansion.Armed {
				t.Fatalf("expansion %+v, want %s armed", res.Expansion, c.mech)
			}
			t.Logf("%s: %s", c.name, res.ExpansionAction)
			fsckAll(t, img)
			after := tree(t, img)
			diffTrees(t, before, after, noExpandChanges)
			f, _ := os.Open(img)
			defer f.Close()
			fi, _ := f.Stat()
			st, boot, err := detect(f2rw{f}, fi.Size(), 2)
			if err != nil || boot == nil {
				t.Fatal(err)
			}
			if boot.cmdline != c.cmdline {
				t.Errorf("cmdline.txt = %q, want %q", boot.cmdline, c.cmdline)
			}
			if st != *res.Expansion {
				t.Errorf("detected %+v after, result says %+v", st, *res.Expansion)
			}
			if c.name == "trixie" {
				if _, ok := after["2:etc/systemd/system/multi-user.target.wants/rpi-resize.service"]; !ok {
					t.Error("rpi-resize.service not enabled")
				}
				if d := after["2:"+expand.RPiDropIn]; d == "" {
					t.Error("no drop-in")
				}
			}
			if c.name == "other" {
				if m := after["2:"+expand.ScriptPath]; !strings.HasPrefix(m, "-rwxr-xr-x") {
					t.Errorf("script: %q", m)
				}
			}
		})
	}
}

// f2rw adapts a read-only file for detect, which only reads.
type f2rw struct{ *os.File }

func TestCmdlineEdits(t *testing.T) {
	for _, c := range []struct{ in, out string }{
		{"a b\n", "a b init=/x\n"},
		{"a init=/y b", "a init=/x b"},
		{"  a   b  \r\n", "a b init=/x\n"},
	} {
		if got := expand.SetInit(c.in, "/x"); got != c.out {
			t.Errorf("SetInit(%q) = %q, want %q", c.in, got, c.out)
		}
	}
	if got := expand.AddToken("a resize\n", "resize"); got != "a resize\n" {
		t.Errorf("AddToken kept = %q", got)
	}
	if got := expand.AddToken("a\n", "resize"); got != "a resize\n" {
		t.Errorf("AddToken = %q", got)
	}
	if d := expand.RPiResizeDropIn("[Unit]\nConditionFirstBoot=yes\nConditionPathExists=/a\n"); !strings.Contains(d, "ConditionFirstBoot=\nConditionPathExists=/a\n") {
		t.Errorf("drop-in %q", d)
	}
	if d := expand.RPiResizeDropIn("[Unit]\nConditionPathExists=/a\n"); d != "" {
		t.Errorf("drop-in without ConditionFirstBoot: %q", d)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/customize"
	"imgtool/fs"
	"imgtool/fs/meta"
	"imgtool/internal/testimg"
)

// customImage builds a Pi-like image whose root filesystem holds a small
// system plus the marker files of one first-boot mechanism ("path" makes
// an executable, "path=text" a file with text, "path/" a directory).
func customImage(t *testing.T, markers ...string) string {
	t.Helper()
	testimg.NeedTools(t, "sfdisk", "mkfs.vfat", "mkfs.ext4", "mcopy", "mtype", "fsck.vfat", "e2fsck", "debugfs")
	dir := t.TempDir()
	boot, root := filepath.Join(dir, "boot"), filepath.Join(dir, "root")
	writeTestFile(t, filepath.Join(boot, "config.txt"), "dtparam=audio=on\n", 0o644)
	writeTestFile(t, filepath.Join(boot, "cmdline.txt"), "console=tty1 root=PARTUUID=1234abcd-02 rootwait quiet\n", 0o644)
	for name, s := range map[string]string{
		"etc/passwd":                        "root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n",
		"etc/group":                         "root:x:0:\nadm:x:4:pi\nshadow:x:42:\nsudo:x:27:pi\npi:x:1000:\n",
		"etc/hostname":                      "raspberrypi\n",
		"etc/hosts":                         "127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n",
		"etc/machine-id":                    "0123456789abcdef0123456789abcdef\n",
		"var/lib/dbus/machine-id":           "0123456789abcdef0123456789abcdef\n",
		"etc/ssh/ssh_host_ed25519_key":      "PRIVATE\n",
		"etc/ssh/sshd_config":               "# defaults\n",
		"var/log/syslog":                    strings.Repeat("log line\n", 500),
		"var/log/syslog.1":                  "older\n",
		"root/.bash_history":                "ls\n",
		"home/pi/.bashrc":                   "# pi\n",
		"etc/skel/.bashrc":                  "# skel\n",
		"var/lib/dhcp/dhclient.eth0.leases": "lease {}\n",
		"bin/bash":                          "#!/bin/sh\n",
	} {
		writeTestFile(t, filepath.Join(root, name), s, 0o644)
	}
	writeTestFile(t, filepath.Join(root, "etc/shadow"), "root:*:19000:0:99999:7:::\npi:!:19000:0:99999:7:::\n", 0o640)
	must(t, os.MkdirAll(filepath.Join(root, "boot", "firmware"), 0o755))
	for _, m := range markers {
		switch name, val, ok := strings.Cut(m, "="); {
		case strings.HasSuffix(m, "/"):
			must(t, os.MkdirAll(filepath.Join(root, m), 0o755))
		case ok:
			writeTestFile(t, filepath.Join(root, name), val, 0o644)
		default:
			writeTestFile(t, filepath.Join(root, m), "#!/bin/sh\n", 0o755)
		}
	}
	return testimg.PiImage(t, dir, testimg.PiOptions{BootFiles: boot, RootFiles: root})
}

// imgtoolIn runs the CLI with stdin.
func imgtoolIn(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return stdout.String(), stderr.String(), code
}

func mtypeFile(t *testing.T, img, name string) string {
	t.Helper()
	return testimg.Run(t, "mtype", "-i", fmt.Sprintf("%s@@%d", img, partitions(t, img)[0].Start), "::/"+name)
}

func debugfsCat(t *testing.T, img, name string) string {
	t.Helper()
	return testimg.Run(t, "debugfs", "-R", "cat "+name, fmt.Sprintf("%s?offset=%d", img, partitions(t, img)[1].Start))
}

// dryRunThenApply checks that --dry-run changes nothing and returns the
// plan it printed; then it applies the options for real and checks the
// filesystems and the files outside the plan.
func dryRunThenApply(t *testing.T, img, stdin string, args ...string) planJSON {
	t.Helper()
	sum, before := fileSHA256(t, img), manifest(t, img)
	text, stderr, code := imgtoolIn(t, stdin, append([]string{"customize", img, "--dry-run"}, args...)...)
	if code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, stderr)
	}
	out, stderr, code := imgtoolIn(t, stdin, append([]string{"customize", img, "--dry-run", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("dry run --json: exit %d: %s", code, stderr)
	}
	var plan planJSON
	if err := json.Unmarshal([]byte(out), &plan); err != nil || !plan.DryRun {
		t.Fatalf("dry run --json: %v\n%s", err, out)
	}
	if fileSHA256(t, img) != sum {
		t.Fatal("--dry-run changed the image")
	}
	for _, c := range plan.Changes {
		if !strings.Contains(text, c.FS+":"+c.Path) {
			t.Errorf("dry-run text does not name %s:%s", c.FS, c.Path)
		}
	}
	_, stderr, code = imgtoolIn(t, stdin, append([]string{"customize", img}, args...)...)
	if code != 0 {
		t.Fatalf("customize: exit %d: %s", code, stderr)
	}
	fsckAll(t, img)
	var changed []string
	for _, c := range plan.Changes {
		n := "1"
		if c.FS == "root" {
			n = "2"
		}
		changed = append(changed, n+":"+c.Path)
		if c.Action == "mkdir" {
			changed = append(changed, n+":"+c.Path+"/")
		}
		// A directory whose entries changed changes too (size, times).
		for d := filepath.ToSlash(filepath.Dir(c.Path)); d != "/" && d != "."; d = filepath.ToSlash(filepath.Dir(d)) {
			changed = append(changed, n+":"+d)
		}
	}
	sameExcept(t, before, manifest(t, img), changed...)
	return plan
}

func contentOf(p planJSON, fsName, path string) (string, bool) {
	for _, c := range p.Changes {
		if c.FS == fsName && c.Path == path && c.Action == "write" {
			return c.Content, true
		}
	}
	return "", false
}

func TestCustomizeFirstrun(t *testing.T) {
	img := customImage(t, "usr/lib/raspberrypi-sys-mods/firstboot")
	plan := dryRunThenApply(t, img, "", "--hostname", "kiosk", "--ssh", "--wifi-ssid", "HomeNet", "--wifi-password", "correct horse",
		"--wifi-country", "GB", "--timezone", "Europe/London", "--keymap", "gb", "--boot-config", "dtoverlay=disable-bt")
	if plan.Mechanism != customize.MechFirstrun {
		t.Fatalf("mechanism %s", plan.Mechanism)
	}
	script, ok := contentOf(plan, "boot", "/firstrun.sh")
	if !ok {
		t.Fatal("no firstrun.sh planned")
	}
	if got := mtypeFile(t, img, "firstrun.sh"); got != script {
		t.Errorf("firstrun.sh on the image differs from the plan:\n%s", got)
	}
	psk, _ := customize.WPAPSK("correct horse", "HomeNet")
	for _, s := range []string{"imager_custom set_hostname 'kiosk'", "imager_custom enable_ssh\n", "imager_custom set_wlan 'HomeNet' '" + psk + "' 'GB'",
		"imager_custom set_keymap 'gb'", "imager_custom set_timezone 'Europe/London'", "rm -f /boot/firmware/firstrun.sh"} {
		if !strings.Contains(script, s) {
			t.Errorf("firstrun.sh lacks %q", s)
		}
	}
	want := "console=tty1 root=PARTUUID=1234abcd-02 rootwait quiet systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target\n"
	if got := mtypeFile(t, img, "cmdline.txt"); got != want {
		t.Errorf("cmdline.txt %q, want %q", got, want)
	}
	rep := inspectJSON(t, img)
	fb := rep.FirstBoot
	if fb == nil || len(fb.Sources) != 1 || fb.Sources[0].Mechanism != "firstrun.sh" || fb.Hostname != "kiosk" || !fb.SSH ||
		fb.WifiSSID != "HomeNet" || !fb.WifiPSKSet || fb.WifiCountry != "GB" || fb.Timezone != "Europe/London" || fb.Keymap != "gb" || len(fb.Warnings) != 0 {
		t.Errorf("inspect first_boot %+v", fb)
	}
	// Once more: config.txt and cmdline.txt do not grow.
	_, stderr, code := imgtool(t, "customize", img, "--hostname", "kiosk", "--boot-config", "dtoverlay=disable-bt")
	if code != 0 {
		t.Fatal(stderr)
	}
	if got := mtypeFile(t, img, "config.txt"); got != "dtparam=audio=on\ndtoverlay=disable-bt\n" {
		t.Errorf("config.txt after two runs: %q", got)
	}
	if got := mtypeFile(t, img, "cmdline.txt"); got != want {
		t.Errorf("cmdline.txt after two runs: %q", got)
	}
	fsckAll(t, img)
}

func TestCustomizeCloudInit(t *testing.T) {
	for _, c := range []struct {
		name    string
		markers []string
		ds      bool
	}{
		{"raspios-trixie", []string{"usr/lib/raspberrypi-sys-mods/firstboot", "usr/bin/cloud-init", "etc/os-release=ID=debian\n"}, true},
		{"ubuntu", []string{"etc/cloud/", "etc/os-release=ID=ubuntu\n"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			testimg.NeedTools(t, "cloud-init")
			img := customImage(t, c.markers...)
			if rep := inspectJSON(t, img); rep.FirstBoot != nil {
				t.Errorf("a fresh image has first boot %+v", rep.FirstBoot)
			}
			hash := customize.SHA512Crypt("pw for test", "abcdefgh", 0)
			plan := dryRunThenApply(t, img, "", "--hostname", "node1", "--user", "ops", "--password-hash", hash,
				"--ssh-key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAItest ops@host", "--wifi-ssid", "Lab", "--wifi-password", "labpassword")
			if plan.Mechanism != customize.MechCloudInit {
				t.Fatalf("mechanism %s", plan.Mechanism)
			}
			ud := mtypeFile(t, img, "user-data")
			for _, s := range []string{"#cloud-config\n", "hostname: \"node1\"\n", "- name: \"ops\"\n", "  passwd: \"" + hash + "\"\n",
				"- \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAItest ops@host\"\n", "ssh_pwauth: true\n"} {
				if !strings.Contains(ud, s) {
					t.Errorf("user-data lacks %q:\n%s", s, ud)
				}
			}
			// cloud-init itself accepts the user-data written to the image.
			udFile := filepath.Join(t.TempDir(), "user-data")
			must(t, os.WriteFile(udFile, []byte(ud), 0o644))
			if out := testimg.Run(t, "cloud-init", "schema", "--config-file", udFile); !strings.Contains(out, "Valid cloud-config") {
				t.Errorf("cloud-init schema: %s", out)
			}
			psk, _ := customize.WPAPSK("labpassword", "Lab")
			if nc := mtypeFile(t, img, "network-config"); !strings.Contains(nc, "        \"Lab\":\n          password: \""+psk+"\"\n") {
				t.Errorf("network-config:\n%s", nc)
			}
			// inspect shows what is armed.
			rep := inspectJSON(t, img)
			fb := rep.FirstBoot
			if fb == nil || len(fb.Sources) != 1 || fb.Sources[0].Mechanism != "cloud-init" || fb.Hostname != "node1" || fb.User != "ops" ||
				!fb.PasswordSet || fb.SSHKeys != 1 || !fb.SSH || fb.WifiSSID != "Lab" || !fb.WifiPSKSet {
				t.Errorf("inspect first_boot %+v", fb)
			}
			text, _, _ := imgtool(t, "inspect", img)
			if !strings.Contains(text, "First boot (armed):") || strings.Contains(text, hash) || strings.Contains(text, psk) {
				t.Errorf("inspect text:\n%s", text)
			}
			if md := mtypeFile(t, img, "meta-data"); !strings.HasPrefix(md, "instance-id: imgtool-") {
				t.Errorf("meta-data %q", md)
			}
			cmd := mtypeFile(t, img, "cmdline.txt")
			if has := strings.Contains(cmd, " ds=nocloud"); has != c.ds {
				t.Errorf("cmdline.txt %q: ds=nocloud %v, want %v", cmd, has, c.ds)
			}
			if strings.Contains(cmd, "systemd.run") {
				t.Errorf("cmdline.txt %q has firstrun tokens", cmd)
			}
		})
	}
}

// statIn returns the metadata of a file in partition n, read with our reader.
func statIn(t *testing.T, img string, n int, name string) *meta.Stat {
	t.Helper()
	parts, done := readParts(t, img)
	defer done()
	sec := parts[n-1].Section()
	fsys, _, err := fs.Open(sec, sec.Size(), fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := iofs.Lstat(fsys, name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return fi.Sys().(*meta.Stat)
}

func TestCustomizeRootfs(t *testing.T) {
	img := customImage(t, "lib/systemd/system/ssh.service", "etc/os-release=ID=alpine\n")
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIroot admin@host"
	keyFile := filepath.Join(t.TempDir(), "id.pub")
	must(t, os.WriteFile(keyFile, []byte(key+"\n"), 0o644))
	plan := dryRunThenApply(t, img, "Pa55 word\n", "--hostname", "box", "--user", "admin", "--password", "--ssh-key", keyFile,
		"--ssh-key-only", "--wifi-ssid", "Lab", "--wifi-password", "labpassword", "--wifi-country", "DE", "--timezone", "Europe/Berlin", "--sysprep")
	if plan.Mechanism != customize.MechRootfs {
		t.Fatalf("mechanism %s", plan.Mechanism)
	}
	if got := debugfsCat(t, img, "/etc/hostname"); got != "box\n" {
		t.Errorf("hostname %q", got)
	}
	if got := debugfsCat(t, img, "/etc/hosts"); !strings.Contains(got, "127.0.1.1\tbox\n") || strings.Contains(got, "raspberrypi") {
		t.Errorf("hosts %q", got)
	}
	shadow := debugfsCat(t, img, "/etc/shadow")
	var line string
	for _, l := range strings.Split(shadow, "\n") {
		if strings.HasPrefix(l, "admin:") {
			line = l
		}
	}
	f := strings.Split(line, ":")
	if len(f) != 9 {
		t.Fatalf("shadow line %q does not parse", line)
	}
	if !customize.VerifyPassword(f[1], "Pa55 word") || customize.VerifyPassword(f[1], "Pa55 wore") {
		t.Errorf("hash %s does not verify", f[1])
	}
	salt := strings.Split(f[1], "$")[2]
	if ossl := strings.TrimSpace(testimg.Run(t, "openssl", "passwd", "-6", "-salt", salt, "Pa55 word")); ossl != f[1] {
		t.Errorf("openssl passwd -6 -salt %s gives %s, shadow holds %s", salt, ossl, f[1])
	}
	if got := debugfsCat(t, img, "/etc/passwd"); !strings.Contains(got, "\nadmin:x:1001:1001:,,,:/home/admin:/bin/bash\n") {
		t.Errorf("passwd %q", got)
	}
	if got := debugfsCat(t, img, "/etc/group"); !strings.Contains(got, "sudo:x:27:pi,admin\n") || !strings.Contains(got, "\nadmin:x:1001:\n") {
		t.Errorf("group %q", got)
	}
	for _, c := range []struct {
		name string
		mode uint32
	}{{"home/admin", 0o755}, {"home/admin/.ssh", 0o700}, {"home/admin/.ssh/authorized_keys", 0o600}, {"home/admin/.bashrc", 0o644}} {
		st := statIn(t, img, 2, c.name)
		if st.Uid != 1001 || st.Gid != 1001 || st.Unix&0o7777 != c.mode {
			t.Errorf("%s: %d:%d %04o, want 1001:1001 %04o", c.name, st.Uid, st.Gid, st.Unix&0o7777, c.mode)
		}
	}
	if out := testimg.Run(t, "debugfs", "-R", "stat /home/admin", fmt.Sprintf("%s?offset=%d", img, partitions(t, img)[1].Start)); !strings.Contains(out, "User:  1001   Group:  1001") {
		t.Errorf("debugfs stat /home/admin:\n%s", out)
	}
	if got := debugfsCat(t, img, "/home/admin/.ssh/authorized_keys"); got != key+"\n" {
		t.Errorf("authorized_keys %q", got)
	}
	if st := statIn(t, img, 2, "etc/systemd/system/multi-user.target.wants/ssh.service"); st.Link != "/lib/systemd/system/ssh.service" {
		t.Errorf("ssh.service link %q", st.Link)
	}
	if got := debugfsCat(t, img, "/etc/ssh/sshd_config"); got != "# defaults\nPasswordAuthentication no\n" {
		t.Errorf("sshd_config %q", got)
	}
	psk, _ := customize.WPAPSK("labpassword", "Lab")
	if got := debugfsCat(t, img, "/etc/wpa_supplicant/wpa_supplicant.conf"); !strings.Contains(got, "country=DE\n") || !strings.Contains(got, "\tpsk="+psk+"\n") {
		t.Errorf("wpa_supplicant.conf %q", got)
	}
	if st := statIn(t, img, 2, "etc/wpa_supplicant/wpa_supplicant.conf"); st.Unix&0o777 != 0o600 {
		t.Errorf("wpa_supplicant.conf mode %04o", st.Unix&0o777)
	}
	// sysprep
	m := manifest(t, img)
	for _, gone := range []string{"2:/etc/ssh/ssh_host_ed25519_key", "2:/var/lib/dbus/machine-id", "2:/var/log/syslog.1", "2:/root/.bash_history", "2:/var/lib/dhcp/dhclient.eth0.leases"} {
		if _, ok := m[gone]; ok {
			t.Errorf("%s still there after --sysprep", gone)
		}
	}
	for _, empty := range []string{"etc/machine-id", "var/log/syslog"} {
		if st := statIn(t, img, 2, empty); st.Size != 0 {
			t.Errorf("%s: %d bytes after --sysprep", empty, st.Size)
		}
	}
}

func TestCustomizeErrors(t *testing.T) {
	img := customImage(t) // no ssh.service, no first-boot mechanism
	sum := fileSHA256(t, img)
	for _, c := range []struct {
		stdin string
		args  []string
		code  int
		msg   string
	}{
		{"", []string{"--ssh"}, 1, "ssh.service"},
		{"", []string{"--user", "x", "--password-hash", "nothash"}, 2, "sha512-crypt"},
		{"", []string{"--user", "x", "--password"}, 2, "no password"},
		{"", []string{}, 2, "nothing to change"},
		{"", []string{"--wifi-ssid", "x", "--wifi-password", "short"}, 2, "8 to 63"},
		{"", []string{"--hostname", "a b"}, 2, "host name"},
	} {
		_, stderr, code := imgtoolIn(t, c.stdin, append([]string{"customize", img}, c.args...)...)
		expectNoChange(t, img, sum, code, c.code, stderr, c.msg)
	}
}

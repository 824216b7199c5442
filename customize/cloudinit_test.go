package customize

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"imgtool/internal/testimg"
)

// These tests check the NoCloud files Build writes with cloud-init itself
// (Debian's cloud-init 22.4 package, see scripts/deps.sh): user-data with
// "cloud-init schema", network-config with cloud-init's own network
// parser and renderers ("cloud-init devel net-convert"), meta-data as
// YAML.

// runCloudInit runs cloud-init and returns its exit code and output.
func runCloudInit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	p, err := testimg.LookPath("cloud-init")
	if err != nil {
		testimg.Skip(t, "cloud-init not installed (scripts/deps.sh installs it)")
	}
	cmd := exec.Command(p, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	}
	t.Fatalf("cloud-init %s: %v", strings.Join(args, " "), err)
	return 0, ""
}

// checkSchema validates a user-data file with "cloud-init schema".
func checkSchema(t *testing.T, file string) {
	t.Helper()
	code, out := runCloudInit(t, "schema", "--config-file", file)
	if code != 0 || !strings.Contains(out, "Valid cloud-config") || strings.Contains(strings.ToLower(out), "deprecat") {
		data, _ := os.ReadFile(file)
		t.Errorf("cloud-init schema --config-file %s: exit %d\n%s\n--- user-data\n%s", filepath.Base(file), code, out, data)
	}
}

// netConvert renders a network-config with cloud-init and returns the
// files it wrote (path below out → content).
func netConvert(t *testing.T, file, distro, kind string) map[string]string {
	t.Helper()
	out := t.TempDir()
	code, msg := runCloudInit(t, "devel", "net-convert", "--network-data", file, "--kind", "yaml", "--distro", distro, "--output-kind", kind, "--directory", out)
	if code != 0 {
		data, _ := os.ReadFile(file)
		t.Fatalf("cloud-init devel net-convert (%s): exit %d\n%s\n--- network-config\n%s", kind, code, msg, data)
	}
	files := map[string]string{}
	filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(out, p)
			files[filepath.ToSlash(rel)] = string(b)
		}
		return nil
	})
	return files
}

func TestCloudInitOracle(t *testing.T) {
	testimg.NeedTools(t, "cloud-init")
	// The oracle rejects what it should.
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("#cloud-config\nusers: 5\nkeyboard:\n  model: pc105\n"), 0o644)
	if code, out := runCloudInit(t, "schema", "--config-file", bad); code == 0 || !strings.Contains(out, "keyboard: 'layout' is a required property") {
		t.Fatalf("cloud-init schema accepted a bad user-data: exit %d\n%s", code, out)
	}
	// Raspberry Pi Imager's own user-data shape (trixie) is valid too.
	imager := filepath.Join(t.TempDir(), "user-data")
	os.WriteFile(imager, []byte(imagerUserData), 0o644)
	checkSchema(t, imager)

	keys := []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey it's mine", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ second@host"}
	combos := map[string]Options{
		"user+password":    {User: "admin", PasswordHash: pwHash("pw one")},
		"ssh-key-only":     {SSH: true, SSHKeys: keys, SSHKeyOnly: true},
		"user+keys":        {User: "ops", PasswordHash: pwHash("pw two"), SSH: true, SSHKeys: keys[:1]},
		"wifi+country":     {WifiSSID: `Home "Net" #1`, WifiPassword: "correct horse", WifiCountry: "GB"},
		"open-wifi":        {WifiSSID: "Café: guest"},
		"country-only":     {WifiCountry: "DE"},
		"hostname":         {Hostname: "kiosk-1"},
		"tz+keymap+locale": {Timezone: "America/Argentina/Buenos_Aires", Keymap: "de,us", Locale: "de_DE.UTF-8"},
		"everything":       fullOptions(),
	}
	for _, osc := range []struct {
		name, distro string
		markers      []string
	}{
		{"raspios-trixie", "debian", []string{"usr/lib/raspberrypi-sys-mods/firstboot", "usr/bin/cloud-init", "etc/os-release=ID=debian\n"}},
		{"ubuntu", "ubuntu", []string{"etc/cloud/", "etc/os-release=ID=ubuntu\n"}},
	} {
		for name, o := range combos {
			t.Run(osc.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				p, err := Build(bootFS(), rootFS(osc.markers...), o)
				if err != nil {
					t.Fatal(err)
				}
				dir := t.TempDir()
				written := map[string]bool{}
				for _, c := range p.Changes {
					if c.FS == "boot" && c.Action == "write" {
						written[c.Path] = true
						if err := os.WriteFile(filepath.Join(dir, c.Path), c.Data, 0o644); err != nil {
							t.Fatal(err)
						}
					}
				}
				if !written["user-data"] || !written["meta-data"] {
					if name == "country-only" {
						return // the country goes on the command line only
					}
					t.Fatalf("no user-data or meta-data written: %v", written)
				}
				checkSchema(t, filepath.Join(dir, "user-data"))

				md := yamlToJSON(t, string(mustRead(t, filepath.Join(dir, "meta-data"))))
				if id, _ := md["instance-id"].(string); !strings.HasPrefix(id, "imgtool-") {
					t.Errorf("meta-data %v has no instance-id", md)
				}

				if written["network-config"] != (o.WifiSSID != "") {
					t.Fatalf("network-config written %v, Wi-Fi SSID %q", written["network-config"], o.WifiSSID)
				}
				if o.WifiSSID != "" {
					nc := filepath.Join(dir, "network-config")
					files := netConvert(t, nc, osc.distro, "netplan")
					rendered := files["etc/netplan/50-cloud-init.yaml"]
					np := yamlToJSON(t, rendered)
					netw, _ := np["network"].(map[string]any)
					wifis, _ := netw["wifis"].(map[string]any)
					wlan0, _ := wifis["wlan0"].(map[string]any)
					aps, _ := wlan0["access-points"].(map[string]any)
					ap, ok := aps[o.WifiSSID].(map[string]any)
					if !ok {
						t.Fatalf("cloud-init's netplan output has no access point %q:\n%s", o.WifiSSID, rendered)
					}
					if pw, _ := ap["password"].(string); (pw != "") != (o.WifiPassword != "") || pw != "" && pw != o.psk() {
						t.Errorf("access point %q: password %q, want the PSK", o.WifiSSID, pw)
					}
					if rd, _ := wlan0["regulatory-domain"].(string); rd != o.WifiCountry {
						t.Errorf("regulatory-domain %q, want %q", rd, o.WifiCountry)
					}
					eths, _ := netw["ethernets"].(map[string]any)
					if _, ok := eths["eth0"]; !ok {
						t.Errorf("netplan output lacks eth0:\n%s", rendered)
					}
					if name != "everything" {
						return
					}
					// networkd renders the wired interface (cloud-init 22.4
					// renders Wi-Fi through netplan only).
					nd := netConvert(t, nc, osc.distro, "networkd")
					if eth := nd["etc/systemd/network/10-cloud-init-eth0.network"]; !strings.Contains(eth, "Name=eth0") || !strings.Contains(eth, "DHCP=ipv4") {
						t.Errorf("networkd output for eth0: %q (files %v)", eth, keysOf(nd))
					}
				}
			})
		}
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

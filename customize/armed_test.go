package customize

import (
	"encoding/json"
	iofs "io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// applyToMap makes a plan's changes on in-memory filesystems.
func applyToMap(p *Plan, boot, root fstest.MapFS) {
	for _, c := range p.Changes {
		m := root
		if c.FS == "boot" {
			m = boot
		}
		switch c.Action {
		case "write":
			m[c.Path] = &fstest.MapFile{Data: c.Data, Mode: c.Mode.Perm()}
		case "mkdir":
			m[c.Path] = &fstest.MapFile{Mode: iofs.ModeDir | c.Mode.Perm()}
		case "symlink":
			m[c.Path] = &fstest.MapFile{Data: []byte(c.Target), Mode: iofs.ModeSymlink | 0o777}
		case "remove":
			delete(m, c.Path)
		}
	}
}

// wantArmed is what ReadArmed must find after Build with o.
func wantArmed(o Options, mech string) Armed {
	w := Armed{
		Hostname: o.Hostname, User: o.User, PasswordSet: o.PasswordHash != "",
		SSH: o.SSH || len(o.SSHKeys) > 0, SSHKeys: len(o.SSHKeys),
		WifiSSID: o.WifiSSID, WifiPSKSet: o.WifiPassword != "", WifiCountry: o.WifiCountry,
		Timezone: o.Timezone, Keymap: o.Keymap, Locale: o.Locale,
	}
	switch {
	case o.SSHKeyOnly:
		w.SSHPasswordAuth = "disabled"
	case mech == MechCloudInit && w.SSH:
		w.SSHPasswordAuth = "enabled"
	}
	return w
}

// settings is a's settings without sources and warnings.
func settings(a *Armed) Armed {
	if a == nil {
		return Armed{}
	}
	c := *a
	c.Sources, c.Warnings = nil, nil
	return c
}

func TestArmedRoundTrip(t *testing.T) {
	keys := []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey it's mine", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ second@host"}
	variants := map[string]func(o *Options){
		"full":     func(o *Options) {},
		"password": func(o *Options) { o.SSHKeyOnly, o.SSHKeys = false, nil },
		"keys": func(o *Options) {
			*o = Options{SSH: true, SSHKeys: keys, Now: o.Now}
		},
		"keys+password": func(o *Options) { o.SSHKeyOnly, o.SSHKeys = false, keys },
		"country": func(o *Options) {
			*o = Options{Hostname: "edge", WifiCountry: "US", Now: o.Now}
		},
		"open-wifi": func(o *Options) {
			*o = Options{WifiSSID: "Café Guest", Timezone: "Etc/UTC", Locale: "C.UTF-8", Keymap: "us", Now: o.Now}
		},
	}
	for _, m := range []struct {
		name, mech, source string
		markers            []string
	}{
		{"bookworm", MechFirstrun, "firstrun.sh", []string{"usr/lib/raspberrypi-sys-mods/firstboot"}},
		{"trixie", MechCloudInit, "cloud-init", []string{"usr/lib/raspberrypi-sys-mods/firstboot", "usr/bin/cloud-init", "etc/os-release=ID=debian\n"}},
		{"ubuntu", MechCloudInit, "cloud-init", []string{"etc/cloud/", "etc/os-release=ID=ubuntu\n"}},
	} {
		for vname, change := range variants {
			t.Run(m.name+"/"+vname, func(t *testing.T) {
				o := fullOptions()
				change(&o)
				boot, root := bootFS(), rootFS(m.markers...)
				if a, err := ReadArmed(boot, root); a != nil || err != nil {
					t.Fatalf("before customize: %+v, %v", a, err)
				}
				p, err := Build(boot, root, o)
				if err != nil {
					t.Fatal(err)
				}
				applyToMap(p, boot, root)
				a, err := ReadArmed(boot, root)
				if err != nil || a == nil {
					t.Fatalf("ReadArmed: %+v, %v", a, err)
				}
				if len(a.Sources) != 1 || a.Sources[0].Mechanism != m.source || len(a.Warnings) != 0 {
					t.Errorf("sources %+v warnings %q, want one %s", a.Sources, a.Warnings, m.source)
				}
				if got, want := settings(a), wantArmed(o, m.mech); !reflect.DeepEqual(got, want) {
					t.Errorf("armed\n%+v\nwant\n%+v", got, want)
				}
				js, _ := json.Marshal(a)
				for _, secret := range []string{o.PasswordHash, o.psk(), "correct horse"} {
					if secret != "" && strings.Contains(string(js), secret) {
						t.Errorf("Armed holds a secret: %s", js)
					}
				}
			})
		}
	}
	// The root-filesystem path arms nothing.
	boot, root := bootFS(), rootFS("etc/os-release=ID=alpine\n", "lib/systemd/system/ssh.service")
	o := fullOptions()
	o.WifiCountry = ""
	p, err := Build(boot, root, o)
	if err != nil {
		t.Fatal(err)
	}
	applyToMap(p, boot, root)
	if a, err := ReadArmed(boot, root); a != nil || err != nil {
		t.Errorf("rootfs mechanism: armed %+v, %v", a, err)
	}
}

// Files in the shapes Raspberry Pi Imager writes (2.0, bookworm systemd
// format and trixie cloud-init format), written here as text.
const imagerFirstrun = `#!/bin/sh

set +e

CURRENT_HOSTNAME=$(cat /etc/hostname | tr -d " \t\n\r")
if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then
   /usr/lib/raspberrypi-sys-mods/imager_custom set_hostname pi-lab
else
   echo pi-lab >/etc/hostname
   sed -i "s/127.0.1.1.*$CURRENT_HOSTNAME/127.0.1.1\tpi-lab/g" /etc/hosts
fi
FIRSTUSER=$(getent passwd 1000 | cut -d: -f1)
FIRSTUSERHOME=$(getent passwd 1000 | cut -d: -f6)
if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then
   /usr/lib/raspberrypi-sys-mods/imager_custom enable_ssh -k 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne one@lab' 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITwo two@lab'
else
   install -o "$FIRSTUSER" -m 700 -d "$FIRSTUSERHOME/.ssh"
cat > "$FIRSTUSERHOME/.ssh/authorized_keys" <<'EOF'
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne one@lab
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITwo two@lab
EOF
   chown "$FIRSTUSER:$FIRSTUSER" "$FIRSTUSERHOME/.ssh/authorized_keys"
   chmod 600 "$FIRSTUSERHOME/.ssh/authorized_keys"
   echo 'PasswordAuthentication no' >>/etc/ssh/sshd_config
   systemctl enable ssh
fi
if [ -f /usr/lib/userconf-pi/userconf ]; then
   /usr/lib/userconf-pi/userconf 'labuser' '$y$j9T$abc$def'
else
   echo "$FIRSTUSER:"'$y$j9T$abc$def' | chpasswd -e
fi
if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then
   /usr/lib/raspberrypi-sys-mods/imager_custom set_wlan 'Lab Net' '0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0' 'DE'
else
cat >/etc/wpa_supplicant/wpa_supplicant.conf <<'WPAEOF'
country=DE
ctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev
ap_scan=1

update_config=1
network={
	ssid="Lab Net"
	key_mgmt=WPA-PSK SAE
	psk=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0
	ieee80211w=1
}
WPAEOF
   chmod 600 /etc/wpa_supplicant/wpa_supplicant.conf
fi
if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then
   /usr/lib/raspberrypi-sys-mods/imager_custom set_keymap 'de'
   /usr/lib/raspberrypi-sys-mods/imager_custom set_timezone 'Europe/Berlin'
else
   rm -f /etc/localtime
   echo "Europe/Berlin" >/etc/timezone
   dpkg-reconfigure -f noninteractive tzdata
cat >/etc/default/keyboard <<'KBEOF'
XKBMODEL="pc105"
XKBLAYOUT="de"
XKBVARIANT=""
XKBOPTIONS=""

KBEOF
   dpkg-reconfigure -f noninteractive keyboard-configuration
fi
rm -f /boot/firstrun.sh
sed -i 's| systemd.run.*||g' /boot/cmdline.txt
exit 0
`

const imagerUserData = `#cloud-config
manage_resolv_conf: false
hostname: pi-lab
manage_etc_hosts: true
packages:
- avahi-daemon
apt:
  preserve_sources_list: true
  conf: |
    Acquire {
      Check-Date "false"; # not a comment
    };
timezone: Europe/Berlin
keyboard:
  model: pc105
  layout: "de"
enable_ssh: true
users:
- name: labuser
  groups: users,adm,dialout,audio,netdev,video,plugdev,cdrom,games,input,gpio,spi,i2c,render,sudo
  shell: /bin/bash
  lock_passwd: false
  passwd: $y$j9T$abc$def
  ssh_authorized_keys:
    - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne one@lab
  sudo: ALL=(ALL) NOPASSWD:ALL

ssh_pwauth: true
rpi:
  interfaces:
    i2c: true
    serial:
      console: true
      hardware: false
`

const imagerNetworkConfig = `network:
  version: 2
  ethernets:
    eth0:
      dhcp4: true
      dhcp6: true
      optional: true
  wifis:
    wlan0:
      dhcp4: true
      regulatory-domain: "DE"
      access-points:
        "Lab \"Net\"":
          password: "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
      optional: true
`

const customTOML = `# Raspberry Pi first boot configuration
config_version = 1

[system]
hostname = "toml-pi"

[user]
name = "tomluser"
password = "$5$salt$hash"
password_encrypted = true

[ssh]
enabled = true
password_authentication = false
authorized_keys = [
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne one@lab", # first
  'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ two@lab',
]

[wlan]
ssid = "Toml # Net"
password = "passphrase"
password_encrypted = false
hidden = false
country = "FR"

[locale]
keymap = "fr"
timezone = "Europe/Paris"
`

func TestArmedImagerFormats(t *testing.T) {
	const cmdline = "console=serial0,115200 console=tty1 root=PARTUUID=1234abcd-02 rootfstype=ext4 fsck.repair=yes rootwait quiet"
	for _, c := range []struct {
		name    string
		boot    map[string]string
		root    []string
		want    Armed
		sources []string
		notes   []string
		warns   []string
	}{
		{
			name: "imager-firstrun",
			boot: map[string]string{"firstrun.sh": imagerFirstrun,
				"cmdline.txt": cmdline + " systemd.run=/boot/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target\n"},
			want: Armed{Hostname: "pi-lab", User: "labuser", PasswordSet: true, SSH: true, SSHKeys: 2, SSHPasswordAuth: "disabled",
				WifiSSID: "Lab Net", WifiPSKSet: true, WifiCountry: "DE", Timezone: "Europe/Berlin", Keymap: "de"},
			sources: []string{"firstrun.sh"},
		},
		{
			name: "imager-firstrun-boot-firmware",
			boot: map[string]string{"firstrun.sh": "#!/bin/bash\n/usr/lib/raspberrypi-sys-mods/imager_custom set_hostname x1\n",
				"cmdline.txt": cmdline + " systemd.run=/boot/firmware/firstrun.sh\n"},
			want:    Armed{Hostname: "x1"},
			sources: []string{"firstrun.sh"},
		},
		{
			name: "imager-cloud-init",
			boot: map[string]string{"user-data": imagerUserData, "network-config": imagerNetworkConfig,
				"meta-data":   "instance-id: rpi-imager-1759400000000\n",
				"cmdline.txt": cmdline + " cfg80211.ieee80211_regdom=DE ds=nocloud;i=rpi-imager-1759400000000\n"},
			root: []string{"usr/bin/cloud-init"},
			want: Armed{Hostname: "pi-lab", User: "labuser", PasswordSet: true, SSH: true, SSHKeys: 1, SSHPasswordAuth: "enabled",
				WifiSSID: `Lab "Net"`, WifiPSKSet: true, WifiCountry: "DE", Timezone: "Europe/Berlin", Keymap: "de"},
			sources: []string{"cloud-init"},
			notes:   []string{"packages: 1 entry", "rpi: interfaces i2c, serial", "network-config: interfaces eth0, wlan0"},
		},
		{
			name:    "custom.toml",
			boot:    map[string]string{"custom.toml": customTOML, "cmdline.txt": cmdline + " init=/usr/lib/raspberrypi-sys-mods/firstboot\n"},
			want:    Armed{Hostname: "toml-pi", User: "tomluser", PasswordSet: true, SSH: true, SSHKeys: 2, SSHPasswordAuth: "disabled", WifiSSID: "Toml # Net", WifiPSKSet: true, WifiCountry: "FR", Timezone: "Europe/Paris", Keymap: "fr"},
			sources: []string{"custom.toml"},
			notes:   []string{"the Wi-Fi passphrase is stored in clear text (password_encrypted = false)"},
		},
		{
			name: "legacy-flags",
			boot: map[string]string{"ssh": "", "userconf.txt": "olduser:$6$salt$hash\n", "cmdline.txt": cmdline + "\n",
				"wpa_supplicant.conf": "country=GB\nctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev\nupdate_config=1\n\nnetwork={\n ssid=\"Old Net\"\n psk=\"clear text\"\n}\nnetwork={\n ssid=\"Second\"\n key_mgmt=NONE\n}\n"},
			root:    []string{"etc/NetworkManager/"},
			want:    Armed{User: "olduser", PasswordSet: true, SSH: true, WifiSSID: "Old Net", WifiPSKSet: true, WifiCountry: "GB"},
			sources: []string{"userconf", "ssh", "wpa_supplicant.conf"},
			notes:   []string{"the Wi-Fi passphrase is stored in clear text", "2 networks", "the root filesystem has NetworkManager: Raspberry Pi OS bookworm and later ignore this file"},
		},
		{
			name:    "hex-ssid",
			boot:    map[string]string{"wpa_supplicant.conf": "network={\n\tssid=4c6162\n\tpsk=0123\n}\n"},
			want:    Armed{WifiSSID: "Lab", WifiPSKSet: true},
			sources: []string{"wpa_supplicant.conf"},
		},
		{
			name: "pristine-trixie",
			boot: map[string]string{"user-data": "#cloud-config\n# This is the user-data configuration file for cloud-init.\n#hostname: raspberrypi\n",
				"network-config": "# This file contains a netplan-compatible configuration\n#network:\n#  version: 2\n",
				"meta-data":      "dsmode: local\n\ninstance_id: rpios-image\n", "cmdline.txt": cmdline + "\n"},
			root: []string{"usr/bin/cloud-init"},
		},
		{
			name:  "token-without-file",
			boot:  map[string]string{"cmdline.txt": cmdline + " systemd.run=/boot/firstrun.sh\n"},
			warns: []string{"cmdline.txt runs /boot/firstrun.sh on first boot, but the boot partition has no firstrun.sh"},
		},
		{
			name:  "file-without-token",
			boot:  map[string]string{"firstrun.sh": imagerFirstrun, "cmdline.txt": cmdline + "\n"},
			warns: []string{"boot:/firstrun.sh is present, but cmdline.txt does not run it"},
		},
		{
			name:    "other-systemd-run",
			boot:    map[string]string{"setup.sh": "#!/bin/sh\nmake-it-so\n", "cmdline.txt": cmdline + " systemd.run=/boot/firmware/setup.sh\n"},
			sources: []string{"systemd.run"},
			notes:   []string{"a script in a shape imgtool does not read: no settings recognised"},
		},
		{
			name:    "script-user-data-no-cloud-init",
			boot:    map[string]string{"user-data": "#!/bin/sh\necho hi\n", "meta-data": "instance-id: a\n"},
			root:    []string{"etc/hostname=x\n"},
			sources: []string{"cloud-init"},
			notes:   []string{"user-data: a script run once on first boot, not read"},
			warns:   []string{"the root filesystem has no cloud-init"},
		},
		{
			name:    "seed-already-ran",
			boot:    map[string]string{"user-data": "#cloud-config\nhostname: again\n", "meta-data": "instance-id: iid-1\n"},
			root:    []string{"etc/cloud/", "var/lib/cloud/data/instance-id=iid-1\n"},
			want:    Armed{Hostname: "again"},
			sources: []string{"cloud-init"},
			warns:   []string{`cloud-init already ran instance "iid-1" on this image`},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			boot := fstest.MapFS{}
			for name, text := range c.boot {
				boot[name] = &fstest.MapFile{Data: []byte(text), Mode: 0o644}
			}
			var root iofs.FS
			if c.root != nil {
				root = rootFS(c.root...)
			}
			a, err := ReadArmed(boot, root)
			if err != nil {
				t.Fatal(err)
			}
			if c.sources == nil && c.warns == nil {
				if a != nil {
					t.Fatalf("nothing armed, got %+v", a)
				}
				return
			}
			if a == nil {
				t.Fatal("nothing armed")
			}
			var mechs, notes []string
			for _, s := range a.Sources {
				mechs = append(mechs, s.Mechanism)
				notes = append(notes, s.Notes...)
			}
			if !slices.Equal(mechs, c.sources) {
				t.Errorf("sources %v, want %v", mechs, c.sources)
			}
			if got := settings(a); !reflect.DeepEqual(got, c.want) {
				t.Errorf("armed\n%+v\nwant\n%+v", got, c.want)
			}
			for _, n := range c.notes {
				if !slices.Contains(notes, n) {
					t.Errorf("notes %q lack %q", notes, n)
				}
			}
			if len(a.Warnings) != len(c.warns) {
				t.Errorf("warnings %q, want %q", a.Warnings, c.warns)
			}
			for i, w := range c.warns {
				if i < len(a.Warnings) && !strings.HasPrefix(a.Warnings[i], w) {
					t.Errorf("warning %q, want %q…", a.Warnings[i], w)
				}
			}
		})
	}
}

func TestParseYAML(t *testing.T) {
	doc := `%YAML 1.1
---
# comment
key: value # trailing
"quoted \"key\"": 'it''s'
plain: it's a # comment
url: http://example.com/a#b
list:
- a
-   "b c"
- [x, 'y', "z,w"]
- {k: v, n: [1, 2]}
nested:
  - name: n1
    items:
    - i1
    - i2
  - name: n2
block: |
  line 1 # not a comment
    indented
folded: >-
  one
  two
empty:
null: ~
tagged: !!str 12
anchor: &a text
alias: *a
deep:
  a:
    b:
      c: d
`
	got := parseYAML(doc)
	want := map[string]any{
		"key": "value", `quoted "key"`: "it's", "plain": "it's a", "url": "http://example.com/a#b",
		"list":   []any{"a", "b c", []any{"x", "y", "z,w"}, map[string]any{"k": "v", "n": []any{"1", "2"}}},
		"nested": []any{map[string]any{"name": "n1", "items": []any{"i1", "i2"}}, map[string]any{"name": "n2"}},
		"block":  "line 1 # not a comment\n  indented", "folded": "one two", "empty": nil, "null": nil,
		"tagged": "12", "anchor": "text", "alias": nil,
		"deep": map[string]any{"a": map[string]any{"b": map[string]any{"c": "d"}}},
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		t.Errorf("parseYAML:\n%s", g)
	}
	// Deep nesting and huge sequences are cut, not followed.
	var deep strings.Builder
	for i := 0; i < 200; i++ {
		deep.WriteString(strings.Repeat(" ", i) + "k:\n")
	}
	_ = parseYAML(deep.String())
	_ = parseYAML(strings.Repeat("- ", 5000) + "x\n")
	_ = parseYAML(strings.Repeat("[", 5000))
}

func TestShellWords(t *testing.T) {
	for line, want := range map[string][]string{
		`echo 'it'"'"'s' "a \"b\" $c" d\ e # comment`:      {"echo", "it's", `a "b" $c`, "d e"},
		`install -m 600 <(printf "%s\n" 'k1' 'k2') "$H/x"`: {"install", "-m", "600", "<", "(", "printf", `%s\n`, "k1", "k2", ")", "$H/x"},
		`cat >/etc/x <<'EOF'`:                              {"cat", ">", "/etc/x", "<", "<", "EOF"},
		`unterminated 'quote`:                              {"unterminated", "quote"},
	} {
		if got := shellWords(line); !slices.Equal(got, want) {
			t.Errorf("shellWords(%q) = %q, want %q", line, got, want)
		}
	}
}

func FuzzReadArmed(f *testing.F) {
	f.Add(imagerUserData, imagerNetworkConfig, imagerFirstrun, customTOML)
	f.Add("#cloud-config\nusers: [a, {name: b}]\nrpi: {interfaces: [x]}\n", "version: 2\nwifis: {w: {access-points: {\"a\": {}}}}", "imager_custom set_wlan", "[ssh]\nauthorized_keys = [\n")
	f.Add("#cloud-config\n- a\n  - b\n: c\n? d\n", "network: [1]\n", "cat <<EOF\n", "a = \"\"\"\nx")
	f.Fuzz(func(t *testing.T, userData, netConf, firstrun, toml string) {
		boot := fstest.MapFS{
			"cmdline.txt":         {Data: []byte("root=x systemd.run=/boot/firstrun.sh ds=nocloud;i=" + firstrun[:min(len(firstrun), 10)])},
			"user-data":           {Data: []byte(userData)},
			"network-config":      {Data: []byte(netConf)},
			"meta-data":           {Data: []byte(netConf)},
			"firstrun.sh":         {Data: []byte(firstrun)},
			"custom.toml":         {Data: []byte(toml)},
			"wpa_supplicant.conf": {Data: []byte(firstrun)},
			"userconf.txt":        {Data: []byte(toml)},
		}
		a, err := ReadArmed(boot, nil)
		if err != nil || a == nil {
			t.Fatalf("%+v %v", a, err)
		}
	})
}

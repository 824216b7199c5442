package customize

import (
	"encoding/json"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"imgtool/internal/testimg"
)

var hashFor = map[string]string{}

func pwHash(pw string) string {
	if h, ok := hashFor[pw]; ok {
		return h
	}
	h := SHA512Crypt(pw, "testsalt", 0)
	hashFor[pw] = h
	return h
}

func bootFS() fstest.MapFS {
	return fstest.MapFS{
		"config.txt":  {Data: []byte("dtparam=audio=on\n[all]\n")},
		"cmdline.txt": {Data: []byte("console=serial0,115200 console=tty1 root=PARTUUID=1234abcd-02 rootwait quiet splash\n")},
	}
}

func rootFS(markers ...string) fstest.MapFS {
	m := fstest.MapFS{
		"etc/passwd":    {Data: []byte("root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n")},
		"etc/shadow":    {Data: []byte("root:*:19000:0:99999:7:::\npi:!:19000:0:99999:7:::\n"), Mode: 0o640},
		"etc/group":     {Data: []byte("root:x:0:\nadm:x:4:pi\nsudo:x:27:pi\npi:x:1000:\n")},
		"etc/hostname":  {Data: []byte("raspberrypi\n")},
		"etc/hosts":     {Data: []byte("127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n")},
		"home/pi":       {Mode: 0o755 | 1<<31},
		"boot/firmware": {Mode: 0o755 | 1<<31},
	}
	for _, k := range markers {
		if strings.HasSuffix(k, "/") {
			m[strings.TrimSuffix(k, "/")] = &fstest.MapFile{Mode: 0o755 | 1<<31}
		} else if name, val, ok := strings.Cut(k, "="); ok {
			m[name] = &fstest.MapFile{Data: []byte(val)}
		} else {
			m[k] = &fstest.MapFile{Data: []byte("#!/bin/sh\n"), Mode: 0o755}
		}
	}
	return m
}

func find(t *testing.T, p *Plan, fs, path string) *Change {
	t.Helper()
	for i := range p.Changes {
		if p.Changes[i].FS == fs && p.Changes[i].Path == path {
			return &p.Changes[i]
		}
	}
	return nil
}

func TestDetect(t *testing.T) {
	for _, c := range []struct {
		markers    []string
		mech, osID string
	}{
		{[]string{"usr/lib/raspberrypi-sys-mods/firstboot"}, MechFirstrun, ""},
		{[]string{"usr/lib/raspberrypi-sys-mods/firstboot", "usr/bin/cloud-init", "etc/os-release=ID=debian\n"}, MechCloudInit, "debian"},
		{[]string{"etc/cloud/", "etc/os-release=ID=ubuntu\nVERSION_ID=\"24.04\"\n"}, MechCloudInit, "ubuntu"},
		{[]string{"etc/os-release=ID=alpine\n"}, MechRootfs, "alpine"},
	} {
		mech, id := Detect(rootFS(c.markers...))
		if mech != c.mech || id != c.osID {
			t.Errorf("%v: %s %s, want %s %s", c.markers, mech, id, c.mech, c.osID)
		}
	}
}

func fullOptions() Options {
	return Options{
		Hostname: "kiosk-1", User: "admin", PasswordHash: pwHash("s3cret pass"), SSH: true,
		SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey it's mine"}, SSHKeyOnly: true,
		WifiSSID: "Home \"Net\"", WifiPassword: "correct horse", WifiCountry: "GB",
		Timezone: "Europe/London", Keymap: "gb", Locale: "en_GB.UTF-8",
		Now: func() time.Time { return time.Unix(20000*86400, 0) },
	}
}

func TestFirstrun(t *testing.T) {
	o := fullOptions()
	o.BootConfig = []string{"dtoverlay=disable-bt", "dtparam=audio=on"}
	o.CmdlineRemove = []string{"quiet"}
	o.CmdlineAdd = []string{"net.ifnames=0"}
	p, err := Build(bootFS(), rootFS("usr/lib/raspberrypi-sys-mods/firstboot"), o)
	if err != nil {
		t.Fatal(err)
	}
	if p.Mechanism != MechFirstrun {
		t.Fatalf("mechanism %s", p.Mechanism)
	}
	var files []string
	for _, c := range p.Changes {
		files = append(files, c.FS+":"+c.Path)
	}
	if want := []string{"boot:config.txt", "boot:firstrun.sh", "boot:cmdline.txt"}; !slices.Equal(files, want) {
		t.Errorf("changes %v, want %v", files, want)
	}
	cfg := string(find(t, p, "boot", "config.txt").Data)
	if cfg != "dtparam=audio=on\n[all]\ndtoverlay=disable-bt\n" {
		t.Errorf("config.txt:\n%s", cfg)
	}
	cmd := string(find(t, p, "boot", "cmdline.txt").Data)
	want := "console=serial0,115200 console=tty1 root=PARTUUID=1234abcd-02 rootwait splash net.ifnames=0 systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target\n"
	if cmd != want {
		t.Errorf("cmdline.txt\n%q, want\n%q", cmd, want)
	}
	sh := find(t, p, "boot", "firstrun.sh")
	script := string(sh.Data)
	psk, _ := WPAPSK("correct horse", "Home \"Net\"")
	for _, s := range []string{
		"#!/bin/bash\n",
		imagerCustom + " set_hostname 'kiosk-1'\n",
		imagerCustom + " enable_ssh -k 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey it'\"'\"'s mine'\n",
		"/usr/lib/userconf-pi/userconf 'admin' '" + pwHash("s3cret pass") + "'\n",
		imagerCustom + " set_wlan 'Home \"Net\"' '" + psk + "' 'GB'\n",
		imagerCustom + " set_keymap 'gb'\n",
		imagerCustom + " set_timezone 'Europe/London'\n",
		"update-locale LANG='en_GB.UTF-8'\n",
		"rm -f /boot/firmware/firstrun.sh\n",
		"echo 'PasswordAuthentication no' >>/etc/ssh/sshd_config\n",
	} {
		if !strings.Contains(script, s) {
			t.Errorf("firstrun.sh lacks %q", s)
		}
	}
	if strings.Contains(script, "correct horse") {
		t.Error("firstrun.sh holds the Wi-Fi passphrase in clear")
	}
	if _, err := exec.LookPath("bash"); err == nil {
		bc := exec.Command("bash", "-n")
		bc.Stdin = strings.NewReader(script)
		if out, err := bc.CombinedOutput(); err != nil {
			t.Errorf("bash -n firstrun.sh: %v\n%s", err, out)
		}
		// The script's own cleanup removes exactly its tokens.
		sedExpr := script[strings.Index(script, "sed -i 's|"):]
		sedExpr = sedExpr[len("sed -i "):strings.Index(sedExpr, " /boot/firmware/cmdline.txt")]
		out, err := exec.Command("bash", "-c", "printf '%s' \"$1\" | sed "+sedExpr, "x", cmd).Output()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != "console=serial0,115200 console=tty1 root=PARTUUID=1234abcd-02 rootwait splash net.ifnames=0\n" {
			t.Errorf("after firstrun.sh's sed, cmdline.txt is %q", out)
		}
	}
	// Applying the same options to the result adds nothing twice.
	b2 := bootFS()
	b2["config.txt"].Data = []byte(cfg)
	b2["cmdline.txt"].Data = []byte(cmd)
	p2, err := Build(b2, rootFS("usr/lib/raspberrypi-sys-mods/firstboot"), o)
	if err != nil {
		t.Fatal(err)
	}
	if find(t, p2, "boot", "config.txt") != nil || find(t, p2, "boot", "cmdline.txt") != nil {
		t.Error("second run changed config.txt or cmdline.txt again")
	}
}

func yamlToJSON(t *testing.T, doc string) map[string]any {
	t.Helper()
	python := ""
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import yaml").Run() == nil {
			python = p
			break
		}
	}
	if python == "" {
		testimg.Skip(t, "python3 with PyYAML (Debian python3-yaml) not installed")
	}
	cmd := exec.Command(python, "-c", "import sys, yaml, json; json.dump(yaml.safe_load(sys.stdin), sys.stdout)")
	cmd.Stdin = strings.NewReader(doc)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("YAML does not parse: %v\n%s", err, doc)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCloudInit(t *testing.T) {
	for _, c := range []struct {
		name    string
		markers []string
		ds      bool
	}{
		{"raspios-trixie", []string{"usr/lib/raspberrypi-sys-mods/firstboot", "usr/bin/cloud-init", "etc/os-release=ID=debian\n"}, true},
		{"ubuntu", []string{"etc/cloud/", "etc/os-release=ID=ubuntu\n"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := fullOptions()
			p, err := Build(bootFS(), rootFS(c.markers...), o)
			if err != nil {
				t.Fatal(err)
			}
			var files []string
			for _, ch := range p.Changes {
				files = append(files, ch.FS+":"+ch.Path)
			}
			// cmdline.txt gets the Wi-Fi country (and ds=nocloud on Pi OS).
			want := []string{"boot:user-data", "boot:network-config", "boot:meta-data", "boot:cmdline.txt"}
			if !slices.Equal(files, want) {
				t.Fatalf("changes %v, want %v", files, want)
			}
			ud := string(find(t, p, "boot", "user-data").Data)
			if !strings.HasPrefix(ud, "#cloud-config\n") {
				t.Error("user-data lacks #cloud-config")
			}
			m := yamlToJSON(t, ud)
			users := m["users"].([]any)[0].(map[string]any)
			if m["hostname"] != "kiosk-1" || m["timezone"] != "Europe/London" || m["locale"] != "en_GB.UTF-8" ||
				m["ssh_pwauth"] != false || users["name"] != "admin" || users["passwd"] != pwHash("s3cret pass") ||
				users["ssh_authorized_keys"].([]any)[0] != o.SSHKeys[0] || m["keyboard"].(map[string]any)["layout"] != "gb" {
				t.Errorf("user-data parsed as %v", m)
			}
			if !VerifyPassword(users["passwd"].(string), "s3cret pass") {
				t.Error("user-data password does not verify")
			}
			nc := yamlToJSON(t, string(find(t, p, "boot", "network-config").Data))
			ap := nc["network"].(map[string]any)["wifis"].(map[string]any)["wlan0"].(map[string]any)["access-points"].(map[string]any)
			psk, _ := WPAPSK("correct horse", "Home \"Net\"")
			if ap["Home \"Net\""].(map[string]any)["password"] != psk {
				t.Errorf("network-config access points %v", ap)
			}
			md := yamlToJSON(t, string(find(t, p, "boot", "meta-data").Data))
			if id, _ := md["instance-id"].(string); !strings.HasPrefix(id, "imgtool-") {
				t.Errorf("meta-data %v", md)
			}
			cmd := string(find(t, p, "boot", "cmdline.txt").Data)
			wantTail := " splash cfg80211.ieee80211_regdom=GB\n"
			if c.ds {
				wantTail = " splash ds=nocloud cfg80211.ieee80211_regdom=GB\n"
			}
			if !strings.HasSuffix(cmd, wantTail) {
				t.Errorf("cmdline.txt %q, want it to end %q", cmd, wantTail)
			}
			if _, ok := m["enable_ssh"]; ok != c.ds {
				t.Errorf("enable_ssh in user-data: %v, want %v (Raspberry Pi OS only)", ok, c.ds)
			}
		})
	}
}

func TestRootfsPlan(t *testing.T) {
	o := fullOptions()
	o.SSHKeyOnly = false
	root := rootFS("etc/os-release=ID=alpine\n", "lib/systemd/system/ssh.service", "etc/NetworkManager/", "etc/ssh/sshd_config.d/")
	p, err := Build(bootFS(), root, o)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) string {
		c := find(t, p, "root", path)
		if c == nil {
			t.Fatalf("no change to %s", path)
		}
		return string(c.Data)
	}
	if get("etc/hostname") != "kiosk-1\n" || get("etc/hosts") != "127.0.0.1\tlocalhost\n127.0.1.1\tkiosk-1\n" {
		t.Errorf("hostname %q hosts %q", get("etc/hostname"), get("etc/hosts"))
	}
	if !strings.HasSuffix(get("etc/passwd"), "admin:x:1001:1001:,,,:/home/admin:/bin/sh\n") {
		t.Errorf("passwd %q", get("etc/passwd"))
	}
	if !strings.HasSuffix(get("etc/shadow"), "admin:"+pwHash("s3cret pass")+":20000:0:99999:7:::\n") {
		t.Errorf("shadow %q", get("etc/shadow"))
	}
	if get("etc/group") != "root:x:0:\nadm:x:4:pi,admin\nsudo:x:27:pi,admin\npi:x:1000:\nadmin:x:1001:\n" {
		t.Errorf("group %q", get("etc/group"))
	}
	if c := find(t, p, "root", "home/admin"); c == nil || c.Action != "mkdir" || c.UID != 1001 || c.Mode.Perm() != 0o755 {
		t.Errorf("home %+v", c)
	}
	if c := find(t, p, "root", "home/admin/.ssh/authorized_keys"); c == nil || c.UID != 1001 || c.Mode.Perm() != 0o600 || string(c.Data) != o.SSHKeys[0]+"\n" {
		t.Errorf("authorized_keys %+v", c)
	}
	if c := find(t, p, "root", "etc/systemd/system/multi-user.target.wants/ssh.service"); c == nil || c.Target != "/lib/systemd/system/ssh.service" {
		t.Errorf("ssh enable link %+v", c)
	}
	nm := find(t, p, "root", "etc/NetworkManager/system-connections/preconfigured.nmconnection")
	psk, _ := WPAPSK("correct horse", "Home \"Net\"")
	if nm == nil || nm.Mode.Perm() != 0o600 || !strings.Contains(string(nm.Data), "\npsk="+psk+"\n") {
		t.Errorf("NetworkManager connection %+v", nm)
	}
	if c := find(t, p, "root", "etc/localtime"); c == nil || c.Target != "/usr/share/zoneinfo/Europe/London" {
		t.Errorf("localtime %+v", c)
	}
	if !strings.Contains(string(find(t, p, "boot", "cmdline.txt").Data), " cfg80211.ieee80211_regdom=GB\n") {
		t.Error("no regulatory domain on the command line")
	}
	// wpa_supplicant when there is no NetworkManager; existing user keeps uid.
	o.User = "pi"
	p, err = Build(bootFS(), rootFS("lib/systemd/system/ssh.service"), o)
	if err != nil {
		t.Fatal(err)
	}
	wpa := find(t, p, "root", "etc/wpa_supplicant/wpa_supplicant.conf")
	if wpa == nil || wpa.Mode.Perm() != 0o600 || !strings.Contains(string(wpa.Data), "country=GB\n") || !strings.Contains(string(wpa.Data), "\tpsk="+psk+"\n") {
		t.Errorf("wpa_supplicant.conf %+v", wpa)
	}
	if find(t, p, "root", "etc/passwd") != nil || !strings.Contains(get("etc/shadow"), "\npi:"+pwHash("s3cret pass")+":20000:") {
		t.Errorf("existing user: shadow %q", get("etc/shadow"))
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Hostname: "bad_name"},
		{User: "Admin", PasswordHash: pwHash("x")},
		{User: "admin"},
		{User: "admin", PasswordHash: "plain"},
		{WifiSSID: "x", WifiPassword: "short"},
		{WifiCountry: "gbr"},
		{SSHKeys: []string{"not a key"}},
		{SSHKeyOnly: true},
		{CmdlineAdd: []string{"two tokens"}},
		{BootConfig: []string{"a\nb"}},
		{Timezone: "../../etc/passwd"},
	} {
		if _, err := Build(bootFS(), rootFS(), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func TestSysprep(t *testing.T) {
	root := rootFS()
	for _, f := range []string{"etc/ssh/ssh_host_rsa_key", "etc/ssh/ssh_host_rsa_key.pub", "etc/machine-id", "var/lib/dbus/machine-id",
		"var/log/syslog", "var/log/syslog.1", "var/log/apt/history.log.2.gz", "root/.bash_history", "home/pi/.bash_history",
		"var/lib/dhcp/dhclient.eth0.leases", "var/lib/dhcpcd/wlan0.lease"} {
		root[f] = &fstest.MapFile{Data: []byte("state\n"), Mode: 0o644}
	}
	root["etc/ssh/sshd_config"] = &fstest.MapFile{Data: []byte("# keep\n")}
	p, err := Build(bootFS(), root, Options{Sysprep: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range p.Changes {
		got = append(got, c.Action+" "+c.Path)
		if c.Action == "write" && len(c.Data) != 0 {
			t.Errorf("%s written with content", c.Path)
		}
	}
	slices.Sort(got)
	want := []string{"remove etc/ssh/ssh_host_rsa_key", "remove etc/ssh/ssh_host_rsa_key.pub", "remove home/pi/.bash_history",
		"remove root/.bash_history", "remove var/lib/dbus/machine-id", "remove var/lib/dhcp/dhclient.eth0.leases",
		"remove var/lib/dhcpcd/wlan0.lease", "remove var/log/apt/history.log.2.gz", "remove var/log/syslog.1",
		"write etc/machine-id", "write var/log/syslog"}
	if !slices.Equal(got, want) {
		t.Errorf("sysprep\n%v\nwant\n%v", got, want)
	}
}

// TestPatternsCompile compiles every option pattern, which start-up leaves
// to first use.
func TestPatternsCompile(t *testing.T) {
	for _, l := range []*lazyRegexp{reHostname, reUser, reCountry, reTimezone, reKeymap, reLocale, reSSHKey} {
		if _, err := regexp.Compile(l.pat); err != nil {
			t.Errorf("%s: %v", l.pat, err)
		}
	}
	if !reHostname.MatchString("raspberrypi") || reHostname.MatchString("-bad") {
		t.Error("hostname pattern")
	}
}

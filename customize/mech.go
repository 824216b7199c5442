package customize

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

const imagerCustom = "/usr/lib/raspberrypi-sys-mods/imager_custom"

// bootMount is where the running system mounts the boot partition.
func (b *builder) bootMount() string {
	if b.isDir("root", "boot/firmware") {
		return "/boot/firmware"
	}
	return "/boot"
}

// firstrun writes firstrun.sh, in the shape Raspberry Pi Imager gives it,
// and returns the cmdline.txt tokens that run it once.
func (b *builder) firstrun() ([]string, error) {
	o := b.o
	mnt := b.bootMount()
	var s strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&s, format+"\n", args...) }
	w("#!/bin/bash")
	w("")
	w("set +e")
	w("")
	if o.Hostname != "" {
		w("CURRENT_HOSTNAME=`cat /etc/hostname | tr -d \" \\t\\n\\r\"`")
		w("if [ -f %s ]; then", imagerCustom)
		w("   %s set_hostname %s", imagerCustom, shq(o.Hostname))
		w("else")
		w("   echo %s >/etc/hostname", shq(o.Hostname))
		w("   sed -i \"s/127.0.1.1.*$CURRENT_HOSTNAME/127.0.1.1\\t%s/g\" /etc/hosts", o.Hostname)
		w("fi")
	}
	w("FIRSTUSER=`getent passwd 1000 | cut -d: -f1`")
	w("FIRSTUSERHOME=`getent passwd 1000 | cut -d: -f6`")
	var keys []string
	for _, k := range o.SSHKeys {
		keys = append(keys, shq(k))
	}
	installKeys := func(indent string) {
		w("%sinstall -o \"$FIRSTUSER\" -m 700 -d \"$FIRSTUSERHOME/.ssh\"", indent)
		w("%sinstall -o \"$FIRSTUSER\" -m 600 <(printf \"%%s\\n\" %s) \"$FIRSTUSERHOME/.ssh/authorized_keys\"", indent, strings.Join(keys, " "))
	}
	if o.SSH || len(o.SSHKeys) > 0 {
		w("if [ -f %s ]; then", imagerCustom)
		if o.SSHKeyOnly {
			w("   %s enable_ssh -k %s", imagerCustom, strings.Join(keys, " "))
		} else {
			w("   %s enable_ssh", imagerCustom)
		}
		w("else")
		if o.SSHKeyOnly {
			installKeys("   ")
			w("   echo 'PasswordAuthentication no' >>/etc/ssh/sshd_config")
		}
		w("   systemctl enable ssh")
		w("fi")
		if len(o.SSHKeys) > 0 && !o.SSHKeyOnly {
			installKeys("")
		}
	}
	if o.User != "" {
		u, h := shq(o.User), shq(o.PasswordHash)
		w("if [ -f /usr/lib/userconf-pi/userconf ]; then")
		w("   /usr/lib/userconf-pi/userconf %s %s", u, h)
		w("else")
		w("   echo \"$FIRSTUSER:\"%s | chpasswd -e", h)
		w("   if [ \"$FIRSTUSER\" != %s ]; then", u)
		w("      usermod -l %s \"$FIRSTUSER\"", u)
		w("      usermod -m -d %s %s", shq("/home/"+o.User), u)
		w("      groupmod -n %s \"$FIRSTUSER\"", u)
		w("      if grep -q \"^autologin-user=\" /etc/lightdm/lightdm.conf ; then")
		w("         sed /etc/lightdm/lightdm.conf -i -e \"s/^autologin-user=.*/autologin-user=%s/\"", o.User)
		w("      fi")
		w("      if [ -f /etc/systemd/system/getty@tty1.service.d/autologin.conf ]; then")
		w("         sed /etc/systemd/system/getty@tty1.service.d/autologin.conf -i -e \"s/$FIRSTUSER/%s/\"", o.User)
		w("      fi")
		w("      if [ -f /etc/sudoers.d/010_pi-nopasswd ]; then")
		w("         sed -i \"s/^$FIRSTUSER /%s /\" /etc/sudoers.d/010_pi-nopasswd", o.User)
		w("      fi")
		w("   fi")
		w("fi")
	}
	if o.WifiSSID != "" || o.WifiCountry != "" {
		w("if [ -f %s ]; then", imagerCustom)
		if o.WifiSSID != "" {
			psk := o.psk()
			w("   %s set_wlan %s %s %s", imagerCustom, shq(o.WifiSSID), shq(psk), shq(o.WifiCountry))
		} else {
			w("   raspi-config nonint do_wifi_country %s", shq(o.WifiCountry))
		}
		w("else")
		w("cat >/etc/wpa_supplicant/wpa_supplicant.conf <<'WPAEOF'")
		s.WriteString(o.wpaConf())
		w("")
		w("WPAEOF")
		w("   chmod 600 /etc/wpa_supplicant/wpa_supplicant.conf")
		w("   rfkill unblock wifi")
		w("   for filename in /var/lib/systemd/rfkill/*:wlan ; do")
		w("       echo 0 > $filename")
		w("   done")
		w("fi")
	}
	if o.Keymap != "" || o.Timezone != "" {
		w("if [ -f %s ]; then", imagerCustom)
		if o.Keymap != "" {
			w("   %s set_keymap %s", imagerCustom, shq(o.Keymap))
		}
		if o.Timezone != "" {
			w("   %s set_timezone %s", imagerCustom, shq(o.Timezone))
		}
		w("else")
		if o.Timezone != "" {
			w("   rm -f /etc/localtime")
			w("   echo %s >/etc/timezone", shq(o.Timezone))
			w("   dpkg-reconfigure -f noninteractive tzdata")
		}
		if o.Keymap != "" {
			w("cat >/etc/default/keyboard <<'KBEOF'")
			w("XKBMODEL=\"pc105\"")
			w("XKBLAYOUT=\"%s\"", o.Keymap)
			w("XKBVARIANT=\"\"")
			w("XKBOPTIONS=\"\"")
			w("")
			w("KBEOF")
			w("   dpkg-reconfigure -f noninteractive keyboard-configuration")
		}
		w("fi")
	}
	if o.Locale != "" {
		charset := "UTF-8"
		if _, cs, ok := strings.Cut(o.Locale, "."); ok {
			charset = strings.SplitN(cs, "@", 2)[0]
		} else {
			charset = "ISO-8859-1"
		}
		w("if [ -f /etc/locale.gen ]; then")
		w("   grep -q %s /etc/locale.gen || echo %s >>/etc/locale.gen", shq("^"+o.Locale+" "), shq(o.Locale+" "+charset))
		w("   sed -i %s /etc/locale.gen", shq("s/^# *"+strings.ReplaceAll(o.Locale, ".", `\.`)+" /"+o.Locale+" /"))
		w("   locale-gen")
		w("fi")
		w("update-locale LANG=%s", shq(o.Locale))
	}
	tokens := make([]string, len(firstrunTokens))
	for i, t := range firstrunTokens {
		tokens[i] = strings.ReplaceAll(t, "%s", mnt)
	}
	var seds []string
	for _, t := range tokens {
		seds = append(seds, "s| "+t+"||g")
	}
	w("rm -f %s/firstrun.sh", mnt)
	w("sed -i %s %s/cmdline.txt", shq(strings.Join(seds, "; ")), mnt)
	w("exit 0")
	b.writeNew("boot", "firstrun.sh", []byte(s.String()), 0o755, 0, 0)
	return tokens, nil
}

// Groups a Raspberry Pi OS first user belongs to, as Imager gives them.
const piGroups = "users,adm,dialout,audio,netdev,video,plugdev,cdrom,games,input,gpio,spi,i2c,render,sudo"
const ubuntuGroups = "adm,dialout,cdrom,floppy,sudo,audio,dip,video,plugdev,netdev"

// cloudInit writes the NoCloud seed (user-data, meta-data and, with Wi-Fi,
// network-config) and returns ds=nocloud for Raspberry Pi OS.
func (b *builder) cloudInit(osID string) ([]string, error) {
	o := b.o
	var u strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&u, format+"\n", args...) }
	w("#cloud-config")
	if o.Hostname != "" {
		w("hostname: %s", jq(o.Hostname))
		w("manage_etc_hosts: true")
	}
	if o.Timezone != "" {
		w("timezone: %s", jq(o.Timezone))
	}
	if o.Keymap != "" {
		w("keyboard:")
		w("  model: pc105")
		w("  layout: %s", jq(o.Keymap))
	}
	if o.Locale != "" {
		w("locale: %s", jq(o.Locale))
	}
	keys := func(indent string) {
		w("%sssh_authorized_keys:", indent)
		for _, k := range o.SSHKeys {
			w("%s- %s", indent, jq(k))
		}
	}
	if o.User != "" {
		groups := piGroups
		if osID == "ubuntu" {
			groups = ubuntuGroups
		}
		w("users:")
		w("- name: %s", jq(o.User))
		w("  groups: %s", groups)
		w("  shell: /bin/bash")
		w("  lock_passwd: false")
		w("  passwd: %s", jq(o.PasswordHash))
		w("  sudo: %s", jq("ALL=(ALL) NOPASSWD:ALL"))
		if len(o.SSHKeys) > 0 {
			keys("  ")
		}
	} else if len(o.SSHKeys) > 0 {
		keys("")
	}
	raspios := osID != "ubuntu"
	if o.SSH || len(o.SSHKeys) > 0 {
		if raspios {
			// Raspberry Pi OS's cloud-init reads enable_ssh (as Raspberry
			// Pi Imager writes it); the runcmd covers other builds.
			w("enable_ssh: true")
		}
		w("ssh_pwauth: %t", !o.SSHKeyOnly)
		w("runcmd:")
		w("- [systemctl, enable, --now, ssh]")
	}
	userData := u.String()
	var netConf string
	if o.WifiSSID != "" {
		var n strings.Builder
		// eth0 keeps the DHCP that cloud-init's fallback configuration
		// would give it without a network-config.
		fmt.Fprintf(&n, "network:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: true\n      optional: true\n")
		fmt.Fprintf(&n, "  wifis:\n    wlan0:\n      dhcp4: true\n      optional: true\n")
		if o.WifiCountry != "" {
			fmt.Fprintf(&n, "      regulatory-domain: %s\n", jq(o.WifiCountry))
		}
		fmt.Fprintf(&n, "      access-points:\n        %s:\n", jq(o.WifiSSID))
		if p := o.psk(); p != "" {
			fmt.Fprintf(&n, "          password: %s\n", jq(p))
		} else {
			fmt.Fprintf(&n, "          {}\n")
		}
		netConf = n.String()
	}
	seed := userData != "#cloud-config\n" || netConf != ""
	if seed {
		if userData == "#cloud-config\n" {
			// NoCloud needs a user-data file, and cloud-init's schema a
			// mapping in it.
			userData += "{}\n"
		}
		b.writeNew("boot", "user-data", []byte(userData), 0o644, 0, 0)
		if netConf != "" {
			b.writeNew("boot", "network-config", []byte(netConf), 0o644, 0, 0)
		}
		b.writeNew("boot", "meta-data", []byte("instance-id: "+instanceID(userData, netConf)+"\n"), 0o644, 0, 0)
	}
	data, haveCmdline, err := b.read("boot", "cmdline.txt")
	if err != nil {
		return nil, err
	}
	var tokens []string
	if seed && raspios && !slices.ContainsFunc(strings.Fields(string(data)), func(tk string) bool {
		return tk == "ds=nocloud" || strings.HasPrefix(tk, "ds=nocloud;")
	}) {
		tokens = append(tokens, "ds=nocloud")
	}
	if o.WifiCountry != "" && haveCmdline {
		// As Raspberry Pi Imager does: the kernel's regulatory domain,
		// which also covers a country given without a network.
		tokens = append(tokens, tokRegdom+o.WifiCountry)
	}
	return tokens, nil
}

// passwdEntry is one line of /etc/passwd.
type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

func parsePasswd(data []byte) []passwdEntry {
	var out []passwdEntry
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Split(l, ":")
		if len(f) < 7 {
			continue
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 == nil && err2 == nil {
			out = append(out, passwdEntry{f[0], uint32(uid), uint32(gid), f[5]})
		}
	}
	return out
}

// editLines replaces the lines for which match returns true with repl
// (all of them; repl "" deletes) or appends add when none matched.
func editLines(data []byte, match func(string) bool, repl func(string) string, add string) []byte {
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(data) == 0 {
		lines = nil
	}
	found := false
	var out []string
	for _, l := range lines {
		if match(l) {
			found = true
			if r := repl(l); r != "" {
				out = append(out, r)
			}
			continue
		}
		out = append(out, l)
	}
	if !found && add != "" {
		out = append(out, add)
	}
	return []byte(strings.Join(out, "\n") + "\n")
}

func field0(name string) func(string) bool {
	return func(l string) bool { return strings.HasPrefix(l, name+":") }
}

// rootfs edits the root filesystem directly.
func (b *builder) rootfs() error {
	o := b.o
	if o.Hostname != "" {
		b.write("root", "etc/hostname", []byte(o.Hostname+"\n"), 0o644, 0, 0)
		hosts, ok, err := b.read("root", "etc/hosts")
		if err != nil {
			return err
		}
		if !ok {
			hosts = []byte("127.0.0.1\tlocalhost\n")
		}
		b.write("root", "etc/hosts", editLines(hosts, func(l string) bool { return strings.HasPrefix(l, "127.0.1.1") },
			func(string) string { return "127.0.1.1\t" + o.Hostname }, "127.0.1.1\t"+o.Hostname), 0o644, 0, 0)
	}
	passwd, _, err := b.read("root", "etc/passwd")
	if err != nil {
		return err
	}
	users := parsePasswd(passwd)
	var who *passwdEntry
	if o.User != "" {
		if who, err = b.user(users, passwd); err != nil {
			return err
		}
	} else if len(o.SSHKeys) > 0 {
		for i := range users {
			if users[i].uid == 1000 {
				who = &users[i]
			}
		}
		if who == nil {
			return optErr("the image has no user with uid 1000 to receive the SSH key: give --user and a password")
		}
	}
	if o.SSH || len(o.SSHKeys) > 0 {
		unit := ""
		for _, p := range []string{"lib/systemd/system/ssh.service", "usr/lib/systemd/system/ssh.service", "lib/systemd/system/sshd.service", "usr/lib/systemd/system/sshd.service"} {
			if exists(b.root, p) {
				unit = p
				break
			}
		}
		if unit == "" {
			return fmt.Errorf("customize: the image has no ssh.service (OpenSSH server); install it before enabling SSH")
		}
		b.mkdirAll("root", "etc/systemd/system/multi-user.target.wants", 0o755, 0, 0)
		b.symlink("etc/systemd/system/multi-user.target.wants/"+path.Base(unit), "/"+unit)
		if path.Base(unit) == "ssh.service" && !exists(b.root, "etc/systemd/system/sshd.service") {
			b.symlink("etc/systemd/system/sshd.service", "/"+unit)
		}
	}
	if len(o.SSHKeys) > 0 {
		home := strings.TrimPrefix(path.Clean("/"+who.home), "/")
		if home == "" || !b.isDir("root", home) {
			return fmt.Errorf("customize: the home directory of %s (/%s) is missing", who.name, home)
		}
		b.mkdirAll("root", home+"/.ssh", 0o700, who.uid, who.gid)
		ak := home + "/.ssh/authorized_keys"
		cur, _, err := b.read("root", ak)
		if err != nil {
			return err
		}
		out := cur
		for _, k := range o.SSHKeys {
			if !slices.Contains(strings.Split(string(cur), "\n"), k) {
				if len(out) > 0 && out[len(out)-1] != '\n' {
					out = append(out, '\n')
				}
				out = append(out, k+"\n"...)
			}
		}
		b.write("root", ak, out, 0o600, who.uid, who.gid)
	}
	if o.SSHKeyOnly {
		if b.isDir("root", "etc/ssh/sshd_config.d") {
			b.writeNew("root", "etc/ssh/sshd_config.d/50-imgtool.conf", []byte("PasswordAuthentication no\n"), 0o644, 0, 0)
		} else {
			cur, _, err := b.read("root", "etc/ssh/sshd_config")
			if err != nil {
				return err
			}
			b.write("root", "etc/ssh/sshd_config", append(cur, "PasswordAuthentication no\n"...), 0o644, 0, 0)
		}
	}
	if o.WifiSSID != "" || o.WifiCountry != "" {
		if err := b.wifi(); err != nil {
			return err
		}
	}
	if o.Timezone != "" {
		b.write("root", "etc/timezone", []byte(o.Timezone+"\n"), 0o644, 0, 0)
		b.symlink("etc/localtime", "/usr/share/zoneinfo/"+o.Timezone)
	}
	if o.Keymap != "" {
		cur, _, err := b.read("root", "etc/default/keyboard")
		if err != nil {
			return err
		}
		if len(cur) == 0 {
			cur = []byte("XKBMODEL=\"pc105\"\nXKBVARIANT=\"\"\nXKBOPTIONS=\"\"\n")
		}
		b.mkdirAll("root", "etc/default", 0o755, 0, 0)
		b.write("root", "etc/default/keyboard", editLines(cur, func(l string) bool { return strings.HasPrefix(l, "XKBLAYOUT=") },
			func(string) string { return `XKBLAYOUT="` + o.Keymap + `"` }, `XKBLAYOUT="`+o.Keymap+`"`), 0o644, 0, 0)
	}
	if o.Locale != "" {
		cur, _, err := b.read("root", "etc/default/locale")
		if err != nil {
			return err
		}
		b.mkdirAll("root", "etc/default", 0o755, 0, 0)
		b.write("root", "etc/default/locale", editLines(cur, func(l string) bool { return strings.HasPrefix(l, "LANG=") },
			func(string) string { return "LANG=" + o.Locale }, "LANG="+o.Locale), 0o644, 0, 0)
	}
	return nil
}

// user creates the user (or sets the password of an existing one) in
// passwd, shadow and group, with a home directory.
func (b *builder) user(users []passwdEntry, passwd []byte) (*passwdEntry, error) {
	o := b.o
	shadow, ok, err := b.read("root", "etc/shadow")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("customize: the image has no /etc/shadow")
	}
	days := strconv.FormatInt(b.now().Unix()/86400, 10)
	for i := range users {
		if users[i].name == o.User {
			b.write("root", "etc/shadow", editLines(shadow, field0(o.User), func(l string) string {
				f := strings.Split(l, ":")
				f[1], f[2] = o.PasswordHash, days
				return strings.Join(f, ":")
			}, o.User+":"+o.PasswordHash+":"+days+":0:99999:7:::"), 0o640, 0, 42)
			return &users[i], nil
		}
	}
	group, _, err := b.read("root", "etc/group")
	if err != nil {
		return nil, err
	}
	usedUID, usedGID := map[uint32]bool{}, map[uint32]bool{}
	for _, u := range users {
		usedUID[u.uid] = true
	}
	hasGroup := map[string]bool{}
	for _, l := range strings.Split(string(group), "\n") {
		f := strings.Split(l, ":")
		if len(f) >= 4 {
			hasGroup[f[0]] = true
			if g, err := strconv.ParseUint(f[2], 10, 32); err == nil {
				usedGID[uint32(g)] = true
			}
		}
	}
	if hasGroup[o.User] {
		return nil, fmt.Errorf("customize: the image has a group %q but no such user; choose another user name", o.User)
	}
	id := uint32(1000)
	for usedUID[id] || usedGID[id] {
		id++
	}
	e := passwdEntry{o.User, id, id, "/home/" + o.User}
	shell := "/bin/sh"
	if exists(b.root, "bin/bash") || exists(b.root, "usr/bin/bash") {
		shell = "/bin/bash"
	}
	line := fmt.Sprintf("%s:x:%d:%d:%s:%s:%s", o.User, id, id, ",,,", e.home, shell)
	b.write("root", "etc/passwd", editLines(passwd, func(string) bool { return false }, nil, line), 0o644, 0, 0)
	b.write("root", "etc/shadow", editLines(shadow, func(string) bool { return false }, nil,
		o.User+":"+o.PasswordHash+":"+days+":0:99999:7:::"), 0o640, 0, 42)
	// The user joins these groups in /etc/group and /etc/gshadow, whose
	// lines both end with the member list.
	addTo := []string{"sudo", "adm", "users"}
	join := func(data []byte) []byte {
		return editLines(data, func(l string) bool {
			f := strings.Split(l, ":")
			return len(f) >= 4 && slices.Contains(addTo, f[0])
		}, func(l string) string {
			if strings.HasSuffix(l, ":") {
				return l + o.User
			}
			return l + "," + o.User
		}, "")
	}
	group = editLines(join(group), func(string) bool { return false }, nil, fmt.Sprintf("%s:x:%d:", o.User, id))
	b.write("root", "etc/group", group, 0o644, 0, 0)
	if gs, ok, err := b.read("root", "etc/gshadow"); err == nil && ok {
		b.write("root", "etc/gshadow", editLines(join(gs), func(string) bool { return false }, nil, o.User+":!::"), 0o640, 0, 42)
	}
	home := strings.TrimPrefix(e.home, "/")
	if !b.isDir("root", home) {
		b.mkdirAll("root", "home", 0o755, 0, 0)
		b.mkdirAll("root", home, 0o755, id, id)
		if ents, err := readDir(b.root, "etc/skel"); err == nil {
			for _, name := range ents {
				data, ok, err := b.read("root", "etc/skel/"+name)
				if err == nil && ok {
					m, _, _, _ := b.stat("root", "etc/skel/"+name)
					b.writeNew("root", home+"/"+name, data, m.Perm(), id, id)
				}
			}
		}
	}
	return &e, nil
}

func (b *builder) now() interface{ Unix() int64 } {
	if b.o.Now != nil {
		return b.o.Now()
	}
	return timeNow()
}

// wifi writes a NetworkManager connection when the image has
// NetworkManager, else wpa_supplicant.conf.
func (b *builder) wifi() error {
	o := b.o
	if exists(b.root, "etc/NetworkManager") && o.WifiSSID != "" {
		var s strings.Builder
		fmt.Fprintf(&s, "[connection]\nid=preconfigured\nuuid=%s\ntype=wifi\n\n[wifi]\nmode=infrastructure\nssid=%s\nhidden=false\n\n[ipv4]\nmethod=auto\n\n[ipv6]\naddr-gen-mode=default\nmethod=auto\n\n[proxy]\n",
			nmUUID(o.WifiSSID), nmEscape(o.WifiSSID))
		if p := o.psk(); p != "" {
			fmt.Fprintf(&s, "\n[wifi-security]\nkey-mgmt=wpa-psk\npsk=%s\n", p)
		}
		b.mkdirAll("root", "etc/NetworkManager/system-connections", 0o700, 0, 0)
		b.writeNew("root", "etc/NetworkManager/system-connections/preconfigured.nmconnection", []byte(s.String()), 0o600, 0, 0)
		return nil
	}
	b.mkdirAll("root", "etc/wpa_supplicant", 0o755, 0, 0)
	b.writeNew("root", "etc/wpa_supplicant/wpa_supplicant.conf", []byte(o.wpaConf()), 0o600, 0, 0)
	return nil
}

// nmEscape escapes a key-file value (GKeyFile: backslash, leading space,
// newline).
func nmEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, ";", `\;`)
	if strings.HasPrefix(s, " ") {
		s = `\s` + s[1:]
	}
	return s
}

// nmUUID derives a stable version-4-shaped UUID from the SSID.
func nmUUID(ssid string) string {
	h := instanceID("nm", ssid)[len("imgtool-"):] + instanceID("nm2", ssid)[len("imgtool-"):]
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
}

package customize

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Armed is the first-boot customisation an image carries: what will run
// when it first boots and the settings that carries, as far as they can
// be read as text. Secrets are never copied: a password hash or Wi-Fi PSK
// only sets PasswordSet or WifiPSKSet.
type Armed struct {
	// Sources are the files that will act on the first boot, in the
	// order ReadArmed looks for them.
	Sources  []Source `json:"sources"`
	Hostname string   `json:"hostname,omitempty"`
	User     string   `json:"user,omitempty"`
	// PasswordSet says a password (hash) is given for the user.
	PasswordSet bool `json:"password_set,omitempty"`
	// SSH says the SSH server is enabled.
	SSH bool `json:"ssh,omitempty"`
	// SSHKeys counts the authorized keys installed.
	SSHKeys int `json:"ssh_keys,omitempty"`
	// SSHPasswordAuth is "disabled" or "enabled" when a source says
	// whether SSH accepts passwords, else empty.
	SSHPasswordAuth string `json:"ssh_password_auth,omitempty"`
	WifiSSID        string `json:"wifi_ssid,omitempty"`
	// WifiPSKSet says the Wi-Fi network has a key (PSK or passphrase).
	WifiPSKSet  bool   `json:"wifi_psk_set,omitempty"`
	WifiCountry string `json:"wifi_country,omitempty"`
	Timezone    string `json:"timezone,omitempty"`
	Keymap      string `json:"keymap,omitempty"`
	Locale      string `json:"locale,omitempty"`
	// Warnings are problems found: a token that runs a missing file, a
	// seed that will not run.
	Warnings []string `json:"warnings,omitempty"`
}

// Source is one file or set of files that acts on the first boot.
type Source struct {
	// Mechanism is "firstrun.sh", "systemd.run", "custom.toml",
	// "cloud-init", "userconf", "ssh" or "wpa_supplicant.conf".
	Mechanism string `json:"mechanism"`
	// Files are the files read, as "boot:/name".
	Files []string `json:"files"`
	// How says what runs them.
	How string `json:"how,omitempty"`
	// Notes describe content that is there but was not read as a
	// setting ("runcmd: 2 commands", "not a cloud-config").
	Notes []string `json:"notes,omitempty"`
}

// Largest file ReadArmed reads; a larger one is reported as present.
const maxArmedFile = 1 << 20

// Well-known kernel command-line tokens.
const (
	tokRegdom    = "cfg80211.ieee80211_regdom="
	sysModsFirst = "/usr/lib/raspberrypi-sys-mods/firstboot"
)

// ReadArmed reads what an image will configure on its first boot from its
// boot (FAT) partition and, for a few checks, its root filesystem: a
// firstrun.sh run by systemd.run= tokens in cmdline.txt (at /boot or
// /boot/firmware), Raspberry Pi's custom.toml, a cloud-init NoCloud seed
// (user-data, network-config, meta-data, with or without ds=nocloud on the
// command line), the ssh or ssh.txt flag file, userconf or userconf.txt,
// and wpa_supplicant.conf. Either filesystem may be nil; without a boot
// partition nothing is armed (imgtool's root-filesystem path edits files
// directly and arms nothing).
//
// It returns nil when nothing is armed. The files are untrusted: each read
// is capped at 1 MiB, content that is not understood is reported in
// Source.Notes rather than guessed at, and only read errors other than a
// missing file are returned (with what could be read).
func ReadArmed(boot, root iofs.FS) (*Armed, error) {
	if boot == nil {
		return nil, nil
	}
	r := &armedReader{boot: boot, root: root, a: &Armed{Sources: []Source{}}}
	if data, ok := r.read("cmdline.txt"); ok {
		line, _, _ := strings.Cut(string(data), "\n")
		r.tokens = strings.Fields(line)
	}
	r.systemdRun()
	r.customTOML()
	r.cloudInit()
	r.userconf()
	r.sshFlag()
	r.wpaSupplicant()
	a := r.a
	if len(a.Sources) == 0 && len(a.Warnings) == 0 {
		return nil, errors.Join(r.errs...)
	}
	for _, tk := range r.tokens {
		if cc, ok := strings.CutPrefix(tk, tokRegdom); ok && a.WifiCountry == "" && reCountry.MatchString(cc) {
			a.WifiCountry = cc
		}
	}
	return a, errors.Join(r.errs...)
}

type armedReader struct {
	boot, root iofs.FS
	a          *Armed
	tokens     []string
	errs       []error
}

// read returns a boot-partition file, or ok=false when it is missing (or
// unreadable or too large: then a warning or error says so).
func (r *armedReader) read(name string) ([]byte, bool) {
	return r.readFrom(r.boot, "boot", name)
}

func (r *armedReader) readFrom(fsys iofs.FS, fsName, name string) ([]byte, bool) {
	f, err := fsys.Open(name)
	if err != nil {
		if !errors.Is(err, iofs.ErrNotExist) {
			r.errs = append(r.errs, fmt.Errorf("customize: reading %s:/%s: %w", fsName, name, err))
		}
		return nil, false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, false
	} else if fi.Size() > maxArmedFile {
		r.a.Warnings = append(r.a.Warnings, fmt.Sprintf("%s:/%s is %d bytes, too large to read as a configuration file", fsName, name, fi.Size()))
		return nil, false
	}
	data, err := io.ReadAll(io.LimitReader(f, maxArmedFile+1))
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("customize: reading %s:/%s: %w", fsName, name, err))
		return nil, false
	}
	if len(data) > maxArmedFile {
		data = data[:maxArmedFile]
	}
	return data, true
}

func (r *armedReader) bootExists(name string) bool {
	fi, err := iofs.Stat(r.boot, name)
	return err == nil && fi.Mode().IsRegular()
}

func (r *armedReader) rootExists(name string) bool {
	return r.root != nil && exists(r.root, name)
}

func (r *armedReader) warn(format string, args ...any) {
	r.a.Warnings = append(r.a.Warnings, fmt.Sprintf(format, args...))
}

// Setters: the first source to give a value wins.

func (r *armedReader) setStr(dst *string, v string) {
	v = strings.TrimSpace(v)
	if *dst == "" && v != "" && len(v) <= 256 && !strings.ContainsAny(v, "\n\r\x00") {
		*dst = v
	}
}

func (r *armedReader) setKeys(n int) {
	if r.a.SSHKeys == 0 {
		r.a.SSHKeys = n
	}
}

func (r *armedReader) setPwAuth(enabled bool) {
	if r.a.SSHPasswordAuth == "" {
		r.a.SSHPasswordAuth = map[bool]string{true: "enabled", false: "disabled"}[enabled]
	}
}

// bootRel maps a path of the running system to a boot-partition name:
// "/boot/firmware/x" and "/boot/x" are "x"; ok is false elsewhere.
func bootRel(p string) (string, bool) {
	for _, pre := range []string{"/boot/firmware/", "/boot/"} {
		if rest, ok := strings.CutPrefix(p, pre); ok && rest != "" {
			return path.Clean(rest), true
		}
	}
	return "", false
}

// systemdRun reads firstrun.sh (or names another script) run by a
// systemd.run= token.
func (r *armedReader) systemdRun() {
	seen := false
	for _, tk := range r.tokens {
		p, ok := strings.CutPrefix(tk, "systemd.run=")
		if !ok {
			continue
		}
		how := "systemd.run=" + p + " in cmdline.txt"
		rel, onBoot := bootRel(p)
		if !onBoot {
			r.a.Sources = append(r.a.Sources, Source{Mechanism: "systemd.run", Files: []string{"root:" + p}, How: how,
				Notes: []string{"a command on the root filesystem, not read"}})
			continue
		}
		data, ok := r.read(rel)
		if !ok {
			r.warn("cmdline.txt runs %s on first boot, but the boot partition has no %s: remove the systemd.run= tokens (imgtool customize --cmdline-remove systemd.run --cmdline-remove systemd.run_success_action --cmdline-remove systemd.unit)", p, rel)
			continue
		}
		src := Source{Mechanism: "systemd.run", Files: []string{"boot:/" + rel}, How: how}
		if strings.EqualFold(rel, "firstrun.sh") {
			src.Mechanism = "firstrun.sh"
			seen = true
		}
		r.firstrun(data, &src)
		r.a.Sources = append(r.a.Sources, src)
	}
	if !seen && r.bootExists("firstrun.sh") {
		r.warn("boot:/firstrun.sh is present, but cmdline.txt does not run it (no systemd.run= token): it will not run")
	}
}

// firstrun reads the settings of a firstrun.sh in the shapes Raspberry Pi
// Imager and imgtool write: imager_custom, userconf, raspi-config nonint
// and the fallback commands.
func (r *armedReader) firstrun(data []byte, src *Source) {
	a := r.a
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	recognised := 0
	printfKeys, heredocKeys, minusKKeys := 0, 0, -1
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		w := shellWords(line)
		if tag, ok := heredocTag(w); ok {
			var body []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != tag; i++ {
				body = append(body, lines[i])
			}
			switch {
			case strings.Contains(line, "authorized_keys"):
				heredocKeys += countKeyLines(body)
				recognised++
			case strings.Contains(line, "wpa_supplicant.conf"):
				r.wpaSettings(strings.Join(body, "\n"), nil)
				recognised++
			case strings.Contains(line, "/etc/default/keyboard"):
				for _, l := range body {
					if v, ok := strings.CutPrefix(strings.TrimSpace(l), "XKBLAYOUT="); ok {
						r.setStr(&a.Keymap, strings.Trim(v, `"'`))
						recognised++
					}
				}
			}
			continue
		}
		if strings.Contains(line, "PasswordAuthentication no") {
			r.setPwAuth(false)
			recognised++
		}
		for j := 0; j < len(w); j++ {
			if !cmdPos(w, j) {
				continue
			}
			args := w[j+1:]
			arg := func(k int) string {
				if k < len(args) {
					return args[k]
				}
				return ""
			}
			switch base := path.Base(w[j]); {
			case base == "imager_custom" && len(args) > 0:
				recognised++
				switch args[0] {
				case "set_hostname":
					r.setStr(&a.Hostname, arg(1))
				case "enable_ssh":
					a.SSH = true
					rest := args[1:]
					if len(rest) > 0 && (rest[0] == "-k" || rest[0] == "--key-only") {
						r.setPwAuth(false)
						minusKKeys = countKeyWords(rest[1:])
					} else if len(rest) > 0 && (rest[0] == "-p" || rest[0] == "--pass-auth") {
						r.setPwAuth(true)
						minusKKeys = countKeyWords(rest[1:])
					}
				case "set_wlan":
					pos := slices.DeleteFunc(slices.Clone(args[1:]), func(s string) bool { return strings.HasPrefix(s, "-") })
					if len(pos) > 0 {
						r.setStr(&a.WifiSSID, pos[0])
						if len(pos) > 1 && pos[1] != "" {
							a.WifiPSKSet = true
						}
						if len(pos) > 2 {
							r.setStr(&a.WifiCountry, pos[2])
						}
					}
				case "set_keymap":
					r.setStr(&a.Keymap, arg(1))
				case "set_timezone":
					r.setStr(&a.Timezone, arg(1))
				default:
					recognised--
				}
				j = len(w)
			case base == "userconf" && strings.Contains(w[j], "userconf-pi"):
				recognised++
				r.setStr(&a.User, arg(0))
				if arg(1) != "" {
					a.PasswordSet = true
				}
				j = len(w)
			case base == "raspi-config" && arg(0) == "nonint":
				recognised++
				switch arg(1) {
				case "do_wifi_country":
					r.setStr(&a.WifiCountry, arg(2))
				case "do_hostname":
					r.setStr(&a.Hostname, arg(2))
				case "do_ssh":
					a.SSH = a.SSH || arg(2) == "0"
				case "do_change_timezone":
					r.setStr(&a.Timezone, arg(2))
				case "do_configure_keyboard":
					r.setStr(&a.Keymap, arg(2))
				case "do_change_locale":
					r.setStr(&a.Locale, arg(2))
				default:
					recognised--
				}
				j = len(w)
			case base == "systemctl" && arg(0) == "enable":
				for _, u := range args[1:] {
					if u == "ssh" || u == "sshd" || u == "ssh.service" || u == "sshd.service" {
						a.SSH = true
						recognised++
					}
				}
				j = len(w)
			case base == "update-locale":
				for _, s := range args {
					if v, ok := strings.CutPrefix(s, "LANG="); ok {
						r.setStr(&a.Locale, v)
						recognised++
					}
				}
				j = len(w)
			case base == "echo" && redirectTo(w, "/etc/hostname"):
				r.setStr(&a.Hostname, arg(0))
				recognised++
				j = len(w)
			case base == "echo" && redirectTo(w, "/etc/timezone"):
				r.setStr(&a.Timezone, arg(0))
				recognised++
				j = len(w)
			case base == "usermod" && arg(0) == "-l":
				r.setStr(&a.User, arg(1))
				recognised++
				j = len(w)
			case base == "chpasswd":
				a.PasswordSet = true
				recognised++
			case base == "printf" && strings.Contains(line, "authorized_keys"):
				n := 0
				for _, s := range args[1:] {
					if s == ")" {
						break
					}
					if reSSHKey.MatchString(s) {
						n++
					}
				}
				printfKeys += n
				recognised++
			}
		}
	}
	switch {
	case minusKKeys > 0:
		r.setKeys(minusKKeys)
	case printfKeys > 0:
		r.setKeys(printfKeys)
	case heredocKeys > 0:
		r.setKeys(heredocKeys)
	}
	if r.a.SSHKeys > 0 {
		a.SSH = true
	}
	if recognised == 0 {
		src.Notes = append(src.Notes, "a script in a shape imgtool does not read: no settings recognised")
	}
}

// cmdPos reports whether w[j] is where a command name stands.
func cmdPos(w []string, j int) bool {
	if j == 0 {
		return true
	}
	switch w[j-1] {
	case "then", "else", "do", "if", "!", "{", ";", "&", "|", "(", "sudo", "exec":
		return true
	}
	return false
}

// heredocTag returns the delimiter of a "<<TAG" / "<<'TAG'" / "<<-TAG"
// here-document in the words of a line.
func heredocTag(w []string) (string, bool) {
	for i := 0; i+2 < len(w); i++ {
		if w[i] == "<" && w[i+1] == "<" {
			tag := strings.TrimPrefix(w[i+2], "-")
			if tag != "" {
				return tag, true
			}
		}
	}
	return "", false
}

// redirectTo reports whether the words redirect output to file.
func redirectTo(w []string, file string) bool {
	for i := 0; i+1 < len(w); i++ {
		if w[i] == ">" && w[i+1] == file {
			return true
		}
	}
	return false
}

func countKeyWords(w []string) int {
	n := 0
	for _, s := range w {
		if reSSHKey.MatchString(strings.TrimSpace(s)) {
			n++
		}
	}
	return n
}

func countKeyLines(lines []string) int {
	n := 0
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n
}

// customTOML reads Raspberry Pi OS's custom.toml (raspberrypi-sys-mods
// init_config, bookworm).
func (r *armedReader) customTOML() {
	data, ok := r.read("custom.toml")
	if !ok {
		return
	}
	a := r.a
	src := Source{Mechanism: "custom.toml", Files: []string{"boot:/custom.toml"}, How: "raspberrypi-sys-mods firstboot (init=" + sysModsFirst + " in cmdline.txt)"}
	if !slices.Contains(r.tokens, "init="+sysModsFirst) {
		src.How = "raspberrypi-sys-mods firstboot"
		src.Notes = append(src.Notes, "cmdline.txt does not start firstboot (no init="+sysModsFirst+"): custom.toml is read only by images that do")
	}
	t := parseTOML(string(data))
	str := func(k string) string { s, _ := t[k].(string); return s }
	boolean := func(k string) (bool, bool) { b, ok := t[k].(bool); return b, ok }
	r.setStr(&a.Hostname, str("system.hostname"))
	r.setStr(&a.User, str("user.name"))
	if str("user.password") != "" {
		a.PasswordSet = true
		if enc, ok := boolean("user.password_encrypted"); ok && !enc {
			src.Notes = append(src.Notes, "the user's password is stored in clear text (password_encrypted = false)")
		}
	}
	if on, ok := boolean("ssh.enabled"); ok && on {
		a.SSH = true
	}
	if pw, ok := boolean("ssh.password_authentication"); ok {
		r.setPwAuth(pw)
	}
	if keys, ok := t["ssh.authorized_keys"].([]string); ok {
		r.setKeys(countKeyWords(keys))
	}
	r.setStr(&a.WifiSSID, str("wlan.ssid"))
	if str("wlan.password") != "" {
		a.WifiPSKSet = true
		if enc, ok := boolean("wlan.password_encrypted"); ok && !enc {
			src.Notes = append(src.Notes, "the Wi-Fi passphrase is stored in clear text (password_encrypted = false)")
		}
	}
	r.setStr(&a.WifiCountry, str("wlan.country"))
	r.setStr(&a.Keymap, str("locale.keymap"))
	r.setStr(&a.Timezone, str("locale.timezone"))
	if len(t) == 0 {
		src.Notes = append(src.Notes, "no settings recognised")
	}
	a.Sources = append(a.Sources, src)
}

// cloudInit reads a NoCloud seed on the boot partition.
func (r *armedReader) cloudInit() {
	a := r.a
	var ds string
	for _, tk := range r.tokens {
		if strings.HasPrefix(tk, "ds=nocloud") {
			ds = tk
		}
	}
	src := Source{Mechanism: "cloud-init", Files: []string{}}
	armed := false
	if data, ok := r.read("user-data"); ok {
		src.Files = append(src.Files, "boot:/user-data")
		if r.userData(data, &src) {
			armed = true
		}
	}
	if data, ok := r.read("network-config"); ok {
		src.Files = append(src.Files, "boot:/network-config")
		if r.networkConfig(data, &src) {
			armed = true
		}
	}
	var instance string
	if data, ok := r.read("meta-data"); ok {
		src.Files = append(src.Files, "boot:/meta-data")
		md := yMap(parseYAML(string(data)))
		instance = yStr(md["instance-id"])
		if h := yStr(md["local-hostname"]); h != "" && armed {
			r.setStr(&a.Hostname, h)
		}
	}
	if r.bootExists("vendor-data") {
		src.Files = append(src.Files, "boot:/vendor-data")
		src.Notes = append(src.Notes, "vendor-data: not read")
		armed = true
	}
	if !armed {
		return // no seed, or Raspberry Pi OS's commented-out templates
	}
	src.How = "cloud-init NoCloud seed on the boot partition"
	if ds != "" {
		src.How += " (" + ds + " in cmdline.txt)"
		for _, part := range strings.Split(ds, ";")[1:] {
			k, v, _ := strings.Cut(part, "=")
			switch k {
			case "i", "instance-id":
				instance = v
			case "s", "seedfrom":
				src.Notes = append(src.Notes, "seed also fetched from "+v+": not read")
			}
		}
	}
	if instance == "" {
		src.Notes = append(src.Notes, "meta-data gives no instance-id")
	}
	if r.root != nil {
		if !r.rootExists("usr/bin/cloud-init") && !r.rootExists("etc/cloud") {
			r.warn("the root filesystem has no cloud-init: the NoCloud files on the boot partition will do nothing")
		} else if prev, ok := r.readFrom(r.root, "root", "var/lib/cloud/data/instance-id"); ok && instance != "" && strings.TrimSpace(string(prev)) == instance {
			r.warn("cloud-init already ran instance %q on this image: give meta-data a new instance-id (imgtool customize does) or the seed will not run again", instance)
		}
	}
	a.Sources = append(a.Sources, src)
}

// userData reads user-data; armed is false for an empty or comment-only
// file.
func (r *armedReader) userData(data []byte, src *Source) (armed bool) {
	s := strings.TrimLeft(string(data), "\ufeff \t\r\n")
	first, _, _ := strings.Cut(s, "\n")
	first = strings.TrimSpace(first)
	switch {
	case strings.HasPrefix(first, "#cloud-config"):
		m, isMap := parseYAML(s).(map[string]any)
		if len(m) == 0 {
			if !isMap && hasContent(s) {
				src.Notes = append(src.Notes, "user-data: a cloud-config that could not be read")
				return true
			}
			return false
		}
		r.cloudConfig(m, src)
		return true
	case strings.HasPrefix(first, "#!"):
		src.Notes = append(src.Notes, "user-data: a script run once on first boot, not read")
	case strings.HasPrefix(first, "#include"), strings.HasPrefix(first, "#cloud-boothook"), strings.HasPrefix(first, "#part-handler"),
		strings.HasPrefix(first, "#cloud-config-archive"), strings.HasPrefix(first, "#cloud-config-jsonp"),
		strings.HasPrefix(strings.ToLower(first), "content-type:"), strings.HasPrefix(strings.ToLower(first), "mime-version:"):
		src.Notes = append(src.Notes, "user-data: "+strings.Fields(first)[0]+" content, not read")
	default:
		if !hasContent(s) {
			return false
		}
		src.Notes = append(src.Notes, "user-data: content that is not a cloud-config, not read")
	}
	return true
}

// hasContent reports whether text has a line that is not blank or a
// comment.
func hasContent(s string) bool {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return true
		}
	}
	return false
}

// Top-level cloud-config keys read as settings or counted.
var knownCloudConfig = []string{"hostname", "fqdn", "manage_etc_hosts", "preserve_hostname", "prefer_fqdn_over_hostname", "users", "user",
	"chpasswd", "password", "ssh_pwauth", "enable_ssh", "ssh_authorized_keys", "runcmd", "bootcmd", "write_files", "packages",
	"package_update", "package_upgrade", "timezone", "locale", "keyboard", "rpi", "apt", "manage_resolv_conf", "disable_root"}

// cloudConfig reads the settings of a parsed #cloud-config.
func (r *armedReader) cloudConfig(m map[string]any, src *Source) {
	a := r.a
	note := func(format string, args ...any) { src.Notes = append(src.Notes, fmt.Sprintf(format, args...)) }
	r.setStr(&a.Hostname, yStr(m["hostname"]))
	r.setStr(&a.Hostname, yStr(m["fqdn"]))
	keys := len(yList(m["ssh_authorized_keys"]))
	users := yList(m["users"])
	if u := yMap(m["user"]); u != nil {
		users = append([]any{u}, users...)
	}
	named := 0
	for _, it := range users {
		u := yMap(it)
		if u == nil {
			continue // "default", or a form not read
		}
		named++
		r.setStr(&a.User, yStr(u["name"]))
		if yStr(u["passwd"]) != "" || yStr(u["hashed_passwd"]) != "" {
			a.PasswordSet = true
		}
		if yStr(u["plain_text_passwd"]) != "" {
			a.PasswordSet = true
			note("a clear-text password (plain_text_passwd) is set for %s", yStr(u["name"]))
		}
		keys += len(yList(u["ssh_authorized_keys"])) + len(yList(u["ssh-authorized-keys"]))
	}
	if named > 1 {
		note("%d users", named)
	}
	if cp := yMap(m["chpasswd"]); cp != nil && (cp["list"] != nil || cp["users"] != nil) {
		a.PasswordSet = true
		note("chpasswd sets passwords")
	}
	if yStr(m["password"]) != "" {
		a.PasswordSet = true
	}
	r.setKeys(keys)
	if b, ok := yBool(m["ssh_pwauth"]); ok {
		r.setPwAuth(b)
	}
	if b, ok := yBool(m["enable_ssh"]); ok && b {
		a.SSH = true
	}
	for _, c := range yList(m["runcmd"]) {
		var cmd string
		if l := yList(c); l != nil {
			for _, w := range l {
				cmd += yStr(w) + " "
			}
		} else {
			cmd = yStr(c)
		}
		w := strings.Fields(cmd)
		if slices.Contains(w, "systemctl") && slices.Contains(w, "enable") && (slices.Contains(w, "ssh") || slices.Contains(w, "sshd")) {
			a.SSH = true
		}
	}
	for _, k := range []string{"runcmd", "bootcmd", "write_files", "packages"} {
		if n := len(yList(m[k])); n > 0 {
			note("%s: %d %s", k, n, map[bool]string{true: "entry", false: "entries"}[n == 1])
		}
	}
	r.setStr(&a.Timezone, yStr(m["timezone"]))
	r.setStr(&a.Locale, yStr(m["locale"]))
	r.setStr(&a.Keymap, yStr(yMap(m["keyboard"])["layout"]))
	if rpi := yMap(m["rpi"]); rpi != nil {
		var on []string
		for k, v := range yMap(rpi["interfaces"]) {
			if b, ok := yBool(v); !ok || b {
				on = append(on, k)
			}
		}
		sort.Strings(on)
		if len(on) > 0 {
			note("rpi: interfaces %s", strings.Join(on, ", "))
		}
		if b, _ := yBool(rpi["enable_usb_gadget"]); b {
			note("rpi: USB gadget mode")
		}
	}
	var other []string
	for k := range m {
		if !slices.Contains(knownCloudConfig, k) {
			other = append(other, k)
		}
	}
	sort.Strings(other)
	if len(other) > 8 {
		other = append(other[:8], "…")
	}
	if len(other) > 0 {
		note("other keys: %s", strings.Join(other, ", "))
	}
}

// networkConfig reads a network-config (version 2, as netplan); armed is
// false when it holds nothing.
func (r *armedReader) networkConfig(data []byte, src *Source) (armed bool) {
	a := r.a
	root := parseYAML(string(data))
	m := yMap(root)
	if n := yMap(m["network"]); n != nil {
		m = n
	}
	if len(m) == 0 {
		if hasContent(string(data)) {
			src.Notes = append(src.Notes, "network-config: content that could not be read")
			return true
		}
		return false
	}
	if v := yStr(m["version"]); v != "2" {
		src.Notes = append(src.Notes, "network-config: version "+strconv.Quote(v)+", not read")
		return true
	}
	var ifaces []string
	for name := range yMap(m["ethernets"]) {
		ifaces = append(ifaces, name)
	}
	aps := 0
	wifis := yMap(m["wifis"])
	names := make([]string, 0, len(wifis))
	for name := range wifis {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		w := yMap(wifis[name])
		ifaces = append(ifaces, name)
		r.setStr(&a.WifiCountry, yStr(w["regulatory-domain"]))
		ssids := yMap(w["access-points"])
		list := make([]string, 0, len(ssids))
		for s := range ssids {
			list = append(list, s)
		}
		sort.Strings(list)
		for _, ssid := range list {
			aps++
			if a.WifiSSID == "" {
				r.setStr(&a.WifiSSID, ssid)
				ap := yMap(ssids[ssid])
				if yStr(ap["password"]) != "" || yStr(yMap(ap["auth"])["password"]) != "" {
					a.WifiPSKSet = true
				}
			}
		}
	}
	if aps > 1 {
		src.Notes = append(src.Notes, fmt.Sprintf("network-config: %d Wi-Fi networks", aps))
	}
	if len(ifaces) > 0 {
		sort.Strings(ifaces)
		src.Notes = append(src.Notes, "network-config: interfaces "+strings.Join(ifaces, ", "))
	}
	return true
}

// userconf reads userconf or userconf.txt ("name:hash").
func (r *armedReader) userconf() {
	for _, name := range []string{"userconf.txt", "userconf"} {
		data, ok := r.read(name)
		if !ok {
			continue
		}
		src := Source{Mechanism: "userconf", Files: []string{"boot:/" + name}, How: "userconf-pi on first boot (Raspberry Pi OS bullseye and later)"}
		line, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
		user, hash, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && reUser.MatchString(user) {
			r.setStr(&r.a.User, user)
			if hash != "" {
				r.a.PasswordSet = true
			}
		} else {
			src.Notes = append(src.Notes, "not a name:hash line, not read")
		}
		r.a.Sources = append(r.a.Sources, src)
		return
	}
}

// sshFlag reads the ssh or ssh.txt flag file.
func (r *armedReader) sshFlag() {
	for _, name := range []string{"ssh", "ssh.txt"} {
		if r.bootExists(name) {
			r.a.SSH = true
			r.a.Sources = append(r.a.Sources, Source{Mechanism: "ssh", Files: []string{"boot:/" + name}, How: "enables the SSH server on boot (Raspberry Pi OS sshswitch)"})
			return
		}
	}
}

// wpaSupplicant reads a wpa_supplicant.conf on the boot partition.
func (r *armedReader) wpaSupplicant() {
	data, ok := r.read("wpa_supplicant.conf")
	if !ok {
		return
	}
	src := Source{Mechanism: "wpa_supplicant.conf", Files: []string{"boot:/wpa_supplicant.conf"}, How: "moved to /etc/wpa_supplicant on boot (Raspberry Pi OS bullseye and older)"}
	if r.rootExists("etc/NetworkManager") {
		src.Notes = append(src.Notes, "the root filesystem has NetworkManager: Raspberry Pi OS bookworm and later ignore this file")
	}
	r.wpaSettings(string(data), &src)
	r.a.Sources = append(r.a.Sources, src)
}

// wpaSettings reads country, the first network's SSID and whether it has
// a key from wpa_supplicant.conf text.
func (r *armedReader) wpaSettings(conf string, src *Source) {
	a := r.a
	networks, inNet, first := 0, false, true
	for _, l := range strings.Split(conf, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "network={") || strings.HasPrefix(l, "network ={"):
			inNet = true
			networks++
		case l == "}":
			if inNet && networks == 1 {
				first = false
			}
			inNet = false
		case !inNet:
			if v, ok := strings.CutPrefix(l, "country="); ok {
				r.setStr(&a.WifiCountry, v)
			}
		case inNet && first:
			k, v, _ := strings.Cut(l, "=")
			switch k {
			case "ssid":
				if strings.HasPrefix(v, `"`) {
					r.setStr(&a.WifiSSID, strings.TrimSuffix(strings.TrimPrefix(v, `"`), `"`))
				} else if b, err := hex.DecodeString(v); err == nil {
					r.setStr(&a.WifiSSID, string(b))
				}
			case "psk", "sae_password":
				a.WifiPSKSet = true
				if strings.HasPrefix(v, `"`) && src != nil {
					src.Notes = append(src.Notes, "the Wi-Fi passphrase is stored in clear text")
				}
			}
		}
	}
	if networks > 1 && src != nil {
		src.Notes = append(src.Notes, fmt.Sprintf("%d networks", networks))
	}
}

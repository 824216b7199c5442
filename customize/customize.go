package customize

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	iofs "io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"imgtool/fs/meta"
)

// Mechanisms, as Plan.Mechanism names them.
const (
	MechFirstrun  = "raspios-firstrun"
	MechCloudInit = "cloud-init"
	MechRootfs    = "rootfs"
	MechNone      = "none" // no root filesystem: only boot-partition edits
)

// The kernel command-line tokens that make systemd run firstrun.sh once.
var firstrunTokens = []string{"systemd.run=%s/firstrun.sh", "systemd.run_success_action=reboot", "systemd.unit=kernel-command-line.target"}

// Options says what to change. Empty fields change nothing.
type Options struct {
	Hostname      string
	User          string
	PasswordHash  string // sha512-crypt, see HashPassword
	SSH           bool
	SSHKeys       []string // authorized_keys lines
	SSHKeyOnly    bool     // disable password login over SSH
	WifiSSID      string
	WifiPassword  string // passphrase; stored as its PSK
	WifiCountry   string
	Timezone      string
	Keymap        string
	Locale        string
	BootConfig    []string // config.txt lines, appended when missing
	CmdlineAdd    []string
	CmdlineRemove []string // a token, or a key ("quiet", "console") removing key=…
	Sysprep       bool
	// Now stamps the files written (FAT times); nil means time.Now.
	Now func() time.Time
}

// Change is one file change of a Plan.
type Change struct {
	FS     string        `json:"fs"` // "boot" or "root"
	Path   string        `json:"path"`
	Action string        `json:"action"` // "write", "mkdir", "symlink", "remove"
	Mode   iofs.FileMode `json:"-"`
	UID    uint32        `json:"uid"`
	GID    uint32        `json:"gid"`
	Target string        `json:"target,omitempty"` // symlink target
	Data   []byte        `json:"-"`
	Note   string        `json:"note,omitempty"`
}

// Plan is what Build decided: the mechanism and the changes, in order.
type Plan struct {
	Mechanism string   `json:"mechanism"`
	OS        string   `json:"os,omitempty"` // os-release ID
	Changes   []Change `json:"changes"`
}

var (
	reHostname = &lazyRegexp{pat: `^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`}
	reUser     = &lazyRegexp{pat: `^[a-z_][a-z0-9_-]{0,31}$`}
	reCountry  = &lazyRegexp{pat: `^[A-Z]{2}$`}
	reTimezone = &lazyRegexp{pat: `^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$`}
	reKeymap   = &lazyRegexp{pat: `^[a-z0-9_-]+(,[a-z0-9_-]+)*$`}
	reLocale   = &lazyRegexp{pat: `^[A-Za-z0-9_]+(\.[A-Za-z0-9-]+)?(@[A-Za-z0-9]+)?$`}
	reSSHKey   = &lazyRegexp{pat: `^(ssh-|ecdsa-|sk-)[a-z0-9@.-]+ [A-Za-z0-9+/=]+( [^\n]*)?$`}
)

// lazyRegexp compiles its pattern on first use: compiled at start-up, these
// patterns would cost every imgtool command half a millisecond.
type lazyRegexp struct {
	pat  string
	once sync.Once
	re   *regexp.Regexp
}

// MatchString reports whether s matches the pattern.
func (l *lazyRegexp) MatchString(s string) bool {
	l.once.Do(func() { l.re = regexp.MustCompile(l.pat) })
	return l.re.MatchString(s)
}

// ErrOption reports an option value that cannot be used.
var ErrOption = errors.New("customize: bad option")

func optErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrOption, fmt.Sprintf(format, args...))
}

// Check validates o.
func (o *Options) Check() error {
	switch {
	case o.Hostname != "" && !reHostname.MatchString(o.Hostname):
		return optErr("host name %q: use letters, digits and '-', at most 63", o.Hostname)
	case o.User != "" && !reUser.MatchString(o.User):
		return optErr("user name %q: use lower-case letters, digits, '_' and '-', starting with a letter", o.User)
	case o.User != "" && o.PasswordHash == "":
		return optErr("--user needs a password (--password or --password-hash)")
	case o.PasswordHash != "" && o.User == "":
		return optErr("a password needs --user NAME")
	case o.WifiPassword != "" && o.WifiSSID == "":
		return optErr("--wifi-password needs --wifi-ssid")
	case o.WifiCountry != "" && !reCountry.MatchString(o.WifiCountry):
		return optErr("Wi-Fi country %q: give a two-letter ISO 3166 code such as GB or US", o.WifiCountry)
	case o.Timezone != "" && !reTimezone.MatchString(o.Timezone):
		return optErr("time zone %q: give a zoneinfo name such as Europe/London", o.Timezone)
	case o.Keymap != "" && !reKeymap.MatchString(o.Keymap):
		return optErr("keymap %q: give an XKB layout such as us or gb", o.Keymap)
	case o.Locale != "" && !reLocale.MatchString(o.Locale):
		return optErr("locale %q: give a name such as en_GB.UTF-8", o.Locale)
	case o.SSHKeyOnly && len(o.SSHKeys) == 0:
		return optErr("--ssh-key-only needs --ssh-key")
	}
	if o.PasswordHash != "" {
		if err := CheckHash(o.PasswordHash); err != nil {
			return optErr("password hash: give a sha512-crypt hash ($6$…), e.g. from openssl passwd -6")
		}
	}
	if o.WifiSSID != "" && o.WifiPassword != "" {
		if _, err := WPAPSK(o.WifiPassword, o.WifiSSID); err != nil {
			return fmt.Errorf("%w: %w", ErrOption, err)
		}
	}
	if len(o.WifiSSID) > 32 || strings.ContainsAny(o.WifiSSID, "\n\r\x00") {
		return optErr("SSID %q: at most 32 bytes on one line", o.WifiSSID)
	}
	for _, k := range o.SSHKeys {
		if !reSSHKey.MatchString(k) {
			return optErr("SSH key %.40q: give one public key line (ssh-ed25519 AAAA… comment)", k)
		}
	}
	for _, l := range o.BootConfig {
		if l == "" || strings.ContainsAny(l, "\n\r") {
			return optErr("config.txt line %q: give one non-empty line", l)
		}
	}
	for _, tk := range append(slices.Clone(o.CmdlineAdd), o.CmdlineRemove...) {
		if tk == "" || strings.ContainsAny(tk, " \t\n\r") {
			return optErr("kernel command-line token %q: give one token without spaces", tk)
		}
	}
	return nil
}

func (o *Options) firstBoot() bool {
	return o.Hostname != "" || o.User != "" || o.SSH || len(o.SSHKeys) > 0 || o.WifiSSID != "" ||
		o.WifiCountry != "" || o.Timezone != "" || o.Keymap != "" || o.Locale != ""
}

// Empty reports whether o asks for no change.
func (o *Options) Empty() bool {
	return !o.firstBoot() && len(o.BootConfig) == 0 && len(o.CmdlineAdd) == 0 && len(o.CmdlineRemove) == 0 && !o.Sysprep
}

// Detect names the first-boot mechanism of a root filesystem and its
// os-release ID.
func Detect(root iofs.FS) (mech, osID string) {
	if root == nil {
		return MechNone, ""
	}
	osID = osRelease(root)["ID"]
	switch {
	case exists(root, "usr/bin/cloud-init") || exists(root, "etc/cloud"):
		return MechCloudInit, osID
	case exists(root, "usr/lib/raspberrypi-sys-mods/firstboot") || exists(root, "usr/lib/raspi-config/init_resize.sh"):
		return MechFirstrun, osID
	}
	return MechRootfs, osID
}

func exists(fsys iofs.FS, name string) bool {
	_, err := iofs.Lstat(fsys, name)
	return err == nil
}

func osRelease(root iofs.FS) map[string]string {
	b, err := readSmall(root, "etc/os-release")
	if err != nil {
		b, _ = readSmall(root, "usr/lib/os-release")
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if ok {
			m[k] = strings.Trim(v, `"'`)
		}
	}
	return m
}

const maxConfigFile = 4 << 20

// readSmall reads a configuration file, refusing one larger than 4 MiB.
func readSmall(fsys iofs.FS, name string) ([]byte, error) {
	fi, err := iofs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxConfigFile {
		return nil, fmt.Errorf("customize: %s: %d bytes is too large for a configuration file", name, fi.Size())
	}
	return iofs.ReadFile(fsys, name)
}

// builder accumulates changes, answering reads with the planned content.
type builder struct {
	o          *Options
	boot, root iofs.FS
	plan       *Plan
	pending    map[string]int // "fs:path" → index in plan.Changes
}

func key(fsName, name string) string { return fsName + ":" + name }

func (b *builder) fsOf(fsName string) iofs.FS {
	if fsName == "boot" {
		return b.boot
	}
	return b.root
}

// stat returns mode and owner of an existing file, or ok=false.
func (b *builder) stat(fsName, name string) (mode iofs.FileMode, uid, gid uint32, ok bool) {
	if i, ok := b.pending[key(fsName, name)]; ok {
		c := b.plan.Changes[i]
		return c.Mode, c.UID, c.GID, c.Action != "remove"
	}
	fi, err := iofs.Lstat(b.fsOf(fsName), name)
	if err != nil {
		return 0, 0, 0, false
	}
	mode = fi.Mode()
	if st, ok := fi.Sys().(*meta.Stat); ok {
		uid, gid = st.Uid, st.Gid
	}
	return mode, uid, gid, true
}

func (b *builder) isDir(fsName, name string) bool {
	if name == "." {
		return true
	}
	m, _, _, ok := b.stat(fsName, name)
	return ok && m.IsDir()
}

// read returns the planned or current content of a file (nil, false when
// it does not exist).
func (b *builder) read(fsName, name string) ([]byte, bool, error) {
	if i, ok := b.pending[key(fsName, name)]; ok {
		c := b.plan.Changes[i]
		return c.Data, c.Action == "write", nil
	}
	fsys := b.fsOf(fsName)
	if fsys == nil {
		return nil, false, nil
	}
	data, err := readSmall(fsys, name)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, false, nil
	}
	return data, err == nil, err
}

func (b *builder) add(c Change) {
	k := key(c.FS, c.Path)
	if i, ok := b.pending[k]; ok && c.Action == "write" && b.plan.Changes[i].Action == "write" {
		b.plan.Changes[i].Data = c.Data
		return
	}
	b.pending[k] = len(b.plan.Changes)
	b.plan.Changes = append(b.plan.Changes, c)
}

// write plans a file's content, keeping an existing file's mode and owner.
func (b *builder) write(fsName, name string, data []byte, mode iofs.FileMode, uid, gid uint32) {
	if m, u, g, ok := b.stat(fsName, name); ok && m.IsRegular() {
		mode, uid, gid = m.Perm()|m&(iofs.ModeSetuid|iofs.ModeSetgid|iofs.ModeSticky), u, g
	}
	b.add(Change{FS: fsName, Path: name, Action: "write", Data: data, Mode: mode, UID: uid, GID: gid})
}

// writeNew plans a file with exactly this mode and owner.
func (b *builder) writeNew(fsName, name string, data []byte, mode iofs.FileMode, uid, gid uint32) {
	b.add(Change{FS: fsName, Path: name, Action: "write", Data: data, Mode: mode, UID: uid, GID: gid})
}

// mkdirAll plans the directories of name that are missing.
func (b *builder) mkdirAll(fsName, name string, mode iofs.FileMode, uid, gid uint32) {
	if b.isDir(fsName, name) {
		return
	}
	b.mkdirAll(fsName, path.Dir(name), 0o755, 0, 0)
	b.add(Change{FS: fsName, Path: name, Action: "mkdir", Mode: iofs.ModeDir | mode, UID: uid, GID: gid})
}

func (b *builder) symlink(name, target string) {
	b.add(Change{FS: "root", Path: name, Action: "symlink", Target: target, Mode: iofs.ModeSymlink | 0o777})
}

func (b *builder) remove(fsName, name, note string) {
	b.add(Change{FS: fsName, Path: name, Action: "remove", Note: note})
}

// Build plans the changes o asks for. boot is the FAT boot partition, root
// the root filesystem; either may be nil when the image lacks it (Build
// then fails if an option needs it).
func Build(boot, root iofs.FS, o Options) (*Plan, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	mech, osID := Detect(root)
	b := &builder{o: &o, boot: boot, root: root, plan: &Plan{Mechanism: mech, OS: osID, Changes: []Change{}}, pending: map[string]int{}}
	needBoot := len(o.BootConfig) > 0 || len(o.CmdlineAdd) > 0 || len(o.CmdlineRemove) > 0 || o.firstBoot() && mech != MechRootfs
	if needBoot && boot == nil {
		return nil, fmt.Errorf("customize: the image has no FAT boot partition, which these options change")
	}
	if (o.firstBoot() || o.Sysprep) && root == nil {
		return nil, fmt.Errorf("customize: the image has no ext2/3/4 root filesystem, which these options change")
	}
	if len(o.BootConfig) > 0 {
		if err := b.bootConfig(); err != nil {
			return nil, err
		}
	}
	var tokens []string
	if o.firstBoot() {
		var err error
		switch mech {
		case MechFirstrun:
			tokens, err = b.firstrun()
		case MechCloudInit:
			tokens, err = b.cloudInit(osID)
		default:
			err = b.rootfs()
		}
		if err != nil {
			return nil, err
		}
	}
	if mech == MechRootfs && o.WifiCountry != "" && exists(root, "etc/NetworkManager") && boot != nil && exists(boot, "cmdline.txt") {
		tokens = append(tokens, tokRegdom+o.WifiCountry)
	}
	if len(o.CmdlineAdd) > 0 || len(o.CmdlineRemove) > 0 || len(tokens) > 0 {
		if err := b.cmdline(tokens); err != nil {
			return nil, err
		}
	}
	if o.Sysprep {
		if err := b.sysprep(); err != nil {
			return nil, err
		}
	}
	return b.plan, nil
}

// bootConfig appends to config.txt the lines it lacks.
func (b *builder) bootConfig() error {
	data, _, err := b.read("boot", "config.txt")
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(data), "\n") {
		have[strings.TrimSpace(l)] = true
	}
	out := data
	for _, l := range b.o.BootConfig {
		if have[strings.TrimSpace(l)] {
			continue
		}
		have[strings.TrimSpace(l)] = true
		if len(out) > 0 && out[len(out)-1] != '\n' {
			out = append(out, '\n')
		}
		out = append(out, l+"\n"...)
	}
	if !bytes.Equal(out, data) {
		b.write("boot", "config.txt", out, 0o644, 0, 0)
	}
	return nil
}

// cmdline edits cmdline.txt: removals, then additions, then extra tokens
// (those of the first-boot mechanism, which go last).
func (b *builder) cmdline(extra []string) error {
	data, ok, err := b.read("boot", "cmdline.txt")
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("customize: the boot partition has no cmdline.txt to change")
	}
	line, _, _ := strings.Cut(string(data), "\n")
	toks := strings.Fields(line)
	toks = slices.DeleteFunc(toks, func(tk string) bool {
		for _, r := range b.o.CmdlineRemove {
			if tk == r || !strings.Contains(r, "=") && strings.HasPrefix(tk, r+"=") {
				return true
			}
		}
		return false
	})
	for _, tk := range append(slices.Clone(b.o.CmdlineAdd), extra...) {
		if strings.HasPrefix(tk, tokRegdom) {
			// One regulatory domain: a new country replaces the old.
			toks = slices.DeleteFunc(toks, func(t string) bool { return strings.HasPrefix(t, tokRegdom) && t != tk })
		}
		if !slices.Contains(toks, tk) {
			toks = append(toks, tk)
		}
	}
	out := []byte(strings.Join(toks, " ") + "\n")
	if !bytes.Equal(out, data) {
		b.write("boot", "cmdline.txt", out, 0o644, 0, 0)
	}
	return nil
}

// shq quotes s for a POSIX shell.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'" }

// jq quotes s as a YAML (JSON) double-quoted string.
func jq(s string) string { return strconv.Quote(s) }

// psk returns the Wi-Fi PSK (empty for an open network).
func (o *Options) psk() string {
	if o.WifiPassword == "" {
		return ""
	}
	p, _ := WPAPSK(o.WifiPassword, o.WifiSSID)
	return p
}

// wpaConf is a wpa_supplicant.conf for the options.
func (o *Options) wpaConf() string {
	var s strings.Builder
	if o.WifiCountry != "" {
		s.WriteString("country=" + o.WifiCountry + "\n")
	}
	s.WriteString("ctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev\nap_scan=1\n\nupdate_config=1\n")
	if o.WifiSSID != "" {
		s.WriteString("network={\n")
		if strings.ContainsAny(o.WifiSSID, "\"\\") || !isPrint(o.WifiSSID) {
			s.WriteString("\tssid=" + hex.EncodeToString([]byte(o.WifiSSID)) + "\n")
		} else {
			s.WriteString("\tssid=\"" + o.WifiSSID + "\"\n")
		}
		if p := o.psk(); p != "" {
			s.WriteString("\tpsk=" + p + "\n")
		} else {
			s.WriteString("\tkey_mgmt=NONE\n")
		}
		s.WriteString("}\n")
	}
	return s.String()
}

func isPrint(s string) bool {
	for _, c := range []byte(s) {
		if c < 32 || c > 126 {
			return false
		}
	}
	return true
}

// instanceID derives a cloud-init instance-id from the seed's content, so
// that a changed seed runs again and the same one does not.
func instanceID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return "imgtool-" + hex.EncodeToString(h[:8])
}

// Package expand tells how an image's operating system grows its root
// filesystem to fill the card on first boot, and whether that will happen
// on the next boot. It also holds the kernel-command-line edits that arm
// each mechanism and the files of imgtool's own fallback mechanism, so that
// inspect (which reports) and shrink (which arms) agree.
//
// Mechanisms recognised, from the root filesystem and the boot partition's
// cmdline.txt:
//
//   - "raspios-rpi-resize": Raspberry Pi OS trixie and later, whose
//     rpi-resize.service and initramfs hooks act when the kernel command
//     line holds the "resize" token;
//   - "raspios-firstboot": Raspberry Pi OS bookworm, whose
//     /usr/lib/raspberrypi-sys-mods/firstboot runs as init= once;
//   - "raspios-init-resize": older Raspberry Pi OS, whose
//     /usr/lib/raspi-config/init_resize.sh runs as init= once;
//   - "imgtool": the systemd unit and script that imgtool shrink installs
//     elsewhere (see Unit and Script);
//   - "none": nothing found.
//
// The package reads only through io/fs and never writes.
package expand

import (
	"errors"
	iofs "io/fs"
	"strings"
)

// Mechanisms.
const (
	None          = "none"
	RPiResize     = "raspios-rpi-resize"
	RPiFirstboot  = "raspios-firstboot"
	RPiInitResize = "raspios-init-resize"
	Imgtool       = "imgtool"
)

// Paths inside the root filesystem (without the leading slash).
const (
	FirstbootPath  = "usr/lib/raspberrypi-sys-mods/firstboot"
	InitResizePath = "usr/lib/raspi-config/init_resize.sh"
	UnitName       = "imgtool-expand.service"
	UnitPath       = "etc/systemd/system/" + UnitName
	ScriptPath     = "usr/local/sbin/imgtool-expand-rootfs"
	WantsDir       = "etc/systemd/system/local-fs.target.wants"
	WantsLink      = WantsDir + "/" + UnitName
	RPiResizeUnit  = "rpi-resize.service"
	// RPiDropIn re-arms rpi-resize.service when its unit carries
	// ConditionFirstBoot (see RPiResizeDropIn).
	RPiDropIn = "etc/systemd/system/rpi-resize.service.d/imgtool-rearm.conf"
)

// rpiResizeDirs are where rpi-resize.service may be installed.
var rpiResizeDirs = []string{"usr/lib/systemd/system", "lib/systemd/system", "etc/systemd/system"}

// Status is what Detect found.
type Status struct {
	// Mechanism is one of the constants above.
	Mechanism string `json:"mechanism"`
	// Armed is true when the mechanism will run on the next boot.
	Armed bool `json:"armed"`
	// Detail says what arms it or what is missing.
	Detail string `json:"detail,omitempty"`
}

// Detect looks at the root filesystem (nil when unreadable) and the text of
// cmdline.txt ("" when there is none).
func Detect(root iofs.FS, cmdline string) Status {
	if root == nil {
		return Status{Mechanism: None, Detail: "root filesystem not readable"}
	}
	if exists(root, UnitPath) {
		armed := exists(root, WantsLink)
		d := "enabled: /" + WantsLink
		if !armed {
			d = "installed but not enabled (it disables itself after running)"
		}
		return Status{Mechanism: Imgtool, Armed: armed, Detail: d}
	}
	if unit, _ := FindRPiResizeUnit(root); unit != "" {
		armed := HasToken(cmdline, "resize")
		d := `kernel command line holds "resize"`
		if !armed {
			d = `kernel command line lacks "resize"`
		}
		return Status{Mechanism: RPiResize, Armed: armed, Detail: d}
	}
	if exists(root, FirstbootPath) {
		return initStatus(RPiFirstboot, "/"+FirstbootPath, cmdline)
	}
	if exists(root, InitResizePath) {
		return initStatus(RPiInitResize, "/"+InitResizePath, cmdline)
	}
	return Status{Mechanism: None, Detail: "no first-boot expansion found"}
}

func initStatus(mech, init, cmdline string) Status {
	if Init(cmdline) == init {
		return Status{Mechanism: mech, Armed: true, Detail: "init=" + init}
	}
	return Status{Mechanism: mech, Detail: "kernel command line lacks init=" + init}
}

// FindRPiResizeUnit returns the path of rpi-resize.service in root and its
// text, or "" when absent.
func FindRPiResizeUnit(root iofs.FS) (string, string) {
	for _, d := range rpiResizeDirs {
		p := d + "/" + RPiResizeUnit
		if b, err := iofs.ReadFile(root, p); err == nil {
			return p, string(b)
		}
	}
	return "", ""
}

func exists(root iofs.FS, p string) bool {
	if l, ok := root.(iofs.ReadLinkFS); ok {
		_, err := l.Lstat(p)
		return err == nil
	}
	_, err := iofs.Stat(root, p)
	return err == nil || !errors.Is(err, iofs.ErrNotExist)
}

// Tokens splits a kernel command line into its space-separated tokens.
func Tokens(cmdline string) []string { return strings.Fields(cmdline) }

// HasToken reports whether the command line holds tok as a whole token.
func HasToken(cmdline, tok string) bool {
	for _, t := range Tokens(cmdline) {
		if t == tok {
			return true
		}
	}
	return false
}

// Init returns the value of the init= token, or "".
func Init(cmdline string) string {
	for _, t := range Tokens(cmdline) {
		if v, ok := strings.CutPrefix(t, "init="); ok {
			return v
		}
	}
	return ""
}

// SetInit returns cmdline with init=value: an existing init= token is
// replaced, else the token is appended. The command line stays one line;
// a final newline is kept when there was one.
func SetInit(cmdline, value string) string {
	line, nl := splitNL(cmdline)
	toks := Tokens(line)
	done := false
	for i, t := range toks {
		if strings.HasPrefix(t, "init=") {
			toks[i] = "init=" + value
			done = true
		}
	}
	if !done {
		toks = append(toks, "init="+value)
	}
	return strings.Join(toks, " ") + nl
}

// AddToken returns cmdline with tok appended unless it is already there.
func AddToken(cmdline, tok string) string {
	if HasToken(cmdline, tok) {
		return cmdline
	}
	line, nl := splitNL(cmdline)
	toks := append(Tokens(line), tok)
	return strings.Join(toks, " ") + nl
}

func splitNL(s string) (string, string) {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i], "\n"
	}
	return s, ""
}

// WantedBy returns the targets of a unit's [Install] WantedBy= lines.
func WantedBy(unit string) []string {
	var out []string
	sect := ""
	for _, l := range strings.Split(unit, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "[") {
			sect = l
			continue
		}
		if v, ok := strings.CutPrefix(l, "WantedBy="); ok && sect == "[Install]" {
			out = append(out, strings.Fields(v)...)
		}
	}
	return out
}

// RPiResizeDropIn returns the text of a drop-in that lets rpi-resize.service
// run again on a system that has booted before, or "" when the unit does not
// need one. systemd resets all conditions on an empty Condition assignment,
// so the drop-in clears them and puts back every condition of the unit but
// ConditionFirstBoot.
func RPiResizeDropIn(unit string) string {
	var keep []string
	first := false
	for _, l := range strings.Split(unit, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "ConditionFirstBoot="):
			first = true
		case strings.HasPrefix(l, "Condition"):
			keep = append(keep, l)
		}
	}
	if !first {
		return ""
	}
	var b strings.Builder
	b.WriteString("# Written by imgtool shrink: lets the resize run on the first boot of\n# the shrunk image although this system has booted before.\n[Unit]\nConditionFirstBoot=\n")
	for _, l := range keep {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// Unit is the systemd unit of imgtool's fallback mechanism.
const Unit = `[Unit]
Description=Grow the root partition and filesystem to fill the disk (imgtool)
Documentation=man:systemd.unit(5)
DefaultDependencies=no
After=systemd-remount-fs.service
Before=local-fs.target shutdown.target
Conflicts=shutdown.target
ConditionPathExists=/` + ScriptPath + `

[Service]
Type=oneshot
ExecStart=/` + ScriptPath + `
TimeoutSec=600
StandardOutput=journal+console

[Install]
WantedBy=local-fs.target
`

// LinkTarget is the target of the enable symlink WantsLink.
const LinkTarget = "/" + UnitPath

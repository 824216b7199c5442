package customize

import (
	iofs "io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

var timeNow = time.Now

// readDir lists a directory's names ([] when it is missing).
func readDir(fsys iofs.FS, name string) ([]string, error) {
	ents, err := iofs.ReadDir(fsys, name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, nil
}

// Shell history files removed by sysprep.
var histories = []string{".bash_history", ".zsh_history", ".ash_history", ".python_history", ".lesshst", ".mysql_history", ".sqlite_history", ".wget-hsts"}

// Folders whose DHCP lease files sysprep removes.
var leaseDirs = []string{"var/lib/dhcp", "var/lib/dhcpcd", "var/lib/dhcpcd5", "var/lib/NetworkManager", "var/lib/systemd/network", "var/lib/dhclient"}

// sysprep removes what identifies one machine: SSH host keys, the
// machine ID, logs, shell histories and DHCP leases.
func (b *builder) sysprep() error {
	root := b.root
	if names, err := readDir(root, "etc/ssh"); err == nil {
		for _, n := range names {
			if strings.HasPrefix(n, "ssh_host_") {
				b.removeFile("etc/ssh/"+n, "SSH host key")
			}
		}
	}
	if m, _, _, ok := b.stat("root", "etc/machine-id"); ok && m.IsRegular() {
		if data, _, _ := b.read("root", "etc/machine-id"); len(data) > 0 {
			b.write("root", "etc/machine-id", nil, 0o444, 0, 0)
		}
	}
	b.removeFile("var/lib/dbus/machine-id", "machine ID")
	_ = iofs.WalkDir(root, "var/log", func(p string, d iofs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		base := path.Base(p)
		rotated := strings.HasSuffix(base, ".gz") || strings.HasSuffix(base, ".xz") || strings.HasSuffix(base, ".old") || isRotated(base)
		if rotated || strings.HasPrefix(p, "var/log/journal/") {
			b.remove("root", p, "old log")
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.Size() > 0 {
			b.write("root", p, nil, 0o644, 0, 0)
			b.plan.Changes[len(b.plan.Changes)-1].Note = "log emptied"
		}
		return nil
	})
	homes := []string{"root"}
	if names, err := readDir(root, "home"); err == nil {
		for _, n := range names {
			homes = append(homes, "home/"+n)
		}
	}
	for _, h := range homes {
		for _, f := range histories {
			b.removeFile(h+"/"+f, "shell history")
		}
	}
	for _, d := range leaseDirs {
		names, err := readDir(root, d)
		if err != nil {
			continue
		}
		for _, n := range names {
			if strings.Contains(n, ".lease") || strings.HasSuffix(n, ".leases") || strings.HasPrefix(n, "dhclient") && strings.HasSuffix(n, ".lease") || d == "var/lib/systemd/network" {
				b.removeFile(d+"/"+n, "DHCP lease")
			}
		}
	}
	return nil
}

// removeFile plans the removal of a regular file or link that exists.
func (b *builder) removeFile(name, note string) {
	m, _, _, ok := b.stat("root", name)
	if !ok || m.IsDir() {
		return
	}
	if i, ok := b.pending[key("root", name)]; ok && b.plan.Changes[i].Action == "remove" {
		return
	}
	b.remove("root", name, note)
}

// isRotated recognises "syslog.1", "messages.2".
func isRotated(name string) bool {
	i := strings.LastIndexByte(name, '.')
	if i < 0 || i == len(name)-1 {
		return false
	}
	return !slices.ContainsFunc([]byte(name[i+1:]), func(c byte) bool { return c < '0' || c > '9' })
}

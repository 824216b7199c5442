package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"imgtool/customize"
	"imgtool/image"
	"imgtool/part"
)

type customizeOptions struct {
	o        customize.Options
	password bool
	sshKeys  []string
	dryRun   bool
	json     bool
}

func newCustomizeCmd(g *globalOptions) *cobra.Command {
	var opts customizeOptions
	cmd := &cobra.Command{
		Use:   "customize IMAGE [flags]",
		Short: "Set host name, user, SSH, Wi-Fi and more in an image before its first boot",
		Long: `Prepare a raw image for its first boot without booting it: host name, first user,
SSH, Wi-Fi, time zone, keyboard, locale, config.txt and kernel command-line tokens,
and (--sysprep) the removal of what identifies the machine the image was taken from
(SSH host keys, machine ID, logs, shell histories, DHCP leases).

imgtool finds how the image configures itself on first boot and writes that form:
  Raspberry Pi OS bookworm and older  firstrun.sh on the boot partition, run once by
                                      systemd.run= tokens in cmdline.txt (as Raspberry
                                      Pi Imager writes it)
  images with cloud-init              NoCloud user-data, meta-data, network-config on
  (Raspberry Pi OS trixie, Ubuntu)    the boot partition (+ ds=nocloud on Pi OS)
  anything else                       direct edits of /etc in the root filesystem

Passwords are stored as sha512-crypt hashes: give --password-hash (openssl passwd -6),
or --password to read the password from standard input (a pipe, not a terminal). The
Wi-Fi passphrase is stored as its WPA PSK. --boot-config lines are appended to
config.txt once. The image is changed in place through an undo log; --dry-run prints
the files that would be written and changes nothing.`,
		Example: `  imgtool customize raspios.img --hostname kiosk --ssh --ssh-key ~/.ssh/id_ed25519.pub
  echo 'secret' | imgtool customize raspios.img --user admin --password
  imgtool customize raspios.img --wifi-ssid HomeNet --wifi-password 'correct horse' --wifi-country GB
  imgtool customize raspios.img --boot-config 'dtoverlay=disable-bt' --cmdline-remove quiet
  imgtool customize backup.img --sysprep --dry-run`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCustomize(cmd.Context(), opts, args, g)
		},
	}
	f := cmd.Flags()
	o := &opts.o
	f.StringVar(&o.Hostname, "hostname", "", "host name")
	f.StringVar(&o.User, "user", "", "first user's name (created, or renamed from the image's uid 1000 user)")
	f.StringVar(&o.PasswordHash, "password-hash", "", "the user's password as a sha512-crypt hash ($6$…)")
	f.BoolVar(&opts.password, "password", false, "read the user's password from standard input and hash it")
	f.BoolVar(&o.SSH, "ssh", false, "enable the SSH server")
	f.StringArrayVar(&opts.sshKeys, "ssh-key", nil, "authorized public key, as a file or the key itself (repeatable; enables SSH)")
	f.BoolVar(&o.SSHKeyOnly, "ssh-key-only", false, "disable password login over SSH")
	f.StringVar(&o.WifiSSID, "wifi-ssid", "", "Wi-Fi network name")
	f.StringVar(&o.WifiPassword, "wifi-password", "", "Wi-Fi passphrase (stored as its PSK)")
	f.StringVar(&o.WifiCountry, "wifi-country", "", "Wi-Fi country code (GB, US, DE …)")
	f.StringVar(&o.Timezone, "timezone", "", "time zone, e.g. Europe/London")
	f.StringVar(&o.Keymap, "keymap", "", "keyboard layout, e.g. gb")
	f.StringVar(&o.Locale, "locale", "", "locale, e.g. en_GB.UTF-8")
	f.StringArrayVar(&o.BootConfig, "boot-config", nil, "line for config.txt, added once (repeatable)")
	f.StringArrayVar(&o.CmdlineAdd, "cmdline-add", nil, "kernel command-line token to add (repeatable)")
	f.StringArrayVar(&o.CmdlineRemove, "cmdline-remove", nil, "token (or key of key=value tokens) to remove (repeatable)")
	f.BoolVar(&o.Sysprep, "sysprep", false, "remove SSH host keys, machine ID, logs, histories, DHCP leases")
	f.BoolVarP(&opts.dryRun, "dry-run", "n", false, "print what would be written; change nothing")
	f.BoolVar(&opts.json, "json", false, "print the plan as JSON")
	return cmd
}

// readPassword reads one line from stdin, which must not be a terminal.
func readPassword(in io.Reader) (string, error) {
	if f, ok := in.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return "", usagef("--password reads the password from a pipe (echo … | imgtool customize …); on a terminal use --password-hash with openssl passwd -6")
		}
	}
	line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", usagef("--password: standard input held no password")
	}
	return line, nil
}

func runCustomize(_ context.Context, opts customizeOptions, args []string, g *globalOptions) error {
	o := opts.o
	if opts.password {
		if o.PasswordHash != "" {
			return usagef("give --password or --password-hash, not both")
		}
		pw, err := readPassword(g.stdin)
		if err != nil {
			return err
		}
		if o.PasswordHash, err = customize.HashPassword(pw); err != nil {
			return err
		}
	}
	for _, k := range opts.sshKeys {
		if strings.HasPrefix(k, "ssh-") || strings.HasPrefix(k, "ecdsa-") || strings.HasPrefix(k, "sk-") {
			o.SSHKeys = append(o.SSHKeys, strings.TrimSpace(k))
			continue
		}
		data, err := os.ReadFile(k)
		if err != nil {
			return usagef("--ssh-key %s: %v: give a public key file or the key itself", k, err)
		}
		for _, l := range strings.Split(string(data), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				o.SSHKeys = append(o.SSHKeys, l)
			}
		}
	}
	if len(o.SSHKeys) > 0 {
		o.SSH = true
	}
	if o.Empty() {
		return usagef("nothing to change: give at least one option (see 'imgtool customize --help')")
	}
	if err := o.Check(); err != nil {
		return usageError{err}
	}
	imagePath := args[0]
	if opts.dryRun {
		img, err := openImage(imagePath)
		if err != nil {
			return err
		}
		defer img.Close()
		boot, root := findByType(img, imagePath, "vfat"), findByType(img, imagePath, "ext4", "ext3", "ext2")
		plan, err := customize.Build(fsOf(boot), fsOf(root), o)
		if err != nil {
			return err
		}
		return printPlan(g, opts.json, imagePath, plan, true)
	}
	s, err := beginEdit(imagePath)
	if err != nil {
		return err
	}
	var plan *customize.Plan
	err = func() error {
		boot, root := findByType(s.img, imagePath, "vfat"), findByType(s.img, imagePath, "ext4", "ext3", "ext2")
		var err error
		if plan, err = customize.Build(fsOf(boot), fsOf(root), o); err != nil {
			return err
		}
		var bootEd, rootEd customize.Editor
		if plan.Needs("boot") {
			f, err := s.openTarget(boot)
			if err != nil {
				return err
			}
			bootEd = f.ed
		}
		if plan.Needs("root") {
			f, err := s.openTarget(root)
			if err != nil {
				return err
			}
			rootEd = f.ed
		}
		if err := plan.Apply(bootEd, rootEd); err != nil {
			return editError(imagePath, err)
		}
		return nil
	}()
	if err := s.finish(err); err != nil {
		return err
	}
	return printPlan(g, opts.json, imagePath, plan, false)
}

// findByType returns the first partition holding a filesystem of one of
// the types, or nil.
func findByType(img image.Image, imagePath string, types ...string) *target {
	tbl, err := part.Read(img, img.Size())
	if err != nil {
		return nil
	}
	for _, p := range tbl.Partitions {
		if p.Extended {
			continue
		}
		t, err := selectTarget(img, imagePath, fmt.Sprint(p.Number), false)
		if err != nil {
			continue
		}
		for _, ty := range types {
			if t.info.Type == ty {
				return t
			}
		}
	}
	return nil
}

// fsOf returns t's filesystem, or an untyped nil.
func fsOf(t *target) iofs.FS {
	if t == nil {
		return nil
	}
	return t.fsys
}

// planJSON is the --json form of a plan.
type planJSON struct {
	Image     string       `json:"image"`
	Mechanism string       `json:"mechanism"`
	OS        string       `json:"os,omitempty"`
	DryRun    bool         `json:"dry_run"`
	Changes   []changeJSON `json:"changes"`
}

type changeJSON struct {
	FS      string `json:"fs"`
	Path    string `json:"path"`
	Action  string `json:"action"`
	Mode    string `json:"mode,omitempty"`
	UID     uint32 `json:"uid"`
	GID     uint32 `json:"gid"`
	Size    int    `json:"size"`
	Target  string `json:"target,omitempty"`
	Note    string `json:"note,omitempty"`
	Content string `json:"content,omitempty"`
}

func printPlan(g *globalOptions, asJSON bool, imagePath string, p *customize.Plan, dry bool) error {
	if asJSON {
		out := planJSON{Image: imagePath, Mechanism: p.Mechanism, OS: p.OS, DryRun: dry, Changes: []changeJSON{}}
		for _, c := range p.Changes {
			cj := changeJSON{FS: c.FS, Path: "/" + c.Path, Action: c.Action, UID: c.UID, GID: c.GID, Size: len(c.Data), Target: c.Target, Note: c.Note}
			if c.Action != "remove" {
				cj.Mode = fmt.Sprintf("%04o", uint32(c.Mode.Perm()))
			}
			if dry && c.Action == "write" && utf8.Valid(c.Data) {
				cj.Content = string(c.Data)
			}
			out.Changes = append(out.Changes, cj)
		}
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	w := g.stdout
	verb := "changed"
	if dry {
		verb = "would change (dry run, nothing written)"
	}
	fmt.Fprintf(w, "%s: first-boot mechanism %s; %s:\n", imagePath, p.Mechanism, verb)
	for _, c := range p.Changes {
		switch c.Action {
		case "write":
			fmt.Fprintf(w, "  write   %s:/%s (%04o %d:%d, %d bytes)", c.FS, c.Path, uint32(c.Mode.Perm()), c.UID, c.GID, len(c.Data))
		case "mkdir":
			fmt.Fprintf(w, "  mkdir   %s:/%s (%04o %d:%d)", c.FS, c.Path, uint32(c.Mode.Perm()), c.UID, c.GID)
		case "symlink":
			fmt.Fprintf(w, "  symlink %s:/%s -> %s", c.FS, c.Path, c.Target)
		case "remove":
			fmt.Fprintf(w, "  remove  %s:/%s", c.FS, c.Path)
		}
		if c.Note != "" {
			fmt.Fprintf(w, "  [%s]", c.Note)
		}
		fmt.Fprintln(w)
	}
	if !dry {
		return nil
	}
	for _, c := range p.Changes {
		if c.Action != "write" || len(c.Data) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n--- %s:/%s\n", c.FS, c.Path)
		if !utf8.Valid(c.Data) {
			fmt.Fprintf(w, "(%d bytes of binary data)\n", len(c.Data))
			continue
		}
		io.WriteString(w, string(c.Data))
		if c.Data[len(c.Data)-1] != '\n' {
			fmt.Fprintln(w)
		}
	}
	return nil
}

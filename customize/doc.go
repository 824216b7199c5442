// Package customize prepares an operating-system image for its first boot:
// host name, first user, SSH, Wi-Fi, time zone, keyboard, locale,
// config.txt and cmdline.txt, and the removal of machine-specific state
// (sysprep). Build reads the boot (FAT) and root (ext2/3/4) filesystems
// through io/fs and returns a Plan, a list of file changes; Plan.Apply
// makes them through two Editors (fat.Writer and ext4.Writer adapters).
//
// The first-boot mechanism is detected from the root filesystem:
//
//   - MechFirstrun: Raspberry Pi OS bookworm and older
//     (/usr/lib/raspberrypi-sys-mods/firstboot or
//     /usr/lib/raspi-config/init_resize.sh, no cloud-init): a firstrun.sh
//     on the boot partition run once by systemd.run= on the kernel command
//     line, in the shape Raspberry Pi Imager writes (imager_custom and
//     userconf when the image has them, plain commands otherwise); it
//     deletes itself and its cmdline.txt tokens.
//   - MechCloudInit: images with cloud-init (/usr/bin/cloud-init or
//     /etc/cloud): NoCloud user-data, meta-data and (with Wi-Fi)
//     network-config on the boot partition, in the form Raspberry Pi Imager
//     writes (enable_ssh on Raspberry Pi OS, a netplan version 2
//     network-config with eth0 and wlan0); on Raspberry Pi OS trixie the
//     ds=nocloud token is added to cmdline.txt when missing. A Wi-Fi
//     country goes on the command line as cfg80211.ieee80211_regdom=, as
//     Imager does.
//   - MechRootfs: anything else: the root filesystem's files are edited
//     directly (hostname, hosts, passwd, shadow, group, home, SSH keys and
//     service, wpa_supplicant or NetworkManager, time zone, keyboard,
//     locale).
//
// ReadArmed reads the other way: what an image's boot partition will do on
// its first boot (firstrun.sh run by systemd.run=, a NoCloud seed,
// custom.toml, the ssh flag, userconf, wpa_supplicant.conf), whether
// written by Build or by Raspberry Pi Imager, with lenient bounded readers
// for the YAML, TOML and shell subsets those files use. It reports that
// secrets are set, never their values.
//
// config.txt, cmdline.txt and sysprep are edited directly with every
// mechanism. Passwords are stored as sha512-crypt hashes (SHA512Crypt) and
// Wi-Fi passphrases as WPA PSKs (WPAPSK), never in clear.
//
// Limits: the ext4 writer cannot remove directories, so sysprep truncates
// or removes files only; files are read whole (configuration files are
// small).
package customize

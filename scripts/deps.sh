#!/usr/bin/env bash
# Installs the programs the demo and the tests use (Debian/Ubuntu), when any
# is missing. Safe to run again: it does nothing when all are there.
set -euo pipefail

# program -> Debian package
declare -A pkgs=(
  [sfdisk]=fdisk [sgdisk]=gdisk [mkfs.ext4]=e2fsprogs [debugfs]=e2fsprogs
  [mkfs.vfat]=dosfstools [fsck.vfat]=dosfstools [mcopy]=mtools [mdir]=mtools
  [qemu-img]=qemu-utils [fusermount3]=fuse3 [e2cp]=e2tools [rsync]=rsync
  [getfattr]=attr [setfattr]=attr [xz]=xz-utils [zstd]=zstd [pigz]=pigz
  [bmaptool]=bmap-tools [fuse2fs]=fuse2fs [blkid]=util-linux [losetup]=mount
  [mkswap]=util-linux [img2simg]=android-sdk-libsparse-utils [simg2img]=android-sdk-libsparse-utils
  [qemu-io]=qemu-utils [bzip2]=bzip2 [zip]=zip [unzip]=unzip [openssl]=openssl
  [wpa_passphrase]=wpasupplicant
)

missing=()
for prog in "${!pkgs[@]}"; do
  if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$prog" >/dev/null 2>&1; then
    missing+=("${pkgs[$prog]}")
  fi
done
# The customize tests parse YAML with python3's PyYAML.
if ! python3 -c 'import yaml' >/dev/null 2>&1 && ! /usr/bin/python3 -c 'import yaml' >/dev/null 2>&1; then
  missing+=(python3-yaml)
fi
# The customize tests check the cloud-init files with cloud-init itself
# (Debian's cloud-init package). Installing the package would enable its
# boot services on this machine, so only its Python dependencies are
# installed; the package is unpacked (dpkg -x) into $cloudinit_dir and run
# through a small wrapper on PATH.
cloudinit_dir=/opt/imgtool-cloud-init
cloudinit_deps=(python3-configobj python3-jinja2 python3-jsonpatch python3-jsonschema python3-netifaces
  python3-oauthlib python3-requests python3-serial python3-yaml)
need_cloudinit=""
if ! command -v cloud-init >/dev/null 2>&1; then
  need_cloudinit=1
  for p in "${cloudinit_deps[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
fi

install_cloudinit() {
  local tmp
  tmp=$(mktemp -d)
  chmod 755 "$tmp"
  (cd "$tmp" && $sudo apt-get download -qq cloud-init >/dev/null 2>&1)
  $sudo rm -rf "$cloudinit_dir"
  $sudo mkdir -p "$cloudinit_dir"
  $sudo dpkg -x "$tmp"/cloud-init_*.deb "$cloudinit_dir"
  $sudo rm -rf "$tmp"
  $sudo tee /usr/local/bin/cloud-init >/dev/null <<EOF
#!/bin/sh
# cloud-init from Debian's package, unpacked (dpkg -x) into $cloudinit_dir by
# imgtool's scripts/deps.sh without installing it (installing would enable its
# boot services). The imgtool tests use it to check cloud-init files.
PYTHONPATH=$cloudinit_dir/usr/lib/python3/dist-packages\${PYTHONPATH:+:\$PYTHONPATH}
export PYTHONPATH
exec /usr/bin/python3 $cloudinit_dir/usr/bin/cloud-init "\$@"
EOF
  $sudo chmod 755 /usr/local/bin/cloud-init
  $sudo python3 -m compileall -q "$cloudinit_dir/usr/lib/python3/dist-packages" >/dev/null 2>&1 || true
}

if [ ${#missing[@]} -eq 0 ] && [ -z "$need_cloudinit" ]; then exit 0; fi

[ ${#missing[@]} -gt 0 ] && mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing programs; install these packages with your package manager: ${missing[*]}" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "missing packages ${missing[*]}: run as root or install them: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ -n "$need_cloudinit" ]; then
  echo "unpacking Debian's cloud-init into $cloudinit_dir (not installed: it would enable boot services)" >&2
  install_cloudinit
fi

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
[ ${#missing[@]} -eq 0 ] && exit 0

mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
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
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

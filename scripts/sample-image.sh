#!/usr/bin/env bash
# Makes a small Raspberry Pi–like image: an MBR with a FAT32 boot partition
# (config.txt, cmdline.txt) and an ext4 root partition (a little /etc, /home).
#
#   scripts/sample-image.sh OUT.img [SIZE_MIB] [ROOT_DATA_MIB] [MANY_FILES]
#
# SIZE_MIB defaults to 256; ROOT_DATA_MIB (default 8) MiB of files are put in
# the root filesystem, and as much stale data is left in its free blocks, as
# on a real card that has been used for a while. MANY_FILES (default 0)
# small files are added under /usr/share/many (for listing benchmarks).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin" MTOOLS_SKIP_CHECK=1 LC_ALL=C

out=${1:?usage: sample-image.sh OUT.img [SIZE_MIB] [ROOT_DATA_MIB]}
size_mib=${2:-256}
data_mib=${3:-8}
many=${4:-0}
boot_start=8192            # sectors (4 MiB)
boot_sectors=$((256 * 2048)) # 256 MiB like Raspberry Pi OS, smaller for tiny images
[ "$size_mib" -lt 600 ] && boot_sectors=$((64 * 2048))
root_start=$((boot_start + boot_sectors))
root_sectors=$((size_mib * 2048 - root_start))

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Boot files.
mkdir -p "$work/boot/overlays"
printf 'dtparam=audio=on\ncamera_auto_detect=1\ndisplay_auto_detect=1\n[all]\narm_64bit=1\n' >"$work/boot/config.txt"
printf 'console=serial0,115200 console=tty1 root=PARTUUID=1234abcd-02 rootfstype=ext4 fsck.repair=yes rootwait\n' >"$work/boot/cmdline.txt"
head -c 300000 /dev/urandom >"$work/boot/kernel8.img"
printf 'overlay\n' >"$work/boot/overlays/README"

# Root files.
r="$work/root"
mkdir -p "$r/etc/ssh" "$r/home/pi/.ssh" "$r/usr/bin" "$r/var/log" "$r/tmp" "$r/boot/firmware"
echo raspberrypi >"$r/etc/hostname"
printf 'proc /proc proc defaults 0 0\nPARTUUID=1234abcd-01 /boot/firmware vfat defaults 0 2\nPARTUUID=1234abcd-02 / ext4 defaults,noatime 0 1\n' >"$r/etc/fstab"
printf '127.0.0.1 localhost\n127.0.1.1 raspberrypi\n' >"$r/etc/hosts"
printf 'root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n' >"$r/etc/passwd"
printf 'alias ll="ls -l"\n' >"$r/home/pi/.bashrc"
ln -s ../usr/bin "$r/bin"
ln -s /etc/hostname "$r/home/pi/hostname-link"
chmod 1777 "$r/tmp"
if [ "$data_mib" -gt 0 ]; then
  head -c $((data_mib * 1048576)) /dev/urandom >"$r/usr/bin/big.bin"
fi
for i in $(seq 1 200); do echo "log line $i" >"$r/var/log/syslog.$i"; done
if [ "$many" -gt 0 ]; then
  d=0
  while [ $((d * 100)) -lt "$many" ]; do
    dir="$r/usr/share/many/d$d"
    mkdir -p "$dir"
    (cd "$dir" && touch $(seq -f 'f%g' 1 100))
    d=$((d + 1))
  done
fi
[ "$(id -u)" -eq 0 ] && chown -R 1000:1000 "$r/home/pi"

rm -f "$out"
truncate -s "${size_mib}M" "$out"
sfdisk -q "$out" <<SFDISK
label: dos
label-id: 0x1234abcd
$boot_start $boot_sectors c
$root_start $root_sectors 83
SFDISK

truncate -s $((boot_sectors * 512)) "$work/boot.part"
mkfs.vfat -F 32 -n BOOTFS -i a1b2c3d4 "$work/boot.part" >/dev/null
mcopy -s -p -m -i "$work/boot.part" "$work/boot/"* ::/

truncate -s $((root_sectors * 512)) "$work/root.part"
mkfs.ext4 -q -F -L rootfs -U 11111111-2222-3333-4444-555555555555 -d "$r" "$work/root.part"
if [ "$data_mib" -gt 0 ]; then
  # Stale data in free blocks: write a file, then delete it.
  head -c $((data_mib * 1048576)) /dev/urandom >"$work/stale"
  debugfs -w -R "write $work/stale stale" "$work/root.part" >/dev/null 2>&1
  debugfs -w -R "rm stale" "$work/root.part" >/dev/null 2>&1
fi

dd if="$work/boot.part" of="$out" bs=1M seek=$((boot_start * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
dd if="$work/root.part" of="$out" bs=1M seek=$((root_start * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
echo "$out"

package expand

// Script is the POSIX shell script of imgtool's fallback mechanism. Run as
// root on the booted system, it finds the root partition, checks that it is
// the last one on its disk, moves a GPT backup header to the end of the
// disk, grows the partition to the end (growpart, sfdisk or parted, the
// first one found), tells the kernel, grows the ext2/3/4 filesystem
// (online when mounted) and disables its unit.
//
// For tests, the environment can name the devices instead:
// IMGTOOL_EXPAND_DEVICE (the disk), IMGTOOL_EXPAND_PARTITION (a device
// holding the partition's bytes, such as a loop device with an offset) and
// IMGTOOL_EXPAND_ROOT (the folder under which the unit is disabled; default
// /). The filesystem is grown to the partition's size as the table gives
// it, so a partition device larger than the partition does no harm.
const Script = `#!/bin/sh
# imgtool-expand-rootfs: grow the root partition and its ext2/3/4
# filesystem to the end of the disk, once. Installed by imgtool shrink.
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C

say() { echo "imgtool-expand: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

ROOT=${IMGTOOL_EXPAND_ROOT:-}
disable() {
	rm -f "$ROOT/` + WantsLink + `"
	have systemctl && [ -z "$ROOT" ] && systemctl disable ` + UnitName + ` >/dev/null 2>&1
	return 0
}

DISK=${IMGTOOL_EXPAND_DEVICE:-}
PART=${IMGTOOL_EXPAND_PARTITION:-}
PARTNUM=

if [ -z "$PART" ]; then
	PART=$(findmnt -n -o SOURCE / 2>/dev/null)
	case "$PART" in
	/dev/root|"")
		for t in $(cat /proc/cmdline); do
			case "$t" in root=*) PART=${t#root=} ;; esac
		done ;;
	esac
	case "$PART" in
	PARTUUID=*|UUID=*|LABEL=*|PARTLABEL=*) PART=$(blkid -l -o device -t "$PART" 2>/dev/null || findfs "$PART") ;;
	esac
	PART=$(readlink -f "$PART")
fi
if [ -z "$DISK" ]; then
	name=${PART##*/}
	if [ ! -e "/sys/class/block/$name/partition" ]; then
		say "$PART is not a partition; nothing to do"; disable; exit 0
	fi
	PARTNUM=$(cat "/sys/class/block/$name/partition")
	DISK=/dev/$(basename "$(readlink -f "/sys/class/block/$name/..")")
fi
[ -b "$DISK" ] || { say "disk $DISK not found"; exit 1; }

# The partition table: label type and the last partition (by start).
DUMP=$(sfdisk -d "$DISK") || { say "cannot read the partition table of $DISK"; exit 1; }
LABEL=$(printf '%s\n' "$DUMP" | sed -n 's/^label: *//p')
LAST=$(printf '%s\n' "$DUMP" | grep '^/' | sed 's/ //g' | awk -F'[:,=]' '{
	for (i = 1; i <= NF; i++) { if ($i == "start") s = $(i+1) }
	if (s + 0 >= best) { best = s + 0; n = $1 } }
	END { sub(/^.*[^0-9]/, "", n); print n }')
if [ -z "$PARTNUM" ]; then
	PARTNUM=$LAST
fi
if [ "$PARTNUM" != "$LAST" ]; then
	say "root is partition $PARTNUM but partition $LAST comes after it; not growing"; disable; exit 0
fi

if [ "$LABEL" = gpt ]; then
	if have sgdisk; then
		sgdisk -e "$DISK" >/dev/null
	else
		sfdisk --relocate gpt-bak-std "$DISK"
	fi || { say "cannot move the GPT backup header to the end of $DISK"; exit 1; }
fi

grown=
if have growpart; then
	out=$(growpart "$DISK" "$PARTNUM" 2>&1)
	case $? in 0) grown=1 ;; 1) case "$out" in NOCHANGE*) grown=1 ;; esac ;; esac
fi
if [ -z "$grown" ]; then
	if printf ',+\n' | sfdisk --no-reread --no-tell-kernel -q -N "$PARTNUM" "$DISK" >/dev/null 2>&1; then
		grown=1
	elif have parted && parted -s -f "$DISK" resizepart "$PARTNUM" 100% >/dev/null 2>&1; then
		grown=1
	fi
fi
[ -n "$grown" ] || { say "cannot grow partition $PARTNUM of $DISK (needs growpart, sfdisk or parted)"; exit 1; }

# The partition's new size in 512-byte sectors, as the table says.
SECTORS=$(sfdisk -d "$DISK" | grep '^/' | sed 's/ //g' | awk -F'[:,=]' -v n="$PARTNUM" '{
	p = $1; sub(/^.*[^0-9]/, "", p)
	if (p == n) for (i = 1; i <= NF; i++) if ($i == "size") print $(i+1) }')
SS=$(sfdisk -d "$DISK" | sed -n 's/^sector-size: *//p')
SS=${SS:-512}
SECTORS=$((SECTORS * SS / 512))

if [ -z "${IMGTOOL_EXPAND_PARTITION:-}" ]; then
	partx -u --nr "$PARTNUM" "$DISK" 2>/dev/null || resizepart "$DISK" "$PARTNUM" "$((SECTORS))" 2>/dev/null ||
		blockdev --rereadpt "$DISK" 2>/dev/null
fi

if ! resize2fs "$PART" "${SECTORS}s"; then
	if ! findmnt -n "$PART" >/dev/null 2>&1; then
		e2fsck -fy "$PART" >/dev/null 2>&1
		resize2fs "$PART" "${SECTORS}s" || { say "resize2fs failed"; exit 1; }
	else
		say "resize2fs failed"; exit 1
	fi
fi
say "grew partition $PARTNUM of $DISK and its filesystem to $((SECTORS / 2048)) MiB"
disable
exit 0
`

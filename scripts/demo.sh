#!/usr/bin/env bash
# The demo of `make demo`: a Pi-like sample image in a temporary folder, and
# imgtool's main commands run on it: inspect, read files, shrink.
set -euo pipefail
bin=${1:-bin/imgtool}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
img="$dir/sample-pi.img"
echo "# making a Pi-like sample image (512 MiB, 16 MiB of files): $img"
"$(dirname "$0")/sample-image.sh" "$img" 512 16 >/dev/null
show() { echo; echo "\$ imgtool $*"; "$bin" "$@"; }
show inspect "$img"
show ls -l "$img" rootfs:/etc
show cat "$img" bootfs:/cmdline.txt
show shrink "$img" "$dir/small.img"
show inspect --fits 300M "$dir/small.img"

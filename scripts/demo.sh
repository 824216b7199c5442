#!/usr/bin/env bash
# The demo of `make demo`: a Pi-like sample image in a temporary folder, and
# imgtool's main commands run on it.
set -euo pipefail
bin=${1:-bin/imgtool}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
img="$dir/sample-pi.img"
echo "# making a Pi-like sample image: $img"
"$(dirname "$0")/sample-image.sh" "$img" 256 8 >/dev/null
show() { echo; echo "\$ imgtool $*"; "$bin" "$@"; }
show inspect "$img"
show inspect --fits 200M "$img" | tail -n 1
show inspect --json "$img"

#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (default 20s).
set -euo pipefail
fuzztime=${FUZZTIME:-20s}
status=0
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "== fuzz $pkg $target ($fuzztime)"
    if ! go test -run="^$" -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime=3s "$pkg"; then
      status=1
    fi
  done
done
exit $status

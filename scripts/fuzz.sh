#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (default 20s).
# A crash found by the fuzzer fails the run (its input is written under the
# package's testdata/fuzz/ to be committed as a regression test). go test
# -fuzz can also end with "context deadline exceeded" when its time runs out
# while it is minimizing a new input; that is not a finding and only warns.
set -uo pipefail
fuzztime=${FUZZTIME:-20s}
status=0
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "== fuzz $pkg $target ($fuzztime)"
    out=$(go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime=3s "$pkg" 2>&1)
    rc=$?
    echo "$out" | tail -n 25
    if [ $rc -ne 0 ]; then
      if grep -q 'context deadline exceeded' <<<"$out" && ! grep -q -i 'failing input' <<<"$out"; then
        echo "== $target: stopped at its deadline while minimizing (not a finding)"
      else
        echo "== $target: FAILED"
        status=1
      fi
    fi
  done
done
exit $status

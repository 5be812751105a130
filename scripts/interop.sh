#!/usr/bin/env bash
# Interop suite (tests/interop): GStreamer webrtcbin, aiortc, Firefox ESR and Chromium
# publish and play through a real switchboard process. Needs what
# scripts/install-test-deps.sh installs and target/debug/switchboard (built here if
# missing). Ends with one line `interop: N passed, N failed`; exits non-zero on a failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin="${SWITCHBOARD_BIN:-$PWD/target/debug/switchboard}"
if [[ ! -x "$bin" ]]; then
  cargo build --bin switchboard
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
start=$(date +%s)
rc=0
(cd tests/interop && SWITCHBOARD_BIN="$bin" npm test) 2>&1 | tee "$log" || rc=$?
pass=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$log" | tail -1)
fail=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$log" | tail -1)
echo "interop took $(( $(date +%s) - start )) s"
echo "interop: ${pass:-0} passed, ${fail:-0} failed"
if [[ $rc -ne 0 || -z "$pass" || "${fail:-1}" != 0 ]]; then
  exit 1
fi

#!/usr/bin/env bash
# What recording costs the whole server (tests/e2e/bench-record.mjs): CPU and memory of a
# release build with one Chromium simulcast publisher, without and with N recordings.
#   scripts/bench-record.sh [N=4] [SECONDS=20]
# Needs what scripts/install-test-deps.sh installs (Chromium, the e2e npm packages).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --bin switchboard
cd tests/e2e
[[ -d node_modules ]] || npm ci --silent
SWITCHBOARD_BIN="$PWD/../../target/release/switchboard" node bench-record.mjs "${1:-4}" "${2:-20}"

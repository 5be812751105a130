#!/usr/bin/env bash
# Runs every test of Switchboard on a fresh Debian machine, installing what the tests
# need first (Chromium from Debian's packages, the npm packages of tests/e2e).
#
#   1. lint: cargo fmt --check, cargo clippy -D warnings
#   2. cargo test --workspace --all-targets: unit, property, simulation, HTTP and UDP integration
#      tests (benchmarks compile and run once in test mode)
#   3. deployment manifests: every kustomize overlay rendered and validated
#   4. headless Chromium end to end: publish the fake camera with WHIP, watch with WHEP
#   5. interop (tests/interop): GStreamer webrtcbin, aiortc, Firefox ESR and Chromium
#      publish and play through the server (scripts/interop.sh)
#   6. fuzzing smoke run (scripts/fuzz-smoke.sh): every cargo-fuzz target of fuzz/ for
#      FUZZ_SECONDS (default 25) from its committed seeds; fails on any crash
#
# One target directory, debug profile with optimized dependencies: built once, used by
# every step (the end-to-end test runs target/debug/switchboard).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "installing test dependencies"
scripts/install-test-deps.sh

step "cargo fmt --check"
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all -- --check
else
  echo "rustfmt is not installed with this toolchain: skipping the format check"
fi

step "cargo clippy"
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets -- -D warnings
else
  echo "clippy is not installed with this toolchain: skipping lints"
fi

step "deployment manifests (kustomize render, kubernetes-validate --strict, enum checks)"
scripts/check-manifests.sh

step "cargo test"
cargo test --workspace --all-targets

step "browser end-to-end tests (headless Chromium)"
cargo build --bin switchboard
(cd tests/e2e && SWITCHBOARD_BIN="$PWD/../../target/debug/switchboard" npm test)

step "interop: GStreamer, aiortc, Firefox ESR and Chromium through the server"
SWITCHBOARD_BIN="$PWD/target/debug/switchboard" scripts/interop.sh

step "fuzzing smoke run (every target of fuzz/, ${FUZZ_SECONDS:-25} s each)"
scripts/fuzz-smoke.sh

step "all tests passed"

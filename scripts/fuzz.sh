#!/usr/bin/env bash
# A longer fuzzing run of one cargo-fuzz target (see fuzz/ and scripts/fuzz-smoke.sh):
#
#   scripts/fuzz.sh TARGET [SECONDS] [libFuzzer options...]     default 600 s
#
# Reads the committed seeds (fuzz/corpus/TARGET) and what earlier runs found
# (fuzz/corpus-new/TARGET, not committed), writes new inputs to the latter and a crashing
# input to fuzz/artifacts/TARGET/. A crash becomes a regression test: copy the input to
# fuzz/regressions/TARGET/ and add a test to tests/fuzz_regressions.rs. To add what a run
# found to the committed seeds, minimize first:
#   cargo +nightly fuzz cmin -s none -a TARGET fuzz/corpus-new/TARGET
# Targets: cargo +nightly fuzz list (run in fuzz/). Installs cargo-fuzz when missing.
# FUZZ_TARGET_DIR: build there instead of fuzz/target.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

if [[ $# -lt 1 ]]; then
  echo "usage: $0 TARGET [SECONDS] [libFuzzer options...]" >&2
  exit 2
fi
target="$1"
seconds="${2:-600}"
shift $(( $# >= 2 ? 2 : 1 ))
toolchain="${FUZZ_TOOLCHAIN:-nightly}"

if ! cargo "+${toolchain}" --version >/dev/null 2>&1; then
  rustup toolchain install "${toolchain}" --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

mkdir -p "fuzz/corpus-new/${target}" "fuzz/artifacts/${target}"
cd fuzz
flags=(--sanitizer none --debug-assertions)
if [[ -n "${FUZZ_TARGET_DIR:-}" ]]; then
  flags+=(--target-dir "${FUZZ_TARGET_DIR}")
fi
exec cargo "+${toolchain}" fuzz run "${flags[@]}" "${target}" \
  "${root}/fuzz/corpus-new/${target}" "${root}/fuzz/corpus/${target}" -- \
  -max_total_time="${seconds}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -print_final_stats=1 -artifact_prefix="${root}/fuzz/artifacts/${target}/" "$@"

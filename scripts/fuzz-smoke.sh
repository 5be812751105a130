#!/usr/bin/env bash
# Short fuzzing run of every cargo-fuzz target in fuzz/ (libFuzzer): builds them all, runs
# each for FUZZ_SECONDS (default 25) from its committed seeds (fuzz/corpus/<target>), and
# fails if any target crashes (a panic, an overflow under debug assertions, a timeout, an
# out-of-memory). Prints the executions of each target and a closing line
# "N passed, N failed".
#
# Installs what it needs when missing: the nightly toolchain (rustup) and cargo-fuzz
# (crates.io). Builds without a sanitizer (Rust code is memory-safe; what is hunted are
# panics, arithmetic overflows and timeouts) and with debug assertions, into
# fuzz/target. New inputs a run finds go to a scratch directory, so the committed seeds
# stay as they are; a crashing input is kept in fuzz/artifacts/<target>/.
#
#   scripts/fuzz-smoke.sh               every target, 25 s each
#   FUZZ_SECONDS=60 scripts/fuzz-smoke.sh offer rtp
#   FUZZ_TARGET_DIR=/tmp/fuzz-build scripts/fuzz-smoke.sh     build elsewhere
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

seconds="${FUZZ_SECONDS:-25}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
flags=(--sanitizer none --debug-assertions)
if [[ -n "${FUZZ_TARGET_DIR:-}" ]]; then
  flags+=(--target-dir "${FUZZ_TARGET_DIR}")
fi

log() { printf '[fuzz-smoke] %s\n' "$*"; }

if ! cargo "+${toolchain}" --version >/dev/null 2>&1; then
  log "installing the ${toolchain} toolchain with rustup"
  rustup toolchain install "${toolchain}" --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked
fi

cd fuzz
start=$(date +%s)
log "building every target ($(cargo fuzz --version))"
cargo "+${toolchain}" fuzz build "${flags[@]}"
log "built in $(( $(date +%s) - start )) s"

if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo "+${toolchain}" fuzz list)
fi

scratch="$(mktemp -d)"
trap 'rm -rf "${scratch}"' EXIT
passed=0
failed=0
failures=()
for t in "${targets[@]}"; do
  mkdir -p "${scratch}/${t}" "${root}/fuzz/artifacts/${t}"
  out="${scratch}/${t}.log"
  log "${t}: ${seconds} s"
  rc=0
  cargo "+${toolchain}" fuzz run "${flags[@]}" "${t}" "${scratch}/${t}" "${root}/fuzz/corpus/${t}" -- \
    -max_total_time="${seconds}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="${root}/fuzz/artifacts/${t}/" >"${out}" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "${out}" | tail -n1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "${out}" | tail -n1)
  if [[ -z "${execs}" ]]; then
    # No final statistics (a crash): the last status line has the count.
    execs=$(grep -oE '^#[0-9]+' "${out}" | tail -n1 | tr -d '#')
  fi
  if [[ ${rc} -eq 0 ]]; then
    passed=$((passed + 1))
    log "${t}: ok, ${execs:-?} executions (${rate:-?}/s)"
  else
    failed=$((failed + 1))
    failures+=("${t}")
    log "${t}: FAILED (exit ${rc}) after ${execs:-?} executions; output:"
    tail -n 60 "${out}"
    ls -1 "${root}/fuzz/artifacts/${t}/" 2>/dev/null | sed 's/^/  artifact: /'
  fi
done

log "total $(( $(date +%s) - start )) s"
echo "${passed} passed, ${failed} failed"
if [[ ${failed} -gt 0 ]]; then
  log "failed: ${failures[*]} (replay one: cargo +${toolchain} fuzz run ${flags[*]} TARGET fuzz/artifacts/TARGET/FILE)"
  exit 1
fi

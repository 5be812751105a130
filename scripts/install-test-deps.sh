#!/usr/bin/env bash
# Installs what the browser end-to-end tests (tests/e2e) need on a Debian machine:
#   - Chromium from the distribution (used by playwright-core via executablePath,
#     so no browser download is ever attempted)
#   - iproute2 (ip, tc) for the network-namespace simulcast test
#   - redis-server for the two-node cluster tests (tests/cluster.rs starts and
#     stops its own instances on free loopback ports; the service is not enabled)
#   - the Node.js dev dependencies of tests/e2e (npm ci when a lockfile exists)
# Idempotent: re-running skips what is already present. Expects to run as root
# (or with permission to use apt-get) and Node.js >= 20 with npm on PATH.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
e2e_dir="${repo_root}/tests/e2e"

log() { printf '[install-test-deps] %s\n' "$*"; }

if [[ -x /usr/bin/chromium ]]; then
  log "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo '/usr/bin/chromium')"
else
  log "chromium missing; installing with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends chromium chromium-driver
  log "installed: $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
fi

# ip and tc (iproute2): the simulcast test puts a viewer in a network namespace
# behind a shaped veth pair; without them that test is skipped
if command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1; then
  log "iproute2 already installed: $(command -v ip), $(command -v tc)"
else
  log "ip/tc missing; installing iproute2 with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends iproute2
fi

# redis-server: tests/cluster.rs runs two nodes sharing rooms through Redis
if command -v redis-server >/dev/null 2>&1; then
  log "redis-server already installed: $(redis-server --version | head -c 60)"
else
  log "redis-server missing; installing with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends redis-server
  # The package may start a system instance on 6379; the tests use their own ports.
fi

if ! command -v npm >/dev/null 2>&1; then
  log "error: npm not found on PATH (Node.js >= 20 is required)" >&2
  exit 1
fi

log "installing Node.js dev dependencies in tests/e2e"
cd "${e2e_dir}"
if [[ -f package-lock.json ]]; then
  log "running: npm ci --no-audit --no-fund"
  npm ci --no-audit --no-fund
else
  log "no package-lock.json; running: npm install --no-audit --no-fund"
  npm install --no-audit --no-fund
fi

log "done. Run the tests with: (cd tests/e2e && npm test)"

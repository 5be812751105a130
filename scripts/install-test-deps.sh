#!/usr/bin/env bash
# Installs what the build and the tests need on a Debian machine:
#   - libssl-dev and pkg-config: the server's DTLS runs on the system OpenSSL (src/dtls)
#   - the interop stacks (tests/interop): GStreamer 1.22 with webrtcbin and its Python
#     bindings, Firefox ESR, and aiortc from PyPI in tests/interop/.venv (made with the
#     system python3 and --system-site-packages, so GObject bindings are seen)
#   - Chromium from the distribution (used by playwright-core via executablePath,
#     so no browser download is ever attempted)
#   - iproute2 (ip, tc) for the network-namespace simulcast test
#   - coturn (turnserver) for the TURN test (tests/e2e/turn.test.mjs)
#   - ffmpeg (ffprobe) to read back the MP4 files the recorder writes (src/record/mp4)
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

# apt_install PKG...: installs the packages not installed yet, one apt-get update first.
apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "already installed: $*"
    return
  fi
  log "installing with apt-get: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if [[ $apt_updated -eq 0 ]]; then
    apt-get update
    apt_updated=1
  fi
  apt-get install -y --no-install-recommends "${missing[@]}"
}

# OpenSSL headers for the build (openssl-sys finds them with pkg-config)
apt_install libssl-dev pkg-config

# interop stacks: GStreamer webrtcbin (+ libnice, codecs, Python GObject bindings),
# Firefox ESR, python3-venv for the aiortc virtualenv
apt_install gstreamer1.0-plugins-bad gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly \
  gstreamer1.0-nice gstreamer1.0-libav python3-gst-1.0 gir1.2-gst-plugins-bad-1.0 \
  firefox-esr python3-venv python3-pip

# coturn (turnserver): the TURN test (tests/e2e/turn.test.mjs) starts its own instance
# on free ports with a config on its command line; the package's service is not needed
# (on Debian it stays disabled until /etc/default/coturn enables it)
apt_install coturn

# ffprobe and ffmpeg: the recorder's MP4 tests have them read every file they write
# (codec, size, duration, and a decode without error)
apt_install ffmpeg

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

# nftables (nft): the ICE-TCP and bad-links tests drop UDP inside their own network
# namespaces (all of it, or 5 % at random); without nft they are skipped
apt_install nftables

# redis-server: tests/cluster.rs and tests/e2e/drain.test.mjs run two nodes sharing rooms
# through Redis
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

# interop: aiortc in a virtualenv of the system python3 (which has the GStreamer
# bindings); puppeteer-core drives the system Firefox, nothing is downloaded
interop_dir="${repo_root}/tests/interop"
venv="${interop_dir}/.venv"
if [[ ! -x "${venv}/bin/python" ]]; then
  log "creating ${venv}"
  /usr/bin/python3 -m venv --system-site-packages "${venv}"
fi
if "${venv}/bin/python" -c 'import aiortc, sys; sys.exit(tuple(map(int, aiortc.__version__.split(".")[:2])) < (1, 16))' 2>/dev/null; then
  log "aiortc already installed: $("${venv}/bin/python" -c 'import aiortc; print(aiortc.__version__)')"
else
  log "installing aiortc 1.16 into ${venv}"
  "${venv}/bin/pip" install --no-input 'aiortc>=1.16,<1.17'
fi
log "installing Node.js dev dependencies in tests/interop"
(cd "${interop_dir}" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund)

log "done. Run the tests with: scripts/test.sh (or scripts/interop.sh for the interop suite)"

#!/usr/bin/env bash
# Whole-server benchmark: runs `switchboard-load broadcast` against a fresh release
# server at several fan-outs and writes a report (Markdown table + one JSON per run).
#
#   scripts/bench-server.sh                    # fan-outs 1 10 100 300, 1.5 Mbit/s
#   FANOUTS="1 100 500" BITRATE=500k scripts/bench-server.sh
#
# Settings (environment): FANOUTS, BITRATE (top simulcast layer, the load tool's
# --bitrate), WARMUP, DURATION, RAMP (sessions per second), OUT (report directory,
# default artifacts/bench), SERVER_ARGS (extra server flags, e.g.
# "--shard-after 50 --max-shards 1"), SERVER_CPUS and TOOL_CPUS (taskset CPU lists).
# With two or more CPUs the server is pinned to CPU 0 and the load tool to the others
# by default (`taskset`), so the server's CPU time is its own; the
# latency added by fan-out is each run's p99 minus the p99 of the smallest fan-out.
# Every session of the load tool comes from 127.0.0.1, so the per-address POST rate limit
# is off and the session limits are raised (ADMISSION_ARGS replaces these flags).
# See docs/performance.md for the method and the figures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

FANOUTS=${FANOUTS:-"1 10 100 300"}
BITRATE=${BITRATE:-1.5M}
WARMUP=${WARMUP:-5s}
DURATION=${DURATION:-20s}
RAMP=${RAMP:-50}
OUT=${OUT:-artifacts/bench}
ADMISSION_ARGS=${ADMISSION_ARGS:-"--post-rate 0 --max-sessions 20000 --max-pending 5000"}
HTTP_PORT=${HTTP_PORT:-18870}
UDP_PORT=${UDP_PORT:-19870}

cargo build --release -p switchboard -p switchboard-load
mkdir -p "$OUT"

SERVER_ARGS=${SERVER_ARGS:-}
server_cpu=() tool_cpu=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    server_cpu=(taskset -c "${SERVER_CPUS:-0}")
    tool_cpu=(taskset -c "${TOOL_CPUS:-1-$(($(nproc) - 1))}")
fi

server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

for n in $FANOUTS; do
    echo "== 1 -> $n viewers at $BITRATE" >&2
    "${server_cpu[@]}" target/release/switchboard --http-addr "127.0.0.1:$HTTP_PORT" \
        --udp-addr "127.0.0.1:$UDP_PORT" --tcp-addr 127.0.0.1:0 --public-ip 127.0.0.1 $ADMISSION_ARGS $SERVER_ARGS \
        >"$OUT/server-$n.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 50); do
        curl -fs "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    "${tool_cpu[@]}" target/release/switchboard-load --url "http://127.0.0.1:$HTTP_PORT" \
        --room bench --bitrate "$BITRATE" --ramp "$RAMP" --warmup "$WARMUP" \
        --duration "$DURATION" --quiet broadcast --viewers "$n" --server-pid "$server_pid" \
        --json "$OUT/fanout-$n.json" >"$OUT/fanout-$n.txt" || echo "run 1 -> $n failed" >&2
    curl -fs "http://127.0.0.1:$HTTP_PORT/metrics" >"$OUT/metrics-$n.txt" || true
    cleanup
    server_pid=
done

python3 - "$OUT" "$BITRATE" $FANOUTS >"$OUT/report.md" <<'PY'
import json, sys
out, bitrate, fanouts = sys.argv[1], sys.argv[2], [int(n) for n in sys.argv[3:]]
runs = {}
for n in fanouts:
    try:
        runs[n] = json.load(open(f"{out}/fanout-{n}.json"))
    except (OSError, ValueError):
        pass
base = runs[min(runs)]["latency_ms"]["p99"] if runs else 0.0

def metric(n, series):
    """A series' value in the run's final /metrics (whole run: ramp, warm-up, run)."""
    try:
        for line in open(f"{out}/metrics-{n}.txt"):
            if line.startswith(series + " "):
                return float(line.split()[-1])
    except OSError:
        pass
    return 0.0

def split(n):
    """Room and shard task CPU µs per forwarded packet, over the whole run."""
    pkts = metric(n, "switchboard_rtp_out_packets_total")
    room = metric(n, 'switchboard_task_cpu_microseconds_total{task="room"}')
    shard = metric(n, 'switchboard_task_cpu_microseconds_total{task="shard"}')
    return (room / pkts, shard / pkts) if pkts else (0.0, 0.0)
print(f"# Whole-server benchmark (broadcast, top layer {bitrate})\n")
print("| fan-out | connected | forwarded pkt/s | server CPU | µs per packet | packets per CPU-second "
      "| room / shard task µs per packet "
      "| loss | latency p50 / p99 ms | p99 added | RSS per viewer | setup p50 / p99 ms |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for n, r in sorted(runs.items()):
    s, lat, setup = r.get("server") or {}, r["latency_ms"], r["setup_ms"]
    sessions = r["sessions"]
    connected = f"{sessions['connected']} / {sessions['planned']}"
    print(f"| 1 → {n} | {connected} | {r['forwarded_packets_per_s']:.0f} "
          f"| {s.get('cpu_percent_of_one_core', 0):.1f} % | {s.get('cpu_us_per_forwarded_packet', 0):.2f} "
          f"| {s.get('packets_per_cpu_s', 0):.0f} | {split(n)[0]:.2f} / {split(n)[1]:.2f} "
          f"| {r['loss_percent']:.3f} % "
          f"| {lat['p50']:.2f} / {lat['p99']:.2f} | {lat['p99'] - base:+.2f} "
          f"| {s.get('rss_per_viewer_kib', 0):.0f} KiB | {setup['p50']:.1f} / {setup['p99']:.1f} |")
PY
cat "$OUT/report.md"

// End-to-end: one Chromium page publishes the fake camera over WHIP, a second
// page plays it over WHEP, through a real switchboard process.
//
//   cd tests/e2e && npm ci && npm test
//
// Environment:
//   SWITCHBOARD_BIN   server binary (default: <repo>/target/debug/switchboard)
//   CHROMIUM_PATH     browser executable (default: /usr/bin/chromium)
//   E2E_SAMPLE_SECONDS  length of the measurement window (default: 10)
//
// Artifacts go to <repo>/artifacts/e2e/: publish.png, watch.png,
// publish-watch.json (measured figures) and server.log.
//
// The pages expose window.switchboard = { state, stats, error, firstFrameMs, ... }
// (documented in web/assets/ui.js); this test reads only that hook.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const serverBin = path.resolve(process.env.SWITCHBOARD_BIN || path.join(repoRoot, 'target', 'debug', 'switchboard'));
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const artifactsDir = path.join(repoRoot, 'artifacts', 'e2e');
const sampleSeconds = Number(process.env.E2E_SAMPLE_SECONDS || 10);

const ROOM = 'e2e';
const MIN_FPS = 20;
const LIVEZ_TIMEOUT_MS = 20_000;
const CONNECT_TIMEOUT_MS = 20_000;
const FIRST_FRAME_TIMEOUT_MS = 20_000;

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream=fps=30',
  '--use-fake-ui-for-media-stream',
];

// ---------------------------------------------------------------------------
// helpers

function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    sock.on('error', reject);
    sock.bind(0, '127.0.0.1', () => {
      const { port } = sock.address();
      sock.close(() => resolve(port));
    });
  });
}

let clockTicks = 100;
try {
  clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // keep the Linux default
}

/** utime + stime of a process in seconds, or null when /proc is unavailable. */
function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after "(comm)": state is field 3, utime field 14, stime field 15
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / clockTicks;
  } catch {
    return null;
  }
}

const round = (x, digits = 1) => (x == null ? null : Math.round(x * 10 ** digits) / 10 ** digits);

// ---------------------------------------------------------------------------
// server

const server = { proc: null, log: [], exited: null, base: null, udpPort: null };

function serverLogTail(lines = 40) {
  return server.log.slice(-lines).join('\n');
}

function startServer(httpPort, udpPort) {
  const args = [
    '--http-addr', `127.0.0.1:${httpPort}`,
    '--udp-addr', `127.0.0.1:${udpPort}`,
    '--public-ip', '127.0.0.1',
  ];
  const proc = spawn(serverBin, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', NO_COLOR: '1' },
  });
  server.proc = proc;
  server.base = `http://127.0.0.1:${httpPort}`;
  server.udpPort = udpPort;
  const collect = (chunk) => {
    // eslint-disable-next-line no-control-regex
    const text = chunk.toString().replace(/\x1b\[[0-9;]*m/g, '');
    for (const line of text.split('\n')) if (line.trim()) server.log.push(line);
    if (server.log.length > 5000) server.log.splice(0, server.log.length - 5000);
  };
  proc.stdout.on('data', collect);
  proc.stderr.on('data', collect);
  proc.on('exit', (code, signal) => {
    server.exited = { code, signal };
  });
  proc.on('error', (err) => {
    server.exited = { error: err.message };
  });
  return proc;
}

async function waitForLivez() {
  const deadline = Date.now() + LIVEZ_TIMEOUT_MS;
  let last = 'no response';
  while (Date.now() < deadline) {
    if (server.exited) {
      throw new Error(`switchboard exited before becoming live (${JSON.stringify(server.exited)}):\n${serverLogTail()}`);
    }
    try {
      const res = await fetch(`${server.base}/livez`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = err.cause?.code || err.message;
    }
    await sleep(100);
  }
  throw new Error(`GET /livez did not return 200 within ${LIVEZ_TIMEOUT_MS} ms (last: ${last}):\n${serverLogTail()}`);
}

async function stopServer() {
  const proc = server.proc;
  if (!proc || server.exited) return;
  proc.kill('SIGTERM');
  const deadline = Date.now() + 3000;
  while (!server.exited && Date.now() < deadline) await sleep(50);
  if (!server.exited) {
    proc.kill('SIGKILL');
    await sleep(100);
  }
}

// last-resort cleanup if the runner exits without the after hook
process.on('exit', () => {
  if (server.proc && !server.exited) server.proc.kill('SIGKILL');
});

// ---------------------------------------------------------------------------
// browser

let context = null;
let userDataDir = null;
const pageEvents = [];

function instrument(page, name) {
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') pageEvents.push(`${name} console.${msg.type()}: ${msg.text()}`);
  });
  page.on('pageerror', (err) => pageEvents.push(`${name} pageerror: ${err.message}`));
  page.on('response', (res) => {
    const url = new URL(res.url());
    if (/^\/(whip|whep)\//.test(url.pathname)) {
      pageEvents.push(`${name} ${res.request().method()} ${url.pathname} -> ${res.status()}`);
    }
  });
  page.on('requestfailed', (req) => pageEvents.push(`${name} request failed: ${req.method()} ${req.url()} ${req.failure()?.errorText}`));
}

async function hookOf(page) {
  try {
    return await page.evaluate(() => (window.switchboard ? JSON.parse(JSON.stringify(window.switchboard)) : null));
  } catch (err) {
    return { unavailable: err.message };
  }
}

async function diagnostics(pages) {
  const parts = [];
  for (const [name, page] of Object.entries(pages)) {
    if (page) parts.push(`${name}: ${JSON.stringify(await hookOf(page))}`);
  }
  parts.push(`page events:\n  ${pageEvents.slice(-30).join('\n  ') || '(none)'}`);
  parts.push(`server log (tail):\n${serverLogTail(30) || '(empty)'}`);
  return parts.join('\n');
}

/** Polls the page hook until predicate(hook) is true; fails with diagnostics on timeout or 'failed'. */
async function waitForHook(page, what, predicate, timeoutMs, pages) {
  const deadline = Date.now() + timeoutMs;
  let hook = null;
  while (Date.now() < deadline) {
    hook = await hookOf(page);
    if (hook && predicate(hook)) return hook;
    if (hook?.state === 'failed') break;
    if (server.exited) break;
    await sleep(100);
  }
  const reason = hook?.state === 'failed' ? 'page reported state "failed"' : server.exited ? `server exited ${JSON.stringify(server.exited)}` : `timed out after ${timeoutMs} ms`;
  assert.fail(`${what}: ${reason}\n${await diagnostics(pages)}`);
}

// ---------------------------------------------------------------------------

before(async () => {
  assert.ok(fs.existsSync(serverBin), `server binary not found at ${serverBin} (build it with cargo build, or set SWITCHBOARD_BIN)`);
  assert.ok(fs.existsSync(chromiumPath), `Chromium not found at ${chromiumPath} (run scripts/install-test-deps.sh, or set CHROMIUM_PATH)`);
  fs.mkdirSync(artifactsDir, { recursive: true });

  const httpPort = await freeTcpPort();
  let udpPort = await freeUdpPort();
  if (udpPort === httpPort) udpPort = await freeUdpPort();
  startServer(httpPort, udpPort);
  await waitForLivez();

  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-e2e-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
    timeout: 30_000,
  });
}, { timeout: 60_000 });

after(async () => {
  try {
    await context?.close();
  } catch {
    // browser already gone
  }
  await stopServer();
  if (server.log.length) {
    try {
      fs.writeFileSync(path.join(artifactsDir, 'server.log'), server.log.join('\n') + '\n');
    } catch {
      // artifacts are best effort
    }
  }
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
}, { timeout: 30_000 });

test('browser publishes over WHIP and another browser plays it over WHEP', { timeout: 100_000 }, async () => {
  const pages = { publisher: null, viewer: null };
  const result = {
    passed: false,
    room: ROOM,
    serverBin: path.relative(repoRoot, serverBin) || serverBin,
    browser: null,
    sampleSeconds,
  };
  try {
    // publisher
    pages.publisher = await context.newPage();
    instrument(pages.publisher, 'publish');
    result.browser = await pages.publisher.evaluate(() => navigator.userAgent);
    await pages.publisher.goto(`${server.base}/publish?room=${ROOM}&autostart=1`, { timeout: 15_000 });
    await waitForHook(pages.publisher, 'publisher connects', (h) => h.state === 'connected', CONNECT_TIMEOUT_MS, pages);
    const pubStats = await waitForHook(
      pages.publisher, 'publisher encodes frames',
      (h) => h.stats?.framesEncoded > 0 && h.stats?.frameWidth > 0, CONNECT_TIMEOUT_MS, pages,
    );
    result.publisherWhip = pubStats.location ? new URL(pubStats.location).pathname : null;

    // viewer
    pages.viewer = await context.newPage();
    instrument(pages.viewer, 'watch');
    await pages.viewer.goto(`${server.base}/watch?room=${ROOM}&autostart=1`, { timeout: 15_000 });
    await waitForHook(pages.viewer, 'viewer connects', (h) => h.state === 'connected', CONNECT_TIMEOUT_MS, pages);
    const first = await waitForHook(
      pages.viewer, 'viewer decodes a first frame (no video arrived)',
      (h) => h.firstFrameMs != null, FIRST_FRAME_TIMEOUT_MS, pages,
    );
    result.firstFrameMs = first.firstFrameMs;

    // a sample that already counts decoded frames starts the window
    const start = await waitForHook(
      pages.viewer, 'viewer stats report decoded frames',
      (h) => h.stats?.framesDecoded > 0, 5_000, pages,
    );

    // measurement window
    const cpuBefore = cpuSeconds(server.proc.pid);
    const wallBefore = performance.now();
    const states = new Set();
    const fpsSeries = [];
    let lastAt = start.stats.at;
    let end = start;
    let publisher = pubStats;
    const windowEnd = Date.now() + sampleSeconds * 1000;
    while (Date.now() < windowEnd + 500) {
      await sleep(250);
      const v = await hookOf(pages.viewer);
      publisher = await hookOf(pages.publisher);
      states.add(`watch:${v.state}`);
      states.add(`publish:${publisher.state}`);
      if (v.stats && v.stats.at !== lastAt) {
        lastAt = v.stats.at;
        fpsSeries.push(v.stats.fps);
        end = v;
      }
      if (end.stats.at - start.stats.at >= sampleSeconds * 1000) break;
    }
    const cpuAfter = cpuSeconds(server.proc.pid);
    const wallSeconds = (performance.now() - wallBefore) / 1000;

    const elapsed = (end.stats.at - start.stats.at) / 1000;
    const decoded = end.stats.framesDecoded - start.stats.framesDecoded;
    const avgFps = elapsed > 0 ? decoded / elapsed : 0;
    Object.assign(result, {
      windowSeconds: round(elapsed, 2),
      framesDecodedInWindow: decoded,
      averageFps: round(avgFps),
      fpsPerSecond: fpsSeries,
      viewerResolution: `${end.stats.frameWidth}x${end.stats.frameHeight}`,
      publisherResolution: `${publisher.stats?.frameWidth}x${publisher.stats?.frameHeight}`,
      publisherFps: publisher.stats?.fps,
      publisherBitrateKbps: publisher.stats?.bitrateKbps,
      publisherQualityLimitation: publisher.stats?.qualityLimitationReason ?? null,
      publisherDegradationPreference: publisher.degradationPreference ?? null,
      viewerBitrateKbps: end.stats.bitrateKbps,
      codec: end.stats.codec ?? null,
      freezeCount: end.stats.freezeCount,
      packetsLost: end.stats.packetsLost,
      framesDecoded: end.stats.framesDecoded,
      states: [...states].sort(),
      serverCpuSeconds: cpuBefore == null || cpuAfter == null ? null : round(cpuAfter - cpuBefore, 2),
      serverCpuPercent: cpuBefore == null || cpuAfter == null ? null : round(((cpuAfter - cpuBefore) / wallSeconds) * 100),
    });

    const summary = [
      `first frame after WHEP 201: ${result.firstFrameMs} ms`,
      `decoded fps over ${result.windowSeconds} s: ${result.averageFps} (per second: ${fpsSeries.join(', ')})`,
      `resolution: viewer ${result.viewerResolution}, publisher ${result.publisherResolution}`,
      `bitrate: publisher ${result.publisherBitrateKbps} kbit/s, viewer ${result.viewerBitrateKbps} kbit/s, codec ${result.codec}`,
      `freezeCount ${result.freezeCount}, packetsLost ${result.packetsLost}, framesDecoded ${result.framesDecoded}`,
      `server CPU: ${result.serverCpuSeconds} s over ${round(wallSeconds, 1)} s (${result.serverCpuPercent} %)`,
    ];
    console.log(summary.map((l) => `  ${l}`).join('\n'));

    const info = async () => `\n${await diagnostics(pages)}`;
    assert.ok(decoded > 0, `no frames decoded during the window${await info()}`);
    assert.deepEqual(
      [...states].filter((s) => !s.endsWith(':connected')), [],
      `a page left the connected state during the window: ${[...states].join(', ')}${await info()}`,
    );
    assert.ok(avgFps >= MIN_FPS, `average decoded fps ${round(avgFps)} < ${MIN_FPS}${await info()}`);
    assert.equal(
      result.viewerResolution, result.publisherResolution,
      `decoded resolution differs from the sent one${await info()}`,
    );
    result.passed = true;
  } catch (err) {
    result.error = err.message.split('\n')[0];
    throw err;
  } finally {
    for (const [name, page] of [['publish', pages.publisher], ['watch', pages.viewer]]) {
      if (!page) continue;
      try {
        await page.screenshot({ path: path.join(artifactsDir, `${name}.png`), fullPage: true, timeout: 5_000 });
      } catch {
        // best effort
      }
    }
    result.publisherHook = pages.publisher ? await hookOf(pages.publisher) : null;
    result.viewerHook = pages.viewer ? await hookOf(pages.viewer) : null;
    result.pageEvents = pageEvents;
    fs.writeFileSync(path.join(artifactsDir, 'publish-watch.json'), JSON.stringify(result, null, 2) + '\n');
    // DELETE both sessions while the server still runs
    for (const page of [pages.viewer, pages.publisher]) {
      try {
        await page?.click('#stop', { timeout: 2_000 });
      } catch {
        // best effort
      }
    }
  }
});

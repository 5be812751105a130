// Helpers shared by the browser end-to-end tests: the server process under test,
// Chromium via playwright-core, and polling of the pages' window.switchboard hook.

import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

export { sleep };

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const serverBin = path.resolve(process.env.SWITCHBOARD_BIN || path.join(repoRoot, 'target', 'debug', 'switchboard'));
export const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const artifactsDir = path.join(repoRoot, 'artifacts', 'e2e');

export const LIVEZ_TIMEOUT_MS = 20_000;

export const CHROMIUM_ARGS = [
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

/** Fails early, with a hint, when the binary or the browser is missing. */
export function checkPrerequisites() {
  assert.ok(fs.existsSync(serverBin), `server binary not found at ${serverBin} (build it with cargo build, or set SWITCHBOARD_BIN)`);
  assert.ok(fs.existsSync(chromiumPath), `Chromium not found at ${chromiumPath} (run scripts/install-test-deps.sh, or set CHROMIUM_PATH)`);
  fs.mkdirSync(artifactsDir, { recursive: true });
}

// ---------------------------------------------------------------------------
// ports, CPU time, numbers

export function freeTcpPort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function freeUdpPort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    sock.on('error', reject);
    sock.bind(0, host, () => {
      const { port } = sock.address();
      sock.close(() => resolve(port));
    });
  });
}

/** A TCP and a UDP port, distinct, both free on `host`. */
export async function freePorts(host = '127.0.0.1') {
  const httpPort = await freeTcpPort(host);
  let udpPort = await freeUdpPort(host);
  if (udpPort === httpPort) udpPort = await freeUdpPort(host);
  return { httpPort, udpPort };
}

let clockTicks = 100;
try {
  clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // keep the Linux default
}

/** utime + stime of a process in seconds, or null when /proc is unavailable. */
export function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after "(comm)": state is field 3, utime field 14, stime field 15
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / clockTicks;
  } catch {
    return null;
  }
}

export const round = (x, digits = 1) => (x == null ? null : Math.round(x * 10 ** digits) / 10 ** digits);

// ---------------------------------------------------------------------------
// server

/**
 * Starts `server` on free loopback ports (advertising 127.0.0.1 only) with `serverArgs`
 * added, waits for /livez, and launches Chromium: what a single-machine test needs
 * before its first page. With `--tls-cert` among `serverArgs` the base URL is https://
 * (set `server.ca` to the certificate's PEM for the /livez check).
 */
export async function startOnLoopback(server, browserOptions = {}, serverArgs = []) {
  checkPrerequisites();
  const { httpPort, udpPort } = await freePorts();
  server.start(
    ['--http-addr', `127.0.0.1:${httpPort}`, '--udp-addr', `127.0.0.1:${udpPort}`, '--tcp-addr', '127.0.0.1:0', '--public-ip', '127.0.0.1', ...serverArgs],
    `${serverArgs.includes('--tls-cert') ? 'https' : 'http'}://127.0.0.1:${httpPort}`,
  );
  await server.waitForLivez();
  return launchBrowser(browserOptions);
}

/** One switchboard process; its output is kept in memory and optionally teed to a file. */
export class Server {
  constructor() {
    this.proc = null;
    this.log = [];
    this.exited = null;
    this.base = null;
    this.logFile = null;
    this.maxLines = 5000;
    /** PEM of the certificate an https:// base is checked against (waitForLivez). */
    this.ca = null;
  }

  /**
   * Starts the binary with `args`; `base` is the URL the tests use to reach it.
   * options: { rustLog, logFile (path: the whole log is written there as it comes) }
   */
  start(args, base, { rustLog = process.env.RUST_LOG || 'info', logFile = null } = {}) {
    const proc = spawn(serverBin, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RUST_LOG: rustLog, NO_COLOR: '1' },
    });
    this.proc = proc;
    this.base = base;
    if (logFile) this.logFile = fs.createWriteStream(logFile);
    const collect = (chunk) => {
      // eslint-disable-next-line no-control-regex
      const text = chunk.toString().replace(/\x1b\[[0-9;]*m/g, '');
      this.logFile?.write(text);
      for (const line of text.split('\n')) if (line.trim()) this.log.push(line);
      if (this.log.length > this.maxLines) this.log.splice(0, this.log.length - this.maxLines);
    };
    proc.stdout.on('data', collect);
    proc.stderr.on('data', collect);
    proc.on('exit', (code, signal) => {
      this.exited = { code, signal };
    });
    proc.on('error', (err) => {
      this.exited = { error: err.message };
    });
    // last-resort cleanup if the runner exits without the after hook
    process.on('exit', () => {
      if (this.proc && !this.exited) this.proc.kill('SIGKILL');
    });
    return proc;
  }

  logTail(lines = 40) {
    return this.log.slice(-lines).join('\n');
  }

  async waitForLivez(timeoutMs = LIVEZ_TIMEOUT_MS) {
    const deadline = Date.now() + timeoutMs;
    let last = 'no response';
    while (Date.now() < deadline) {
      if (this.exited) {
        throw new Error(`switchboard exited before becoming live (${JSON.stringify(this.exited)}):\n${this.logTail()}`);
      }
      try {
        const url = `${this.base}/livez`;
        const status = url.startsWith('https:')
          ? await httpsStatus(url, this.ca)
          : (await fetch(url, { signal: AbortSignal.timeout(1000) })).status;
        if (status === 200) return;
        last = `HTTP ${status}`;
      } catch (err) {
        last = err.cause?.code || err.message;
      }
      await sleep(100);
    }
    throw new Error(`GET /livez did not return 200 within ${timeoutMs} ms (last: ${last}):\n${this.logTail()}`);
  }

  async stop() {
    const proc = this.proc;
    if (proc && !this.exited) {
      proc.kill('SIGTERM');
      const deadline = Date.now() + 3000;
      while (!this.exited && Date.now() < deadline) await sleep(50);
      if (!this.exited) {
        proc.kill('SIGKILL');
        await sleep(100);
      }
    }
    if (this.logFile) {
      const stream = this.logFile;
      this.logFile = null;
      await new Promise((resolve) => stream.end(resolve));
    }
  }

  /** Writes the kept log lines to `file` (best effort). */
  writeLog(file) {
    if (!this.log.length) return;
    try {
      fs.writeFileSync(file, this.log.join('\n') + '\n');
    } catch {
      // artifacts are best effort
    }
  }
}

/** Status of `GET url` over https, verified against `ca` (PEM); rejects after 1 s. */
export function httpsStatus(url, ca) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------------------
// browser

/**
 * Launches Chromium with a fresh profile. `executablePath` may be a wrapper
 * script that ends in `exec chromium "$@"` (playwright talks to it over a pipe);
 * `extraArgs` are added to CHROMIUM_ARGS.
 * Returns { context, close() }; close() also removes the profile.
 */
export async function launchBrowser({ executablePath = chromiumPath, prefix = 'switchboard-e2e-', extraArgs = [] } = {}) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: [...CHROMIUM_ARGS, ...extraArgs],
      viewport: { width: 1280, height: 900 },
      timeout: 30_000,
    });
  } catch (err) {
    fs.rmSync(userDataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    context,
    async close() {
      try {
        await context.close();
      } catch {
        // browser already gone
      }
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** Collects console errors, page errors and WHIP/WHEP responses of pages into `events`. */
export function instrument(page, name, events) {
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') events.push(`${name} console.${msg.type()}: ${msg.text()}`);
  });
  page.on('pageerror', (err) => events.push(`${name} pageerror: ${err.message}`));
  page.on('response', (res) => {
    const url = new URL(res.url());
    if (/^\/(whip|whep)\//.test(url.pathname) && !url.pathname.endsWith('/stats')) {
      events.push(`${name} ${res.request().method()} ${url.pathname} -> ${res.status()}`);
    }
  });
  page.on('requestfailed', (req) => events.push(`${name} request failed: ${req.method()} ${req.url()} ${req.failure()?.errorText}`));
}

/** A plain copy of the page's window.switchboard, or { unavailable } if it cannot be read. */
export async function hookOf(page) {
  try {
    return await page.evaluate(() => (window.switchboard ? JSON.parse(JSON.stringify(window.switchboard)) : null));
  } catch (err) {
    return { unavailable: err.message };
  }
}

/** Text for failure messages: every page's hook, the recent page events and the server log. */
export async function diagnostics(pages, events, server) {
  const parts = [];
  for (const [name, page] of Object.entries(pages)) {
    if (page) parts.push(`${name}: ${JSON.stringify(await hookOf(page))}`);
  }
  parts.push(`page events:\n  ${events.slice(-30).join('\n  ') || '(none)'}`);
  parts.push(`server log (tail):\n${server.logTail(30) || '(empty)'}`);
  return parts.join('\n');
}

/**
 * Polls the page hook until predicate(hook) is true; fails with diagnostics on
 * timeout, when the page reports 'failed' or when the server exits.
 * ctx: { server, pages, events }
 */
export async function waitForHook(page, what, predicate, timeoutMs, ctx) {
  const deadline = Date.now() + timeoutMs;
  let hook = null;
  while (Date.now() < deadline) {
    hook = await hookOf(page);
    if (hook && predicate(hook)) return hook;
    if (hook?.state === 'failed') break;
    if (ctx.server.exited) break;
    await sleep(100);
  }
  const reason = hook?.state === 'failed'
    ? 'page reported state "failed"'
    : ctx.server.exited ? `server exited ${JSON.stringify(ctx.server.exited)}` : `timed out after ${timeoutMs} ms`;
  assert.fail(`${what}: ${reason}\n${await diagnostics(ctx.pages, ctx.events, ctx.server)}`);
}

/** Full-page screenshots of `pages` ({ name: page }) into the artifacts directory, best effort. */
export async function screenshots(pages) {
  for (const [name, page] of Object.entries(pages)) {
    if (!page) continue;
    try {
      await page.screenshot({ path: path.join(artifactsDir, `${name}.png`), fullPage: true, timeout: 5_000 });
    } catch {
      // best effort
    }
  }
}

/** Clicks Stop on each page so the sessions are DELETEd while the server still runs. */
export async function stopPages(pages) {
  for (const page of pages) {
    try {
      await page?.click('#stop', { timeout: 2_000 });
    } catch {
      // best effort
    }
  }
}

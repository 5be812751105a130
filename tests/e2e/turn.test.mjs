// End-to-end: media through a real TURN server (coturn) with per-session TURN REST
// credentials (`--turn-url`, `--turn-secret`; draft-uberti-behave-turn-rest-00).
//
// A turnserver started here (`--use-auth-secret --static-auth-secret=…`) shares its
// secret with switchboard, which hands each WHEP session a username
// `<expiry>:<identity>` and its HMAC in `Link: <turn:…>; rel="ice-server"` headers
// (RFC 9725 §4.6). The publisher (host Chromium) sends the fake camera over loopback;
// viewers must get it through coturn:
//
// - as root: the viewers' Chromium runs in a network namespace sbt<pid> whose only way
//   out is a veth pair (host 10.214.0.1/30, namespace 10.214.0.2/30). Switchboard's UDP
//   socket and its only ICE candidate are on 127.0.0.1, which the namespace cannot
//   reach; coturn listens on 10.214.0.1 and relays from 127.0.0.1 (so it needs
//   --allow-loopback-peers). Viewer `relay` opens the watch page with ?relay=1
//   (iceTransportPolicy 'relay'); viewer `fallback` without it, so its direct attempt
//   fails and the page's fallback (an ICE restart with the TURN servers after 3 s)
//   must find the relay by itself.
// - otherwise (no root or no `ip`): everything on loopback, one viewer with ?relay=1,
//   which only lets media flow through coturn.
//
// Each viewer must decode at least 25 fps over a few seconds, and its selected candidate
// pair's local candidate must be of type `relay` (the watch page's getStats sample).
// Reported: the time from the WHEP POST to the first decoded frame through TURN.
// Skipped with the reason when /usr/bin/turnserver (Debian package coturn) is missing.
// turnserver, the namespace and the veth pair are removed in `after`, on exit and on
// SIGINT/SIGTERM; a later run also removes namespaces a killed run left behind.
//
// Environment: SWITCHBOARD_BIN, CHROMIUM_PATH (see README.md), TURNSERVER_PATH
// (default /usr/bin/turnserver), E2E_TURN_LOOPBACK=1 (the loopback variant, even as
// root). Artifacts in <repo>/artifacts/e2e/: turn.json, turn-server.log,
// turnserver.log, turn-*.png.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  chromiumPath, artifactsDir, checkPrerequisites, serverBin, freeTcpPort, freeUdpPort, round, sleep,
  Server, launchBrowser, instrument, hookOf, diagnostics, waitForHook, screenshots, stopPages,
} from './lib.mjs';

const ROOM = 'turn';
const TURN_SECRET = `e2e-turn-${process.pid}-${Math.random().toString(36).slice(2)}`;
const REALM = 'switchboard.test';
const NS = `sbt${process.pid}`;
const VETH = { host: `${NS}h`, ns: `${NS}n`, hostIp: '10.214.0.1', nsIp: '10.214.0.2' };
const MIN_FPS = 25;
const SAMPLE_MS = 5_000;
const TIMEOUT_MS = 25_000;
const turnBin = process.env.TURNSERVER_PATH || '/usr/bin/turnserver';

const server = new Server();
const pageEvents = [];
const browsers = { host: null, viewers: null };
const turn = { proc: null, log: [], dir: null };
const netns = { made: false, why: null };
let skipReason = null;

// ---------------------------------------------------------------------------
// network namespace (root only)

/** Runs `ip` with `args`; returns { ok, out } and never throws. */
function ip(...args) {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, out: `${r.stdout || ''}${r.stderr || r.error?.message || ''}`.trim() };
}

function removeNamespace() {
  if (!netns.made) return;
  netns.made = false;
  ip('link', 'del', VETH.host);
  ip('netns', 'del', NS);
}

/** Namespaces sbt<pid> of runs whose process is gone. */
function removeLeftovers() {
  const listed = ip('netns', 'list');
  for (const [, pid] of listed.out.matchAll(/^sbt(\d+)\b/gm)) {
    if (Number(pid) === process.pid) continue;
    try {
      process.kill(Number(pid), 0);
    } catch (err) {
      if (err.code === 'ESRCH') {
        ip('link', 'del', `sbt${pid}h`);
        ip('netns', 'del', `sbt${pid}`);
      }
    }
  }
}

/** Makes the namespace and its veth pair; false (with netns.why) when it cannot. */
function makeNamespace() {
  if (process.getuid?.() !== 0) {
    netns.why = 'not root';
    return false;
  }
  if (!ip('-V').ok) {
    netns.why = 'no ip (iproute2)';
    return false;
  }
  removeLeftovers();
  if (ip('-o', 'addr', 'show', 'to', `${VETH.hostIp}/32`).out) {
    netns.why = `${VETH.hostIp} is in use on this machine`;
    return false;
  }
  const made = ip('netns', 'add', NS);
  if (!made.ok) {
    netns.why = `ip netns add: ${made.out}`;
    return false;
  }
  netns.made = true;
  const steps = [
    ['link', 'add', VETH.host, 'type', 'veth', 'peer', 'name', VETH.ns, 'netns', NS],
    ['addr', 'add', `${VETH.hostIp}/30`, 'dev', VETH.host],
    ['link', 'set', VETH.host, 'up'],
    ['-n', NS, 'addr', 'add', `${VETH.nsIp}/30`, 'dev', VETH.ns],
    ['-n', NS, 'link', 'set', VETH.ns, 'up'],
    ['-n', NS, 'link', 'set', 'lo', 'up'],
  ];
  for (const step of steps) {
    const r = ip(...step);
    if (!r.ok) {
      netns.why = `ip ${step.join(' ')}: ${r.out}`;
      removeNamespace();
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------
// coturn

/** Resolves once `host:port` answers a STUN Binding request (RFC 8489 §6), else throws. */
async function waitForStun(host, port, timeoutMs = 10_000) {
  const sock = dgram.createSocket('udp4');
  const answered = new Promise((resolve) => {
    sock.on('message', (msg) => {
      if (msg.length >= 20 && msg.readUInt16BE(0) === 0x0101) resolve(true);
    });
  });
  sock.on('error', () => {});
  const request = Buffer.alloc(20);
  request.writeUInt16BE(0x0001, 0);
  request.writeUInt32BE(0x2112a442, 4);
  for (let i = 8; i < 20; i++) request[i] = Math.floor(Math.random() * 256);
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      if (turn.exited) break;
      sock.send(request, port, host);
      if (await Promise.race([answered, sleep(200).then(() => false)])) return;
    }
  } finally {
    sock.close();
  }
  throw new Error(`turnserver on ${host}:${port} did not answer STUN: ${turn.log.slice(-15).join('\n')}`);
}

function startTurn(listenIp, port) {
  turn.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-e2e-turn-'));
  const args = [
    '-n', // no configuration file: everything is here
    `--listening-ip=${listenIp}`, `--relay-ip=127.0.0.1`, `--listening-port=${port}`,
    '--use-auth-secret', `--static-auth-secret=${TURN_SECRET}`, `--realm=${REALM}`,
    '--fingerprint', '--no-tls', '--no-dtls', '--no-cli', '--no-rfc5780',
    // switchboard's only candidate is 127.0.0.1, a loopback peer coturn refuses by default
    '--allow-loopback-peers',
    '--log-file=stdout', '--simple-log', '--verbose',
    `--pidfile=${path.join(turn.dir, 'turnserver.pid')}`, `--db=${path.join(turn.dir, 'turndb')}`,
  ];
  const proc = spawn(turnBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  turn.proc = proc;
  const keep = (chunk) => {
    for (const line of chunk.toString().split('\n')) if (line.trim()) turn.log.push(line);
    if (turn.log.length > 20_000) turn.log.splice(0, 10_000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  proc.on('exit', (code, signal) => {
    turn.exited = { code, signal };
  });
}

async function stopTurn() {
  const { proc } = turn;
  if (proc && !turn.exited) {
    proc.kill('SIGTERM');
    for (let i = 0; i < 30 && !turn.exited; i++) await sleep(100);
    if (!turn.exited) proc.kill('SIGKILL');
  }
  if (turn.log.length) fs.writeFileSync(path.join(artifactsDir, 'turnserver.log'), `${turn.log.join('\n')}\n`);
  if (turn.dir) fs.rmSync(turn.dir, { recursive: true, force: true });
  turn.dir = null;
}

function cleanUpNow() {
  if (turn.proc && !turn.exited) turn.proc.kill('SIGKILL');
  if (server.proc && !server.exited) server.proc.kill('SIGKILL');
  removeNamespace();
}
process.on('exit', cleanUpNow);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    cleanUpNow();
    process.exit(130);
  });
}

// ---------------------------------------------------------------------------

/** The server's flags for ICE-TCP when this build has them: off, this test is UDP. */
function optionalServerArgs() {
  const help = spawnSync(serverBin, ['--help'], { encoding: 'utf8' }).stdout || '';
  return help.includes('--tcp-addr') ? ['--tcp-addr', 'off'] : [];
}

before(async () => {
  if (!fs.existsSync(turnBin)) {
    skipReason = `no ${turnBin} (Debian package coturn; scripts/install-test-deps.sh installs it)`;
    return;
  }
  checkPrerequisites();
  const inNamespace = process.env.E2E_TURN_LOOPBACK !== '1' && makeNamespace();
  netns.why ??= 'E2E_TURN_LOOPBACK=1';
  if (!inNamespace) console.log(`  turn: viewers on loopback with ?relay=1 (no namespace: ${netns.why})`);
  const turnIp = inNamespace ? VETH.hostIp : '127.0.0.1';
  const turnPort = await freeUdpPort(turnIp);
  startTurn(turnIp, turnPort);
  await waitForStun(turnIp, turnPort);

  const httpPort = await freeTcpPort(inNamespace ? '0.0.0.0' : '127.0.0.1');
  const udpPort = await freeUdpPort('127.0.0.1');
  server.start(
    [
      '--http-addr', `${inNamespace ? '0.0.0.0' : '127.0.0.1'}:${httpPort}`,
      '--udp-addr', `127.0.0.1:${udpPort}`, '--public-ip', '127.0.0.1',
      '--turn-url', `turn:${turnIp}:${turnPort}?transport=udp`,
      '--turn-secret', TURN_SECRET, '--turn-ttl', '10m',
      ...optionalServerArgs(),
    ],
    `http://127.0.0.1:${httpPort}`,
    { logFile: path.join(artifactsDir, 'turn-server.log') },
  );
  await server.waitForLivez();
  browsers.host = await launchBrowser();
  if (inNamespace) {
    const wrapper = path.join(turn.dir, 'chromium-in-netns');
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${NS} ${JSON.stringify(chromiumPath)} "$@"\n`, { mode: 0o755 });
    browsers.viewers = await launchBrowser({ executablePath: wrapper, prefix: 'switchboard-e2e-turn-' });
    browsers.viewerBase = `http://${VETH.hostIp}:${httpPort}`;
  } else {
    browsers.viewers = browsers.host;
    browsers.viewerBase = server.base;
  }
  browsers.inNamespace = inNamespace;
}, { timeout: 60_000 });

after(async () => {
  try {
    if (browsers.viewers !== browsers.host) await browsers.viewers?.close();
    await browsers.host?.close();
    await server.stop();
    await stopTurn();
  } finally {
    removeNamespace();
  }
}, { timeout: 30_000 });

/** The viewer page's WHEP POST: when it started and how long until the 201 (resource timing). */
function whepPostTiming(page) {
  return page.evaluate((room) => {
    const post = performance.getEntriesByType('resource')
      .find((e) => new URL(e.name).pathname === `/whep/${room}`);
    return post ? { startMs: post.startTime, durationMs: post.responseStart - post.startTime } : null;
  }, ROOM);
}

/** Opens a watch page, waits for frames and measures; returns the viewer's figures. */
async function watchThroughTurn(name, query, ctx) {
  const page = await browsers.viewers.context.newPage();
  ctx.pages[name] = page;
  instrument(page, name, pageEvents);
  await page.goto(`${browsers.viewerBase}/watch?room=${ROOM}&autostart=1${query}`, { timeout: 15_000 });
  // Not waitForHook: the fallback viewer may pass through 'failed' before its ICE
  // restart, so only frames count here.
  let first = null;
  for (const deadline = Date.now() + TIMEOUT_MS; !first && Date.now() < deadline && !server.exited;) {
    const h = await hookOf(page);
    if (h?.firstFrameMs != null && h.stats?.framesDecoded > 0) first = h;
    else await sleep(100);
  }
  if (!first) assert.fail(`${name} decoded no frame through TURN within ${TIMEOUT_MS} ms\n${await diagnostics(ctx.pages, pageEvents, server)}`);
  const post = await whepPostTiming(page);
  const start = first.stats;
  await sleep(SAMPLE_MS);
  const end = (await hookOf(page)).stats;
  const seconds = (end.at - start.at) / 1000;
  const fps = seconds > 0 ? (end.framesDecoded - start.framesDecoded) / seconds : 0;
  return {
    firstFrameAfter201Ms: first.firstFrameMs,
    postTo201Ms: post ? round(post.durationMs) : null,
    postToFirstFrameMs: post ? round(post.durationMs + first.firstFrameMs) : null,
    fps: round(fps),
    seconds: round(seconds, 2),
    resolution: `${end.frameWidth}x${end.frameHeight}`,
    localCandidateType: end.localCandidateType,
    remoteCandidateType: end.remoteCandidateType,
    freezeCount: end.freezeCount,
    packetsLost: end.packetsLost,
    ...(({ state, error }) => ({ state, error }))(await hookOf(page)),
  };
}

test('media reaches viewers through coturn with per-session TURN REST credentials', { timeout: 150_000 }, async (t) => {
  if (skipReason) {
    t.skip(skipReason);
    return;
  }
  const pages = { 'turn-publish': null };
  const ctx = { server, pages, events: pageEvents };
  const result = { passed: false, namespace: browsers.inNamespace ? NS : null, viewers: {} };
  try {
    // The TURN Link header, as a client sees it.
    const res = await fetch(`${server.base}/whep/${ROOM}`, { method: 'OPTIONS' });
    assert.ok(!(res.headers.get('link') || '').includes('turn:'), 'an open server gives TURN credentials with a 201 only');

    pages['turn-publish'] = await browsers.host.context.newPage();
    instrument(pages['turn-publish'], 'publish', pageEvents);
    await pages['turn-publish'].goto(`${server.base}/publish?room=${ROOM}&autostart=1&simulcast=0&width=640&height=360`, { timeout: 15_000 });
    await waitForHook(pages['turn-publish'], 'publisher sends frames', (h) => h.state === 'connected' && h.stats?.framesEncoded > 0, TIMEOUT_MS, ctx);

    const viewers = browsers.inNamespace ? [['turn-relay', '&relay=1'], ['turn-fallback', '']] : [['turn-relay', '&relay=1']];
    for (const [name, query] of viewers) {
      result.viewers[name] = await watchThroughTurn(name, query, ctx);
      console.log(`  ${name}: ${JSON.stringify(result.viewers[name])}`);
    }
    const allocations = turn.log.filter((l) => /ALLOCATE processed, success/.test(l)).length;
    const usernames = [...new Set(turn.log.flatMap((l) => [...l.matchAll(/username=<(\d+:[A-Za-z0-9._~-]+)>/g)].map((m) => m[1])))];
    const metrics = await (await fetch(`${server.base}/metrics`)).text();
    const issued = Number(/^switchboard_turn_credentials_issued_total\{method="post"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
    Object.assign(result, { allocations, usernames, issued });
    console.log(`  coturn: ${allocations} allocations, usernames ${usernames.join(', ')}; switchboard issued ${issued}`);

    const info = async () => `\n${JSON.stringify(result, null, 2)}\n${await diagnostics(pages, pageEvents, server)}`;
    for (const [name, v] of Object.entries(result.viewers)) {
      assert.equal(v.localCandidateType, 'relay', `${name}: the selected pair's local candidate is not relay${await info()}`);
      assert.ok(v.fps >= MIN_FPS, `${name}: ${v.fps} fps < ${MIN_FPS} through TURN${await info()}`);
      assert.equal(v.state, 'connected', `${name} is not connected${await info()}`);
    }
    const viewerCount = Object.keys(result.viewers).length;
    assert.ok(allocations >= viewerCount, `coturn logged ${allocations} allocations${await info()}`);
    // one per POST: the publisher's and the viewers'
    assert.equal(issued, viewerCount + 1, `switchboard_turn_credentials_issued_total${await info()}`);
    const expiry = Number(usernames[0]?.split(':')[0]);
    assert.ok(expiry > Date.now() / 1000 + 500 && expiry < Date.now() / 1000 + 700, `the username's expiry is now + --turn-ttl 10m: ${usernames[0]}`);
    result.passed = true;
  } catch (err) {
    result.error = err.message.split('\n')[0];
    throw err;
  } finally {
    await screenshots(pages);
    result.pageEvents = pageEvents;
    fs.writeFileSync(path.join(artifactsDir, 'turn.json'), `${JSON.stringify(result, null, 2)}\n`);
    await stopPages(Object.values(pages));
  }
});

// End-to-end (issue 14): a node drained with SIGTERM, and the room page moves its
// participants to another node with no user action.
//
//   cd tests/e2e && npm test -- drain.test.mjs      (no root needed; needs redis-server)
//
// Set-up, all on loopback: a `redis-server` on a free port (`--save '' --appendonly no`),
// two switchboard nodes A and B sharing it as their room directory (`--redis-url`,
// `--node-id`, `--internal-addr`, one `--internal-secret`, `--drain-timeout 30s`), and in
// front of them a small HTTP reverse proxy in this file that plays the load balancer of a
// real deployment (a Kubernetes Service sends new connections only to ready pods): it
// polls each node's `/readyz` every 200 ms and forwards every request to the first ready
// node, A before B. The pages load and POST through that one origin
// (http://127.0.0.1:PROXY, a secure context, so the fake camera works); media goes
// straight to the node that owns the session (its candidate, 127.0.0.1).
//
// p1 and p2 open /room/drain?name=pN&autojoin=1&width=640&height=360&fps=15&mic=0 while
// only A runs, so the room opens on A; B starts after they joined. The test asserts that each plays the other
// (the other's tile decodes frames) and that their WHIP and WHEP resource URLs name A
// (/n/drain-a/...). Then SIGTERM to A, and nothing on the pages. Asserted:
//
// - within MEDIA_LIMIT_MS of the signal, each page's WHIP and WHEP URLs name B
//   (/n/drain-b/...) and it decodes the other's video again (the other's tile gains
//   frames between two samples that both see a WHEP session on B);
// - B's /api/rooms lists the room with both participants;
// - A exits by itself, status 0, because its last session ended ("drained: no session
//   left" in its log), well before its 30 s drain timeout.
//
// Why MEDIA_LIMIT_MS = 15 s: the page waits the `reconnect` event's retryAfter (5 s) plus
// up to 1 s of jitter before its new sessions (docs/conference.md); A gives up the
// room's claim at its first membership tick after the signal (every 1.25 s, long before
// that); then a WHEP POST, a WHIP POST (camera, simulcast), ICE and DTLS on loopback and
// a keyframe take about 1–2 s, and the other page moves within its own jitter. About
// 7–9 s is expected; 15 s leaves room for a loaded machine, and stays below the 30 s
// drain timeout, so a move that only happens when A gives up at the timeout (A keeping
// the room, the pages sent back to it) fails.
//
// Prints the time from SIGTERM to media again per page and writes it to
// artifacts/e2e/drain.json, with the logs drain-a.log, drain-b.log. Skipped, saying why,
// without redis-server. Redis, both nodes, the proxy and the browsers are stopped in
// `after`, and on exit and SIGINT/SIGTERM.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import {
  artifactsDir, checkPrerequisites, freeTcpPort, freeUdpPort, sleep, Server, launchBrowser, instrument,
} from './lib.mjs';

const ROOM = 'drain';
const NAMES = ['p1', 'p2'];
const NODES = ['drain-a', 'drain-b'];
const SECRET = 'drain-e2e-secret-0123456789abcdef';
const CAPTURE = 'width=640&height=360&fps=15&mic=0';
const DRAIN_TIMEOUT_S = 30;
const JOIN_TIMEOUT_MS = 30_000;
const MEDIA_LIMIT_MS = 15_000;
const EXIT_LIMIT_MS = 10_000;
const READY_POLL_MS = 200;

const redisMissing = spawnSync('redis-server', ['--version']).error
  ? 'redis-server not found (scripts/install-test-deps.sh installs it)'
  : false;

const nodes = { a: new Server(), b: new Server() };
const pageEvents = [];
const browsers = [];
let redis = null;
let redisUrl = null;
let proxy = null;
let proxyBase = null;
let pollTimer = null;
/** Readiness of A and B as last polled (`/readyz` 200). */
const ready = { a: false, b: false };
/** Which node each proxied request went to, with its method and path (the last ones). */
const routed = [];

function killRedis() {
  if (redis && redis.exitCode == null && redis.signalCode == null) redis.kill('SIGKILL');
}

function stopProxy() {
  clearInterval(pollTimer);
  pollTimer = null;
  proxy?.closeAllConnections?.();
  proxy?.close();
  proxy = null;
}

process.on('exit', killRedis);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    stopProxy();
    killRedis();
    for (const n of Object.values(nodes)) if (n.proc && !n.exited) n.proc.kill('SIGKILL');
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });
}

async function startRedis() {
  const port = await freeTcpPort();
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const deadline = Date.now() + 5000;
  for (;;) {
    const up = await new Promise((resolve) => {
      const s = new net.Socket();
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
      s.connect(port, '127.0.0.1');
    });
    if (up) break;
    assert.ok(Date.now() < deadline, 'redis-server did not come up within 5 s');
    await sleep(50);
  }
  return `redis://127.0.0.1:${port}/`;
}

async function startNode(key, id, redisUrl) {
  const httpPort = await freeTcpPort();
  let udpPort = await freeUdpPort();
  while (udpPort === httpPort) udpPort = await freeUdpPort();
  let internalPort = await freeTcpPort();
  while (internalPort === httpPort) internalPort = await freeTcpPort();
  const server = nodes[key];
  server.start([
    '--http-addr', `127.0.0.1:${httpPort}`, '--udp-addr', `127.0.0.1:${udpPort}`, '--tcp-addr', '127.0.0.1:0',
    '--public-ip', '127.0.0.1', '--redis-url', redisUrl, '--node-id', id,
    '--internal-addr', `127.0.0.1:${internalPort}`, '--internal-secret', SECRET,
    '--drain-timeout', `${DRAIN_TIMEOUT_S}s`,
  ], `http://127.0.0.1:${httpPort}`, { logFile: path.join(artifactsDir, `${id}.log`) });
  server.port = httpPort;
  await server.waitForLivez();
}

async function pollReadiness() {
  await Promise.all(Object.entries(nodes).map(async ([key, n]) => {
    if (!n.proc || n.exited) {
      ready[key] = false;
      return;
    }
    try {
      ready[key] = (await fetch(`${n.base}/readyz`, { signal: AbortSignal.timeout(500) })).status === 200;
    } catch {
      ready[key] = false;
    }
  }));
}

/** The load balancer: each request to the first ready node (A, then B); 503 without one. */
async function startProxy() {
  await pollReadiness();
  pollTimer = setInterval(pollReadiness, READY_POLL_MS);
  proxy = http.createServer((req, res) => {
    const key = ['a', 'b'].find((k) => ready[k]);
    if (!key) {
      res.writeHead(503, { 'retry-after': '1', 'content-type': 'text/plain' });
      res.end('no ready node\n');
      return;
    }
    routed.push(`${key} ${req.method} ${req.url}`);
    if (routed.length > 200) routed.splice(0, routed.length - 200);
    const up = http.request({
      host: '127.0.0.1', port: nodes[key].port, method: req.method, path: req.url, headers: req.headers,
    }, (upRes) => {
      res.writeHead(upRes.statusCode, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`upstream ${key}: ${err.message}\n`);
    });
    // a client that goes away (a closed event stream) ends the upstream request too
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxyBase = `http://127.0.0.1:${proxy.address().port}`;
}

before(async () => {
  if (redisMissing) return;
  checkPrerequisites();
  redisUrl = await startRedis();
  // B starts once the room lives on A (see the test)
  await startNode('a', NODES[0], redisUrl);
  await startProxy();
  for (const name of NAMES) browsers.push(await launchBrowser({ prefix: `switchboard-e2e-drain-${name}-` }));
}, { timeout: 60_000 });

after(async () => {
  await Promise.all(browsers.map((b) => b.close()));
  stopProxy();
  await Promise.all(Object.values(nodes).map((n) => n.stop()));
  killRedis();
}, { timeout: 30_000 });

/** A plain copy of the page's window.switchboardRoom, or { unavailable }. */
async function roomOf(page) {
  try {
    return await page.evaluate(() => (window.switchboardRoom ? JSON.parse(JSON.stringify(window.switchboardRoom)) : null));
  } catch (err) {
    return { unavailable: err.message };
  }
}

async function diagnostics(pages) {
  const parts = [];
  for (const [name, page] of Object.entries(pages)) {
    const h = await roomOf(page);
    if (h?.events) h.events = `${h.events.length} events, last: ${h.events.slice(-12).join(',')}`;
    parts.push(`${name}: ${JSON.stringify(h)}`);
  }
  parts.push(`readiness: ${JSON.stringify(ready)}`);
  parts.push(`proxied (last):\n  ${routed.slice(-20).join('\n  ')}`);
  parts.push(`page events:\n  ${pageEvents.slice(-40).join('\n  ') || '(none)'}`);
  parts.push(`A log (tail):\n${nodes.a.logTail(25)}`);
  parts.push(`B log (tail):\n${nodes.b.logTail(25)}`);
  return parts.join('\n');
}

/** The most frames decoded in a tile of `identity` (camera), or 0. */
function framesOf(h, identity) {
  let n = 0;
  for (const t of h?.tiles ?? []) if (t.identity === identity && t.source !== 'screen') n = Math.max(n, t.framesDecoded ?? 0);
  return n;
}

const other = (name) => NAMES.find((n) => n !== name);
const onNode = (url, id) => typeof url === 'string' && new URL(url).pathname.startsWith(`/n/${id}/`);

/**
 * Samples every page every 200 ms until each is on node `id` (WHIP and WHEP URLs) and
 * decodes the other participant (its tile's frames grow between two samples that both
 * are on `id`). Resolves { name: ms since `since` }; fails with diagnostics after limitMs.
 */
async function waitPlayingOn(pages, id, what, since, limitMs) {
  const done = {};
  const last = {};
  while (performance.now() - since < limitMs) {
    for (const name of NAMES) {
      if (done[name] != null) continue;
      const h = await roomOf(pages[name]);
      const urls = h?.sessionUrls ?? {};
      const here = h?.state === 'joined' && onNode(urls.whep, id) && onNode(urls.whip, id);
      const frames = framesOf(h, other(name));
      const prev = last[name];
      if (here && prev?.here && prev.whep === urls.whep && frames > prev.frames) {
        done[name] = Math.round(performance.now() - since);
      }
      last[name] = { here, whep: urls.whep, frames };
    }
    if (NAMES.every((n) => done[n] != null)) return done;
    if (nodes.b.exited) break;
    await sleep(200);
  }
  assert.fail(`${what}: not within ${limitMs} ms (done: ${JSON.stringify(done)}, last: ${JSON.stringify(last)})\n${await diagnostics(pages)}`);
}

test('SIGTERM on the room\'s node: the room page moves both participants to the other node', {
  skip: redisMissing,
  timeout: 120_000,
}, async () => {
  const pages = {};
  for (const [i, name] of NAMES.entries()) {
    const page = await browsers[i].context.newPage();
    instrument(page, name, pageEvents);
    pages[name] = page;
  }
  const started = performance.now();
  for (const name of NAMES) {
    await pages[name].goto(`${proxyBase}/room/${ROOM}?name=${name}&autojoin=1&${CAPTURE}`, { timeout: 15_000 });
  }
  const joined = await waitPlayingOn(pages, NODES[0], 'both participants play each other on A', started, JOIN_TIMEOUT_MS);
  console.log(`joined on A, playing each other: ${JSON.stringify(joined)} ms after the first page load`);
  // Now B: a new room goes to the least loaded node, and two first POSTs of a new room
  // that race may be placed apart (one then refused), so the room opened with A alone.
  await startNode('b', NODES[1], redisUrl);
  // B's record in the directory and in the proxy's view: a heartbeat period and a margin
  await sleep(1500);
  assert.ok(ready.b, `B not ready\n${nodes.b.logTail(20)}`);

  const exitedAt = new Promise((resolve) => nodes.a.proc.once('exit', () => resolve(performance.now())));
  const sigterm = performance.now();
  nodes.a.proc.kill('SIGTERM');
  const media = await waitPlayingOn(pages, NODES[1], 'both participants play each other again on B', sigterm, MEDIA_LIMIT_MS);
  const worst = Math.max(...Object.values(media));
  console.log(`SIGTERM on A → media again on B: ${NAMES.map((n) => `${n} ${media[n]} ms`).join(', ')}`);

  // B has the room with both participants (its room API, open mode)
  const rooms = await (await fetch(`${nodes.b.base}/api/rooms`)).json().catch((e) => ({ error: e.message }));
  const list = Array.isArray(rooms) ? rooms : rooms.rooms ?? [];
  const mine = list.find((r) => r.name === ROOM);
  assert.ok(mine, `B's /api/rooms does not list ${ROOM}: ${JSON.stringify(rooms)}`);
  assert.ok(mine.participants >= 2, `B's room ${ROOM} has ${mine.participants} participants: ${JSON.stringify(mine)}`);

  // A ends by itself once its last session left, long before its drain timeout
  const exitMs = await Promise.race([
    exitedAt.then((t) => Math.round(t - sigterm)),
    sleep(worst + EXIT_LIMIT_MS - (performance.now() - sigterm)).then(() => null),
  ]);
  assert.ok(exitMs != null, `A still running ${worst + EXIT_LIMIT_MS} ms after SIGTERM\n${await diagnostics(pages)}`);
  assert.equal(nodes.a.exited?.code, 0, `A's exit: ${JSON.stringify(nodes.a.exited)}`);
  assert.ok(nodes.a.log.some((l) => l.includes('drained: no session left')),
    `A did not say it drained (timeout?):\n${nodes.a.logTail(20)}`);
  console.log(`A exited by itself ${exitMs} ms after SIGTERM`);

  const final = {};
  for (const name of NAMES) final[name] = await roomOf(pages[name]);
  for (const name of NAMES) {
    assert.equal(final[name].state, 'joined', `${name}: ${JSON.stringify(final[name].state)}`);
    assert.ok(onNode(final[name].sessionUrls.whep, NODES[1]) && onNode(final[name].sessionUrls.whip, NODES[1]),
      `${name} not on B: ${JSON.stringify(final[name].sessionUrls)}`);
  }
  fs.writeFileSync(path.join(artifactsDir, 'drain.json'), JSON.stringify({
    figures: { sigtermToMediaMs: media, worstMs: worst, sigtermToExitMs: exitMs, limitMs: MEDIA_LIMIT_MS },
    bRoom: mine,
    pages: Object.fromEntries(NAMES.map((n) => [n, { sessionUrls: final[n].sessionUrls, events: final[n].events?.slice(-30) }])),
  }, null, 2));
});

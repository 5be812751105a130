// End-to-end: clients that reconnect (whip-whep.js, "Reconnecting"; docs/conference.md,
// "Reconnecting clients").
//
//   cd tests/e2e && sudo npm test      (needs root: ip netns)
//
// Network: the viewer's Chromium runs in network namespace sbr<pid>, joined to the host
// by a veth pair (host 10.217.0.1/24, namespace 10.217.0.2/24). The server advertises
// 10.217.0.1; the publisher is a Chromium on the host (camera: a secure origin,
// http://127.0.0.1).
//
// 1. The viewer's address changes mid-session (10.217.0.2 → 10.217.0.3): the old
//    5-tuple dies, the page's supervisor restarts ICE by PATCH (RFC 9725 §4.3.2) and
//    plays again within MAX_ICE_RESTART_MS of the change, on the same session (same
//    resource URL, no new POST).
// 2. The viewer's session is DELETEd behind its back (what a restarted node does to it):
//    the page's next request on it gets 404, it POSTs a new session to the same
//    endpoint and plays again within MAX_NEW_SESSION_MS, with a new resource URL.
// 3. The page asks for 7 ICE restarts in a row: 6 are made, the 7th gets 429 with a
//    Retry-After of 1-10 s (the per-session cap), which the page's error carries
//    (retryAfterS, honoured by the supervisor); the session goes on and plays.
// Prints the measured times (change → first decoded frame) and writes them to
// artifacts/e2e/reconnect.json. Skipped, saying why, when not root or without ip.
// DEBUG_WEB_FROM_DISK=1 serves web/assets/*.js from the working tree instead of the
// binary (no rebuild while working on the pages).
//
// Case 1 needs the server to ask for keyframes when ICE is back after a restart
// (src/session/participant/events.rs): without, Chromium waits ~3 s for its own PLI.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  artifactsDir, repoRoot, checkPrerequisites, freeTcpPort, freeUdpPort, sleep,
  Server, launchBrowser, instrument, hookOf, waitForHook, stopPages, diagnostics,
} from './lib.mjs';
import { IP, Network, run } from './netns.mjs';

const NS = `sbr${process.pid}`;
const VETH = { ns: NS, hostIf: `${NS}h`, nsIf: `${NS}n`, hostIp: '10.217.0.1', nsIp: '10.217.0.2', nsIp2: '10.217.0.3' };
const ROOM = 'reconnect';
const CONNECT_TIMEOUT_MS = 25_000;
const MAX_ICE_RESTART_MS = 3000;
const MAX_NEW_SESSION_MS = 5000;

const net = new Network('sbr');

let skipReason = null;
let hostBrowser = null;
let nsBrowser = null;
let server = null;
const events = [];
const pages = { publisher: null, viewer: null };
const ctx = { server: null, pages, events };
const figures = {};

function setUp() {
  skipReason = net.skipReason(['ip']);
  if (skipReason) return;
  net.removeStale();
  try {
    net.addNamespace({ ...VETH, prefixLen: 24 });
  } catch (err) {
    skipReason = err.message;
  }
}

before(async () => {
  checkPrerequisites();
  setUp();
  if (skipReason) return;
  hostBrowser = await launchBrowser();
  nsBrowser = await launchBrowser({ executablePath: net.chromium(NS), prefix: 'switchboard-e2e-reconnect-ns-' });
  if (process.env.DEBUG_WEB_FROM_DISK) {
    for (const b of [hostBrowser, nsBrowser]) {
      await b.context.route(/\/assets\/[a-z-]+\.js$/, (route) => {
        const file = path.join(repoRoot, 'web', 'assets', new URL(route.request().url()).pathname.split('/').pop());
        route.fulfill({ contentType: 'text/javascript', body: fs.readFileSync(file, 'utf8') });
      });
    }
  }

  const httpPort = await freeTcpPort('0.0.0.0');
  const udpPort = await freeUdpPort('0.0.0.0');
  server = new Server();
  ctx.server = server;
  server.start(
    [
      '--http-addr', `0.0.0.0:${httpPort}`, '--udp-addr', `0.0.0.0:${udpPort}`,
      '--tcp-addr', '127.0.0.1:0', '--public-ip', VETH.hostIp,
    ],
    `http://${VETH.hostIp}:${httpPort}`,
  );
  await server.waitForLivez();
  pages.publisher = await hostBrowser.context.newPage();
  instrument(pages.publisher, 'publisher', events);
  // on localhost: browsers give camera access only to secure origins
  await pages.publisher.goto(`http://127.0.0.1:${httpPort}/publish?room=${ROOM}&autostart=1&simulcast=0`, { timeout: 15_000 });
  await waitForHook(pages.publisher, 'publisher connects', (h) => h.state === 'connected', CONNECT_TIMEOUT_MS, ctx);
  pages.viewer = await nsBrowser.context.newPage();
  instrument(pages.viewer, 'viewer', events);
  await pages.viewer.goto(`${server.base}/watch?room=${ROOM}&autostart=1`, { timeout: 15_000 });
  await waitForHook(pages.viewer, 'viewer decodes', (h) => h.state === 'connected' && (h.stats?.framesDecoded ?? 0) > 0, CONNECT_TIMEOUT_MS, ctx);
}, { timeout: 90_000 });

after(async () => {
  await stopPages([pages.viewer, pages.publisher]);
  await pages.viewer?.close().catch(() => {});
  await pages.publisher?.close().catch(() => {});
  await hostBrowser?.close();
  await nsBrowser?.close();
  if (server) {
    await server.stop();
    server.writeLog(path.join(artifactsDir, 'reconnect.log'));
  }
  net.tearDown();
  if (Object.keys(figures).length) fs.writeFileSync(path.join(artifactsDir, 'reconnect.json'), JSON.stringify(figures, null, 2));
}, { timeout: 30_000 });

/** WHEP POSTs of the viewer answered 201 so far. */
const posts = () => events.filter((e) => /^viewer POST \/whep\/[^/]+ -> 201$/.test(e)).length;

const pageNow = (page) => page.evaluate(() => performance.now());

/** Decoded frames keep increasing on the viewer over `ms` (per the 1 s stats samples). */
async function assertPlaying(what, ms = 2500) {
  const a = await hookOf(pages.viewer);
  await sleep(ms);
  const b = await hookOf(pages.viewer);
  assert.ok(
    b.stats?.framesDecoded > (a.stats?.framesDecoded ?? 0) && b.stats.at > a.stats.at,
    `${what}: the viewer does not decode any more (${a.stats?.framesDecoded} → ${b.stats?.framesDecoded})\n${await diagnostics(pages, events, server)}`,
  );
}

test('a viewer whose address changes restarts ICE by PATCH and plays on, same session', { timeout: 60_000 }, async (t) => {
  if (skipReason) return t.skip(skipReason);
  await assertPlaying('before the change', 1500);
  const before = await hookOf(pages.viewer);
  const postsBefore = posts();
  const changedAt = await pageNow(pages.viewer);
  run(IP, ['-n', NS, 'addr', 'del', `${VETH.nsIp}/24`, 'dev', VETH.nsIf]);
  run(IP, ['-n', NS, 'addr', 'add', `${VETH.nsIp2}/24`, 'dev', VETH.nsIf]);
  const after = await waitForHook(
    pages.viewer, 'the viewer reconnects', (h) => h.reconnects > before.reconnects && h.reconnectState === 'connected', 20_000, ctx,
  );
  const ms = Math.round(after.lastReconnect.resumedAt - changedAt);
  figures.iceRestart = { changeToFramesMs: ms, ...after.lastReconnect };
  console.log(`address change → frames again: ${ms} ms (${JSON.stringify(after.lastReconnect)})`);
  assert.equal(after.lastReconnect.kind, 'ice-restart', `not an ICE restart: ${JSON.stringify(after.lastReconnect)}`);
  assert.equal(after.location, before.location, 'the session resource changed: a new POST instead of an ICE restart');
  assert.notEqual(after.etag, before.etag, 'the ETag did not change: no ICE restart was applied');
  assert.ok(
    events.some((e) => /^viewer PATCH \/whep\/.* -> 200$/.test(e)),
    `no PATCH answered 200 in the page events:\n${events.join('\n')}`,
  );
  assert.equal(posts(), postsBefore, 'the viewer POSTed a new session');
  assert.ok(ms <= MAX_ICE_RESTART_MS, `frames again ${ms} ms after the address change, want <= ${MAX_ICE_RESTART_MS}\n${await diagnostics(pages, events, server)}`);
  await assertPlaying('after the ICE restart');
});

test('a viewer whose session is gone (404) POSTs a new one and plays on', { timeout: 60_000 }, async (t) => {
  if (skipReason) return t.skip(skipReason);
  const before = await hookOf(pages.viewer);
  assert.equal(before.reconnectState, 'connected');
  const location = new URL(before.location);
  const deletedAt = await pageNow(pages.viewer);
  const response = await fetch(`${server.base}${location.pathname}`, { method: 'DELETE' });
  assert.ok(response.ok, `DELETE ${location.pathname}: HTTP ${response.status}`);
  const after = await waitForHook(
    pages.viewer, 'the viewer sets up a new session',
    (h) => h.reconnects > before.reconnects && h.reconnectState === 'connected' && h.lastReconnect?.kind === 'new-session',
    20_000, ctx,
  );
  const ms = Math.round(after.lastReconnect.resumedAt - deletedAt);
  figures.newSession = { deleteToFramesMs: ms, ...after.lastReconnect };
  console.log(`session DELETEd → frames again on a new session: ${ms} ms (${JSON.stringify(after.lastReconnect)})`);
  assert.notEqual(after.location, before.location, 'the resource URL did not change');
  assert.ok(ms <= MAX_NEW_SESSION_MS, `frames again ${ms} ms after the DELETE, want <= ${MAX_NEW_SESSION_MS}\n${await diagnostics(pages, events, server)}`);
  await assertPlaying('on the new session');
});

test('a viewer past the ICE restart budget is told when to come back (429, Retry-After) and plays on', { timeout: 60_000 }, async (t) => {
  if (skipReason) return t.skip(skipReason);
  const before = await hookOf(pages.viewer);
  // The session of the test before is new: its budget (6 restarts in 10 s) is whole.
  const outcomes = await pages.viewer.evaluate(async () => {
    const out = [];
    for (let i = 0; i < 7; i++) {
      try {
        await window.switchboard.restartIce();
        out.push({ ok: true });
      } catch (err) {
        out.push({ ok: false, status: err?.status, retryAfterS: err?.retryAfterS ?? null, message: String(err?.message ?? err) });
      }
    }
    return out;
  });
  figures.restartBudget = outcomes;
  console.log(`7 ICE restarts in a row: ${JSON.stringify(outcomes)}`);
  assert.deepEqual(outcomes.slice(0, 6).map((o) => o.ok), [true, true, true, true, true, true], JSON.stringify(outcomes));
  const last = outcomes[6];
  assert.equal(last.status, 429, JSON.stringify(last));
  assert.ok(last.retryAfterS >= 1 && last.retryAfterS <= 10, `Retry-After ${last.retryAfterS}`);
  const after = await hookOf(pages.viewer);
  assert.equal(after.location, before.location, 'the session resource changed');
  await assertPlaying('after the refused restart');
});

// End-to-end: a page turned away because the server is full comes back by itself. The
// server runs with --max-sessions 2: a publisher and a first viewer fill it, a second
// viewer's WHEP POST gets 503 with Retry-After (RFC 9110 §10.2.3), the first viewer
// leaves, and the second viewer's page sends its offer again after Retry-After
// (web/assets/session.js, negotiate) and plays, without anybody reloading it.
//
//   cd tests/e2e && node --test busy.test.mjs
//
// Asserts: the second viewer's first POST is answered 503 and a later one 201; it then
// decodes frames; its page never reports "failed". Prints the time from the 503 to the
// first decoded frame. Artifacts: <repo>/artifacts/e2e/busy-server.log.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  artifactsDir, Server, startOnLoopback, instrument, waitForHook, stopPages,
} from './lib.mjs';

const ROOM = 'e2e-busy';
/** Time limits, ms: to connect; for the turned-away viewer (Retry-After is 10 s). */
const ms = { connect: 20_000, comeBack: 25_000 };

const server = new Server();
const events = [];
let browser = null;

before(async () => {
  browser = await startOnLoopback(server, {}, ['--max-sessions', '2']);
}, { timeout: 60_000 });

after(async () => {
  await browser?.close();
  await server.stop();
  server.writeLog(path.join(artifactsDir, 'busy-server.log'));
}, { timeout: 30_000 });

test('a viewer turned away with 503 and Retry-After comes back by itself and plays', { timeout: 90_000 }, async () => {
  const pages = { publisher: null, first: null, second: null };
  const ctx = { server, pages, events };
  try {
    pages.publisher = await browser.context.newPage();
    instrument(pages.publisher, 'publisher', events);
    await pages.publisher.goto(`${server.base}/publish?room=${ROOM}&autostart=1&simulcast=0`, { timeout: 15_000 });
    await waitForHook(pages.publisher, 'publisher connects', (h) => h.state === 'connected', ms.connect, ctx);
    pages.first = await browser.context.newPage();
    instrument(pages.first, 'first', events);
    await pages.first.goto(`${server.base}/watch?room=${ROOM}&autostart=1`, { timeout: 15_000 });
    await waitForHook(pages.first, 'first viewer decodes', (h) => (h.stats?.framesDecoded ?? 0) > 0, ms.connect, ctx);

    pages.second = await browser.context.newPage();
    instrument(pages.second, 'second', events);
    await pages.second.goto(`${server.base}/watch?room=${ROOM}&autostart=1`, { timeout: 15_000 });
    const deadline = Date.now() + ms.connect;
    while (!events.some((e) => /^second POST \/whep\/.* -> 503$/.test(e)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(events.some((e) => /^second POST \/whep\/.* -> 503$/.test(e)), `the full server did not answer 503:\n${events.join('\n')}`);
    const turnedAway = Date.now();
    await stopPages([pages.first]);

    const played = await waitForHook(
      pages.second, 'the turned-away viewer decodes', (h) => (h.stats?.framesDecoded ?? 0) > 0, ms.comeBack, ctx,
    );
    const seconds = ((Date.now() - turnedAway) / 1000).toFixed(1);
    console.log(`  503 -> frames on the turned-away viewer after ${seconds} s (Retry-After 10 s)`);
    const posts = events.filter((e) => e.startsWith('second POST'));
    assert.deepEqual(posts.map((e) => e.split(' -> ')[1]), ['503', '201'], posts.join('\n'));
    assert.notEqual(played.state, 'failed');
  } finally {
    await stopPages([pages.second, pages.first, pages.publisher]);
  }
});

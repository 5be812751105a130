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
// After the measurement window the viewer restarts ICE (window.switchboard.restartIce():
// PATCH of new credentials, RFC 9725 §4.3.2) and must decode 30 more frames within 5 s
// on the same session, with a new ETag.
//
// The pages expose window.switchboard = { state, stats, error, firstFrameMs, ... }
// (documented in web/assets/ui.js); this test reads only that hook.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  repoRoot, serverBin, artifactsDir, cpuSeconds, round, sleep,
  Server, startOnLoopback, instrument, hookOf, diagnostics, waitForHook, screenshots, stopPages,
} from './lib.mjs';

const sampleSeconds = Number(process.env.E2E_SAMPLE_SECONDS || 10);

const ROOM = 'e2e';
const MIN_FPS = 20;
const CONNECT_TIMEOUT_MS = 20_000;
/** After an ICE restart, this many more frames must be decoded … */
const RESTART_FRAMES = 30;
/** … within this time of its start. */
const RESTART_TIMEOUT_MS = 5_000;
const FIRST_FRAME_TIMEOUT_MS = 20_000;
// One encoding (simulcast=0): this test covers the plain path, where the viewer
// gets exactly what the publisher sends; simulcast-bwe.test.mjs covers layers.
const PUBLISH_QUERY = `room=${ROOM}&autostart=1&simulcast=0`;

const server = new Server();
const pageEvents = [];
let browser = null;

before(async () => {
  browser = await startOnLoopback(server);
}, { timeout: 60_000 });

after(async () => {
  await browser?.close();
  await server.stop();
  server.writeLog(path.join(artifactsDir, 'server.log'));
}, { timeout: 30_000 });

test('browser publishes over WHIP and another browser plays it over WHEP', { timeout: 100_000 }, async () => {
  const pages = { publisher: null, viewer: null };
  const ctx = { server, pages, events: pageEvents };
  const result = {
    passed: false,
    room: ROOM,
    serverBin: path.relative(repoRoot, serverBin) || serverBin,
    browser: null,
    sampleSeconds,
  };
  try {
    // publisher
    pages.publisher = await browser.context.newPage();
    instrument(pages.publisher, 'publish', pageEvents);
    result.browser = await pages.publisher.evaluate(() => navigator.userAgent);
    await pages.publisher.goto(`${server.base}/publish?${PUBLISH_QUERY}`, { timeout: 15_000 });
    await waitForHook(pages.publisher, 'publisher connects', (h) => h.state === 'connected', CONNECT_TIMEOUT_MS, ctx);
    const pubStats = await waitForHook(
      pages.publisher, 'publisher encodes frames',
      (h) => h.stats?.framesEncoded > 0 && h.stats?.frameWidth > 0, CONNECT_TIMEOUT_MS, ctx,
    );
    result.publisherWhip = pubStats.location ? new URL(pubStats.location).pathname : null;

    // viewer
    pages.viewer = await browser.context.newPage();
    instrument(pages.viewer, 'watch', pageEvents);
    await pages.viewer.goto(`${server.base}/watch?room=${ROOM}&autostart=1`, { timeout: 15_000 });
    await waitForHook(pages.viewer, 'viewer connects', (h) => h.state === 'connected', CONNECT_TIMEOUT_MS, ctx);
    const first = await waitForHook(
      pages.viewer, 'viewer decodes a first frame (no video arrived)',
      (h) => h.firstFrameMs != null, FIRST_FRAME_TIMEOUT_MS, ctx,
    );
    result.firstFrameMs = first.firstFrameMs;

    // a sample that already counts decoded frames starts the window
    const start = await waitForHook(
      pages.viewer, 'viewer stats report decoded frames',
      (h) => h.stats?.framesDecoded > 0, 5_000, ctx,
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

    const info = async () => `\n${await diagnostics(pages, pageEvents, server)}`;
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

    // ICE restart by the viewer (RFC 9725 §4.3.2): new credentials PATCHed with
    // If-Match, the server's fragment applied. The server flushes its old candidate
    // pairs, so frames decoded afterwards came over the restarted ICE session; the
    // session (its URL) stays, its ETag changes.
    const beforeRestart = await hookOf(pages.viewer);
    const restartStart = Date.now();
    const restartError = await pages.viewer.evaluate(() => window.switchboard.restartIce().then(() => null, (e) => String(e?.message || e)));
    result.iceRestartMs = Date.now() - restartStart;
    assert.equal(restartError, null, `ICE restart failed: ${restartError}${await info()}`);
    let afterRestart = await hookOf(pages.viewer);
    const framesGoal = beforeRestart.stats.framesDecoded + RESTART_FRAMES;
    const restartDeadline = Date.now() + RESTART_TIMEOUT_MS;
    while (Date.now() < restartDeadline && afterRestart.stats.framesDecoded < framesGoal) {
      await sleep(100);
      afterRestart = await hookOf(pages.viewer);
    }
    result.framesAfterRestartMs = Date.now() - restartStart;
    console.log(`  ICE restart: PATCH and new remote description in ${result.iceRestartMs} ms, ${RESTART_FRAMES} more frames decoded ${result.framesAfterRestartMs} ms after it began (ETag ${beforeRestart.etag} -> ${afterRestart.etag})`);
    assert.ok(afterRestart.stats.framesDecoded >= framesGoal, `fewer than ${RESTART_FRAMES} frames decoded within ${RESTART_TIMEOUT_MS} ms of the ICE restart${await info()}`);
    assert.equal(afterRestart.location, beforeRestart.location, 'the session resource changed');
    assert.notEqual(afterRestart.etag, beforeRestart.etag, 'the ETag did not change with the ICE restart');
    assert.equal(afterRestart.state, 'connected', `the viewer left the connected state: ${afterRestart.state}`);
    result.passed = true;
  } catch (err) {
    result.error = err.message.split('\n')[0];
    throw err;
  } finally {
    await screenshots({ publish: pages.publisher, watch: pages.viewer });
    result.publisherHook = pages.publisher ? await hookOf(pages.publisher) : null;
    result.viewerHook = pages.viewer ? await hookOf(pages.viewer) : null;
    result.pageEvents = pageEvents;
    fs.writeFileSync(path.join(artifactsDir, 'publish-watch.json'), JSON.stringify(result, null, 2) + '\n');
    // DELETE both sessions while the server still runs
    await stopPages([pages.viewer, pages.publisher]);
  }
});

// End-to-end: a viewer's layer requests (the WHEP layer extension) in Chromium — capped
// to VP8 temporal layers (RFC 7741 TID) it keeps decoding, and capped by frame size it
// gets the layer that fits.
//
// A Chromium page publishes the fake camera with three simulcast encodings (VP8, three
// temporal layers each); a second page watches it. The test then pins the viewer to the
// top encoding at TID 0 (a quarter of the frame rate), at TID ≤ 1 (half), and back to
// automatic, through the WHEP layer extension. Every dropped frame leaves a hole in the
// publisher's VP8 PictureIDs; unless the server renumbers what it forwards, Chrome's
// receiver waits for the missing pictures and the video stalls. Checked per step: the
// decoded frame rate is the capped one, nothing freezes, and the server reports the cap.
// Then `{"maxWidth": 640}` (a small tile): the viewer decodes 640x360 from the `h`
// encoding, and the server reports the layer's size from its keyframes.
//
// Artifacts: <repo>/artifacts/e2e/layer-requests.json and layers-*.png.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  artifactsDir, round, sleep,
  Server, startOnLoopback, instrument, hookOf, diagnostics, waitForHook, screenshots, stopPages,
} from './lib.mjs';

const ROOM = 'e2e-temporal';
const CONNECT_TIMEOUT_MS = 20_000;
const TOP_LAYER_TIMEOUT_MS = 30_000;
const SETTLE_MS = 2_000;
const SAMPLE_MS = 5_000;

// libwebrtc's three-layer VP8 pattern puts every fourth frame in TID 0 and every second
// in TID ≤ 1: the viewer must decode that share of what the publisher's top encoding
// sends, within a margin. (Without PictureID rewriting Chromium decodes about 0.38 of
// the frames at TID ≤ 1, not 0.5: it drops frames it cannot place.)
const STEPS = [
  { name: 'TID 0', body: { encodingId: 'f', temporalLayerId: 0 }, tid: 0, share: 0.25 },
  { name: 'TID 1', body: { encodingId: 'f', temporalLayerId: 1 }, tid: 1, share: 0.5 },
  { name: 'automatic', body: {}, tid: 2, share: 1 },
];
/** Decoded frame rate allowed, as a fraction of `share` × the publisher's rate. */
const MIN_RATIO = 0.85;
const MAX_RATIO = 1.2;

const server = new Server();
const pageEvents = [];
let browser = null;

before(async () => {
  browser = await startOnLoopback(server, { prefix: 'switchboard-e2e-layers-' });
}, { timeout: 60_000 });

after(async () => {
  await browser?.close();
  await server.stop();
  server.writeLog(path.join(artifactsDir, 'layers-server.log'));
}, { timeout: 30_000 });

/** POST a layer request from the viewer page (same origin as the server). */
async function setLayer(page, body) {
  return page.evaluate(async (b) => {
    const url = window.switchboard.layerUrl;
    const r = await fetch(url, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b),
    });
    return r.status;
  }, body);
}

test('layer requests: VP8 temporal caps decode at the capped rate without stalling, a size cap picks the layer that fits', { timeout: 120_000 }, async () => {
  const pages = { publisher: null, viewer: null };
  const ctx = { server, pages, events: pageEvents };
  const info = async () => `\n${await diagnostics(pages, pageEvents, server)}`;
  const result = { passed: false, steps: [] };
  try {
    pages.publisher = await browser.context.newPage();
    instrument(pages.publisher, 'publish', pageEvents);
    await pages.publisher.goto(`${server.base}/publish?room=${ROOM}&autostart=1`, { timeout: 15_000 });
    await waitForHook(pages.publisher, 'publisher connects', (h) => h.state === 'connected', CONNECT_TIMEOUT_MS, ctx);

    pages.viewer = await browser.context.newPage();
    instrument(pages.viewer, 'watch', pageEvents);
    await pages.viewer.goto(`${server.base}/watch?room=${ROOM}&autostart=1`, { timeout: 15_000 });
    await waitForHook(
      pages.viewer, 'viewer decodes the top layer',
      (h) => h.stats?.frameWidth >= 1280 && h.layerUrl, TOP_LAYER_TIMEOUT_MS, ctx,
    );

    for (const step of STEPS) {
      const status = await setLayer(pages.viewer, step.body);
      assert.equal(status, 204, `${step.name}: layer request answered ${status}${await info()}`);
      if (step.tid === 2) {
        // Back to automatic: while capped, the estimate sank toward the capped rate; the
        // allocator climbs back to the top layer at the estimator's pace.
        await waitForHook(
          pages.viewer, 'viewer back on the top layer at every temporal layer',
          (h) => h.layer?.currentLayer?.encodingId === 'f' && h.layer?.currentLayer?.temporalLayerId === 2,
          TOP_LAYER_TIMEOUT_MS, ctx,
        );
      }
      await sleep(SETTLE_MS);
      const start = await hookOf(pages.viewer);
      const pubStart = await hookOf(pages.publisher);
      await sleep(SAMPLE_MS);
      const end = await hookOf(pages.viewer);
      const pubEnd = await hookOf(pages.publisher);
      const topFps = (h) => (h.stats?.layers || []).find((l) => l.rid === 'f')?.fps ?? null;
      const sent = [topFps(pubStart), topFps(pubEnd)].filter((x) => x != null);
      const publisherFps = sent.length ? sent.reduce((a, b) => a + b, 0) / sent.length : 30;
      const expected = step.share * publisherFps;
      const seconds = (end.stats.at - start.stats.at) / 1000;
      const decoded = end.stats.framesDecoded - start.stats.framesDecoded;
      const fps = seconds > 0 ? decoded / seconds : 0;
      const measured = {
        step: step.name,
        request: step.body,
        fps: round(fps),
        publisherFps: round(publisherFps),
        expectedFps: round(expected),
        freezes: end.stats.freezeCount - start.stats.freezeCount,
        resolution: `${end.stats.frameWidth}x${end.stats.frameHeight}`,
        serverLayer: end.layer?.currentLayer ?? null,
        kbps: end.stats.bitrateKbps,
      };
      result.steps.push(measured);
      console.log(
        `  ${step.name}: ${measured.fps} fps (expected ${measured.expectedFps} of ` +
        `${measured.publisherFps}), ${measured.resolution}, ${measured.kbps} kbit/s, ` +
        `freezes +${measured.freezes}, server layer ${JSON.stringify(measured.serverLayer)}`,
      );
      assert.ok(
        fps >= MIN_RATIO * expected && fps <= MAX_RATIO * expected,
        `${step.name}: decoded ${round(fps)} fps, expected about ${round(expected)}${await info()}`,
      );
      assert.equal(measured.freezes, 0, `${step.name}: the video froze${await info()}`);
      assert.equal(
        measured.serverLayer?.temporalLayerId, step.tid,
        `${step.name}: the server forwards ${JSON.stringify(measured.serverLayer)}${await info()}`,
      );
    }

    // A size cap: the largest layer no wider than 640 px.
    const status = await setLayer(pages.viewer, { maxWidth: 640 });
    assert.equal(status, 204, `maxWidth: layer request answered ${status}${await info()}`);
    const capped = await waitForHook(
      pages.viewer, 'viewer decodes 640x360 under maxWidth 640',
      (h) => h.stats?.frameWidth === 640 && h.layer?.currentLayer?.encodingId === 'h',
      TOP_LAYER_TIMEOUT_MS, ctx,
    );
    result.sizeCap = { resolution: `${capped.stats.frameWidth}x${capped.stats.frameHeight}`, serverLayer: capped.layer.currentLayer };
    console.log(`  maxWidth 640: ${result.sizeCap.resolution}, server layer ${JSON.stringify(capped.layer.currentLayer)}`);
    assert.equal(capped.layer.currentLayer.width, 640, `server-reported width${await info()}`);
    assert.equal(capped.layer.currentLayer.height, 360, `server-reported height${await info()}`);
    assert.equal(capped.layer.maxWidth, 640, `stats maxWidth${await info()}`);
    result.passed = true;
  } finally {
    await screenshots({ 'layers-publish': pages.publisher, 'layers-watch': pages.viewer });
    fs.writeFileSync(path.join(artifactsDir, 'layer-requests.json'), JSON.stringify(result, null, 2) + '\n');
    await stopPages([pages.viewer, pages.publisher]);
  }
});

// End-to-end: record a Chromium simulcast publisher for 10 s.
//
// A page publishes the fake camera (VP8, three simulcast layers, Opus) over WHIP to
// a server started with --record-dir. Once every layer is encoding, the room API
// starts a recording; 10 s later it stops it. Every file must then read back with
// FFmpeg as the manifest describes it (recording.mjs): VP8 at the top layer's size
// and Opus, no decode error, each lasting within 0.3 s of its span on the wall
// clock, audio and video starting within 100 ms of each other.
//
// Environment: SWITCHBOARD_BIN, CHROMIUM_PATH as for publish-watch.test.mjs;
// E2E_RECORD_SECONDS (default 10).
//
// Artifacts in <repo>/artifacts/e2e/: record.json (figures) and record-server.log.

import { test, before, after } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  artifactsDir, sleep, Server, startOnLoopback, instrument, waitForHook, stopPages,
} from './lib.mjs';
import { startRecording, stopRecording, checkRecording } from './recording.mjs';

const ROOM = 'rec';
const SECONDS = Number(process.env.E2E_RECORD_SECONDS || 10);
const CONNECT_TIMEOUT_MS = 20_000;
const LAYERS = { q: [320, 180], h: [640, 360], f: [1280, 720] };

const server = new Server();
const pageEvents = [];
const recordDir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-record-'));
let browser = null;

before(async () => {
  fs.mkdirSync(artifactsDir, { recursive: true });
  browser = await startOnLoopback(server, {}, ['--record-dir', recordDir]);
}, { timeout: 60_000 });

after(async () => {
  await browser?.close();
  await server.stop();
  server.writeLog(path.join(artifactsDir, 'record-server.log'));
  fs.rmSync(recordDir, { recursive: true, force: true });
}, { timeout: 30_000 });

test(`a Chromium simulcast publisher is recorded for ${SECONDS} s into files FFmpeg reads`, { timeout: 90_000 }, async () => {
  const pages = { publisher: null };
  const ctx = { server, pages, events: pageEvents };
  const result = { passed: false, seconds: SECONDS };
  try {
    pages.publisher = await browser.context.newPage();
    instrument(pages.publisher, 'publish', pageEvents);
    await pages.publisher.goto(`${server.base}/publish?room=${ROOM}&autostart=1`, { timeout: 15_000 });
    await waitForHook(pages.publisher, 'publisher connects', (h) => h.state === 'connected', CONNECT_TIMEOUT_MS, ctx);
    const pub = await waitForHook(
      pages.publisher, 'publisher sends three layers',
      (h) => (h.stats?.layers || []).length === 3 && h.stats.layers.every((l) => l.framesEncoded > 0),
      CONNECT_TIMEOUT_MS, ctx,
    );
    result.publisherLayers = pub.stats.layers.map((l) => `${l.rid} ${l.frameWidth}x${l.frameHeight}`);

    const { url } = await startRecording(server.base, ROOM);
    await sleep(SECONDS * 1000);
    const info = await stopRecording(url);
    result.recording = checkRecording(info, recordDir, {
      video: 'vp8', audio: 'opus', sizes: Object.values(LAYERS),
    });
    result.passed = true;
  } finally {
    fs.writeFileSync(path.join(artifactsDir, 'record.json'), JSON.stringify(result, null, 2) + '\n');
    console.log(JSON.stringify(result, null, 2));
    await stopPages(Object.values(pages));
  }
});

// End-to-end over HTTPS: the server serves its pages and WHIP/WHEP with a self-signed
// certificate (--tls-cert, --tls-key; generated here with the openssl CLI), Chromium
// (with --ignore-certificate-errors) publishes the fake camera from
// https://127.0.0.1:PORT/publish and a second page plays it from /watch, both secure
// contexts.
//
//   cd tests/e2e && node --test https.test.mjs
//
// Asserts: /livez answers over https with that certificate; plain http to the port gets
// no answer; both pages are https:// secure contexts and the WHIP session URL is
// https://; the viewer decodes frames (FRAMES more after its first counted ones).
// Artifacts: <repo>/artifacts/e2e/https-*.png, https-server.log.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  artifactsDir, Server, startOnLoopback, instrument, diagnostics, waitForHook, screenshots, stopPages,
} from './lib.mjs';

const ROOM = 'e2e-https';
/** Frames the viewer must decode after its first counted ones, within `ms.frames`. */
const FRAMES = 60;
/** Time limits, ms. */
const ms = { connect: 20_000, firstFrame: 20_000, frames: 15_000 };

const server = new Server();
const pageEvents = [];
/** Chromium, and the directory of the generated certificate. */
let browser = null, certDir = null;

/** A self-signed P-256 certificate for 127.0.0.1, valid one day: { cert, key } paths. */
function selfSigned(dir) {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  return { cert, key };
}

before(async () => {
  certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-e2e-tls-'));
  const { cert, key } = selfSigned(certDir);
  server.ca = fs.readFileSync(cert);
  browser = await startOnLoopback(server, { extraArgs: ['--ignore-certificate-errors'] }, ['--tls-cert', cert, '--tls-key', key]);
}, { timeout: 60_000 });

after(async () => {
  await browser?.close();
  await server.stop();
  server.writeLog(path.join(artifactsDir, 'https-server.log'));
  if (certDir) fs.rmSync(certDir, { recursive: true, force: true });
}, { timeout: 30_000 });

test('plain http to the https port gets no answer', { timeout: 10_000 }, async () => {
  assert.ok(server.base.startsWith('https://'), server.base);
  const plain = server.base.replace('https://', 'http://');
  await assert.rejects(fetch(`${plain}/livez`, { signal: AbortSignal.timeout(5_000) }), 'plain http answered');
});

test('browser publishes over WHIP and another plays over WHEP, both on https', { timeout: 100_000 }, async () => {
  const pages = { publisher: null, viewer: null };
  const ctx = { server, pages, events: pageEvents };
  const info = async () => `\n${await diagnostics(pages, pageEvents, server)}`;
  try {
    pages.publisher = await browser.context.newPage();
    instrument(pages.publisher, 'publish', pageEvents);
    await pages.publisher.goto(`${server.base}/publish?room=${ROOM}&autostart=1&simulcast=0`, { timeout: 15_000 });
    const origin = await pages.publisher.evaluate(() => ({ protocol: location.protocol, secure: window.isSecureContext }));
    assert.deepEqual(origin, { protocol: 'https:', secure: true }, 'the publish page is a secure https context');
    await waitForHook(pages.publisher, 'publisher connects', (h) => h.state === 'connected', ms.connect, ctx);
    const pub = await waitForHook(
      pages.publisher, 'publisher encodes frames',
      (h) => h.stats?.framesEncoded > 0 && h.stats?.frameWidth > 0, ms.connect, ctx,
    );
    assert.ok(pub.location?.startsWith(`${server.base}/whip/`), `WHIP session URL ${pub.location}${await info()}`);

    pages.viewer = await browser.context.newPage();
    instrument(pages.viewer, 'watch', pageEvents);
    await pages.viewer.goto(`${server.base}/watch?room=${ROOM}&autostart=1`, { timeout: 15_000 });
    assert.equal(await pages.viewer.evaluate(() => window.isSecureContext), true, 'the watch page is a secure context');
    await waitForHook(pages.viewer, 'viewer connects', (h) => h.state === 'connected', ms.connect, ctx);
    await waitForHook(pages.viewer, 'viewer decodes a first frame', (h) => h.firstFrameMs != null, ms.firstFrame, ctx);
    const start = await waitForHook(pages.viewer, 'viewer stats count frames', (h) => h.stats?.framesDecoded > 0, 5_000, ctx);
    const end = await waitForHook(
      pages.viewer, `viewer decodes ${FRAMES} more frames`,
      (h) => h.stats?.framesDecoded >= start.stats.framesDecoded + FRAMES, ms.frames, ctx,
    );
    console.log(`  over https: first frame ${end.firstFrameMs} ms after WHEP 201, ${end.stats.framesDecoded} frames decoded at ${end.stats.frameWidth}x${end.stats.frameHeight}`);
    assert.ok(end.stats.frameWidth > 0, `no decoded picture size${await info()}`);
  } finally {
    await screenshots({ 'https-publish': pages.publisher, 'https-watch': pages.viewer });
    await stopPages([pages.viewer, pages.publisher]);
  }
});

// End-to-end: simulcast and per-viewer bandwidth adaptation.
//
// A page publishes the fake camera with three simulcast layers (q 320×180,
// h 640×360, f 1280×720). Viewer A plays on the host over loopback (no limit);
// viewer B plays from a second Chromium inside a network namespace, reaching
// the server over a veth pair whose server → viewer direction is shaped to
// 400 kbit/s with tbf. The server must give A the top layer and B the lowest
// one without freezes, then bring B back up once the limit is lifted.
//
//   cd tests/e2e && sudo npm test      (needs root: ip netns, tc)
//
// Without root or network namespaces the test is skipped with the reason.
// Network: namespace sbv<pid>, veth sbv<pid>h (host, 10.213.0.1/30) and
// sbv<pid>n (namespace, 10.213.0.2/30); all of it is removed in `after`, on
// exit and on SIGINT/SIGTERM.
//
// Environment: SWITCHBOARD_BIN, CHROMIUM_PATH as for publish-watch.test.mjs;
// RUST_LOG (default here: info,switchboard=debug).
//
// Artifacts in <repo>/artifacts/e2e/: sim-publish.png, sim-viewer-a.png,
// sim-viewer-b.png, simulcast-bwe.json (figures and the timeline of every page)
// and simulcast-server.log.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  repoRoot, serverBin, artifactsDir, checkPrerequisites, freePorts, round, sleep,
  Server, launchBrowser, instrument, hookOf, diagnostics, waitForHook, screenshots, stopPages,
} from './lib.mjs';
import { TC, Network, run } from './netns.mjs';

const ROOM = 'sim';
const NS = `sbv${process.pid}`;
const HOST_IF = `${NS}h`;
const NS_IF = `${NS}n`;
const HOST_IP = '10.213.0.1';
const NS_IP = '10.213.0.2';
// server → viewer B; tbf on the host side of the veth shapes what leaves the host
const LIMIT = ['rate', '400kbit', 'burst', '16kbit', 'latency', '100ms'];

const EXPECTED_LAYERS = { q: [320, 180], h: [640, 360], f: [1280, 720] };
const CONNECT_TIMEOUT_MS = 20_000;
const PUBLISHER_LAYERS_TIMEOUT_MS = 20_000;
const FIRST_FRAME_TIMEOUT_MS = 20_000;
const A_CLIMB_TIMEOUT_MS = 15_000; // from A's first frame to 1280×720
const B_SETTLE_TIMEOUT_MS = 30_000; // from B's first frame to a settled low layer
const SETTLE_HOLD_MS = 3_000; // "settled": this long with the low layer only
const LOW_WINDOW_MS = 10_000; // no freezes, enough frames, low layer only
const B_UP_TIMEOUT_MS = 20_000; // from lifting the limit to ≥ 640×360
const LOW_MAX_WIDTH = 640;
const LOW_MIN_FPS = 15;
const UP_MIN_WIDTH = 640;

const server = new Server();
const pageEvents = [];
const browsers = { host: null, ns: null };
let skipReason = null;
let nsBase = null;

// ---------------------------------------------------------------------------
// network namespace, veth, tbf

const net = new Network('sbv');
const VETH = { ns: NS, hostIf: HOST_IF, nsIf: NS_IF, hostIp: HOST_IP, nsIp: NS_IP };
let qdisc = false;

/** Creates the namespace and the veth pair; sets skipReason when this machine cannot. */
function setUpNetwork() {
  skipReason = net.skipReason(['ip', 'tc']);
  if (skipReason) return;
  net.removeStale();
  try {
    net.addNamespace(VETH);
  } catch (err) {
    skipReason = err.message;
  }
}

function limitDownlink() {
  run(TC, ['qdisc', 'add', 'dev', HOST_IF, 'root', 'tbf', ...LIMIT]);
  qdisc = true;
}

/** Packets the tbf dropped and sent so far (`tc -s qdisc`), or null if unreadable. */
function qdiscStats() {
  try {
    const out = run(TC, ['-s', 'qdisc', 'show', 'dev', HOST_IF]);
    const m = out.match(/Sent \d+ bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)/);
    return m ? { sent: Number(m[1]), dropped: Number(m[2]), overlimits: Number(m[3]) } : null;
  } catch {
    return null;
  }
}

function liftDownlink() {
  run(TC, ['qdisc', 'del', 'dev', HOST_IF, 'root']);
  qdisc = false;
}

/** Synchronous, so it also works from an exit handler; never throws. */
function tearDownNetwork() {
  if (qdisc) {
    try {
      liftDownlink();
    } catch {
      // the link may be gone already
    }
  }
  net.tearDown();
}

// The server is killed on SIGINT/SIGTERM before the namespace goes.
net.onExit.push(() => {
  if (server.proc && !server.exited) server.proc.kill('SIGKILL');
  tearDownNetwork();
});

// ---------------------------------------------------------------------------
// timeline of every page

const t0 = performance.now();
const now = () => Math.round(performance.now() - t0);

const layerName = (l) => (l ? `${l.encodingId ?? '-'}#${l.spatialLayerId ?? '-'}/T${l.temporalLayerId}` : null);

function viewerSample(h) {
  const s = h.stats || {};
  return {
    t: now(),
    state: h.state,
    w: s.frameWidth,
    h: s.frameHeight,
    fps: s.fps,
    kbps: s.bitrateKbps,
    framesDecoded: s.framesDecoded,
    framesDropped: s.framesDropped,
    freezeCount: s.freezeCount,
    freezeSeconds: s.totalFreezesDuration == null ? undefined : round(s.totalFreezesDuration, 2),
    packetsLost: s.packetsLost,
    nack: s.nackCount,
    pli: s.pliCount,
    jitterMs: s.jitterMs,
    rttMs: s.rttMs,
    estimateBps: h.estimateBps,
    current: layerName(h.layer?.currentLayer),
    target: layerName(h.layer?.targetLayer),
    spatial: h.layer?.currentLayer?.spatialLayerId ?? null,
    switchesUp: h.layer?.switchesUp,
    switchesDown: h.layer?.switchesDown,
  };
}

function publisherSample(h) {
  const s = h.stats || {};
  return {
    t: now(),
    state: h.state,
    kbps: s.bitrateKbps,
    limitedBy: s.qualityLimitationReason,
    layers: (s.layers || []).map((l) => `${l.rid} ${l.frameWidth}x${l.frameHeight} ${l.fps}fps ${l.bitrateKbps}k`).join(', '),
  };
}

/** Polls the pages' hooks every 250 ms; keeps one entry per new stats sample. */
class Recorder {
  constructor() {
    this.pages = {};
    this.latest = {};
    this.timeline = {};
    this.lastAt = {};
    this.running = false;
    this.loop = null;
  }

  add(name, page, kind) {
    this.pages[name] = { page, kind };
    this.timeline[name] = [];
  }

  start() {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        for (const [name, { page, kind }] of Object.entries(this.pages)) {
          const h = await hookOf(page);
          if (!h || h.unavailable) continue;
          this.latest[name] = h;
          if (h.stats && h.stats.at !== this.lastAt[name]) {
            this.lastAt[name] = h.stats.at;
            this.timeline[name].push(kind === 'publisher' ? publisherSample(h) : viewerSample(h));
          }
        }
        await sleep(250);
      }
    })();
  }

  async stop() {
    this.running = false;
    await this.loop;
  }

  series(name) {
    return this.timeline[name] || [];
  }
}

/** Compact text of a viewer's recent timeline, for failure messages. */
function timelineText(samples, count = 40) {
  return samples.slice(-count).map((s) =>
    `  t=${s.t}ms ${s.w}x${s.h} ${s.fps}fps ${s.kbps}k freezes=${s.freezeCount} lost=${s.packetsLost} ` +
    `est=${s.estimateBps ?? 'null'} cur=${s.current} tgt=${s.target} up/down=${s.switchesUp}/${s.switchesDown} ${s.state}`,
  ).join('\n');
}

// ---------------------------------------------------------------------------

before(async () => {
  setUpNetwork();
  if (skipReason) {
    console.log(`  skipping simulcast-bwe: ${skipReason}`);
    tearDownNetwork();
    return;
  }
  checkPrerequisites();
  const { httpPort, udpPort } = await freePorts('0.0.0.0');
  server.start(
    [
      '--http-addr', `0.0.0.0:${httpPort}`,
      '--udp-addr', `0.0.0.0:${udpPort}`,
      '--tcp-addr', '127.0.0.1:0',
      '--public-ip', '127.0.0.1',
      '--public-ip', HOST_IP,
    ],
    `http://127.0.0.1:${httpPort}`,
    {
      rustLog: process.env.RUST_LOG || 'info,switchboard=debug',
      logFile: path.join(artifactsDir, 'simulcast-server.log'),
    },
  );
  nsBase = `http://${HOST_IP}:${httpPort}`;
  await server.waitForLivez();
  net.checkReaches(NS, `${nsBase}/livez`);
  browsers.host = await launchBrowser();
  browsers.ns = await launchBrowser({ executablePath: net.chromium(NS), prefix: 'switchboard-e2e-b-' });
}, { timeout: 60_000 });

after(async () => {
  try {
    await browsers.ns?.close();
    await browsers.host?.close();
    await server.stop();
  } finally {
    tearDownNetwork();
  }
}, { timeout: 30_000 });

test('simulcast: each viewer gets the layer its downlink carries, and B recovers when the limit is lifted', { timeout: 150_000 }, async (t) => {
  if (skipReason) {
    t.skip(skipReason);
    return;
  }
  const pages = { publisher: null, viewerA: null, viewerB: null };
  const ctx = { server, pages, events: pageEvents };
  const rec = new Recorder();
  const result = {
    passed: false,
    room: ROOM,
    serverBin: path.relative(repoRoot, serverBin) || serverBin,
    browser: null,
    limit: `tbf ${LIMIT.join(' ')} on ${HOST_IF} (server -> viewer B)`,
    figures: {},
  };
  const fig = result.figures;
  const info = async () => `\n${await diagnostics(pages, pageEvents, server)}\nviewer B timeline:\n${timelineText(rec.series('viewerB'))}`;

  /** Polls `cond()` (over the recorder) until it returns a truthy value; null on timeout. */
  const pollFor = async (cond, timeoutMs) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = cond();
      if (value) return value;
      if (server.exited || Date.now() >= deadline) return null;
      await sleep(200);
    }
  };
  /** pollFor, failing with `what` and the diagnostics on timeout. */
  const until = async (what, cond, timeoutMs) => {
    const value = await pollFor(cond, timeoutMs);
    if (value) return value;
    const why = server.exited ? `server exited ${JSON.stringify(server.exited)}` : `not within ${timeoutMs} ms`;
    assert.fail(`${what}: ${why}${await info()}`);
  };

  try {
    // --- publisher with three layers
    pages.publisher = await browsers.host.context.newPage();
    instrument(pages.publisher, 'publish', pageEvents);
    result.browser = await pages.publisher.evaluate(() => navigator.userAgent);
    await pages.publisher.goto(`${server.base}/publish?room=${ROOM}&autostart=1`, { timeout: 15_000 });
    rec.add('publisher', pages.publisher, 'publisher');
    rec.start();
    await waitForHook(pages.publisher, 'publisher connects', (h) => h.state === 'connected', CONNECT_TIMEOUT_MS, ctx);
    const pub = await waitForHook(
      pages.publisher, 'publisher sends three layers at 320x180, 640x360 and 1280x720',
      (h) => {
        const layers = h.stats?.layers || [];
        return layers.length === 3 && layers.every((l) => {
          const want = EXPECTED_LAYERS[l.rid];
          return want && l.frameWidth === want[0] && l.frameHeight === want[1] && l.framesEncoded > 0;
        });
      },
      PUBLISHER_LAYERS_TIMEOUT_MS, ctx,
    );
    fig.publisherLayers = pub.stats.layers.map((l) => `${l.rid} ${l.frameWidth}x${l.frameHeight}`);
    fig.publisherTop = `${pub.stats.frameWidth}x${pub.stats.frameHeight}`;

    // --- viewer A on loopback climbs to the top layer
    pages.viewerA = await browsers.host.context.newPage();
    instrument(pages.viewerA, 'A', pageEvents);
    await pages.viewerA.goto(`${server.base}/watch?room=${ROOM}&autostart=1`, { timeout: 15_000 });
    rec.add('viewerA', pages.viewerA, 'viewer');
    await waitForHook(pages.viewerA, 'viewer A connects', (h) => h.state === 'connected', CONNECT_TIMEOUT_MS, ctx);
    await waitForHook(pages.viewerA, 'viewer A decodes a first frame', (h) => h.firstFrameMs != null, FIRST_FRAME_TIMEOUT_MS, ctx);
    const aFirst = now();
    fig.aFirstFrameMs = (await hookOf(pages.viewerA)).firstFrameMs;
    assert.ok((await hookOf(pages.viewerA)).layerUrl, `viewer A got no layer URL from the Link header${await info()}`);
    const aTop = await until(
      'viewer A decodes 1280x720',
      () => rec.series('viewerA').find((s) => s.t >= aFirst - 1000 && s.w === 1280 && s.h === 720),
      A_CLIMB_TIMEOUT_MS,
    );
    fig.aClimbMs = Math.max(0, aTop.t - aFirst);

    // --- viewer B behind 400 kbit/s
    limitDownlink();
    fig.limitAppliedAtMs = now();
    pages.viewerB = await browsers.ns.context.newPage();
    instrument(pages.viewerB, 'B', pageEvents);
    await pages.viewerB.goto(`${nsBase}/watch?room=${ROOM}&autostart=1`, { timeout: 15_000 });
    rec.add('viewerB', pages.viewerB, 'viewer');
    await waitForHook(pages.viewerB, 'viewer B connects', (h) => h.state === 'connected', CONNECT_TIMEOUT_MS, ctx);
    await waitForHook(pages.viewerB, 'viewer B decodes a first frame', (h) => h.firstFrameMs != null, FIRST_FRAME_TIMEOUT_MS, ctx);
    const bFirst = now();
    fig.bFirstFrameMs = (await hookOf(pages.viewerB)).firstFrameMs;

    // settled: SETTLE_HOLD_MS of samples with a picture no wider than LOW_MAX_WIDTH
    const low = (s) => s.w > 0 && s.w <= LOW_MAX_WIDTH;
    const settled = await until(
      `viewer B settles on a layer no wider than ${LOW_MAX_WIDTH} px`,
      () => {
        const series = rec.series('viewerB').filter((s) => s.t >= bFirst - 1000);
        let runStart = null;
        for (const s of series) {
          if (!low(s)) runStart = null;
          else if (runStart == null) runStart = s;
        }
        const last = series.at(-1);
        return runStart && last.t - runStart.t >= SETTLE_HOLD_MS ? { start: runStart, confirmed: last } : null;
      },
      B_SETTLE_TIMEOUT_MS,
    );
    fig.bAdaptDownMs = Math.max(0, settled.start.t - bFirst);
    fig.bWidthsBeforeSettling = [...new Set(rec.series('viewerB').filter((s) => s.t <= settled.start.t).map((s) => `${s.w}x${s.h}`))];
    const bLowServer = rec.series('viewerB').find((s) => s.t >= bFirst - 1000 && s.spatial === 0);
    fig.bServerLowestLayerAfterMs = bLowServer ? Math.max(0, bLowServer.t - bFirst) : null;

    // the low-layer window
    const windowStart = settled.confirmed;
    const qdiscAtStart = qdiscStats();
    await sleep(LOW_WINDOW_MS);
    const qdiscAtEnd = qdiscStats();
    const windowSamples = rec.series('viewerB').filter((s) => s.t >= windowStart.t);
    const windowEnd = windowSamples.at(-1);
    const elapsed = (windowEnd.t - windowStart.t) / 1000;
    const lowFps = elapsed > 0 ? (windowEnd.framesDecoded - windowStart.framesDecoded) / elapsed : 0;
    Object.assign(fig, {
      bLowResolution: `${windowEnd.w}x${windowEnd.h}`,
      bLowLayer: windowEnd.current,
      bLowWindowSeconds: round(elapsed, 2),
      bLowFps: round(lowFps),
      bLowFreezesInWindow: windowEnd.freezeCount - windowStart.freezeCount,
      bLowMaxWidthInWindow: Math.max(...windowSamples.map((s) => s.w)),
      bLowEstimatesBps: windowSamples.map((s) => s.estimateBps),
      bLowPacketsLostInWindow: windowEnd.packetsLost - windowStart.packetsLost,
      // where B's losses come from: packets the 400 kbit/s tbf dropped, over the whole
      // limited period and inside the window
      bQdiscDroppedLimited: qdiscAtEnd?.dropped,
      bQdiscDroppedInWindow: qdiscAtEnd && qdiscAtStart ? qdiscAtEnd.dropped - qdiscAtStart.dropped : undefined,
    });

    // --- lift the limit; B climbs back
    liftDownlink();
    const lifted = now();
    fig.limitLiftedAtMs = lifted;
    let up = null;
    let upError = null;
    try {
      up = await until(
        `viewer B reaches at least ${UP_MIN_WIDTH} px wide after the limit is lifted`,
        () => rec.series('viewerB').find((s) => s.t >= lifted && s.w >= UP_MIN_WIDTH),
        B_UP_TIMEOUT_MS,
      );
      fig.bAdaptUpMs = up.t - lifted;
      fig.bUpResolution = `${up.w}x${up.h}`;
      // for the record only: the top layer, within what is left of the same budget
      const top = await pollFor(
        () => rec.series('viewerB').find((s) => s.t >= lifted && s.w >= 1280),
        Math.max(0, lifted + B_UP_TIMEOUT_MS - now()),
      );
      fig.bTopLayerAfterLiftMs = top ? top.t - lifted : null;
      await sleep(1000); // one more sample for the final figures
    } catch (err) {
      upError = err;
    }

    const a = rec.series('viewerA').at(-1);
    const b = rec.series('viewerB').at(-1);
    Object.assign(fig, {
      aFinalResolution: `${a.w}x${a.h}`,
      aMinWidthAfterClimb: Math.min(...rec.series('viewerA').filter((s) => s.t >= aTop.t).map((s) => s.w)),
      aFreezeCount: a.freezeCount,
      aLayer: a.current,
      aSwitches: `${a.switchesUp} up / ${a.switchesDown} down`,
      aEstimateBps: a.estimateBps,
      bFinalResolution: `${b.w}x${b.h}`,
      bFreezeCount: b.freezeCount,
      bLayer: b.current,
      bSwitches: `${b.switchesUp} up / ${b.switchesDown} down`,
      bEstimateBps: b.estimateBps,
    });

    const lines = [
      `publisher layers: ${fig.publisherLayers.join(', ')}`,
      `A: first frame ${fig.aFirstFrameMs} ms after 201, 1280x720 after ${fig.aClimbMs} ms; final ${fig.aFinalResolution}, layer ${fig.aLayer}, freezes ${fig.aFreezeCount}, estimate ${fig.aEstimateBps}`,
      `B: first frame ${fig.bFirstFrameMs} ms after 201; adapted down in ${fig.bAdaptDownMs} ms (decoded before: ${fig.bWidthsBeforeSettling.join(', ')}); server lowest layer after ${fig.bServerLowestLayerAfterMs} ms`,
      `B low window: ${fig.bLowResolution} layer ${fig.bLowLayer}, ${fig.bLowFps} fps over ${fig.bLowWindowSeconds} s, freezes +${fig.bLowFreezesInWindow}, lost +${fig.bLowPacketsLostInWindow}, tbf dropped +${fig.bQdiscDroppedInWindow} (${fig.bQdiscDroppedLimited} while limited), estimates ${fig.bLowEstimatesBps.join(' ')}`,
      `B after lift: ${up ? `${fig.bUpResolution} after ${fig.bAdaptUpMs} ms` : 'did not reach 640 px'}, 1280x720 ${fig.bTopLayerAfterLiftMs == null ? 'not reached' : `after ${fig.bTopLayerAfterLiftMs} ms`}; final ${fig.bFinalResolution}, layer ${fig.bLayer}, freezes ${fig.bFreezeCount}, switches ${fig.bSwitches}, estimate ${fig.bEstimateBps}`,
    ];
    console.log(lines.map((l) => `  ${l}`).join('\n'));

    assert.ok(
      fig.bLowMaxWidthInWindow <= LOW_MAX_WIDTH,
      `viewer B went above ${LOW_MAX_WIDTH} px during the limited window (max ${fig.bLowMaxWidthInWindow})${await info()}`,
    );
    assert.equal(fig.bLowFreezesInWindow, 0, `viewer B froze during the limited window${await info()}`);
    assert.ok(lowFps >= LOW_MIN_FPS, `viewer B decoded ${round(lowFps)} fps < ${LOW_MIN_FPS} on the low layer${await info()}`);
    if (upError) throw upError;
    result.passed = true;
  } catch (err) {
    result.error = err.message.split('\n')[0];
    throw err;
  } finally {
    await rec.stop();
    await screenshots({ 'sim-publish': pages.publisher, 'sim-viewer-a': pages.viewerA, 'sim-viewer-b': pages.viewerB });
    result.hooks = {
      publisher: pages.publisher ? await hookOf(pages.publisher) : null,
      viewerA: pages.viewerA ? await hookOf(pages.viewerA) : null,
      viewerB: pages.viewerB ? await hookOf(pages.viewerB) : null,
    };
    result.timeline = rec.timeline;
    result.pageEvents = pageEvents;
    fs.writeFileSync(path.join(artifactsDir, 'simulcast-bwe.json'), JSON.stringify(result, null, 2) + '\n');
    await stopPages([pages.viewerB, pages.viewerA, pages.publisher]);
  }
});

// Watch page: plays a room over WHEP.
// URL parameters: room, token, autostart=1.
// Test hook: window.switchboard (see ui.js); stats carry framesDecoded, freezeCount
// and packetsLost, and window.switchboard.firstFrameMs is the time in milliseconds
// from the 201 answer to the first decoded video frame (it includes any wait for a
// publisher when the viewer joined an empty room).
// From the session's stats resource (polled once a second) the hook also carries:
//   layer        the video track's entry: { mid, kind, bound, currentLayer,
//                targetLayer, switchesUp, switchesDown, manual, maxSpatialLayerId },
//                where a layer is { spatialLayerId, encodingId, temporalLayerId }
//   estimateBps  the server's downlink estimate for this viewer (bit/s) or null
//   layerUrl     the WHEP layer extension's URL (from the Link header) or null
//   etag         the session's current ETag; restartIce() restarts ICE on the session
//                (RFC 9725 §4.3.2, see whip-whep.js) and resolves once applied
//   statsUrl     the stats resource's URL
//   layerRequest the last layer request sent from the selector ({} = automatic)
//   reconnects, lastReconnect, reconnectState: see ui.js. The session reconnects by
//                itself (whip-whep.js, "Reconnecting"): an ICE restart when the
//                connection drops, a new POST when the session is gone (a 404 from the
//                stats resource, the event stream or the PATCH) or the server drains
//                (the event stream's `reconnect`); the video element keeps its stream
//                and shows "reconnecting…" meanwhile.

import { play } from './whip-whep.js';
import { openEventStream } from './room-events.js';
import { startStats } from './stats.js';
import { BandwidthChart, formatBps } from './chart.js';
import {
  hook, params, initFields, rememberRoom, roomEndpoint, setState, setHint, showError,
  trackConnection, renderStats, setBusy, followReconnects, reconnectOverlay,
} from './ui.js';

const FIELDS = [
  ['resolution', 'Resolution', 'resolution'],
  ['fps', 'Frames/s', 'fps'],
  ['bitrateKbps', 'Video bitrate', 'kbps'],
  ['audioBitrateKbps', 'Audio bitrate', 'kbps'],
  ['framesDecoded', 'Frames decoded', 'int'],
  ['freezeCount', 'Freezes', 'int'],
  ['packetsLost', 'Packets lost', 'int'],
  ['jitterMs', 'Jitter', 'ms'],
  ['codec', 'Codec', 'text'],
  ['rttMs', 'Round trip', 'ms'],
];

const { room, token } = initFields();
const startButton = document.getElementById('start');
const stopButton = document.getElementById('stop');
const muteButton = document.getElementById('mute');
const video = document.getElementById('remote');
const layerSelect = document.getElementById('layer-select');
const layerInfo = document.getElementById('layer-info');
const chart = new BandwidthChart(document.getElementById('chart'), { seconds: 60 });
const overlay = reconnectOverlay(video.parentElement);

const SERVER_STATS_INTERVAL_MS = 1000;
const LAYER_NAMES = ['Lowest', 'Middle', 'Highest'];

hook.firstFrameMs = null;
hook.layer = null;
hook.estimateBps = null;
hook.layerUrl = null;
hook.statsUrl = null;
hook.layerRequest = null;

let session = null;
let stopSampling = null;
let stopFirstFrameWatch = null;
let stopServerStats = null;
let eventStream = null;
let attempt = 0;
/** RIDs seen per spatialLayerId, to name the selector's entries. */
const ridByRank = new Map();

/** "h #1" for a simulcast layer, "single" without simulcast. */
const spatialName = (l) => {
  if (!l) return null;
  const parts = [];
  if (l.encodingId) parts.push(l.encodingId);
  if (l.spatialLayerId != null) parts.push(`#${l.spatialLayerId}`);
  return parts.join(' ') || 'single';
};

/** "h #1 · T2": spatial layer and temporal cap. */
const describeLayer = (l) => {
  if (!l) return '–';
  return l.temporalLayerId == null ? spatialName(l) : `${spatialName(l)} · T${l.temporalLayerId}`;
};

function renderLayerInfo(track, estimateBps) {
  const rows = [
    ['Receiving', describeLayer(track?.currentLayer)],
    ['Target', describeLayer(track?.targetLayer)],
    ['Switches ↑ / ↓', track ? `${track.switchesUp} / ${track.switchesDown}` : '–'],
    ['Mode', !track ? '–' : track.manual ? 'manual' : track.maxSpatialLayerId != null ? `auto ≤ #${track.maxSpatialLayerId}` : 'auto'],
    ['Server estimate', formatBps(estimateBps)],
  ];
  const nodes = [];
  for (const [label, value] of rows) {
    const dt = document.createElement('dt');
    dt.textContent = label;
    const dd = document.createElement('dd');
    dd.textContent = value;
    nodes.push(dt, dd);
  }
  layerInfo.replaceChildren(...nodes);
}

/** Names the selector's entries after the RIDs the server reported. */
function rememberRid(layerView) {
  if (layerView?.spatialLayerId == null || !layerView.encodingId) return;
  if (ridByRank.get(layerView.spatialLayerId) === layerView.encodingId) return;
  ridByRank.set(layerView.spatialLayerId, layerView.encodingId);
  for (const option of layerSelect.options) {
    const rank = Number.parseInt(option.value, 10);
    if (Number.isNaN(rank)) continue;
    const rid = ridByRank.get(rank);
    option.textContent = rid ? `${LAYER_NAMES[rank] ?? `#${rank}`} (${rid})` : LAYER_NAMES[rank] ?? `#${rank}`;
  }
}

/** Polls the session's stats resource; returns a function that stops polling. */
function pollServerStats(current) {
  let running = true;
  let timer = null;
  let controller = null;
  const tick = async () => {
    if (!running) return;
    controller = new AbortController();
    const abortTimer = setTimeout(() => controller.abort(), 3000);
    try {
      const body = await current.fetchStats({ signal: controller.signal });
      if (!running) return;
      const videoTracks = (body.tracks ?? []).filter((t) => t.kind === 'video');
      const track = videoTracks.find((t) => t.bound) ?? videoTracks[0] ?? null;
      hook.layer = track;
      hook.estimateBps = body.estimateBps ?? null;
      rememberRid(track?.currentLayer);
      rememberRid(track?.targetLayer);
      // a source without RIDs has one layer: only "Lowest" can be asked for
      const single = Boolean(track?.bound && track.currentLayer && track.currentLayer.encodingId == null);
      for (const option of layerSelect.options) {
        const rank = Number.parseInt(option.value, 10);
        option.disabled = single && rank > 0;
      }
      renderLayerInfo(track, hook.estimateBps);
      chart.push({
        estimateBps: hook.estimateBps,
        receivedBps: hook.stats?.bitrateKbps == null ? null : hook.stats.bitrateKbps * 1000,
        layer: spatialName(track?.currentLayer),
      });
    } catch (err) {
      // 404: the server forgot the session (a restart, or it was ended): a new one
      if (err?.status === 404 && current === session) current.reconnect({ newSession: true, reason: 'gone' });
      // else the session may be ending, or one poll timed out: try again next tick
    } finally {
      clearTimeout(abortTimer);
    }
    if (running) timer = setTimeout(tick, SERVER_STATS_INTERVAL_MS);
  };
  tick();
  return () => {
    running = false;
    clearTimeout(timer);
    controller?.abort();
  };
}

/** The layer request for the selector's value. */
function layerRequestFor(value) {
  if (value === 'auto') return {};
  const rank = Number.parseInt(value, 10);
  return Number.isNaN(rank) ? {} : { spatialLayerId: rank };
}

/** The selector's value the server last accepted. */
let appliedLayerValue = 'auto';

async function applyLayerSelection() {
  const current = session;
  if (!current) return;
  const value = layerSelect.value;
  const request = layerRequestFor(value);
  hook.layerRequest = request;
  layerSelect.disabled = true;
  try {
    await current.setLayer(request);
    appliedLayerValue = value;
    if (current === session) showError(null);
  } catch (err) {
    if (current === session) {
      showError(err);
      layerSelect.value = appliedLayerValue;
    }
  } finally {
    if (current === session) layerSelect.disabled = !current.layerUrl;
  }
}

function updateMuteButton() {
  muteButton.textContent = video.muted ? 'Unmute' : 'Mute';
  muteButton.setAttribute('aria-pressed', String(!video.muted));
}

async function startVideo() {
  try {
    await video.play();
  } catch (err) {
    // autoplay refused (rare while muted): let a click start it
    if (err?.name === 'NotAllowedError') setHint('click Unmute to start playback');
  }
}

/**
 * Follows the session's event stream for `reconnect` (the server drains: a new session,
 * after its retryAfter plus jitter) and 404 (the session is gone: a new one now). A new
 * session on the very node that drains would be told again at once: moving once is
 * enough, that one stays until the node goes.
 */
let drainingNode = null;
function followEvents(current) {
  eventStream?.close();
  eventStream = null;
  if (!current.eventsUrl) return;
  let node = null;
  eventStream = openEventStream(current.eventsUrl, {
    token: token.value.trim() || undefined,
    onEvent: (name, data) => {
      if (current !== session) return;
      if (name === 'session') node = data?.node ?? null;
      if (name !== 'reconnect') return;
      if (node && node === drainingNode) return;
      drainingNode = node;
      const after = Number(data?.retryAfter);
      const delayMs = (Number.isFinite(after) && after >= 0 ? after * 1000 : 3000) + Math.random() * 1000;
      current.reconnect({ newSession: true, delayMs, reason: 'drain' });
    },
    onGone: () => {
      if (current === session) current.reconnect({ newSession: true, reason: 'gone' });
    },
  });
}

/** After a new POST: the video element, stats and events follow the new peer connection. */
function rebind(current) {
  if (current !== session) return;
  video.srcObject = null;
  video.srcObject = current.stream;
  startVideo();
  stopSampling?.();
  stopSampling = sampleStats(current);
  followEvents(current);
}

function sampleStats(current) {
  return startStats(current.pc, 'inbound', (sample) => {
    hook.stats = sample;
    renderStats(sample, FIELDS);
    if (hook.state === 'connected' && !sample.framesDecoded) setHint('connected, waiting for the publisher');
    else if (hook.state === 'connected') setHint('');
  });
}

/**
 * Records hook.firstFrameMs relative to `since` using the earliest of
 * requestVideoFrameCallback and a fast getStats poll for framesDecoded > 0.
 */
function watchFirstFrame(pc, since) {
  let done = false;
  let timer = null;
  const record = () => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    hook.firstFrameMs = Math.round(performance.now() - since);
    if (hook.state === 'connected') setHint('');
  };
  if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) {
    video.requestVideoFrameCallback(() => record());
  }
  const poll = async () => {
    if (done) return;
    try {
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video' && s.framesDecoded > 0) record();
      });
    } catch {
      return; // closed
    }
    if (!done) timer = setTimeout(poll, 50);
  };
  poll();
  return () => {
    done = true;
    clearTimeout(timer);
  };
}

async function start() {
  const roomName = room.value.trim();
  if (!roomName) {
    showError(new Error('Enter a room name.'));
    return;
  }
  const myAttempt = ++attempt;
  showError(null);
  hook.firstFrameMs = null;
  hook.stats = null;
  hook.layer = null;
  hook.estimateBps = null;
  hook.connectedOnce = false;
  hook.reconnectState = null;
  overlay.hide();
  setBusy(startButton, stopButton, true);
  setState('connecting', 'connecting to the server');
  rememberRoom(roomName);
  try {
    session = await play(roomEndpoint('whep', roomName), {
      token: token.value.trim() || undefined,
      onPeerConnection: (pc) => trackConnection(pc),
    });
    if (myAttempt !== attempt) {
      session.stop();
      return;
    }
    hook.location = session.location;
    hook.etag = session.etag;
    // ICE restart on request (tests, or a client that saw its network change)
    const current = session;
    followReconnects(current, { overlay, onRenewed: () => rebind(current) });
    followEvents(current);
    hook.restartIce = async () => {
      await current.restartIce();
      hook.etag = current.etag;
    };
    hook.layerUrl = session.layerUrl;
    hook.statsUrl = session.statsUrl;
    layerSelect.disabled = !session.layerUrl;
    layerSelect.title = session.layerUrl ? '' : 'this server does not offer the WHEP layer extension';
    if (layerSelect.value !== 'auto' && session.layerUrl) applyLayerSelection();
    chart.clear();
    stopServerStats = pollServerStats(session);
    video.srcObject = session.stream;
    startVideo();
    stopFirstFrameWatch = watchFirstFrame(session.pc, session.answeredAt);
    if (hook.state === 'connecting') setHint('establishing media connection');
    stopSampling = sampleStats(session);
  } catch (err) {
    if (myAttempt !== attempt) return;
    setState('failed');
    showError(err);
    setBusy(startButton, stopButton, false);
  }
}

async function stop({ keepalive = false } = {}) {
  attempt++;
  stopSampling?.();
  stopSampling = null;
  stopFirstFrameWatch?.();
  stopFirstFrameWatch = null;
  stopServerStats?.();
  stopServerStats = null;
  eventStream?.close();
  eventStream = null;
  overlay.hide();
  layerSelect.disabled = true;
  const current = session;
  session = null;
  video.srcObject = null;
  await current?.stop({ keepalive });
  hook.location = null;
  hook.layerUrl = null;
  hook.statsUrl = null;
  hook.connectionState = 'closed';
  setState('stopped');
  setBusy(startButton, stopButton, false);
}

startButton.addEventListener('click', (event) => {
  event.preventDefault();
  start();
});
stopButton.addEventListener('click', (event) => {
  event.preventDefault();
  stop();
});
document.getElementById('controls').addEventListener('submit', (event) => {
  event.preventDefault();
  if (!startButton.disabled) start();
});
layerSelect.addEventListener('change', () => applyLayerSelection());
muteButton.addEventListener('click', () => {
  video.muted = !video.muted;
  updateMuteButton();
  if (video.paused && video.srcObject) startVideo();
});
window.addEventListener('pagehide', () => {
  if (session) stop({ keepalive: true });
});

updateMuteButton();
renderStats(null, FIELDS);
renderLayerInfo(null, null);
setBusy(startButton, stopButton, false);
setState('idle');
if (params.get('autostart') === '1') start();

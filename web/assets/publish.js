// Publish page: camera + microphone to a room over WHIP.
// URL parameters: room, token, width, height, fps, simulcast=0|1 (default 1), autostart=1.
// With simulcast the camera is sent as three layers, rid q (¼ size, ≤150 kbit/s),
// h (½ size, ≤500 kbit/s) and f (full size, ≤1.5 Mbit/s): 320×180, 640×360 and
// 1280×720 for the default 1280×720 capture.
// Test hook: window.switchboard (see ui.js); stats carry framesEncoded and
// layers (per-encoding figures, see stats.js; frameWidth/frameHeight/fps are the
// top layer's); degradationPreference reports what the video sender ended up
// with, simulcast whether layers were requested and encodings the requested ones.
// A lost connection reconnects by itself (whip-whep.js, "Reconnecting": ICE restart,
// else a new POST of the same stream); reconnects and lastReconnect are in the hook.

import { publish, SIMULCAST_ENCODINGS } from './whip-whep.js';
import { startStats } from './stats.js';
import {
  hook, params, initFields, rememberRoom, roomEndpoint, setState, setHint, showError,
  trackConnection, renderStats, setBusy, followReconnects, reconnectOverlay,
} from './ui.js';

const FIELDS = [
  ['resolution', 'Resolution', 'resolution'],
  ['fps', 'Frames/s', 'fps'],
  ['bitrateKbps', 'Video bitrate', 'kbps'],
  ['audioBitrateKbps', 'Audio bitrate', 'kbps'],
  ['framesEncoded', 'Frames encoded', 'int'],
  ['codec', 'Codec', 'text'],
  ['qualityLimitationReason', 'Quality limited by', 'text'],
  ['rttMs', 'Round trip', 'ms'],
];

const positiveInt = (value, fallback) => {
  const n = Number.parseInt(value ?? '', 10);
  return Number.isFinite(n) && n > 0 ? n : fallback;
};

const capture = {
  width: positiveInt(params.get('width'), 1280),
  height: positiveInt(params.get('height'), 720),
  frameRate: positiveInt(params.get('fps'), 30),
};

const { room, token } = initFields();
const simulcastBox = document.getElementById('simulcast');
simulcastBox.checked = params.get('simulcast') !== '0' && params.get('simulcast') !== 'false';
const layersBody = document.querySelector('#layers tbody');
const startButton = document.getElementById('start');
const stopButton = document.getElementById('stop');
const preview = document.getElementById('preview');
const watchLink = document.getElementById('watch-link');
const overlay = reconnectOverlay(preview.parentElement);

let session = null;
let stream = null;
let stopSampling = null;
let attempt = 0;

hook.simulcast = null;
hook.encodings = null;

/** Fills the per-layer table from sample.layers. */
function renderLayers(layers) {
  const rows = [];
  for (const l of layers ?? []) {
    const tr = document.createElement('tr');
    if (l.active === false) tr.className = 'inactive';
    const cells = [
      l.rid ?? 'single',
      l.frameWidth ? `${l.frameWidth}×${l.frameHeight}` : '–',
      l.fps == null ? '–' : l.fps.toFixed(0),
      l.bitrateKbps == null ? '–' : String(l.bitrateKbps),
    ];
    for (const text of cells) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.append(td);
    }
    if (l.qualityLimitationReason && l.qualityLimitationReason !== 'none') {
      tr.title = `limited by ${l.qualityLimitationReason}`;
    }
    rows.push(tr);
  }
  if (!rows.length) {
    const tr = document.createElement('tr');
    const td = document.createElement('td');
    td.colSpan = 4;
    td.className = 'empty';
    td.textContent = '–';
    tr.append(td);
    rows.push(tr);
  }
  layersBody.replaceChildren(...rows);
}

function updateWatchLink() {
  const url = new URL('/watch', window.location.href);
  url.searchParams.set('room', room.value.trim() || 'demo');
  watchLink.href = url.pathname + url.search;
  watchLink.textContent = url.href;
}

async function getMedia() {
  const video = {
    width: { ideal: capture.width },
    height: { ideal: capture.height },
    frameRate: { ideal: capture.frameRate },
  };
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video });
  } catch (err) {
    // no microphone (or it was refused): carry on with video only
    if (err?.name === 'NotFoundError' || err?.name === 'NotReadableError') {
      return navigator.mediaDevices.getUserMedia({ video });
    }
    throw err;
  }
}

async function start() {
  const roomName = room.value.trim();
  if (!roomName) {
    showError(new Error('Enter a room name.'));
    return;
  }
  const myAttempt = ++attempt;
  const simulcast = simulcastBox.checked;
  showError(null);
  setBusy(startButton, stopButton, true);
  simulcastBox.disabled = true;
  hook.connectedOnce = false;
  hook.reconnectState = null;
  overlay.hide();
  setState('connecting', 'opening camera and microphone');
  rememberRoom(roomName);
  rememberSimulcast(simulcast);
  updateWatchLink();
  try {
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new Error('This page needs camera access, which browsers only allow on https:// or http://localhost.');
    }
    stream = await getMedia();
    if (myAttempt !== attempt) return; // stopped meanwhile
    preview.srcObject = stream;
    setHint('connecting to the server');
    session = await publish(roomEndpoint('whip', roomName), stream, {
      token: token.value.trim() || undefined,
      onPeerConnection: (pc) => trackConnection(pc),
      simulcast: simulcast ? SIMULCAST_ENCODINGS : false,
    });
    if (myAttempt !== attempt) {
      session.stop();
      return;
    }
    hook.location = session.location;
    const videoParams = session.senders.video.getParameters();
    hook.degradationPreference = videoParams.degradationPreference ?? null;
    hook.simulcast = simulcast;
    hook.encodings = (videoParams.encodings ?? []).map((e) => ({
      rid: e.rid ?? null,
      scaleResolutionDownBy: e.scaleResolutionDownBy ?? null,
      maxBitrate: e.maxBitrate ?? null,
      active: e.active ?? true,
    }));
    if (hook.state === 'connecting') setHint('establishing media connection');
    const current = session;
    const sample = () => startStats(current.pc, 'outbound', (s) => {
      hook.stats = s;
      renderStats(s, FIELDS);
      renderLayers(s.layers);
    });
    followReconnects(current, {
      overlay,
      onRenewed: () => {
        if (current !== session) return;
        stopSampling?.();
        stopSampling = sample();
      },
    });
    stopSampling = sample();
  } catch (err) {
    if (myAttempt !== attempt) return;
    releaseMedia();
    setState('failed');
    showError(err);
    setBusy(startButton, stopButton, false);
    simulcastBox.disabled = false;
  }
}

/** Keeps ?simulcast=0 in the address bar when it is off, so a reload keeps the choice. */
function rememberSimulcast(on) {
  const url = new URL(window.location.href);
  if (on) url.searchParams.delete('simulcast');
  else url.searchParams.set('simulcast', '0');
  window.history.replaceState(null, '', url);
}

function releaseMedia() {
  stream?.getTracks().forEach((t) => t.stop());
  stream = null;
  preview.srcObject = null;
}

async function stop({ keepalive = false } = {}) {
  attempt++;
  stopSampling?.();
  stopSampling = null;
  const current = session;
  session = null;
  releaseMedia();
  overlay.hide();
  await current?.stop({ keepalive });
  hook.location = null;
  hook.connectionState = 'closed';
  setState('stopped');
  setBusy(startButton, stopButton, false);
  simulcastBox.disabled = false;
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
room.addEventListener('input', updateWatchLink);
window.addEventListener('pagehide', () => {
  if (session) stop({ keepalive: true });
});

updateWatchLink();
renderStats(null, FIELDS);
setBusy(startButton, stopButton, false);
setState('idle');
if (params.get('autostart') === '1') start();

// Publish page: camera + microphone to a room over WHIP.
// URL parameters: room, token, width, height, fps, autostart=1.
// Test hook: window.switchboard (see ui.js); stats carry framesEncoded, and
// degradationPreference reports what the video sender ended up with.

import { publish } from './whip-whep.js';
import { startStats } from './stats.js';
import {
  hook, params, initFields, rememberRoom, roomEndpoint, setState, setHint, showError,
  trackConnection, renderStats, setBusy,
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
const startButton = document.getElementById('start');
const stopButton = document.getElementById('stop');
const preview = document.getElementById('preview');
const watchLink = document.getElementById('watch-link');

let session = null;
let stream = null;
let stopSampling = null;
let attempt = 0;

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
  showError(null);
  setBusy(startButton, stopButton, true);
  setState('connecting', 'opening camera and microphone');
  rememberRoom(roomName);
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
    });
    if (myAttempt !== attempt) {
      session.stop();
      return;
    }
    hook.location = session.location;
    hook.degradationPreference = session.senders.video.getParameters().degradationPreference ?? null;
    if (hook.state === 'connecting') setHint('establishing media connection');
    stopSampling = startStats(session.pc, 'outbound', (sample) => {
      hook.stats = sample;
      renderStats(sample, FIELDS);
    });
  } catch (err) {
    if (myAttempt !== attempt) return;
    releaseMedia();
    setState('failed');
    showError(err);
    setBusy(startButton, stopButton, false);
  }
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
  await current?.stop({ keepalive });
  hook.location = null;
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
room.addEventListener('input', updateWatchLink);
window.addEventListener('pagehide', () => {
  if (session) stop({ keepalive: true });
});

updateWatchLink();
renderStats(null, FIELDS);
setBusy(startButton, stopButton, false);
setState('idle');
if (params.get('autostart') === '1') start();

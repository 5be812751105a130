// Watch page: plays a room over WHEP.
// URL parameters: room, token, autostart=1.
// Test hook: window.switchboard (see ui.js); stats carry framesDecoded, freezeCount
// and packetsLost, and window.switchboard.firstFrameMs is the time in milliseconds
// from the 201 answer to the first decoded video frame (it includes any wait for a
// publisher when the viewer joined an empty room).

import { play } from './whip-whep.js';
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

hook.firstFrameMs = null;

let session = null;
let stopSampling = null;
let stopFirstFrameWatch = null;
let attempt = 0;

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
    video.srcObject = session.stream;
    startVideo();
    stopFirstFrameWatch = watchFirstFrame(session.pc, session.answeredAt);
    if (hook.state === 'connecting') setHint('establishing media connection');
    stopSampling = startStats(session.pc, 'inbound', (sample) => {
      hook.stats = sample;
      renderStats(sample, FIELDS);
      if (hook.state === 'connected' && !sample.framesDecoded) setHint('connected, waiting for the publisher');
      else if (hook.state === 'connected') setHint('');
    });
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
  const current = session;
  session = null;
  video.srcObject = null;
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
setBusy(startButton, stopButton, false);
setState('idle');
if (params.get('autostart') === '1') start();

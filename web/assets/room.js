// The conference page, /room/{name}: pre-join (name, camera and microphone preview,
// device pickers), then the call (grid of the room's participants, controls). Built on
// WHIP, WHEP slots, JSON PATCH preferences and server-sent events only
// (docs/conference.md); the pieces live in room-conference.js (sessions and room
// state), room-grid.js (tiles, layout, per-tile stats), room-media.js (capture),
// room-events.js (the event stream) and room-chat.js (chat, raised hands and emoji
// reactions over data channels, on a data-only WHEP session of their own).
//
// URL parameters: name (display name / identity), token (bearer token for every
// request), autojoin=1 (skip the pre-join screen), width, height, fps (camera capture,
// default 1280×720 at 30), mic=0 / cam=0 (join muted / with the camera off).
//
// Test hook, read-only: window.switchboardRoom = {
//   state,            // 'prejoin' | 'joining' | 'joined' | 'reconnecting' | 'failed' | 'left'
//   identity,         // ours: the `session` event's, else the name we joined with
//   sessionUrls,      // { whip, whep, screen }: session resource URLs, or null
//   participants,     // plain object identity → Participant
//   slots,            // the last `slots` event's list
//   activeSpeaker,    // identity or null
//   speakers,         // the last active-speaker event's levels
//   events,           // names of the events received, in order
//   layers,           // plain object mid → the last `layer` event for it
//   viewers, error, capsError, mic, cam, sharing, joinedAt,
//   reconnects,       // sessions their supervisor reconnected (whip-whep.js, "Reconnecting"):
//   lastReconnect,    //   { kind: 'ice-restart' | 'new-session', ms, session, … } or null
//                     //   (also on window.switchboard, as on the other pages)
//   tiles(),          // [{ mid, identity, name, source, width, height, framesDecoded,
//                     //    fps, bitrateKbps, firstFrameMs, tileWidth, tileHeight, cap, layer }]
//   chat: {
//     state,          // the data session's: 'connecting' | 'open' | 'failed' | 'closed'
//     messages,       // [{ from, name, text, at, mine }], the last 200: at is Date.now() when
//                     //   received (or sent: mine, our own, which the server never echoes)
//     unread,         // messages received while the panel was closed
//   },
//   reactions,        // [{ from, emoji, at }]: the last 50 received
//   hands,            // { identity: true } for every other participant whose hand is up
// }
//
// Tiles carry data-identity (their slot's identity); a reaction shows for 3 s as a
// .tile-reaction over the sender's camera tile, a raised hand as a .badge-icon.hand.

import { hook, params, showError, setState as setBadge, setHint } from './ui.js';
import { LocalMedia, fillDeviceSelect, meterLevel, captureScreen } from './room-media.js';
import { Conference } from './room-conference.js';
import { Grid } from './room-grid.js';
import { RoomChat } from './room-chat.js';

const AUDIO_SLOTS = 3;
const VIDEO_SLOTS = 9;
const NAME_RE = /^[A-Za-z0-9._~ -]{1,64}$/;

const $ = (id) => document.getElementById(id);

const positiveInt = (value, fallback) => {
  const n = Number.parseInt(value ?? '', 10);
  return Number.isFinite(n) && n > 0 ? n : fallback;
};
const off = (name) => params.get(name) === '0' || params.get(name) === 'false';

const room = (() => {
  const m = /^\/room\/([^/]+)\/?$/.exec(window.location.pathname);
  try {
    return m ? decodeURIComponent(m[1]) : '';
  } catch {
    return '';
  }
})();
const token = params.get('token') || undefined;

const local = new LocalMedia({
  width: positiveInt(params.get('width'), 1280),
  height: positiveInt(params.get('height'), 720),
  frameRate: positiveInt(params.get('fps'), 30),
});
local.enabled.audio = !off('mic');
local.enabled.video = !off('cam');

const ui = {
  prejoin: $('prejoin'),
  call: $('call'),
  preview: $('preview'),
  previewNote: $('preview-note'),
  meter: $('meter'),
  name: $('name'),
  camera: $('camera'),
  microphone: $('microphone'),
  form: $('join-form'),
  join: $('join'),
  preMic: $('prejoin-mic'),
  preCam: $('prejoin-cam'),
  area: $('area'),
  audioSlots: $('audio-slots'),
  people: $('people'),
  muteMic: $('mute-mic'),
  muteCam: $('mute-cam'),
  share: $('share'),
  stats: $('stats'),
  enableAudio: $('enable-audio'),
  leave: $('leave'),
};

let conf = null;
let grid = null;
const chat = new RoomChat();
let pageState = 'prejoin';
let stopMeter = () => {};
let joinedAt = null;

// ---------------------------------------------------------------------------
// hook

const plain = (map) => Object.fromEntries(map ?? []);
window.switchboardRoom = Object.freeze({
  get state() { return pageState; },
  get identity() { return conf?.identity ?? null; },
  get sessionUrls() { return conf ? conf.sessionUrls : { whip: null, whep: null, screen: null }; },
  get participants() { return structuredClone(plain(conf?.participants)); },
  get slots() { return structuredClone(conf?.slots ?? []); },
  get activeSpeaker() { return conf?.activeSpeaker ?? null; },
  get speakers() { return structuredClone(conf?.speakers ?? []); },
  get events() { return [...(conf?.events ?? [])]; },
  get layers() { return structuredClone(plain(conf?.layers)); },
  get viewers() { return conf?.viewers ?? null; },
  get error() { return window.switchboard?.error ?? null; },
  get capsError() { return conf?.capsError ?? null; },
  get mic() { return local.enabled.audio; },
  get cam() { return local.enabled.video; },
  get sharing() { return Boolean(conf?.screen); },
  get joinedAt() { return joinedAt; },
  get reconnects() { return hook.reconnects; },
  get lastReconnect() { return structuredClone(hook.lastReconnect); },
  tiles() { return grid ? grid.tiles() : []; },
  get chat() { return chat.snapshot().chat; },
  get reactions() { return chat.snapshot().reactions; },
  get hands() { return chat.snapshot().hands; },
  toJSON() {
    const out = {};
    for (const key of ['state', 'identity', 'sessionUrls', 'participants', 'slots', 'activeSpeaker', 'events', 'layers', 'viewers', 'error', 'capsError', 'mic', 'cam', 'sharing']) out[key] = this[key];
    Object.assign(out, chat.snapshot());
    out.tiles = this.tiles();
    return out;
  },
});

function setPageState(state) {
  pageState = state;
  document.body.dataset.state = state;
}

// ---------------------------------------------------------------------------
// pre-join: preview, devices, name

function updateToggles() {
  const micOn = local.enabled.audio;
  const camOn = local.enabled.video;
  for (const b of [ui.preMic, ui.muteMic]) {
    b.textContent = micOn ? 'Mute' : 'Unmute';
    b.setAttribute('aria-pressed', String(!micOn));
    b.title = micOn ? 'Mute your microphone' : 'Unmute your microphone';
    b.disabled = !local.track('audio');
  }
  for (const b of [ui.preCam, ui.muteCam]) {
    b.textContent = camOn ? 'Stop video' : 'Start video';
    b.setAttribute('aria-pressed', String(!camOn));
    b.title = camOn ? 'Turn your camera off' : 'Turn your camera on';
    b.disabled = !local.track('video');
  }
  ui.preview.classList.toggle('off', !camOn);
  grid?.updateSelf({ speaking: conf?.activeSpeaker && conf.activeSpeaker === conf.identity, micOn, camOn });
}

async function refreshDevices() {
  const devices = await local.listDevices().catch(() => []);
  fillDeviceSelect(ui.camera, devices, 'videoinput', local.deviceId('video'));
  fillDeviceSelect(ui.microphone, devices, 'audioinput', local.deviceId('audio'));
}

function showPreview() {
  ui.preview.srcObject = local.stream;
  stopMeter();
  stopMeter = meterLevel(local.track('audio'), ui.meter);
  const missing = [];
  if (!local.track('video')) missing.push('camera');
  if (!local.track('audio')) missing.push('microphone');
  ui.previewNote.hidden = missing.length === 0;
  ui.previewNote.textContent = missing.length
    ? `No ${missing.join(' or ')}${local.error ? ` (${local.error.name}: ${local.error.message})` : ''}. You can still join${missing.length === 2 ? ' and watch' : ''}.`
    : '';
  updateToggles();
}

async function openMedia() {
  if (!LocalMedia.supported()) {
    ui.previewNote.hidden = false;
    ui.previewNote.textContent = 'Camera access needs https:// or http://localhost. You can still join and watch.';
    updateToggles();
    return;
  }
  await local.open({ cameraId: ui.camera.value || undefined, micId: ui.microphone.value || undefined });
  showPreview();
  await refreshDevices();
}

function validName() {
  const name = ui.name.value.trim();
  return NAME_RE.test(name) ? name : null;
}

// ---------------------------------------------------------------------------
// the call

function showCall(on) {
  ui.prejoin.hidden = on;
  ui.call.hidden = !on;
  document.body.classList.toggle('in-call', on);
}

/** An error with a `hint` (see room-conference.js) shown as hint first, then the server's words. */
function describeError(err) {
  if (!err?.hint) return err;
  const problem = err.name === 'ProblemError';
  const e = new Error([err.hint, problem ? err.detail : err.message].filter(Boolean).join(' '));
  e.name = problem ? (err.status ? `${err.title} (${err.status})` : err.title) : err.name || 'Error';
  return e;
}

function bindAudio() {
  const audios = [];
  for (const [mid, kind] of conf?.offeredSlots() ?? []) {
    if (kind !== 'audio') continue;
    const audio = document.createElement('audio');
    audio.autoplay = true;
    audio.dataset.mid = mid;
    audio.srcObject = new MediaStream([conf.receiver(mid).track]);
    audios.push(audio);
  }
  ui.audioSlots.replaceChildren(...audios);
  playAudio();
}

function playAudio() {
  let blocked = false;
  const attempts = [...ui.audioSlots.querySelectorAll('audio')].map((a) => a.play().catch((err) => {
    if (err?.name === 'NotAllowedError') blocked = true;
  }));
  Promise.all(attempts).then(() => {
    ui.enableAudio.hidden = !blocked;
    if (blocked) setHint('the browser holds back the sound until you click Enable sound');
  });
}

function updatePeople() {
  if (!conf) return;
  const others = [...conf.participants.values()].filter((p) => p.identity !== conf.identity);
  const names = others.map((p) => p.name || p.identity);
  ui.people.textContent = conf.state === 'joined'
    ? `${others.length} other${others.length === 1 ? '' : 's'} here${conf.viewers != null ? ` · ${conf.viewers} watching` : ''}`
    : '';
  ui.people.title = names.join(', ');
}

function updateStatus() {
  if (!conf) return;
  const pcs = [conf.whep, conf.camera, conf.screen].filter(Boolean).map((s) => s.pc.connectionState);
  switch (conf.state) {
    case 'joining':
      setBadge('connecting', 'joining');
      break;
    case 'reconnecting':
      setBadge('connecting', `reconnecting: ${conf.reconnectReason ?? ''}`);
      break;
    case 'joined':
      if (conf.reconnecting) {
        const { attempt } = conf.reconnecting;
        setBadge('connecting', `reconnecting…${attempt > 1 ? ` (attempt ${attempt})` : ''}`);
      } else if (pcs.some((s) => s === 'failed')) setBadge('failed', 'a connection failed; reconnecting');
      else if (pcs.every((s) => s === 'connected')) setBadge('connected', '');
      else setBadge('connecting', 'connecting media');
      break;
    default:
      break;
  }
  updatePeople();
}

function onConferenceChange(e) {
  switch (e.detail.what) {
    case 'state':
      // back after a reconnect (maybe on another node): the data session follows
      if (conf.state === 'joined' && pageState === 'reconnecting') chat.restart();
      if (conf.state === 'joined' || conf.state === 'reconnecting') setPageState(conf.state);
      updateStatus();
      grid.render();
      grid.showReconnecting(conf.state === 'reconnecting' || Boolean(conf.reconnecting));
      break;
    case 'media':
      grid.bindMedia();
      bindAudio();
      break;
    case 'participants':
      chat.prune(conf.participants);
      grid.render();
      updatePeople();
      break;
    case 'slots':
    case 'layer':
      grid.render();
      updatePeople();
      break;
    case 'speaker':
      grid.render();
      updateToggles();
      break;
    case 'viewers':
      updatePeople();
      break;
    case 'reconnected':
      hook.reconnects = conf.reconnects;
      hook.lastReconnect = conf.lastReconnect;
      break;
    case 'error':
      showError(describeError(conf.error));
      break;
    case 'publishing':
      ui.share.textContent = conf.screen ? 'Stop sharing' : 'Share screen';
      ui.share.setAttribute('aria-pressed', String(Boolean(conf.screen)));
      grid.setSelf(conf.camera ? local.stream : null);
      updateToggles();
      break;
    default:
      break;
  }
}

async function join() {
  const name = validName();
  if (!name) {
    showError(new Error('Enter a name of 1 to 64 letters, digits, spaces and . _ ~ - to join.'));
    ui.name.focus();
    return;
  }
  if (!room) {
    showError(new Error('This address names no room: open /room/NAME.'));
    return;
  }
  showError(null);
  ui.join.disabled = true;
  setPageState('joining');
  const url = new URL(window.location.href);
  url.searchParams.set('name', name);
  window.history.replaceState(null, '', url);

  conf = new Conference({ room, name, token, audioSlots: AUDIO_SLOTS, videoSlots: VIDEO_SLOTS });
  grid ??= new Grid(ui.area, conf);
  grid.conf = conf;
  grid.marks = chat.marks;
  conf.addEventListener('change', onConferenceChange);
  showCall(true);
  setBadge('connecting', 'joining');
  try {
    await conf.join(local.stream);
    joinedAt = Date.now();
    grid.startStats();
    setPageState('joined');
    updateStatus();
    chat.start(conf); // its own session: if it fails, the call goes on without chat
  } catch (err) {
    setPageState('failed');
    grid.stopStats();
    grid.clear();
    conf.removeEventListener('change', onConferenceChange);
    showCall(false);
    showError(describeError(err));
    ui.join.disabled = false;
  }
}

async function leave({ keepalive = false } = {}) {
  if (!conf || conf.state === 'left') return;
  const current = conf;
  current.removeEventListener('change', onConferenceChange);
  // the DELETEs go out first, whatever happens to the page after
  const done = Promise.all([current.leave({ keepalive }), chat.stop({ keepalive })]);
  if (keepalive) return;
  grid.stopStats();
  grid.clear();
  grid.setSelf(null);
  ui.audioSlots.replaceChildren();
  ui.enableAudio.hidden = true;
  await done;
  setPageState('left');
  showCall(false);
  ui.join.disabled = false;
  ui.share.textContent = 'Share screen';
  ui.share.setAttribute('aria-pressed', 'false');
  setBadge('idle', '');
  const url = new URL(window.location.href);
  url.searchParams.delete('autojoin');
  window.history.replaceState(null, '', url);
  // a leave keeps the preview running for the next join
  if (!local.stream || !local.stream.getTracks().some((t) => t.readyState === 'live')) await openMedia();
  else showPreview();
}

async function toggleShare() {
  if (!conf || conf.state !== 'joined') return;
  if (conf.screen) {
    await conf.stopScreen();
    return;
  }
  ui.share.disabled = true;
  try {
    const stream = await captureScreen();
    const track = stream.getVideoTracks()[0];
    // the browser's own "Stop sharing" ends the track: end the WHIP session with it
    track?.addEventListener('ended', () => {
      if (conf?.screenStream === stream) conf.stopScreen();
    });
    await conf.startScreen(stream);
  } catch (err) {
    if (err?.name !== 'NotAllowedError' && err?.name !== 'AbortError') showError(err);
  } finally {
    ui.share.disabled = false;
  }
}

function toggleAllStats() {
  const on = ui.stats.getAttribute('aria-pressed') !== 'true';
  ui.stats.setAttribute('aria-pressed', String(on));
  grid?.setSummaries(on);
}

// ---------------------------------------------------------------------------
// wiring

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  if (!ui.join.disabled) join();
});
ui.camera.addEventListener('change', () => openMedia());
ui.microphone.addEventListener('change', () => openMedia());
for (const b of [ui.preMic, ui.muteMic]) {
  b.addEventListener('click', () => {
    local.setEnabled('audio', !local.enabled.audio);
    updateToggles();
  });
}
for (const b of [ui.preCam, ui.muteCam]) {
  b.addEventListener('click', () => {
    local.setEnabled('video', !local.enabled.video);
    updateToggles();
  });
}
ui.share.addEventListener('click', () => toggleShare());
ui.stats.addEventListener('click', () => toggleAllStats());
ui.enableAudio.addEventListener('click', () => playAudio());
ui.leave.addEventListener('click', () => leave());
chat.addEventListener('change', (e) => {
  if (e.detail.what === 'marks') grid?.renderMarks();
});
navigator.mediaDevices?.addEventListener?.('devicechange', () => refreshDevices());
window.addEventListener('pagehide', () => leave({ keepalive: true }));

$('room-name').textContent = room || '(none)';
document.title = `${room || 'Room'} · Switchboard`;
ui.name.value = params.get('name') || '';
setPageState('prejoin');
updateToggles();
if (!room) showError(new Error('This address names no room: open /room/NAME.'));

(async () => {
  const autojoin = params.get('autojoin') === '1' && validName() && room;
  if (autojoin) {
    // straight into the call: the pre-join screen never shows
    ui.prejoin.hidden = true;
  }
  await openMedia();
  if (autojoin) join();
  else if (!ui.name.value) ui.name.focus();
})();

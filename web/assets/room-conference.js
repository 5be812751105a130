// One participant's connection to a conference room (docs/conference.md): the camera
// WHIP session, the optional screen-share WHIP session, the WHEP session whose
// recvonly m-lines are slots, its event stream, and the room state the events carry.
// No DOM here: the page renders from this state when a `change` event says what changed.
//
//   const conf = new Conference({ room, name, token, audioSlots: 3, videoSlots: 9 });
//   conf.addEventListener('change', (e) => e.detail.what);  // see CHANGES below
//   await conf.join(localStream);      // WHEP (slots) and WHIP (camera) in parallel
//   conf.receiver(mid)                 // the RTCRtpReceiver of a slot
//   conf.requestCaps(new Map([[mid, { maxWidth, maxHeight }]]))  // debounced PATCH
//   await conf.startScreen(stream); await conf.stopScreen();
//   await conf.leave();                // DELETE every session
//
// Every session reconnects by itself first (whip-whep.js, "Reconnecting"): an ICE
// restart when its connection drops, a new POST of the same session when the server
// forgot it (a 404); a new WHEP session gets its slots and event stream bound again.
// A `reconnect` event (the node drains), or a session whose supervisor gave up, sets up
// new sessions: the new WHEP session first (the old one keeps playing meanwhile), then
// the WHIP sessions (a new camera session of a live identity is answered 409, so the old
// one is ended first when that happens).

import { publish, play, SIMULCAST_ENCODINGS } from './whip-whep.js';
import { openEventStream } from './room-events.js';

/**
 * What a `change` event's detail.what can be: 'state', 'sessions', 'media' (a new WHEP
 * peer connection: bind slots again), 'participants', 'slots', 'speaker', 'layer',
 * 'viewers', 'events', 'error', 'publishing', 'reconnected' (a session's supervisor
 * reconnected it: its lastReconnect says how).
 */
export const CHANGES = Object.freeze([
  'state', 'sessions', 'media', 'participants', 'slots', 'speaker', 'layer', 'viewers', 'events', 'error', 'publishing',
  'reconnected',
]);

/** Camera simulcast as docs/conference.md has browsers send it: q/h/f at ¼, ½ and full size. */
export const CAMERA_ENCODINGS = Object.freeze(
  SIMULCAST_ENCODINGS.map((e) => Object.freeze({ scaleResolutionDownBy: 1, ...e })),
);

/** A screen share is one high-resolution encoding; text stays readable in the large tile. */
const SCREEN_ENCODINGS = Object.freeze([Object.freeze({ maxBitrate: 2_500_000 })]);
/** Wait after a tile resize before the PATCH goes out. */
const CAPS_DEBOUNCE_MS = 300;
/** Events kept for window.switchboardRoom.events. */
const MAX_EVENTS = 5000;
const MAX_RECOVERY_WAIT_MS = 60_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Conference extends EventTarget {
  constructor({ room, name, token, audioSlots = 3, videoSlots = 9 }) {
    super();
    this.room = room;
    this.name = name;
    this.token = token || undefined;
    this.audioSlots = audioSlots;
    this.videoSlots = videoSlots;

    this.state = 'idle'; // 'joining' | 'joined' | 'reconnecting' | 'left' | 'failed'
    this.error = null;
    this.identity = name;
    this.node = null;
    this.drainingNode = null; // the node whose `reconnect` moved us last
    this.participants = new Map(); // identity → Participant
    this.slots = []; // the last `slots` event's list
    this.activeSpeaker = null;
    this.speakers = [];
    this.layers = new Map(); // mid → the last `layer` event for it
    this.viewers = null;
    this.events = [];
    this.capsError = null;

    this.camera = null; // WHIP sessions (whip-whep.js)
    this.screen = null;
    this.whep = null;
    this.stream = null; // the published camera/microphone stream
    this.screenStream = null;
    this.eventStream = null;
    this.epoch = 0; // bumped per WHEP session: events of an older one are dropped
    this.recovering = false;
    this.recoveries = 0;
    this.lastRecoveryAt = -Infinity;
    this.reconnects = 0; // sessions that their supervisor reconnected (whip-whep.js)
    this.lastReconnect = null; // the last one's lastReconnect, with `session`: 'WHEP' | 'camera' | 'screen'

    this.sentCaps = new Map(); // mid → "w×h" last accepted by the server
    this.pendingCaps = null;
    this.capsTimer = null;
  }

  emit(what) {
    this.dispatchEvent(new CustomEvent('change', { detail: { what } }));
  }

  setState(state) {
    this.state = state;
    this.emit('state');
  }

  fail(err) {
    this.error = err;
    this.emit('error');
  }

  endpoint(kind, source) {
    const q = new URLSearchParams({ name: this.name });
    if (source === 'screen') q.set('source', 'screen');
    return `/${kind}/${encodeURIComponent(this.room)}?${q}`;
  }

  get sessionUrls() {
    return {
      whip: this.camera?.location ?? null,
      whep: this.whep?.location ?? null,
      screen: this.screen?.location ?? null,
    };
  }

  /** The receiver of slot `mid` on the current WHEP session, or null. */
  receiver(mid) {
    const t = this.whep?.pc.getTransceivers().find((x) => x.mid === mid);
    return t?.receiver ?? null;
  }

  /** mid → kind of every slot offered on the current WHEP session. */
  offeredSlots() {
    const map = new Map();
    for (const t of this.whep?.pc.getTransceivers() ?? []) {
      if (t.mid != null) map.set(t.mid, t.receiver.track.kind);
    }
    return map;
  }

  /**
   * Joins: the WHEP session (must succeed) and the camera WHIP session (when `stream`
   * has tracks). A 409 on WHIP means the name is taken: the join fails. Any other
   * publishing failure leaves the participant watching, with `error` set.
   */
  async join(stream) {
    this.setState('joining');
    this.error = null;
    this.stream = stream;
    const wantPublish = Boolean(stream?.getTracks().length);
    const [whep, camera] = await Promise.allSettled([
      this.openWhep(),
      wantPublish ? this.publishCamera() : Promise.resolve(null),
    ]);
    if (whep.status === 'rejected' || (camera.status === 'rejected' && camera.reason?.status === 409)) {
      if (whep.status === 'fulfilled') this.closeWhep(whep.value);
      if (camera.status === 'fulfilled') camera.value?.stop();
      const err = whep.status === 'rejected' ? whep.reason : camera.reason;
      if (err?.status === 409 && camera.status === 'rejected') {
        err.hint = `Somebody named “${this.name}” is already in this room: pick another name.`;
      }
      this.error = err;
      this.setState('failed');
      throw err;
    }
    this.useWhep(whep.value);
    this.camera = camera.status === 'fulfilled' ? camera.value : null;
    if (camera.status === 'rejected') {
      camera.reason.hint = 'Publishing failed: you can watch, but nobody sees or hears you.';
      this.fail(camera.reason);
    }
    this.emit('sessions');
    this.emit('publishing');
    this.setState('joined');
  }

  /** Creates a WHEP session with its slots; its events start once it is in use. */
  async openWhep() {
    const session = await play(this.endpoint('whep'), {
      token: this.token,
      audioSlots: this.audioSlots,
      videoSlots: this.videoSlots,
    });
    this.superviseSession(session, 'WHEP', () => session === this.whep, () => {
      // a new POST (the old session was gone): new receivers, a new event stream
      if (session === this.whep) this.useWhep(session);
    });
    return session;
  }

  /**
   * Follows a session's connection and reconnect supervisor: `isCurrent()` says whether
   * it is still in use, `onRenewed()` runs after a new POST replaced its resource.
   */
  superviseSession(session, what, isCurrent, onRenewed) {
    const follow = (pc) => pc.addEventListener('connectionstatechange', () => {
      if (!isCurrent() || pc !== session.pc) return;
      this.emit('state');
      // one that never connected has no supervisor yet: new sessions
      if (pc.connectionState === 'failed' && session.reconnectState !== 'reconnecting') {
        this.recover(`${what} connection failed`, 1000);
      }
    });
    follow(session.pc);
    session.addEventListener('reconnectstate', () => {
      if (isCurrent()) this.emit('state');
    });
    session.addEventListener('reconnected', () => {
      if (!isCurrent()) return;
      this.reconnects += 1;
      this.lastReconnect = { ...session.lastReconnect, session: what };
      this.emit('reconnected');
    });
    session.addEventListener('reconnectfailed', () => {
      if (isCurrent()) this.recover(`${what} connection lost`, 1000);
    });
    session.addEventListener('renewed', () => {
      follow(session.pc);
      if (!isCurrent()) return;
      onRenewed?.();
      this.emit('sessions');
    });
  }

  /** Whether any session is reconnecting now, and the largest attempt number. */
  get reconnecting() {
    const sessions = [this.whep, this.camera, this.screen].filter(Boolean);
    const busy = sessions.filter((s) => s.reconnectState === 'reconnecting');
    return busy.length ? { attempt: Math.max(...busy.map((s) => s.reconnectAttempt || 1)) } : null;
  }

  /** Makes `session` the current WHEP session and follows its event stream. */
  useWhep(session) {
    const epoch = ++this.epoch;
    this.eventStream?.close();
    this.whep = session;
    this.sentCaps.clear();
    this.layers.clear();
    this.slots = [];
    this.emit('media');
    this.emit('slots');
    if (!session.eventsUrl) {
      this.fail(new Error('The server offers no event stream for this session: the room cannot be shown.'));
      return;
    }
    this.eventStream = openEventStream(session.eventsUrl, {
      token: this.token,
      onEvent: (name, data) => {
        if (epoch === this.epoch) this.onEvent(name, data ?? {});
      },
      onGone: () => {
        // the server forgot the session: the supervisor POSTs it again (same slots)
        if (epoch === this.epoch) session.reconnect({ newSession: true, reason: 'gone' });
      },
    });
  }

  closeWhep(session) {
    if (!session) return Promise.resolve();
    return session.stop();
  }

  async publishCamera() {
    const kinds = this.stream.getTracks().map((t) => t.kind);
    const session = await publish(this.endpoint('whip'), this.stream, {
      token: this.token,
      simulcast: kinds.includes('video') ? CAMERA_ENCODINGS : false,
      videoCodec: 'video/VP8',
      kinds,
    });
    this.watchPublisher(session, 'camera');
    return session;
  }

  async publishScreen() {
    const session = await publish(this.endpoint('whip', 'screen'), this.screenStream, {
      token: this.token,
      simulcast: SCREEN_ENCODINGS,
      videoCodec: 'video/VP8',
      kinds: this.screenStream.getTracks().map((t) => t.kind),
    });
    this.watchPublisher(session, 'screen');
    return session;
  }

  watchPublisher(session, which) {
    this.superviseSession(session, which, () => session === this[which]);
  }

  onEvent(name, data) {
    this.events.push(name);
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
    switch (name) {
      case 'session':
        if (data.identity) this.identity = data.identity;
        this.node = data.node ?? null;
        this.emit('sessions');
        break;
      case 'participants':
        this.participants = new Map((data.participants ?? []).map((p) => [p.identity, p]));
        this.emit('participants');
        break;
      case 'participant-joined':
      case 'participant-updated':
        if (data.identity) this.participants.set(data.identity, data);
        this.emit('participants');
        break;
      case 'participant-left':
        this.participants.delete(data.identity);
        this.emit('participants');
        break;
      case 'slots':
        this.slots = Array.isArray(data.slots) ? data.slots : [];
        for (const mid of this.layers.keys()) {
          // a layer report belongs to the track it was about
          const slot = this.slots.find((s) => s.mid === mid);
          const layer = this.layers.get(mid);
          if (!slot || slot.identity !== layer.identity || slot.track !== layer.track) this.layers.delete(mid);
        }
        this.emit('slots');
        break;
      case 'active-speaker':
        this.activeSpeaker = data.identity ?? null;
        this.speakers = Array.isArray(data.speakers) ? data.speakers : [];
        this.emit('speaker');
        break;
      case 'layer':
        if (data.mid != null) this.layers.set(data.mid, data);
        this.emit('layer');
        break;
      case 'viewers':
        this.viewers = data.count ?? null;
        this.emit('viewers');
        break;
      case 'reconnect': {
        // A new session that landed on the very node that is draining (a single server
        // keeps taking sessions for its live rooms) would be told to move at once again:
        // moving once is enough, this one stays until the node goes.
        if (this.node && this.node === this.drainingNode) break;
        this.drainingNode = this.node;
        const after = Number(data.retryAfter);
        this.recover('the server is draining', Number.isFinite(after) && after >= 0 ? after * 1000 : 3000);
        break;
      }
      default:
        break; // an event this page does not know: listed in `events`, nothing else
    }
    this.emit('events');
  }

  /**
   * Caps each slot's resolution to its tile: `caps` maps mid → { maxWidth, maxHeight }
   * in device pixels. Only changes are sent, together, after a short quiet period.
   */
  requestCaps(caps) {
    this.pendingCaps = caps;
    clearTimeout(this.capsTimer);
    this.capsTimer = setTimeout(() => this.flushCaps(), CAPS_DEBOUNCE_MS);
  }

  async flushCaps() {
    const session = this.whep;
    const caps = this.pendingCaps;
    if (!session || !caps || this.state !== 'joined') return;
    const changed = [];
    for (const [mid, c] of caps) {
      const key = `${c.maxWidth}x${c.maxHeight}`;
      if (this.sentCaps.get(mid) !== key) changed.push({ mid, maxWidth: c.maxWidth, maxHeight: c.maxHeight });
    }
    if (!changed.length) return;
    try {
      await session.setPreferences({ slots: changed });
      if (session !== this.whep) return;
      for (const c of changed) this.sentCaps.set(c.mid, `${c.maxWidth}x${c.maxHeight}`);
      this.capsError = null;
    } catch (err) {
      // not fatal: the slot then gets whatever the bandwidth allows; tried again on the next change
      if (session === this.whep) this.capsError = err.message;
    }
  }

  /** Publishes a screen share next to the camera (`?source=screen`). */
  async startScreen(stream) {
    if (this.screen) await this.stopScreen();
    this.screenStream = stream;
    try {
      this.screen = await this.publishScreen();
    } catch (err) {
      this.screenStream = null;
      throw err;
    }
    this.emit('sessions');
    this.emit('publishing');
  }

  /** Ends the screen share: DELETE on its WHIP session, capture stopped. */
  async stopScreen() {
    const session = this.screen;
    const stream = this.screenStream;
    this.screen = null;
    this.screenStream = null;
    stream?.getTracks().forEach((t) => t.stop());
    this.emit('sessions');
    this.emit('publishing');
    await session?.stop();
  }

  /**
   * New sessions for old ones, after `delayMs` (the server's retryAfter, plus jitter so
   * a draining node's viewers do not all come back at once). Repeated recoveries back off.
   */
  async recover(reason, delayMs = 0) {
    if (this.recovering || (this.state !== 'joined' && this.state !== 'reconnecting')) return;
    this.recovering = true;
    const now = performance.now();
    this.recoveries = now - this.lastRecoveryAt < 30_000 ? this.recoveries + 1 : 0;
    this.lastRecoveryAt = now;
    const backoff = Math.min(MAX_RECOVERY_WAIT_MS, delayMs * 2 ** this.recoveries + Math.random() * 1000);
    this.setState('reconnecting');
    this.reconnectReason = reason;
    try {
      await sleep(backoff);
      if (this.state !== 'reconnecting') return;
      const whep = await this.openWhep();
      if (this.state !== 'reconnecting') {
        whep.stop();
        return;
      }
      const old = this.whep;
      this.useWhep(whep);
      this.closeWhep(old);
      if (this.camera) this.camera = await this.republish(this.camera, 'camera');
      if (this.screen) this.screen = await this.republish(this.screen, 'screen');
      this.emit('sessions');
      this.setState('joined');
    } catch (err) {
      this.fail(err);
      this.recovering = false;
      if (this.state === 'reconnecting') this.recover(reason, Math.max(delayMs, 2000));
      return;
    }
    this.recovering = false;
  }

  /** A new WHIP session for `old`; when the server refuses a second one (409), old goes first. */
  async republish(old, which) {
    const start = () => (which === 'camera' ? this.publishCamera() : this.publishScreen());
    let session;
    try {
      session = await start();
      old.stop();
    } catch (err) {
      if (err?.status !== 409) throw err;
      await old.stop();
      session = await start();
    }
    return session;
  }

  /** Ends every session (DELETE); with { keepalive } while the page unloads. */
  async leave({ keepalive = false } = {}) {
    this.setState('left');
    clearTimeout(this.capsTimer);
    this.eventStream?.close();
    this.eventStream = null;
    this.epoch++;
    const sessions = [this.screen, this.camera, this.whep];
    this.screen = null;
    this.camera = null;
    this.whep = null;
    this.screenStream?.getTracks().forEach((t) => t.stop());
    this.screenStream = null;
    this.slots = [];
    this.participants.clear();
    this.activeSpeaker = null;
    this.emit('media');
    this.emit('sessions');
    await Promise.all(sessions.map((s) => s?.stop({ keepalive })));
  }
}

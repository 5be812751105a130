// The timing and the probes of the reconnect supervisor (session.js). Pure helpers over a
// peer connection; no HTTP here.
//
// Reconnecting (docs/conference.md, "Reconnecting clients"): every session has a
// supervisor. Once connected, a connection that goes `failed`, stays `disconnected` for
// 2 s, or (a viewer) stops receiving for 1 s after a steady flow is restarted by ICE
// restart (PATCH, session.js) with backoff (0.5 s doubling to 10 s, ±25 %), for up to 60 s. A
// PATCH answered 404 (the server forgot the session), or session.reconnect({ newSession:
// true }) (a drain, a 404 elsewhere), POSTs a fresh offer from a new peer connection to
// the same endpoint with the same options instead: same tracks and encodings (WHIP),
// same slots and the same `stream` (WHEP); the session object, and what the page holds
// of it, stays. Events on the session (an EventTarget): 'reconnectstate' (reconnectState
// 'reconnecting' with reconnectAttempt, then 'connected' or 'failed'), 'renewed' (a new
// peer connection and resource URL: bind stats and elements again), 'reconnected'
// (lastReconnect = { kind: 'ice-restart' | 'new-session', trigger, attempts, ms,
// connectedMs, packetsMs, startedAt, resumedAt }), 'reconnectfailed' (gave up).

/**
 * The reconnect supervisor's timing (see "Reconnecting" above and docs/conference.md):
 * `disconnected` for disconnectedGraceMs, or `failed`, starts it; retry n waits
 * firstRetryMs·2^(n-1) (capped at maxRetryMs, ±25 % jitter); each step waits up to
 * connectWaitMs for the connection; it gives up after giveUpMs.
 */
export const RECONNECT = Object.freeze({
  disconnectedGraceMs: 2000,
  firstRetryMs: 500,
  maxRetryMs: 10_000,
  connectWaitMs: 5000,
  giveUpMs: 60_000,
  /**
   * A media stall also starts it (viewers only): nothing received on the transport for
   * stallMs (checked every stallPollMs), after at least stallMinPps packets/s before:
   * the path died while ICE still says connected (ICE notices after its consent
   * checks, seconds later).
   */
  stallMs: 1000,
  stallMinPps: 20,
  stallPollMs: 400,
  /** After the connection is back: how long a viewer waits for a decoded frame to time it. */
  mediaWaitMs: 10_000,
});

/** What the supervisor waits for: the peer connection's DTLS/ICE connection is up. */
export function connectedState(pc) {
  return pc.connectionState === 'connected';
}

/** Resolves true once `pc` is connected, false after `ms` or when it fails or closes. */
export function waitConnected(pc, ms) {
  if (connectedState(pc)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok) => {
      clearTimeout(timer);
      pc.removeEventListener('connectionstatechange', onChange);
      resolve(ok);
    };
    const onChange = () => {
      if (connectedState(pc)) done(true);
      else if (pc.connectionState === 'failed' || pc.connectionState === 'closed') done(false);
    };
    const timer = setTimeout(() => done(false), ms);
    pc.addEventListener('connectionstatechange', onChange);
  });
}

/**
 * { frames, packets }: framesDecoded and packetsReceived summed over the inbound video
 * of `pc` (0 without any), null when closed.
 */
export async function inboundVideo(pc) {
  try {
    const n = { frames: 0, packets: 0 };
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && (s.kind ?? s.mediaType) === 'video') {
        n.frames += s.framesDecoded ?? 0;
        n.packets += s.packetsReceived ?? 0;
      }
    });
    return n;
  } catch {
    return null;
  }
}

/** The wait before retry `attempt` (1, 2, …): RECONNECT.firstRetryMs doubling, capped, ±25 % jitter. */
export function reconnectBackoff(attempt) {
  const base = Math.min(RECONNECT.maxRetryMs, RECONNECT.firstRetryMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.75 + Math.random() * 0.5));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

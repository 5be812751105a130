// Small helpers shared by the publish and watch pages.
//
// Automation hook: every page keeps `window.switchboard` up to date:
//   window.switchboard = {
//     state,   // 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'failed' | 'stopped'
//     stats,   // latest per-second sample (see stats.js) or null, at least
//              // { frameWidth, frameHeight, fps, bitrateKbps,
//              //   framesEncoded (publish) | framesDecoded, freezeCount, packetsLost (watch) }
//     error,   // human-readable message of the last failure, or null
//     reconnects,      // reconnects that succeeded since the page loaded
//     lastReconnect,   // the last one: { kind: 'ice-restart' | 'new-session', trigger,
//                      //   attempts, ms (trigger → media again: a decoded frame for a
//                      //   viewer, the connection for a publisher), connectedMs,
//                      //   startedAt, resumedAt (performance.now() values) } or null
//     reconnectState,  // 'connected' | 'reconnecting' | 'failed' (see whip-whep.js)
//     reconnectAttempt,
//     ...      // page extras, e.g. firstFrameMs on the watch page
//   }
// Browser tests poll these fields instead of scraping the DOM.

export const params = new URLSearchParams(window.location.search);

export const hook = {
  state: 'idle',
  stats: null,
  error: null,
  connectionState: 'new',
  location: null,
  reconnects: 0,
  lastReconnect: null,
  reconnectState: null,
  reconnectAttempt: 0,
};
window.switchboard = hook;

const $ = (id) => document.getElementById(id);

/** Room names end up in a URL path segment; keep what the server accepts readable. */
export function roomEndpoint(kind, room) {
  return `/${kind}/${encodeURIComponent(room)}`;
}

export function initFields(defaultRoom = 'demo') {
  const room = $('room');
  const token = $('token');
  room.value = params.get('room') || defaultRoom;
  token.value = params.get('token') || '';
  return { room, token };
}

/** Keeps ?room= in the address bar so the page can be shared or reloaded. */
export function rememberRoom(room) {
  const url = new URL(window.location.href);
  url.searchParams.set('room', room);
  url.searchParams.delete('autostart');
  window.history.replaceState(null, '', url);
}

export function setState(state, hint = '') {
  hook.state = state;
  const badge = $('state');
  if (badge) {
    badge.textContent = state;
    // reconnecting looks like connecting (the stylesheet knows that one)
    badge.dataset.state = state === 'reconnecting' ? 'connecting' : state;
  }
  setHint(hint);
}

export function setHint(text) {
  const hint = $('hint');
  if (hint) hint.textContent = text;
}

export function showError(err) {
  const box = $('error');
  if (!err) {
    hook.error = null;
    if (box) box.hidden = true;
    return;
  }
  let title;
  let detail;
  if (err.name === 'ProblemError') {
    title = err.status ? `${err.title} (${err.status})` : err.title;
    detail = err.detail;
  } else if (err instanceof Error || err?.name) {
    title = err.name && err.name !== 'Error' ? err.name : 'Error';
    detail = err.message;
  } else {
    title = String(err);
  }
  hook.error = detail ? `${title}: ${detail}` : title;
  if (box) {
    box.replaceChildren();
    const strong = document.createElement('strong');
    strong.textContent = title;
    box.append(strong);
    if (detail) {
      const p = document.createElement('p');
      p.textContent = detail;
      box.append(p);
    }
    box.hidden = false;
  }
}

/** "udp 192.0.2.1:7880, ..." from the candidates in the server's answer. */
function serverCandidates(pc) {
  const sdp = pc.remoteDescription?.sdp || '';
  const found = new Set();
  for (const line of sdp.split(/\r?\n/)) {
    const m = /^a=candidate:\S+ \d+ (\S+) \d+ (\S+) (\d+) typ/i.exec(line);
    if (m) found.add(`${m[1].toLowerCase()} ${m[2]}:${m[3]}`);
  }
  return [...found].join(', ');
}

/**
 * Follows the peer connection's state into the hook and the status badge. Once the
 * session connected, a lost connection is the reconnect supervisor's (whip-whep.js):
 * the page says "reconnecting…" (see followReconnects) instead of "failed".
 */
export function trackConnection(pc, { onFailed } = {}) {
  const update = () => {
    const cs = pc.connectionState;
    hook.connectionState = cs;
    if (cs === 'connected') {
      hook.connectedOnce = true;
      if (hook.reconnectState !== 'reconnecting') setState('connected');
    } else if (hook.connectedOnce && (cs === 'disconnected' || cs === 'failed')) {
      if (hook.reconnectState !== 'failed') setState('reconnecting', 'connection lost: reconnecting…');
    } else if (cs === 'disconnected') setState('connecting', 'connection interrupted, waiting for it to recover');
    else if (cs === 'failed') {
      setState('failed');
      const where = serverCandidates(pc);
      showError(new Error(
        'The ICE/DTLS connection to the server failed.' +
          (where ? ` The server offered ${where}; check that this browser can reach it over UDP.` : ''),
      ));
      onFailed?.();
    }
  };
  pc.addEventListener('connectionstatechange', update);
  update();
}

/** A "reconnecting…" note over `container` (a positioned element), shown while `on`. */
export function reconnectOverlay(container) {
  const note = document.createElement('div');
  note.className = 'reconnect-note';
  note.setAttribute('role', 'status');
  note.hidden = true;
  Object.assign(note.style, {
    position: 'absolute', inset: '0', display: 'flex', alignItems: 'center', justifyContent: 'center',
    background: 'rgba(0, 0, 0, 0.45)', color: '#fff', font: '600 1.1rem/1.4 system-ui, sans-serif',
    textAlign: 'center', pointerEvents: 'none', zIndex: '2',
  });
  if (getComputedStyle(container).position === 'static') container.style.position = 'relative';
  container.append(note);
  return {
    show(text) {
      note.textContent = text;
      note.hidden = false;
      note.style.display = 'flex';
    },
    hide() {
      note.hidden = true;
      note.style.display = 'none';
    },
  };
}

/**
 * Follows a session's reconnect supervisor (whip-whep.js) into the hook, the badge and
 * `overlay` (from reconnectOverlay, optional); `onRenewed()` after a new POST (a new
 * peer connection: the page binds its media and stats again).
 */
export function followReconnects(session, { overlay, onRenewed } = {}) {
  const sync = () => {
    hook.reconnectState = session.reconnectState;
    hook.reconnectAttempt = session.reconnectAttempt;
    hook.location = session.location;
    hook.etag = session.etag;
  };
  session.addEventListener('reconnectstate', () => {
    sync();
    if (session.reconnectState === 'reconnecting') {
      const n = session.reconnectAttempt;
      const text = `reconnecting…${n > 1 ? ` (attempt ${n})` : ''}`;
      setState('reconnecting', text);
      overlay?.show(text);
    } else if (session.reconnectState === 'connected') {
      overlay?.hide();
      showError(null);
      setState(session.pc.connectionState === 'connected' ? 'connected' : 'connecting');
    }
  });
  session.addEventListener('reconnected', (e) => {
    sync();
    hook.reconnects += 1;
    hook.lastReconnect = { ...e.detail };
  });
  session.addEventListener('reconnectfailed', (e) => {
    sync();
    overlay?.show('connection lost');
    setState('failed');
    showError(e.detail?.error ?? new Error('The connection could not be restored.'));
  });
  session.addEventListener('renewed', () => {
    sync();
    onRenewed?.();
  });
  sync();
}

const fmt = {
  int: (v) => (v == null ? '–' : String(v)),
  kbps: (v) => (v == null ? '–' : `${v} kbit/s`),
  fps: (v) => (v == null ? '–' : v.toFixed(1)),
  ms: (v) => (v == null ? '–' : `${v} ms`),
  text: (v) => (v == null || v === '' ? '–' : String(v)),
};

/**
 * Renders a sample into <dl id="stats">. `fields` is a list of
 * [key, label, format] where format is one of int|kbps|fps|ms|text|resolution.
 */
export function renderStats(sample, fields) {
  const dl = $('stats');
  if (!dl) return;
  const nodes = [];
  for (const [key, label, format] of fields) {
    const dt = document.createElement('dt');
    dt.textContent = label;
    const dd = document.createElement('dd');
    if (format === 'resolution') {
      dd.textContent = sample?.frameWidth ? `${sample.frameWidth}×${sample.frameHeight}` : '–';
    } else {
      dd.textContent = (fmt[format] || fmt.text)(sample?.[key]);
    }
    nodes.push(dt, dd);
  }
  const cs = document.createElement('dt');
  cs.textContent = 'Connection';
  const csv = document.createElement('dd');
  csv.textContent = hook.connectionState;
  nodes.push(cs, csv);
  dl.replaceChildren(...nodes);
}

export function setBusy(startButton, stopButton, running) {
  startButton.disabled = running;
  stopButton.disabled = !running;
}

/** A new `tag` element with `className` and `text` (as textContent, never markup). */
export function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text != null) e.textContent = text;
  return e;
}

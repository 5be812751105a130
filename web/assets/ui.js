// Small helpers shared by the publish and watch pages.
//
// Automation hook: every page keeps `window.switchboard` up to date:
//   window.switchboard = {
//     state,   // 'idle' | 'connecting' | 'connected' | 'failed' | 'stopped'
//     stats,   // latest per-second sample (see stats.js) or null, at least
//              // { frameWidth, frameHeight, fps, bitrateKbps,
//              //   framesEncoded (publish) | framesDecoded, freezeCount, packetsLost (watch) }
//     error,   // human-readable message of the last failure, or null
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
    badge.dataset.state = state;
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

/** Follows the peer connection's state into the hook and the status badge. */
export function trackConnection(pc, { onFailed } = {}) {
  const update = () => {
    const cs = pc.connectionState;
    hook.connectionState = cs;
    if (cs === 'connected') setState('connected');
    else if (cs === 'disconnected') setState('connecting', 'connection interrupted, waiting for it to recover');
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

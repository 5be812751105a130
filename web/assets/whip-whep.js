// Minimal WHIP (RFC 9725) and WHEP clients for the browser.
//
// Both use non-trickle ICE: the offer is sent once ICE gathering has completed
// (or after a short cap), and the server answers with its own candidates.
// Switchboard is ICE-lite, so the browser always takes the controlling ICE role and
// only needs the server's host candidates from the answer.
//
//   const session = await publish('/whip/demo', stream, { token, simulcast: true });
//   const session = await play('/whep/demo', { token });
//   await session.setLayer({ encodingId: 'h' });  // WHEP layer extension, when offered
//   await session.stop();   // DELETE on the session URL, then close the peer connection
//
// Conferences (docs/conference.md) use the same two calls with more m-lines:
//   play('/whep/room?name=me', { audioSlots: 3, videoSlots: 9 })  // one recvonly m-line per slot
//   session.eventsUrl                         // server-sent events extension, from the Link header
//   await session.setPreferences({ slots: [{ mid: '4', maxWidth: 640, maxHeight: 360 }] })

const GATHERING_CAP_MS = 2000;

// The peer connections keep the browser's default bundle policy ('balanced'):
// with 'max-bundle' Firefox offers every m-line after the first as
// `bundle-only` with port 0, which not every WHIP/WHEP server accepts. The
// offer still proposes BUNDLE, so one transport is used either way.

/** An HTTP error from a WHIP/WHEP endpoint, carrying RFC 9457 problem details when present. */
export class ProblemError extends Error {
  constructor({ status, title, detail, type, instance }) {
    super(detail ? `${title}: ${detail}` : title);
    this.name = 'ProblemError';
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.type = type;
    this.instance = instance;
  }
}

/** Layer extension of WHEP (draft-ietf-wish-whep): the `Link` relation that names it. */
export const LAYER_REL = 'urn:ietf:params:whep:ext:core:layer';

/** Server-sent events extension of WHEP: the `Link` relation that names the event stream. */
export const EVENTS_REL = 'urn:ietf:params:whep:ext:core:server-sent-events';

/**
 * The default simulcast ladder for a 1280×720 camera: 320×180, 640×360 and 1280×720.
 * RIDs are short on purpose: they travel in every RTP packet's header extension.
 */
export const SIMULCAST_ENCODINGS = Object.freeze([
  Object.freeze({ rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 }),
  Object.freeze({ rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 }),
  Object.freeze({ rid: 'f', maxBitrate: 1_500_000 }),
]);

/**
 * Splits an HTTP `Link` header value (RFC 8288) into [{ uri, rel, params }].
 * Handles several links in one value and quoted parameters containing `,` or `;`.
 * `rel` may hold several space-separated relation types; `params` keeps every
 * parameter (lower-cased names, unquoted values).
 */
export function parseLinkHeader(value) {
  const links = [];
  if (!value) return links;
  let i = 0;
  const n = value.length;
  const skipSpace = () => {
    while (i < n && /[\s]/.test(value[i])) i++;
  };
  while (i < n) {
    skipSpace();
    if (value[i] === ',') {
      i++;
      continue;
    }
    if (value[i] !== '<') {
      // malformed: skip to the next link
      while (i < n && value[i] !== ',') i++;
      continue;
    }
    const close = value.indexOf('>', i + 1);
    if (close < 0) break;
    const link = { uri: value.slice(i + 1, close).trim(), rel: '', params: {} };
    i = close + 1;
    for (;;) {
      skipSpace();
      if (value[i] !== ';') break;
      i++;
      skipSpace();
      let name = '';
      while (i < n && !/[=;,\s]/.test(value[i])) name += value[i++];
      skipSpace();
      let paramValue = '';
      if (value[i] === '=') {
        i++;
        skipSpace();
        if (value[i] === '"') {
          i++;
          while (i < n && value[i] !== '"') {
            if (value[i] === '\\' && i + 1 < n) i++;
            paramValue += value[i++];
          }
          i++; // closing quote
        } else {
          while (i < n && !/[;,\s]/.test(value[i])) paramValue += value[i++];
        }
      }
      if (name) {
        const key = name.toLowerCase();
        if (!(key in link.params)) link.params[key] = paramValue;
      }
    }
    link.rel = link.params.rel || '';
    links.push(link);
    while (i < n && value[i] !== ',') i++;
  }
  return links;
}

/** The absolute URL of the first link whose `rel` contains `rel`, or null. */
export function findLink(links, rel, base) {
  const link = links.find((l) => l.rel.split(/\s+/).includes(rel));
  if (!link) return null;
  try {
    return new URL(link.uri, base).href;
  } catch {
    return null;
  }
}

/** `{ Authorization: 'Bearer …' }` for a token, `{}` without one. */
export function authHeaders(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** Resolves once ICE gathering is complete, or after `capMs`, whichever comes first. */
export function waitForIceGathering(pc, capMs = GATHERING_CAP_MS) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', onChange);
      resolve();
    };
    const onChange = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const timer = setTimeout(done, capMs);
    pc.addEventListener('icegatheringstatechange', onChange);
  });
}

/** A ProblemError from a non-2xx response (RFC 9457 body when there is one). */
export async function problemFromResponse(response) {
  const fallback = {
    status: response.status,
    title: response.statusText || `HTTP ${response.status}`,
    detail: undefined,
  };
  let text = '';
  try {
    text = await response.text();
  } catch {
    return new ProblemError(fallback);
  }
  const type = response.headers.get('Content-Type') || '';
  if (/json/i.test(type)) {
    try {
      const body = JSON.parse(text);
      return new ProblemError({
        status: body.status ?? response.status,
        title: body.title || fallback.title,
        detail: body.detail,
        type: body.type,
        instance: body.instance,
      });
    } catch {
      // fall through to the plain-text form
    }
  }
  return new ProblemError({ ...fallback, detail: text.trim().slice(0, 500) || undefined });
}

/**
 * Sends the local offer to `endpointUrl` and applies the answer.
 * Returns { location, etag, links, answeredAt } where answeredAt is performance.now()
 * when the 201 response arrived and links are the parsed `Link` headers.
 */
async function negotiate(pc, endpointUrl, token) {
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await waitForIceGathering(pc);

  let response;
  try {
    response = await fetch(endpointUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', ...authHeaders(token) },
      body: pc.localDescription.sdp,
    });
  } catch (err) {
    throw new ProblemError({ status: 0, title: 'Network error', detail: String(err?.message || err) });
  }
  const answeredAt = performance.now();
  if (response.status !== 201) {
    throw await problemFromResponse(response);
  }
  const answer = await response.text();
  const locationHeader = response.headers.get('Location');
  if (!locationHeader) {
    throw new ProblemError({ status: 201, title: 'Bad response', detail: 'the 201 response has no Location header' });
  }
  const base = new URL(endpointUrl, window.location.href);
  const location = new URL(locationHeader, base).href;
  // several Link headers reach us joined with ", "
  const links = parseLinkHeader(response.headers.get('Link'));
  try {
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  } catch (err) {
    // the server created a session we cannot use: release it before giving up
    fetch(location, { method: 'DELETE', headers: authHeaders(token) }).catch(() => {});
    throw new ProblemError({ status: 201, title: 'Unusable SDP answer', detail: String(err?.message || err) });
  }
  return { location, etag: response.headers.get('ETag'), links, base: base.href, answeredAt };
}

/** The first value of SDP attribute `name` (e.g. 'ice-ufrag') in `sdp`, or null. */
function sdpAttribute(sdp, name) {
  const m = new RegExp(`^a=${name}:(.+)$`, 'm').exec(sdp);
  return m ? m[1].trim() : null;
}

/**
 * ICE restart of a WHIP/WHEP session (RFC 9725 §4.3.2): new local credentials, a PATCH
 * of them as a trickle ICE fragment with If-Match, and the server's fragment (its new
 * credentials and candidates) applied as the new remote description. Updates
 * session.etag. Throws a ProblemError when the server refuses (the old ICE session
 * then goes on).
 */
async function restartIce(session, token) {
  const { pc } = session;
  pc.restartIce();
  const offer = await pc.createOffer({ iceRestart: true });
  await pc.setLocalDescription(offer);
  const ufrag = sdpAttribute(offer.sdp, 'ice-ufrag');
  const pwd = sdpAttribute(offer.sdp, 'ice-pwd');
  const mid = sdpAttribute(offer.sdp, 'mid');
  const mline = /^m=.*$/m.exec(offer.sdp)?.[0] ?? '';
  const frag = `a=ice-ufrag:${ufrag}\r\na=ice-pwd:${pwd}\r\n${mline}\r\na=mid:${mid}\r\n`;
  let response;
  try {
    response = await fetch(session.location, {
      method: 'PATCH',
      headers: {
        'Content-Type': 'application/trickle-ice-sdpfrag',
        'If-Match': session.etag || '*',
        ...authHeaders(token),
      },
      body: frag,
    });
  } catch (err) {
    throw new ProblemError({ status: 0, title: 'Network error', detail: String(err?.message || err) });
  }
  if (response.status !== 200) throw await problemFromResponse(response);
  const answer = await response.text();
  const serverUfrag = sdpAttribute(answer, 'ice-ufrag');
  const serverPwd = sdpAttribute(answer, 'ice-pwd');
  const candidates = answer.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:'));
  // The current answer with the new credentials, and the new candidates in place of the
  // old ones (after each a=mid).
  const remote = pc.remoteDescription.sdp
    .split(/\r?\n/)
    .filter((l) => l && !l.startsWith('a=candidate:') && l !== 'a=end-of-candidates')
    .flatMap((l) => {
      if (l.startsWith('a=ice-ufrag:')) return [`a=ice-ufrag:${serverUfrag}`];
      if (l.startsWith('a=ice-pwd:')) return [`a=ice-pwd:${serverPwd}`];
      if (l.startsWith('a=mid:')) return [l, ...candidates, 'a=end-of-candidates'];
      return [l];
    })
    .join('\r\n');
  await pc.setRemoteDescription({ type: 'answer', sdp: `${remote}\r\n` });
  session.etag = response.headers.get('ETag') ?? session.etag;
}

function makeSession(pc, token, negotiated, extra) {
  let stopped = false;
  return {
    pc,
    location: negotiated.location,
    etag: negotiated.etag,
    answeredAt: negotiated.answeredAt,
    links: negotiated.links,
    ...extra,
    /** ICE restart (RFC 9725 §4.3.2), see restartIce above; resolves once applied. */
    restartIce() {
      return restartIce(this, token);
    },
    /**
     * Ends the session on the server (DELETE) and closes the peer connection.
     * Pass { keepalive: true } when called while the page is unloading.
     */
    async stop({ keepalive = false } = {}) {
      if (stopped) return;
      stopped = true;
      const request = fetch(negotiated.location, { method: 'DELETE', headers: authHeaders(token), keepalive })
        // the server may already be gone; closing locally is all that is left to do
        .catch(() => {});
      if (!keepalive) await request;
      pc.close();
    },
  };
}

/** Asks the encoder to keep the resolution and drop frame rate under CPU or bandwidth pressure. */
export async function preferResolution(sender) {
  try {
    const params = sender.getParameters();
    params.degradationPreference = 'maintain-resolution';
    await sender.setParameters(params);
    return true;
  } catch {
    return false; // not supported by this browser; keep its default
  }
}

/**
 * Puts `mimeType` (e.g. 'video/VP8') first in the transceiver's codec preferences,
 * keeping every other codec after it. False where the browser cannot (no
 * setCodecPreferences, or no such codec): the browser's own order then applies.
 */
export function preferCodec(transceiver, mimeType) {
  try {
    const kind = mimeType.split('/')[0];
    const codecs = RTCRtpReceiver.getCapabilities?.(kind)?.codecs;
    if (!codecs || !transceiver.setCodecPreferences) return false;
    const wanted = mimeType.toLowerCase();
    const first = codecs.filter((c) => c.mimeType.toLowerCase() === wanted);
    if (!first.length) return false;
    transceiver.setCodecPreferences([...first, ...codecs.filter((c) => c.mimeType.toLowerCase() !== wanted)]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Publishes `stream` over WHIP.
 * options: { token, rtcConfig, onPeerConnection(pc), simulcast, videoCodec, kinds }
 * `simulcast`: false (one encoding), true (SIMULCAST_ENCODINGS) or a list of
 * RTCRtpEncodingParameters for the video sender (RFC 8853 simulcast, one RID each).
 * `videoCodec`: a mime type to offer first (e.g. 'video/VP8'), see preferCodec.
 * `kinds`: the m-lines to offer (default both, an m-line without a track where the
 * stream has none of that kind).
 * Returns a session { pc, location, etag, answeredAt, senders, encodings, stop() }.
 */
export async function publish(endpointUrl, stream, options = {}) {
  const {
    token, rtcConfig = {}, onPeerConnection, simulcast = false, videoCodec, kinds = ['audio', 'video'],
  } = options;
  const pc = new RTCPeerConnection(rtcConfig);
  onPeerConnection?.(pc);
  try {
    const senders = {};
    let encodings = null;
    for (const kind of kinds) {
      const track = stream.getTracks().find((t) => t.kind === kind);
      const init = { direction: 'sendonly', streams: [stream] };
      if (kind === 'video' && track && simulcast) {
        encodings = (simulcast === true ? SIMULCAST_ENCODINGS : simulcast).map((e) => ({ ...e }));
        init.sendEncodings = encodings;
      }
      const transceiver = track
        ? pc.addTransceiver(track, init)
        : pc.addTransceiver(kind, { direction: 'sendonly' });
      senders[kind] = transceiver.sender;
      if (kind === 'video' && videoCodec) preferCodec(transceiver, videoCodec);
    }
    await preferResolution(senders.video);
    const negotiated = await negotiate(pc, endpointUrl, token);
    return makeSession(pc, token, negotiated, { senders, encodings });
  } catch (err) {
    pc.close();
    throw err;
  }
}

/**
 * Plays a room over WHEP.
 * options: { token, rtcConfig, onPeerConnection(pc), onTrack(event), audioSlots, videoSlots }
 * `audioSlots`/`videoSlots` (default 1 each): how many recvonly m-lines of each kind to
 * offer; in a conference every one is a slot (docs/conference.md), audio ones first.
 * Returns a session { pc, location, etag, answeredAt, stream, layerUrl, statsUrl,
 * eventsUrl, setLayer(request), setPreferences(body), fetchStats(), stop() };
 * `stream` gets the remote audio and video tracks as they arrive. `layerUrl` is the
 * layer extension's URL from the `Link` header (null when the server offers none);
 * `eventsUrl` likewise for the server-sent events extension; `statsUrl` is the
 * session's stats resource (`<location>/stats`, a Switchboard extension).
 */
export async function play(endpointUrl, options = {}) {
  const { token, rtcConfig = {}, onPeerConnection, onTrack, audioSlots = 1, videoSlots = 1 } = options;
  const pc = new RTCPeerConnection(rtcConfig);
  const stream = new MediaStream();
  pc.addEventListener('track', (event) => {
    if (!stream.getTracks().includes(event.track)) stream.addTrack(event.track);
    onTrack?.(event);
  });
  onPeerConnection?.(pc);
  try {
    for (let i = 0; i < audioSlots; i++) pc.addTransceiver('audio', { direction: 'recvonly' });
    for (let i = 0; i < videoSlots; i++) pc.addTransceiver('video', { direction: 'recvonly' });
    const negotiated = await negotiate(pc, endpointUrl, token);
    const layerUrl = findLink(negotiated.links, LAYER_REL, negotiated.location);
    const eventsUrl = findLink(negotiated.links, EVENTS_REL, negotiated.location);
    const statsUrl = `${negotiated.location.replace(/\/+$/, '')}/stats`;
    return makeSession(pc, token, negotiated, {
      stream,
      layerUrl,
      statsUrl,
      eventsUrl,
      /**
       * PATCHes `body` as JSON onto the session resource (conference preferences:
       * pin, paused, maxWidth/maxHeight per slot). Resolves on 2xx, throws ProblemError.
       */
      async setPreferences(body) {
        let response;
        try {
          response = await fetch(negotiated.location, {
            method: 'PATCH',
            headers: { 'Content-Type': 'application/json', ...authHeaders(token) },
            body: JSON.stringify(body),
          });
        } catch (err) {
          throw new ProblemError({ status: 0, title: 'Network error', detail: String(err?.message || err) });
        }
        if (!response.ok) throw await problemFromResponse(response);
      },
      /**
       * Asks for a layer: { encodingId: 'h' } | { spatialLayerId: 0 } |
       * { maxSpatialLayerId: 1 } | {} (automatic). Resolves on 2xx, throws ProblemError.
       */
      async setLayer(request = {}) {
        if (!layerUrl) {
          throw new ProblemError({ status: 0, title: 'Not supported', detail: 'the server offers no layer extension' });
        }
        let response;
        try {
          response = await fetch(layerUrl, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', ...authHeaders(token) },
            body: JSON.stringify(request),
          });
        } catch (err) {
          throw new ProblemError({ status: 0, title: 'Network error', detail: String(err?.message || err) });
        }
        if (!response.ok) throw await problemFromResponse(response);
      },
      /** The stats resource as parsed JSON; throws ProblemError on failure. */
      async fetchStats({ signal } = {}) {
        let response;
        try {
          response = await fetch(statsUrl, { headers: authHeaders(token), cache: 'no-store', signal });
        } catch (err) {
          throw new ProblemError({ status: 0, title: 'Network error', detail: String(err?.message || err) });
        }
        if (!response.ok) throw await problemFromResponse(response);
        return response.json();
      },
    });
  } catch (err) {
    pc.close();
    throw err;
  }
}

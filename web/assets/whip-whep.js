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
// The session itself (negotiation, the Link headers' ICE servers, ICE restart, the
// reconnect supervisor) is in session.js, reconnect.js and http.js; this module builds
// publish and play on it and re-exports what other modules used from here.
//
// Conferences (docs/conference.md) use the same two calls with more m-lines:
//   play('/whep/room?name=me', { audioSlots: 3, videoSlots: 9 })  // one recvonly m-line per slot
//   session.eventsUrl                         // server-sent events extension, from the Link header
//   await session.setPreferences({ slots: [{ mid: '4', maxWidth: 640, maxHeight: 360 }] })
//
// A page opened with `?relay=1` makes every peer connection relay-only
// (iceTransportPolicy 'relay': media only through the TURN server; for tests of a TURN
// setup), unless the caller's rtcConfig sets a policy itself.

import {
  EVENTS_REL, LAYER_REL, ProblemError, authHeaders, findLink, problemFromResponse,
} from './http.js';
import { makeSession, negotiate, restartIce, useLinkedIceServers } from './session.js';

export {
  EVENTS_REL, LAYER_REL, ProblemError, authHeaders, findLink, iceServersFromLinks, parseLinkHeader,
  problemFromResponse,
} from './http.js';
export { RECONNECT, reconnectBackoff } from './reconnect.js';
export { waitForIceGathering } from './session.js';

/** The page's `?relay=1`: relay-only peer connections (see above). */
const PAGE_RTC_DEFAULTS = new URLSearchParams(globalThis.location?.search ?? '').get('relay') === '1'
  ? Object.freeze({ iceTransportPolicy: 'relay' })
  : Object.freeze({});

// The peer connections keep the browser's default bundle policy ('balanced'):
// with 'max-bundle' Firefox offers every m-line after the first as
// `bundle-only` with port 0, which not every WHIP/WHEP server accepts. The
// offer still proposes BUNDLE, so one transport is used either way.

/**
 * The default simulcast ladder for a 1280×720 camera: 320×180, 640×360 and 1280×720.
 * RIDs are short on purpose: they travel in every RTP packet's header extension.
 */
export const SIMULCAST_ENCODINGS = Object.freeze([
  Object.freeze({ rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 }),
  Object.freeze({ rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 }),
  Object.freeze({ rid: 'f', maxBitrate: 1_500_000 }),
]);

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
 * options: { token, rtcConfig, onPeerConnection(pc), simulcast, videoCodec, kinds, reconnect }
 * `simulcast`: false (one encoding), true (SIMULCAST_ENCODINGS) or a list of
 * RTCRtpEncodingParameters for the video sender (RFC 8853 simulcast, one RID each).
 * `videoCodec`: a mime type to offer first (e.g. 'video/VP8'), see preferCodec.
 * `kinds`: the m-lines to offer (default both, an m-line without a track where the
 * stream has none of that kind).
 * `reconnect`: { enabled (default true), newSession (default true) }, see "Reconnecting".
 * Returns a session { pc, location, etag, answeredAt, senders, encodings, stop(),
 * restartIce(), reconnect(), reconnectState, reconnects, lastReconnect } (an EventTarget:
 * 'reconnectstate', 'reconnected', 'reconnectfailed', 'renewed').
 * onPeerConnection is called again for the peer connection of every new POST.
 */
export async function publish(endpointUrl, stream, options = {}) {
  const {
    token, rtcConfig = {}, onPeerConnection, simulcast = false, videoCodec, kinds = ['audio', 'video'], reconnect,
  } = options;
  const build = async () => {
    const pc = new RTCPeerConnection({ ...PAGE_RTC_DEFAULTS, ...rtcConfig });
    try {
      onPeerConnection?.(pc);
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
      return { pc, extra: { senders, encodings } };
    } catch (err) {
      pc.close();
      throw err;
    }
  };
  const first = await build();
  const { pc } = first;
  try {
    const negotiated = await negotiate(pc, endpointUrl, token);
    const session = makeSession(pc, token, negotiated, { direction: 'send', ...first.extra }, { endpointUrl, build, reconnect });
    await useLinkedIceServers(session);
    return session;
  } catch (err) {
    pc.close();
    throw err;
  }
}

/**
 * Plays a room over WHEP.
 * options: { token, rtcConfig, onPeerConnection(pc), onTrack(event), audioSlots, videoSlots,
 * reconnect }
 * `audioSlots`/`videoSlots` (default 1 each): how many recvonly m-lines of each kind to
 * offer; in a conference every one is a slot (docs/conference.md), audio ones first.
 * Returns a session { pc, location, etag, answeredAt, stream, layerUrl, statsUrl,
 * eventsUrl, setLayer(request), setPreferences(body), fetchStats(), stop(), and the
 * reconnect members of publish() };
 * `stream` gets the remote audio and video tracks as they arrive (after a new POST, the
 * new peer connection's tracks replace the old ones in the same MediaStream). `layerUrl`
 * is the layer extension's URL from the `Link` header (null when the server offers none);
 * `eventsUrl` likewise for the server-sent events extension; `statsUrl` is the
 * session's stats resource (`<location>/stats`, a Switchboard extension).
 */
export async function play(endpointUrl, options = {}) {
  const {
    token, rtcConfig = {}, onPeerConnection, onTrack, audioSlots = 1, videoSlots = 1, reconnect,
  } = options;
  const stream = new MediaStream();
  let session = null;
  const build = async () => {
    const pc = new RTCPeerConnection({ ...PAGE_RTC_DEFAULTS, ...rtcConfig });
    pc.addEventListener('track', (event) => {
      if (!stream.getTracks().includes(event.track)) stream.addTrack(event.track);
      onTrack?.(event);
    });
    try {
      onPeerConnection?.(pc);
      for (let i = 0; i < audioSlots; i++) pc.addTransceiver('audio', { direction: 'recvonly' });
      for (let i = 0; i < videoSlots; i++) pc.addTransceiver('video', { direction: 'recvonly' });
    } catch (err) {
      pc.close();
      throw err;
    }
    return {
      pc,
      extra: {},
      // the old peer connection's tracks leave the stream: the page's elements keep it
      swap() {
        const fresh = new Set(pc.getReceivers().map((r) => r.track));
        for (const t of stream.getTracks()) if (!fresh.has(t)) stream.removeTrack(t);
        for (const t of fresh) if (!stream.getTracks().includes(t)) stream.addTrack(t);
      },
    };
  };
  const derive = (negotiated) => ({
    layerUrl: findLink(negotiated.links, LAYER_REL, negotiated.location),
    eventsUrl: findLink(negotiated.links, EVENTS_REL, negotiated.location),
    statsUrl: `${negotiated.location.replace(/\/+$/, '')}/stats`,
  });
  const first = await build();
  const { pc } = first;
  try {
    const negotiated = await negotiate(pc, endpointUrl, token);
    session = makeSession(pc, token, negotiated, {
      direction: 'recv',
      stream,
      /**
       * PATCHes `body` as JSON onto the session resource (conference preferences:
       * pin, paused, maxWidth/maxHeight per slot). Resolves on 2xx, throws ProblemError.
       */
      async setPreferences(body) {
        let response;
        try {
          response = await fetch(session.location, {
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
        if (!session.layerUrl) {
          throw new ProblemError({ status: 0, title: 'Not supported', detail: 'the server offers no layer extension' });
        }
        let response;
        try {
          response = await fetch(session.layerUrl, {
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
          response = await fetch(session.statsUrl, { headers: authHeaders(token), cache: 'no-store', signal });
        } catch (err) {
          throw new ProblemError({ status: 0, title: 'Network error', detail: String(err?.message || err) });
        }
        if (!response.ok) throw await problemFromResponse(response);
        return response.json();
      },
    }, { endpointUrl, build, derive, reconnect });
    await useLinkedIceServers(session);
    return session;
  } catch (err) {
    pc.close();
    throw err;
  }
}

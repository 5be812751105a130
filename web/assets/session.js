// One WHIP or WHEP session in the browser: negotiation (non-trickle ICE), the ICE servers
// of the 201's Link headers, ICE restart by PATCH, and the reconnect supervisor that
// keeps the session alive (reconnect.js has its timing). whip-whep.js builds publish and
// play on it.
//
// ICE servers: the server names them in the 201's `Link: <url>; rel="ice-server"`
// headers (RFC 9725 §4.6), TURN ones with per-session credentials. They arrive after
// the offer was gathered, so useLinkedIceServers adds them with
// pc.setConfiguration({ ...pc.getConfiguration(), iceServers }) and gathers again with
// an ICE restart (PATCH, RFC 9725 §4.3.2): at once when the connection may only use
// relays, else only when ICE has not connected within RELAY_FALLBACK_MS. (Chromium
// applies new ICE servers to the next gathering only, never to the current one.)
//

import {
  ProblemError, authHeaders, iceServersFromLinks, parseLinkHeader, problemFromResponse, retryAfterSeconds,
} from './http.js';
import {
  RECONNECT, connectedState, inboundVideo, reconnectBackoff, sleep, waitConnected,
} from './reconnect.js';

const GATHERING_CAP_MS = 2000;

/** Without a connection this long after the answer, ICE restarts with the TURN servers. */
const RELAY_FALLBACK_MS = 3000;

/** A PATCH (ICE restart) that has no answer after this long counts as failed. */
const PATCH_TIMEOUT_MS = 5000;

/**
 * A POST answered 503 (the server is full, busy, or its room is moving) or 429 (a rate
 * limit) with a `Retry-After` of at most POST_RETRY_MAX_S seconds is sent again after
 * that long (plus up to 0.5 s of jitter), at most POST_RETRIES times; without
 * `Retry-After` (a room limit, say) the error stands.
 */
const POST_RETRIES = 3;
const POST_RETRY_MAX_S = 10;

/**
 * Adds the ICE servers of the 201's `Link` headers to the session's peer connection and,
 * when they include TURN servers, gathers again through an ICE restart: at once when the
 * connection is relay-only (it has no candidate at all before), else when ICE has not
 * connected within RELAY_FALLBACK_MS or fails (a network that drops direct UDP). At most
 * one such restart per session; a refused fallback restart leaves the session as it was,
 * a refused relay-only one stops the session and throws.
 */
export async function useLinkedIceServers(session) {
  const { pc } = session;
  const linked = iceServersFromLinks(session.links);
  if (!linked.length) return;
  const config = pc.getConfiguration();
  const known = new Set((config.iceServers || []).flatMap((s) => [s.urls].flat()));
  const added = linked.filter((s) => !known.has(s.urls));
  if (!added.length) return;
  try {
    pc.setConfiguration({ ...config, iceServers: [...(config.iceServers || []), ...added] });
  } catch (err) {
    console.warn('ICE servers from the Link header were refused:', err);
    return;
  }
  if (!added.some((s) => /^turns?:/i.test(s.urls))) return;
  if (config.iceTransportPolicy === 'relay') {
    try {
      await session.restartIce();
    } catch (err) {
      await session.stop(); // it could never connect: release the server's session
      throw err;
    }
    return;
  }
  const connected = () => ['connected', 'completed'].includes(pc.iceConnectionState);
  if (connected()) return;
  let timer = null;
  const done = () => {
    clearTimeout(timer);
    pc.removeEventListener('iceconnectionstatechange', onChange);
  };
  const restart = () => {
    done();
    if (pc.signalingState === 'closed') return;
    session.restartIce().catch((err) => console.warn('ICE restart with the TURN servers failed:', err));
  };
  const onChange = () => {
    if (pc.iceConnectionState === 'failed') restart();
    else if (connected()) done();
  };
  timer = setTimeout(restart, RELAY_FALLBACK_MS);
  pc.addEventListener('iceconnectionstatechange', onChange);
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

/**
 * Sends the local offer to `endpointUrl` and applies the answer.
 * Returns { location, etag, links, answeredAt } where answeredAt is performance.now()
 * when the 201 response arrived and links are the parsed `Link` headers.
 */
export async function negotiate(pc, endpointUrl, token) {
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await waitForIceGathering(pc);

  let response;
  for (let retry = 0; ; retry++) {
    try {
      response = await fetch(endpointUrl, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp', ...authHeaders(token) },
        body: pc.localDescription.sdp,
      });
    } catch (err) {
      throw new ProblemError({ status: 0, title: 'Network error', detail: String(err?.message || err) });
    }
    const waitS = retryAfterSeconds(response.headers.get('Retry-After'));
    const busy = response.status === 503 || response.status === 429;
    if (!busy || waitS == null || waitS > POST_RETRY_MAX_S || retry >= POST_RETRIES) break;
    await response.text().catch(() => {});
    await sleep(waitS * 1000 + Math.random() * 500);
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
 * session.etag. Throws a ProblemError when the server refuses (404: the session is
 * gone; 412: stale ETag); the local offer is then rolled back and the old ICE session
 * goes on. `ifMatch` overrides the If-Match value (default: the session's ETag, else *).
 */
export async function restartIce(session, token, { ifMatch } = {}) {
  const { pc } = session;
  pc.restartIce();
  const offer = await pc.createOffer({ iceRestart: true });
  await pc.setLocalDescription(offer);
  const ufrag = sdpAttribute(offer.sdp, 'ice-ufrag');
  const pwd = sdpAttribute(offer.sdp, 'ice-pwd');
  const mid = sdpAttribute(offer.sdp, 'mid');
  const mline = /^m=.*$/m.exec(offer.sdp)?.[0] ?? '';
  const frag = `a=ice-ufrag:${ufrag}\r\na=ice-pwd:${pwd}\r\n${mline}\r\na=mid:${mid}\r\n`;
  const rollback = async () => {
    if (pc.signalingState !== 'have-local-offer') return;
    try {
      await pc.setLocalDescription({ type: 'rollback' });
    } catch {
      // closed meanwhile, or no rollback in this browser: the next offer replaces it
    }
  };
  let response;
  try {
    response = await fetch(session.location, {
      method: 'PATCH',
      headers: {
        'Content-Type': 'application/trickle-ice-sdpfrag',
        'If-Match': ifMatch || session.etag || '*',
        ...authHeaders(token),
      },
      body: frag,
      signal: AbortSignal.timeout(PATCH_TIMEOUT_MS),
    });
  } catch (err) {
    await rollback();
    throw new ProblemError({ status: 0, title: 'Network error', detail: String(err?.message || err) });
  }
  if (response.status !== 200) {
    await rollback();
    throw await problemFromResponse(response);
  }
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

/**
 * A session: an EventTarget with the peer connection, resource URL and ETag, and its
 * reconnect supervisor (see "Reconnecting" at the top of this file).
 * `build()` makes a fresh peer connection for a new POST: resolves { pc, extra, swap }
 * where `extra` are properties to set on the session once it is in use and
 * `swap(oldPc)` runs then (e.g. moves tracks); `derive(negotiated)` returns the
 * properties that depend on a negotiation (extension URLs).
 */
export function makeSession(pc, token, negotiated, extra, { endpointUrl, build, derive = () => ({}), reconnect = {} }) {
  const session = new EventTarget();
  const allowNewSession = reconnect.newSession !== false && Boolean(build);
  const supervise = reconnect.enabled !== false;
  let stopped = false;
  let running = null; // the reconnect in progress (a promise), or null
  let graceTimer = null;
  let everConnected = false;
  let gone = false; // the old resource answered 404: no DELETE for it

  const emit = (type, detail) => session.dispatchEvent(new CustomEvent(type, { detail }));
  const setReconnectState = (state, fields = {}) => {
    Object.assign(session, { reconnectState: state }, fields);
    emit('reconnectstate', { state, attempt: session.reconnectAttempt, error: session.reconnectError });
  };

  /** A new POST of a fresh offer to the endpoint; replaces pc, location, ETag, links. */
  async function renew() {
    const fresh = await build();
    let got;
    try {
      try {
        got = await negotiate(fresh.pc, endpointUrl, token);
      } catch (err) {
        // one session per identity and source: a server that refuses a second one (409)
        // gets the old one released first
        if (err?.status !== 409 || gone) throw err;
        await fetch(session.location, { method: 'DELETE', headers: authHeaders(token) }).catch(() => {});
        gone = true;
        got = await negotiate(fresh.pc, endpointUrl, token);
      }
    } catch (err) {
      fresh.pc.close();
      throw err;
    }
    if (stopped) {
      fetch(got.location, { method: 'DELETE', headers: authHeaders(token) }).catch(() => {});
      fresh.pc.close();
      return;
    }
    const oldPc = session.pc;
    const oldLocation = session.location;
    if (!gone) fetch(oldLocation, { method: 'DELETE', headers: authHeaders(token) }).catch(() => {});
    gone = false;
    Object.assign(session, fresh.extra, {
      pc: fresh.pc,
      location: got.location,
      etag: got.etag,
      answeredAt: got.answeredAt,
      links: got.links,
    }, derive(got));
    fresh.swap?.(oldPc);
    oldPc.close();
    watch(fresh.pc);
    emit('renewed', { pc: fresh.pc, location: got.location, previousLocation: oldLocation });
    await useLinkedIceServers(session).catch(() => {});
  }

  /**
   * Reconnects: ICE restarts by PATCH (or new POSTs, once the session is gone or when
   * `newSession`), with backoff, until the connection is up again or
   * RECONNECT.giveUpMs have passed.
   */
  async function reconnectLoop(trigger, { newSession = false, delayMs = 0 } = {}) {
    const startedAt = performance.now();
    session.reconnectError = null;
    setReconnectState('reconnecting', { reconnectAttempt: 0, reconnectTrigger: trigger });
    const framesBefore = session.direction === 'recv' ? await inboundVideo(session.pc) : null;
    let attempt = 0;
    let wantNew = newSession && allowNewSession;
    let ifMatch;
    let kind = 'ice-restart';
    let wait = delayMs;
    let retryAfterMs = 0;
    for (;;) {
      if (wait > 0) await sleep(wait);
      if (stopped) return;
      if (performance.now() - startedAt > RECONNECT.giveUpMs) {
        const err = new ProblemError({
          status: 0,
          title: 'Reconnect failed',
          detail: `no connection after ${Math.round((performance.now() - startedAt) / 1000)} s of retries` +
            (session.reconnectError ? ` (last error: ${session.reconnectError})` : ''),
        });
        session.reconnectError = err.message;
        setReconnectState('failed');
        emit('reconnectfailed', { error: err });
        return;
      }
      attempt++;
      setReconnectState('reconnecting', { reconnectAttempt: attempt });
      try {
        if (wantNew) {
          await renew();
          kind = 'new-session';
        } else {
          await restartIce(session, token, { ifMatch });
          ifMatch = undefined;
        }
        if (stopped) return;
        if (await waitConnected(session.pc, RECONNECT.connectWaitMs)) break;
        session.reconnectError = 'not connected after the restart';
      } catch (err) {
        if (stopped) return;
        session.reconnectError = err?.message || String(err);
        // 429 (too many restarts) or 503 (busy): the server says when to come back
        retryAfterMs = (err?.retryAfterS ?? 0) * 1000;
        if (err?.status === 404 && !wantNew) {
          gone = true;
          if (!allowNewSession) {
            setReconnectState('failed');
            emit('reconnectfailed', { error: err });
            return;
          }
          // the server forgot the session (restart, other node): a new one, now
          wantNew = true;
          wait = 0;
          continue;
        }
        if (err?.status === 412) ifMatch = '*'; // our ETag is stale: the session is still ours
        if (err?.status === 400 || err?.status === 401 || err?.status === 403) {
          setReconnectState('failed');
          emit('reconnectfailed', { error: err });
          return;
        }
      }
      wait = Math.max(reconnectBackoff(attempt), retryAfterMs);
      retryAfterMs = 0;
    }
    // connected again: the page stops saying "reconnecting…" now
    const connectedAt = performance.now();
    session.reconnectError = null;
    setReconnectState('connected', { reconnectAttempt: 0 });
    return { kind, trigger, attempts: attempt, startedAt, connectedAt, framesBefore };
  }

  /**
   * Counts a reconnect once media is back: for a viewer at the next decoded frame (up
   * to RECONNECT.mediaWaitMs, else ms stays null: nobody publishes, say), for a
   * publisher when the connection is.
   */
  async function recordReconnect({ kind, trigger, attempts, startedAt, connectedAt, framesBefore }) {
    let resumedAt = framesBefore == null ? connectedAt : null;
    let packetsAt = null;
    if (framesBefore != null) {
      const pc = session.pc;
      const base = kind === 'new-session' ? { frames: 0, packets: 0 } : framesBefore;
      while (!stopped && pc === session.pc && performance.now() - connectedAt < RECONNECT.mediaWaitMs) {
        const n = await inboundVideo(pc);
        if (n == null) break;
        if (packetsAt == null && n.packets > base.packets) packetsAt = performance.now();
        if (n.frames > base.frames) {
          resumedAt = performance.now();
          break;
        }
        await sleep(40);
      }
    }
    if (stopped) return;
    session.reconnects += 1;
    session.lastReconnect = {
      kind,
      trigger,
      attempts,
      ms: resumedAt == null ? null : Math.round(resumedAt - startedAt),
      connectedMs: Math.round(connectedAt - startedAt),
      packetsMs: packetsAt == null ? null : Math.round(packetsAt - startedAt),
      startedAt,
      resumedAt,
    };
    emit('reconnected', session.lastReconnect);
  }

  /** Starts a reconnect unless one runs; resolves when it ends. */
  function startReconnect(trigger, options) {
    if (stopped) return Promise.resolve();
    clearTimeout(graceTimer);
    graceTimer = null;
    if (!running) {
      running = reconnectLoop(trigger, options)
        .catch((err) => console.warn('reconnect:', err))
        .then((done) => {
          running = null;
          if (stopped) return null;
          // it may have dropped again while the last step ran
          check(session.pc);
          return done ? recordReconnect(done) : null;
        });
    }
    return running;
  }

  /** Follows `pc`'s state: `failed` → reconnect now, `disconnected` → after a grace period. */
  function check(pc) {
    if (stopped || pc !== session.pc || !supervise) return;
    const cs = pc.connectionState;
    const ics = pc.iceConnectionState;
    if (cs === 'connected') {
      everConnected = true;
      clearTimeout(graceTimer);
      graceTimer = null;
      return;
    }
    // the first connection is the page's business (and useLinkedIceServers')
    if (!everConnected || running) return;
    if (cs === 'failed' || ics === 'failed') {
      startReconnect('failed');
    } else if ((cs === 'disconnected' || ics === 'disconnected') && !graceTimer) {
      graceTimer = setTimeout(() => {
        graceTimer = null;
        if (!stopped && pc === session.pc && !connectedState(pc)) startReconnect('disconnected');
      }, RECONNECT.disconnectedGraceMs);
    }
  }

  /**
   * Watches the transport's received packets: a sudden stop while connected (the
   * network changed under a socket bound to the any-address, a NAT dropped the
   * binding) restarts ICE at once instead of after the consent timeout. One restart
   * per stall: it fires again only after packets flowed again.
   */
  let stallTimer = null;
  function watchStalls() {
    const history = []; // [at, packetsReceived], the last few seconds
    let lastChangeAt = performance.now();
    let fired = false;
    let busy = false;
    let watchedPc = null;
    stallTimer = setInterval(async () => {
      if (stopped || busy || !supervise) return;
      const current = session.pc;
      if (current !== watchedPc) {
        watchedPc = current;
        history.length = 0;
        lastChangeAt = performance.now();
        fired = false;
      }
      if (current.connectionState !== 'connected' || running) return;
      busy = true;
      let packets = 0;
      try {
        (await current.getStats()).forEach((r) => {
          if (r.type === 'transport') packets += r.packetsReceived ?? 0;
        });
      } catch {
        return;
      } finally {
        busy = false;
      }
      if (current !== session.pc) return;
      const now = performance.now();
      const last = history[history.length - 1];
      if (!last || packets !== last[1]) {
        lastChangeAt = now;
        fired = false;
      }
      history.push([now, packets]);
      while (history.length && now - history[0][0] > 4000) history.shift();
      if (fired || now - lastChangeAt < RECONNECT.stallMs || running) return;
      // the rate in the second before the stall
      const stalledAt = history.find(([at]) => at >= lastChangeAt) ?? history[history.length - 1];
      const earlier = history.find(([at]) => at >= lastChangeAt - 1000 - RECONNECT.stallPollMs);
      if (!earlier || !stalledAt || stalledAt[0] - earlier[0] < 500) return;
      const pps = ((stalledAt[1] - earlier[1]) * 1000) / (stalledAt[0] - earlier[0]);
      if (pps < RECONNECT.stallMinPps) return;
      fired = true;
      everConnected = true;
      startReconnect('stall');
    }, RECONNECT.stallPollMs);
  }

  function watch(target) {
    const onChange = () => check(target);
    target.addEventListener('connectionstatechange', onChange);
    target.addEventListener('iceconnectionstatechange', onChange);
    check(target);
  }

  Object.assign(session, {
    pc,
    endpointUrl,
    location: negotiated.location,
    etag: negotiated.etag,
    answeredAt: negotiated.answeredAt,
    links: negotiated.links,
    reconnectState: 'connected', // 'connected' | 'reconnecting' | 'failed' (gave up)
    reconnectAttempt: 0,
    reconnectTrigger: null,
    reconnectError: null,
    reconnects: 0,
    lastReconnect: null,
    ...extra,
    ...derive(negotiated),
    /** ICE restart (RFC 9725 §4.3.2), see restartIce above; resolves once applied. */
    restartIce() {
      return restartIce(session, token);
    },
    /**
     * Reconnects now, as the supervisor does on a lost connection: `newSession` skips
     * the ICE restart (a drain: `reconnect` event), after `delayMs`. Resolves when done.
     */
    reconnect({ newSession = false, delayMs = 0, reason = 'requested' } = {}) {
      return startReconnect(reason, { newSession, delayMs });
    },
    /**
     * Ends the session on the server (DELETE) and closes the peer connection.
     * Pass { keepalive: true } when called while the page is unloading.
     */
    async stop({ keepalive = false } = {}) {
      if (stopped) return;
      stopped = true;
      clearTimeout(graceTimer);
      clearInterval(stallTimer);
      const request = fetch(session.location, { method: 'DELETE', headers: authHeaders(token), keepalive })
        // the server may already be gone; closing locally is all that is left to do
        .catch(() => {});
      if (!keepalive) await request;
      session.pc.close();
    },
  });
  watch(pc);
  // a receiving session with media slots: a publisher's connection says enough (its
  // RTCP feedback stops too, but getStats on every sender is not worth the CPU)
  const receivesMedia = extra.direction === 'recv'
    && pc.getTransceivers().some((t) => t.receiver.track?.kind === 'video' || t.receiver.track?.kind === 'audio');
  if (supervise && receivesMedia) watchStalls();
  return session;
}

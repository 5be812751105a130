// Per-second sampling of RTCPeerConnection.getStats() for the video stream
// (and, for conference sessions, per m-line: sampleInboundByMid at the end).
//
// direction 'outbound' reads the outbound-rtp video report (publisher),
// direction 'inbound' reads the inbound-rtp video report (viewer).
// Each sample is a plain object; rates are computed from the previous sample:
//   { at, frameWidth, frameHeight, fps, bitrateKbps, audioBitrateKbps, rttMs, codec,
//     framesEncoded, qualityLimitationReason, encoderImplementation, layers,    (outbound)
//     framesDecoded, framesDropped, freezeCount, totalFreezesDuration,
//     packetsLost, packetsReceived, jitterMs, decoderImplementation,           (inbound)
//     nackCount, pliCount,
//     localCandidateType, remoteCandidateType }   (of the selected candidate pair:
//     'host' | 'srflx' | 'prflx' | 'relay'; 'relay' locally: media goes through TURN)
//
// Outbound with simulcast: every encoding has its own outbound-rtp report.
// `layers` lists them from the lowest resolution up:
//   [{ rid, active, frameWidth, frameHeight, fps, bitrateKbps, framesEncoded,
//      qualityLimitationReason, scalabilityMode }]
// (one entry without a rid when simulcast is off). The top-level frameWidth,
// frameHeight, fps, framesEncoded and qualityLimitationReason are the top
// layer's (the largest one being sent); bitrateKbps is the sum over layers.

function pickRtp(report, type, kind) {
  let best = null;
  report.forEach((s) => {
    if (s.type !== type || (s.kind ?? s.mediaType) !== kind) return;
    const bytes = s.bytesSent ?? s.bytesReceived ?? 0;
    const bestBytes = best ? (best.bytesSent ?? best.bytesReceived ?? 0) : -1;
    if (bytes > bestBytes) best = s;
  });
  return best;
}

function selectedPair(report) {
  let pair = null;
  report.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId) || pair;
  });
  if (!pair) {
    report.forEach((s) => {
      if (s.type === 'candidate-pair' && s.state === 'succeeded' && (s.nominated || s.selected)) pair = s;
    });
  }
  return pair;
}

function rate(current, previous, key, dtSeconds) {
  if (!previous || dtSeconds <= 0 || current?.[key] == null || previous[key] == null) return undefined;
  return Math.max(0, current[key] - previous[key]) / dtSeconds;
}

const round1 = (x) => (x == null || Number.isNaN(x) ? undefined : Math.round(x * 10) / 10);

function allRtp(report, type, kind) {
  const found = [];
  report.forEach((s) => {
    if (s.type === type && (s.kind ?? s.mediaType) === kind) found.push(s);
  });
  return found;
}

const layerKey = (s) => s.rid ?? s.ssrc ?? s.id;

/** The largest picture being encoded; bytes break ties (and decide before the first frame). */
function topLayer(reports) {
  let top = null;
  for (const s of reports) {
    const w = s.frameWidth ?? 0;
    const topW = top?.frameWidth ?? 0;
    if (!top || w > topW || (w === topW && (s.bytesSent ?? 0) > (top.bytesSent ?? 0))) top = s;
  }
  return top;
}

/** Per-encoding figures of the outbound video reports, lowest resolution first. */
function outboundLayers(reports, previous, dt) {
  const layers = reports.map((s) => {
    const prev = previous?.get(layerKey(s));
    const frameRate = rate(s, prev, 'framesEncoded', dt);
    const byteRate = rate(s, prev, 'bytesSent', dt);
    return {
      rid: s.rid ?? null,
      active: s.active ?? true,
      frameWidth: s.frameWidth ?? 0,
      frameHeight: s.frameHeight ?? 0,
      fps: round1(frameRate ?? s.framesPerSecond ?? 0),
      bitrateKbps: byteRate == null ? 0 : Math.round((byteRate * 8) / 1000),
      framesEncoded: s.framesEncoded ?? 0,
      qualityLimitationReason: s.qualityLimitationReason,
      scalabilityMode: s.scalabilityMode,
    };
  });
  layers.sort((a, b) => a.frameWidth - b.frameWidth || String(a.rid).localeCompare(String(b.rid)));
  return layers;
}

/**
 * Takes one sample. `previous` is the internal state returned by the prior call
 * (or null); returns { sample, state } where state feeds the next call.
 */
export async function sampleStats(pc, direction, previous = null) {
  const report = await pc.getStats();
  const at = performance.now();
  const rtpType = direction === 'outbound' ? 'outbound-rtp' : 'inbound-rtp';
  const bytesKey = direction === 'outbound' ? 'bytesSent' : 'bytesReceived';
  const framesKey = direction === 'outbound' ? 'framesEncoded' : 'framesDecoded';

  const outboundVideo = direction === 'outbound' ? allRtp(report, rtpType, 'video') : [];
  const video = direction === 'outbound' ? topLayer(outboundVideo) : pickRtp(report, rtpType, 'video');
  const audio = pickRtp(report, rtpType, 'audio');
  const pair = selectedPair(report);
  const dt = previous ? (at - previous.at) / 1000 : 0;
  const prevVideo = previous?.layers?.get(video ? layerKey(video) : undefined) ?? previous?.video;
  const prevAudio = previous?.audio;

  const sample = { at: Math.round(at) };
  if (video) {
    const codec = video.codecId ? report.get(video.codecId) : null;
    const frameRate = rate(video, prevVideo, framesKey, dt);
    const byteRate = rate(video, prevVideo, bytesKey, dt);
    Object.assign(sample, {
      frameWidth: video.frameWidth ?? 0,
      frameHeight: video.frameHeight ?? 0,
      fps: round1(frameRate ?? video.framesPerSecond ?? 0),
      bitrateKbps: byteRate == null ? 0 : Math.round((byteRate * 8) / 1000),
      [framesKey]: video[framesKey] ?? 0,
      codec: codec?.mimeType,
      nackCount: video.nackCount,
      pliCount: video.pliCount,
    });
    if (direction === 'outbound') {
      sample.qualityLimitationReason = video.qualityLimitationReason;
      sample.encoderImplementation = video.encoderImplementation;
      sample.layers = outboundLayers(outboundVideo, previous?.layers, dt);
      if (sample.layers.length > 1) {
        sample.bitrateKbps = sample.layers.reduce((sum, l) => sum + l.bitrateKbps, 0);
      }
    } else {
      Object.assign(sample, {
        framesDropped: video.framesDropped,
        freezeCount: video.freezeCount ?? 0,
        totalFreezesDuration: video.totalFreezesDuration,
        packetsLost: video.packetsLost ?? 0,
        packetsReceived: video.packetsReceived,
        jitterMs: video.jitter == null ? undefined : Math.round(video.jitter * 1000),
        decoderImplementation: video.decoderImplementation,
      });
    }
  } else {
    Object.assign(sample, { frameWidth: 0, frameHeight: 0, fps: 0, bitrateKbps: 0, [framesKey]: 0 });
    if (direction === 'inbound') Object.assign(sample, { freezeCount: 0, packetsLost: 0 });
    else sample.layers = [];
  }
  if (audio) {
    const audioRate = rate(audio, prevAudio, bytesKey, dt);
    sample.audioBitrateKbps = audioRate == null ? 0 : Math.round((audioRate * 8) / 1000);
  }
  if (pair?.currentRoundTripTime != null) sample.rttMs = Math.round(pair.currentRoundTripTime * 1000);
  if (pair) {
    sample.localCandidateType = report.get(pair.localCandidateId)?.candidateType;
    sample.remoteCandidateType = report.get(pair.remoteCandidateId)?.candidateType;
    // 'udp' or 'tcp': the transport of the path in use (ICE-TCP, RFC 6544, or TURN over TCP).
    sample.candidateProtocol = report.get(pair.localCandidateId)?.protocol;
  }

  const layers = new Map(outboundVideo.map((s) => [layerKey(s), s]));
  return { sample, state: { at, video, audio, layers } };
}

/**
 * Samples every `intervalMs` and calls onSample(sample). Returns a function that stops sampling.
 */
export function startStats(pc, direction, onSample, intervalMs = 1000) {
  let state = null;
  let running = true;
  let timer = null;
  const tick = async () => {
    if (!running) return;
    try {
      const result = await sampleStats(pc, direction, state);
      state = result.state;
      if (running) onSample(result.sample);
    } catch {
      // getStats rejects once the connection is closed; the next stop() ends the loop
    }
    if (running) timer = setTimeout(tick, intervalMs);
  };
  tick();
  return () => {
    running = false;
    clearTimeout(timer);
  };
}

/**
 * Per-m-line receive figures of a peer connection with several recvonly m-lines (a
 * conference WHEP session: one slot per m-line). `midOf` maps an inbound-rtp report's
 * trackIdentifier to its mid, for browsers whose reports carry no `mid`.
 * Returns { sample, state }, state feeding the next call, where sample is
 *   { at, rttMs, byMid: Map(mid → { kind, frameWidth, frameHeight, fps, bitrateKbps,
 *     framesDecoded, packetsLost, packetsReceived, lossPercent, jitterMs, freezeCount,
 *     codec }) }
 * lossPercent is over the last interval (packets lost / expected since the previous call).
 */
export async function sampleInboundByMid(pc, previous = null, midOf = () => undefined) {
  const report = await pc.getStats();
  const at = performance.now();
  const dt = previous ? (at - previous.at) / 1000 : 0;
  const reports = new Map();
  const byMid = new Map();
  report.forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    const mid = s.mid ?? midOf(s.trackIdentifier);
    if (mid == null) return;
    // one report per SSRC: a re-mapped slot keeps its SSRC, so this is one per m-line
    const seen = reports.get(mid);
    if (seen && (seen.bytesReceived ?? 0) >= (s.bytesReceived ?? 0)) return;
    reports.set(mid, s);
  });
  for (const [mid, s] of reports) {
    const prev = previous?.reports.get(mid);
    const kind = s.kind ?? s.mediaType;
    const byteRate = rate(s, prev, 'bytesReceived', dt);
    const frameRate = rate(s, prev, 'framesDecoded', dt);
    let lossPercent;
    if (prev) {
      const lost = Math.max(0, (s.packetsLost ?? 0) - (prev.packetsLost ?? 0));
      const got = Math.max(0, (s.packetsReceived ?? 0) - (prev.packetsReceived ?? 0));
      lossPercent = lost + got > 0 ? round1((100 * lost) / (lost + got)) : 0;
    }
    const codec = s.codecId ? report.get(s.codecId) : null;
    byMid.set(mid, {
      kind,
      frameWidth: s.frameWidth ?? 0,
      frameHeight: s.frameHeight ?? 0,
      fps: kind === 'video' ? round1(frameRate ?? s.framesPerSecond ?? 0) : undefined,
      bitrateKbps: byteRate == null ? 0 : Math.round((byteRate * 8) / 1000),
      framesDecoded: s.framesDecoded ?? 0,
      packetsLost: s.packetsLost ?? 0,
      packetsReceived: s.packetsReceived ?? 0,
      lossPercent,
      jitterMs: s.jitter == null ? undefined : Math.round(s.jitter * 1000),
      freezeCount: s.freezeCount ?? 0,
      codec: codec?.mimeType,
    });
  }
  const pair = selectedPair(report);
  const sample = { at: Math.round(at), byMid };
  if (pair?.currentRoundTripTime != null) sample.rttMs = Math.round(pair.currentRoundTripTime * 1000);
  return { sample, state: { at, reports } };
}

// Recording checks shared by the Chromium (record.test.mjs) and aiortc
// (tests/interop) tests: start a recording through the room API, stop it, wait
// for its files, and read every file back with FFmpeg (Debian `ffmpeg`):
// `ffprobe` for codec, size and duration, `ffmpeg -v error -i FILE -f null -`
// for decode errors.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { sleep } from './lib.mjs';

/** POST /api/rooms/{room}/recordings with `body`; returns { url, info }. */
export async function startRecording(base, room, body = {}) {
  const res = await fetch(`${base}/api/rooms/${room}/recordings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.equal(res.status, 201, `start recording: ${res.status} ${text}`);
  const location = res.headers.get('location');
  assert.ok(location, 'Location header');
  return { url: new URL(location, base).href, info: JSON.parse(text) };
}

/** DELETE the recording, then wait until it is `finished`; returns its info. */
export async function stopRecording(url, timeoutMs = 10_000) {
  const res = await fetch(url, { method: 'DELETE' });
  assert.equal(res.status, 200, `stop recording: ${res.status} ${await res.text()}`);
  const deadline = Date.now() + timeoutMs;
  let info = null;
  while (Date.now() < deadline) {
    info = await (await fetch(url)).json();
    if (info.state === 'finished') return info;
    await sleep(100);
  }
  assert.fail(`recording not finished: ${JSON.stringify(info)}`);
}

/** ffprobe's view of a file's first stream. */
export function probe(file) {
  const out = execFileSync('ffprobe', [
    '-v', 'error', '-count_packets',
    '-show_entries', 'stream=codec_name,width,height,nb_read_packets:format=duration',
    '-of', 'json', file,
  ]);
  const v = JSON.parse(out.toString());
  const s = v.streams?.[0] ?? {};
  return {
    codec: s.codec_name,
    width: s.width ?? null,
    height: s.height ?? null,
    packets: Number(s.nb_read_packets ?? 0),
    duration: Number(v.format?.duration ?? 0),
  };
}

/** What `ffmpeg -v error` prints while decoding the whole file ('' when clean). */
export function decodeErrors(file) {
  const r = spawnSync('ffmpeg', ['-nostdin', '-v', 'error', '-i', file, '-f', 'null', '-'], { encoding: 'utf8' });
  return `${r.stderr ?? ''}${r.status === 0 ? '' : `exit ${r.status}`}`.trim();
}

/**
 * Checks a finished recording `info` under `dir` (the server's --record-dir): per
 * identity one audio and one video file, each complete, read by ffprobe as the
 * manifest says (codec, size), decoded without an error, lasting within 0.3 s of the
 * recording's own length from the file's first sample; audio and video starting within
 * 100 ms of each other. `want`: { video: codec, audio: codec, sizes: [[w, h], ...]
 * accepted }. Returns the figures.
 */
export function checkRecording(info, dir, want) {
  const folder = path.join(dir, info.path);
  const ended = Date.parse(info.endedAt);
  const figures = { id: info.id, files: [] };
  const byKind = {};
  for (const f of info.files) {
    const file = path.join(folder, f.name);
    const p = probe(file);
    const errors = decodeErrors(file);
    const start = f.startUnixMicros / 1000;
    const fig = {
      name: f.name, kind: f.kind, codec: p.codec, size: p.width ? `${p.width}x${p.height}` : null,
      samples: f.samples, packets: p.packets, seconds: Math.round(p.duration * 1000) / 1000,
      wallSeconds: Math.round(ended - start) / 1000, bytes: f.bytes, decodeErrors: errors,
    };
    figures.files.push(fig);
    assert.equal(f.complete, true, `${f.name} complete`);
    assert.equal(p.codec, f.codec, `${f.name}: ffprobe codec ${p.codec}, manifest ${f.codec}`);
    assert.equal(p.codec, want[f.kind], `${f.name}: codec ${p.codec}, published ${want[f.kind]}`);
    assert.equal(p.packets, f.samples, `${f.name}: ffprobe packets vs manifest samples`);
    if (f.kind === 'video') {
      assert.deepEqual([p.width, p.height], [f.width, f.height], `${f.name}: size`);
      assert.ok(want.sizes.some(([w, h]) => w === p.width && h === p.height), `${f.name}: ${p.width}x${p.height} not one of ${JSON.stringify(want.sizes)}`);
    }
    assert.equal(errors, '', `${f.name}: ffmpeg decode errors`);
    assert.ok(Math.abs(p.duration - fig.wallSeconds) <= 0.3, `${f.name}: ${p.duration} s of media, ${fig.wallSeconds} s from its first sample to the stop`);
    assert.ok(!byKind[`${f.identity}/${f.kind}`], `one ${f.kind} file of ${f.identity}`);
    byKind[`${f.identity}/${f.kind}`] = start;
  }
  const identities = new Set(info.files.map((f) => f.identity));
  for (const who of identities) {
    const a = byKind[`${who}/audio`];
    const v = byKind[`${who}/video`];
    assert.ok(a != null && v != null, `${who}: an audio and a video file`);
    figures.avStartMs = Math.round((v - a) * 10) / 10;
    assert.ok(Math.abs(v - a) <= 100, `${who}: audio starts at ${a}, video at ${v} (${figures.avStartMs} ms apart)`);
  }
  return figures;
}

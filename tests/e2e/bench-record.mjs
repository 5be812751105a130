// What recording costs the whole server: one Chromium publisher (the fake camera,
// VP8 simulcast 320×180 / 640×360 / 1280×720, and Opus) in a room, the server's CPU
// and memory measured over a window without recordings, then with N recordings of the
// room running (each records the top layer and the audio: two tracks).
//
//   scripts/bench-record.sh [N] [SECONDS]      (N ≤ 4: a room's limit)
//
// Prints and writes <repo>/artifacts/e2e/bench-record.json. Not a test: figures only.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  artifactsDir, cpuSeconds, round, sleep, Server, startOnLoopback, hookOf,
} from './lib.mjs';
import { startRecording, stopRecording } from './recording.mjs';

const N = Number(process.argv[2] || 4);
const SECONDS = Number(process.argv[3] || 20);
const ROOM = 'bench';

function rssKib(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

async function window(pid) {
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  await sleep(SECONDS * 1000);
  return { cpuPercent: (100 * (cpuSeconds(pid) - cpu0)) / ((performance.now() - t0) / 1000), rssKib: rssKib(pid) };
}

const server = new Server();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-bench-record-'));
const browser = await startOnLoopback(server, {}, ['--record-dir', dir, '--max-recordings', String(N)]);
try {
  const page = await browser.context.newPage();
  await page.goto(`${server.base}/publish?room=${ROOM}&autostart=1`, { timeout: 15_000 });
  for (let i = 0; i < 200; i++) {
    const h = await hookOf(page);
    if ((h?.stats?.layers || []).length === 3 && h.stats.layers.every((l) => l.frameWidth > 0)) break;
    await sleep(100);
  }
  await sleep(3000);
  const pid = server.proc.pid;
  const base = await window(pid);
  const recs = [];
  for (let i = 0; i < N; i++) recs.push(await startRecording(server.base, ROOM));
  await sleep(2000);
  const rec = await window(pid);
  const infos = [];
  for (const r of recs) infos.push(await stopRecording(r.url));
  const bytes = infos.reduce((s, i) => s + i.bytes, 0);
  const tracks = infos.reduce((s, i) => s + i.files.length, 0);
  const result = {
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    recordings: N,
    tracks,
    seconds: SECONDS,
    baseline: { cpuPercent: round(base.cpuPercent, 2), rssKib: base.rssKib },
    recording: { cpuPercent: round(rec.cpuPercent, 2), rssKib: rec.rssKib },
    cpuPercentPerRecording: round((rec.cpuPercent - base.cpuPercent) / N, 3),
    rssKibPerRecording: round((rec.rssKib - base.rssKib) / N, 0),
    writtenMbitPerRecording: round((bytes * 8) / 1e6 / N / (SECONDS + 2), 2),
  };
  result.recordingsPerCore = result.cpuPercentPerRecording > 0 ? Math.floor(100 / result.cpuPercentPerRecording) : null;
  fs.mkdirSync(artifactsDir, { recursive: true });
  fs.writeFileSync(path.join(artifactsDir, 'bench-record.json'), JSON.stringify(result, null, 2) + '\n');
  console.log(JSON.stringify(result, null, 2));
} finally {
  await browser.close();
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}

// The conference grid: one tile per occupied video slot of the WHEP session, plus the
// participant's own camera (never a slot). Lays tiles out to fill the area (a screen
// share gets the stage, cameras a strip beside or below it), caps each slot to its
// tile's size in device pixels, and keeps per-slot receive statistics with an optional
// panel and chart per tile. Reads the Conference's state; changes nothing in it but the
// resolution caps it requests.
//
//   const grid = new Grid(areaElement, conference);
//   grid.render();          // after slots / participants / speaker / layer changes
//   grid.bindMedia();       // after a new WHEP session: tiles get its receivers
//   grid.showReconnecting(on);  // "reconnecting…" over the tiles (last frame stays)
//   grid.setSelf(stream);   // own camera preview, or null
//   grid.setSummaries(on);  // a one-line stats summary over every tile
//   grid.marks = chat.marks; grid.renderMarks();  // raised hands, reactions (room-chat.js)
//   grid.tiles();           // [{ mid, identity, name, source, width, height, framesDecoded, … }]

import { sampleInboundByMid } from './stats.js';
import { BandwidthChart } from './chart.js';
import { showMarks } from './room-chat.js';
import { el } from './ui.js';

const ASPECT = 16 / 9;
const GAP = 8; // px between tiles, as in room.css
const STATS_INTERVAL_MS = 1000;
/** Size of the stats panel of a small tile, which opens beside the tile (px). */
const PANEL_W = 250;
const PANEL_H = 190;

/**
 * The grid of `n` tiles of aspect ASPECT that fits `w`×`h` with the largest tiles:
 * { cols, rows, tileW, tileH }.
 */
export function bestFit(n, w, h, gap = GAP) {
  let best = { cols: 1, rows: Math.max(1, n), tileW: 0, tileH: 0 };
  for (let cols = 1; cols <= Math.max(1, n); cols++) {
    const rows = Math.ceil(n / cols);
    let tileW = (w - gap * (cols - 1)) / cols;
    let tileH = (h - gap * (rows - 1)) / rows;
    if (tileW <= 0 || tileH <= 0) continue;
    if (tileW / tileH > ASPECT) tileW = tileH * ASPECT;
    else tileH = tileW / ASPECT;
    if (tileW > best.tileW) best = { cols, rows, tileW, tileH };
  }
  return best;
}

/** Positions `tiles` (elements) in the rectangle, rows centred, the whole block centred. */
function place(tiles, rect) {
  if (!tiles.length) return;
  const { cols, rows, tileW, tileH } = bestFit(tiles.length, rect.w, rect.h);
  const blockH = rows * tileH + (rows - 1) * GAP;
  const top = rect.y + (rect.h - blockH) / 2;
  tiles.forEach((el, i) => {
    const row = Math.floor(i / cols);
    const inRow = Math.min(cols, tiles.length - row * cols);
    const rowW = inRow * tileW + (inRow - 1) * GAP;
    const left = rect.x + (rect.w - rowW) / 2 + (i % cols) * (tileW + GAP);
    Object.assign(el.style, {
      left: `${Math.round(left)}px`,
      top: `${Math.round(top + row * (tileH + GAP))}px`,
      width: `${Math.floor(tileW)}px`,
      height: `${Math.floor(tileH)}px`,
    });
  });
}

/** "f S2 T1 640×360" from a `layer` event: rid, spatial and temporal layer, size; 'none'. */
export function describeLayer(layer) {
  if (!layer) return '–';
  // neither a RID nor a spatial layer: nothing is forwarded into the slot right now
  if (layer.rid == null && layer.spatial == null) return 'none';
  const parts = [layer.rid ?? 'single'];
  if (layer.spatial != null) parts.push(`S${layer.spatial}`);
  if (layer.temporal != null) parts.push(`T${layer.temporal}`);
  if (layer.width && layer.height) parts.push(`${layer.width}×${layer.height}`);
  return parts.join(' ');
}

class Tile {
  constructor(mid, grid) {
    this.mid = mid;
    this.grid = grid;
    this.identity = null;
    this.source = null;
    this.firstFrameMs = null;
    this.root = el('figure', 'tile');
    this.root.dataset.mid = mid;
    this.video = el('video');
    this.video.autoplay = true;
    this.video.playsInline = true;
    this.video.muted = true; // sound comes from the audio slots
    this.caption = el('figcaption');
    this.nameEl = el('span', 'name');
    this.badges = el('span', 'badges');
    this.caption.append(this.nameEl, this.badges);
    this.toggle = el('button', 'tile-stats-toggle', 'i');
    this.toggle.type = 'button';
    this.toggle.title = 'Statistics';
    this.toggle.setAttribute('aria-pressed', 'false');
    this.panel = el('div', 'tile-stats');
    this.panel.hidden = true;
    this.dl = el('dl', 'stats');
    this.canvas = el('canvas');
    this.canvas.setAttribute('role', 'img');
    this.canvas.setAttribute('aria-label', 'Received bitrate of this tile over the last 30 seconds');
    this.panel.append(this.dl, this.canvas);
    this.chart = null;
    this.summary = el('div', 'tile-summary');
    this.toggle.addEventListener('click', () => this.showStats(this.panel.hidden));
    // "reconnecting…" over the last frame while a session reconnects (not a black tile)
    this.note = el('div', 'tile-note', 'reconnecting…');
    this.note.setAttribute('role', 'status');
    Object.assign(this.note.style, {
      position: 'absolute', inset: '0', display: 'none', alignItems: 'center', justifyContent: 'center',
      background: 'rgba(0, 0, 0, 0.45)', color: '#fff', fontWeight: '600', pointerEvents: 'none', zIndex: '1',
    });
    this.root.append(this.video, this.note, this.summary, this.caption, this.toggle, this.panel);
    this.video.addEventListener('resize', () => this.grid.layoutSoon());
  }

  showStats(on) {
    if (on && this.root.classList.contains('small')) {
      // one floating panel at a time: they open over the neighbours
      for (const other of this.grid.tilesByMid.values()) if (other !== this && other.panel.classList.contains('floating')) other.showStats(false);
    }
    this.panel.hidden = !on;
    this.toggle.setAttribute('aria-pressed', String(on));
    this.root.classList.toggle('with-stats', on);
    if (on && !this.chart) this.chart = new BandwidthChart(this.canvas, { seconds: 30, keys: ['receivedBps'] });
    if (on) {
      this.placePanel();
      this.renderStats();
    }
  }

  /**
   * A large tile shows its panel inside; a small one beside itself (left, right, above or
   * below, wherever the area has room), over its neighbours.
   */
  placePanel() {
    const small = this.root.classList.contains('small');
    this.panel.classList.toggle('floating', small);
    if (!small || this.panel.hidden) {
      Object.assign(this.panel.style, { left: '', top: '', width: '', height: '' });
      return;
    }
    const W = this.grid.area.clientWidth;
    const H = this.grid.area.clientHeight;
    const x = this.root.offsetLeft;
    const y = this.root.offsetTop;
    const w = this.root.offsetWidth;
    const h = this.root.offsetHeight;
    const pw = Math.min(PANEL_W, W - 2 * GAP);
    const ph = Math.min(PANEL_H, H);
    const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
    let left;
    let top;
    if (x >= pw + GAP) {
      left = -pw - GAP;
      top = clamp(0, -y, H - y - ph);
    } else if (W - x - w >= pw + GAP) {
      left = w + GAP;
      top = clamp(0, -y, H - y - ph);
    } else {
      left = clamp(0, -x, W - x - pw);
      top = y >= ph + GAP ? -ph - GAP : h + GAP;
    }
    Object.assign(this.panel.style, { left: `${left}px`, top: `${top}px`, width: `${pw}px`, height: `${ph}px` });
  }

  /** Points the <video> at this slot's receiver; measures the time to its first frame. */
  bind(receiver, since) {
    const track = receiver?.track ?? null;
    if (this.track === track) return;
    this.track = track;
    this.video.srcObject = track ? new MediaStream([track]) : null;
    this.firstFrameMs = null;
    if (!track) return;
    this.video.play().catch(() => {}); // muted video may autoplay; a refusal resolves on the next gesture
    const record = () => {
      if (this.firstFrameMs == null && this.track === track) {
        this.firstFrameMs = Math.round(performance.now() - since);
        this.root.classList.add('live');
      }
    };
    if ('requestVideoFrameCallback' in this.video) this.video.requestVideoFrameCallback(record);
    else this.video.addEventListener('loadeddata', record, { once: true });
  }

  update(slot, participant, conf) {
    this.identity = slot.identity;
    this.source = slot.source;
    this.root.dataset.identity = slot.identity ?? '';
    const name = participant?.name || slot.identity;
    this.nameEl.textContent = slot.source === 'screen' ? `${name} (screen)` : name;
    this.root.title = `${name} · slot ${slot.mid}`;
    this.root.classList.toggle('screen', slot.source === 'screen');
    this.root.classList.toggle('pinned', Boolean(slot.pinned));
    this.root.classList.toggle('paused', Boolean(slot.paused));
    const speaking = slot.source !== 'screen' && slot.identity === conf.activeSpeaker;
    this.root.classList.toggle('speaking', speaking);
    const level = conf.speakers.find((s) => s.identity === slot.identity)?.level ?? 0;
    this.root.style.setProperty('--level', slot.source === 'screen' ? '0' : String(Math.min(1, level)));
    const tracks = participant?.tracks ?? [];
    const micMuted = tracks.some((t) => t.source === 'camera' && t.kind === 'audio' && t.muted);
    const noMic = participant && !tracks.some((t) => t.source === 'camera' && t.kind === 'audio');
    const camMuted = tracks.some((t) => t.source === slot.source && t.kind === 'video' && t.muted);
    this.badges.replaceChildren();
    if (slot.source !== 'screen' && (micMuted || noMic)) this.badges.append(el('span', 'badge-icon mic-off', 'mic off'));
    if (camMuted) this.badges.append(el('span', 'badge-icon cam-off', 'camera off'));
    if (slot.pinned) this.badges.append(el('span', 'badge-icon', 'pinned'));
    this.renderMarks();
    if (this.panel.hidden === false) this.renderStats();
  }

  /** A raised hand and a recent reaction of the participant, on the camera tile only. */
  renderMarks() {
    showMarks(this.root, this.badges, this.source === 'screen' ? null : this.identity, this.grid.marks);
  }

  renderStats() {
    const s = this.sample;
    const layer = this.grid.conf.layers.get(this.mid);
    const rtt = this.grid.rttMs;
    // [label, value, shown in the (smaller) floating panel too]
    const rows = [
      ['Resolution', s?.frameWidth ? `${s.frameWidth}×${s.frameHeight}` : '–', true],
      ['Layer', describeLayer(layer), true],
      ['Bitrate', s ? `${s.bitrateKbps} kbit/s` : '–', true],
      ['Loss', s ? `${s.lossPercent ?? 0} % (${s.packetsLost})` : '–', true],
      ['RTT', rtt == null ? '–' : `${rtt} ms`, true],
      ['Frames/s', s?.fps == null ? '–' : s.fps.toFixed(1), false],
      ['Jitter', s?.jitterMs == null ? '–' : `${s.jitterMs} ms`, false],
      ['Cap', this.cap ? `${this.cap.maxWidth}×${this.cap.maxHeight}` : '–', false],
      ['Codec', s?.codec?.replace(/^video\//, '') ?? '–', false],
      ['Slot', this.mid, false],
    ];
    const nodes = [];
    for (const [label, value, always] of rows) {
      if (!always && this.panel.classList.contains('floating')) continue;
      nodes.push(el('dt', null, label), el('dd', null, value));
    }
    this.dl.replaceChildren(...nodes);
  }

  /** One line over the video: size, layer, bitrate, loss, round trip (the Stats button). */
  renderSummary() {
    const s = this.sample;
    const layer = this.grid.conf.layers.get(this.mid);
    const rtt = this.grid.rttMs;
    const text = [
      s?.frameWidth ? `${s.frameWidth}×${s.frameHeight}` : '–',
      layer ? describeLayer({ ...layer, width: null, height: null }) : null,
      s ? `${s.bitrateKbps} kbit/s` : null,
      s ? `loss ${s.lossPercent ?? 0} %` : null,
      rtt == null ? null : `RTT ${rtt} ms`,
    ].filter(Boolean).join(' · ');
    this.summary.textContent = text;
    this.summary.title = text;
  }

  remove() {
    this.video.srcObject = null;
    this.root.remove();
  }
}

export class Grid {
  constructor(area, conf) {
    this.area = area;
    this.conf = conf;
    this.tilesByMid = new Map();
    this.selfTile = null;
    this.marks = null; // { hand(identity), reaction(identity) }, see room-chat.js
    this.empty = area.querySelector('.empty-room');
    this.samples = new Map();
    this.rttMs = null;
    this.statsState = null;
    this.statsTimer = null;
    this.layoutQueued = false;
    this.reconnecting = false;
    if ('ResizeObserver' in window) new ResizeObserver(() => this.layoutSoon()).observe(area);
    else window.addEventListener('resize', () => this.layoutSoon());
  }

  /** Own camera preview as a tile of its own (mirrored), or none. */
  setSelf(stream, label = 'You') {
    if (!stream || !stream.getVideoTracks().length) {
      if (this.selfTile) this.selfTile.video.srcObject = null;
      this.selfTile?.root.remove();
      this.selfTile = null;
      this.layoutSoon();
      return;
    }
    if (!this.selfTile) {
      const root = el('figure', 'tile self');
      const video = el('video');
      video.autoplay = true;
      video.playsInline = true;
      video.muted = true;
      const caption = el('figcaption');
      caption.append(el('span', 'name', label), el('span', 'badges'));
      root.append(video, caption);
      this.selfTile = { root, video, caption };
      this.area.append(root);
    }
    if (this.selfTile.video.srcObject !== stream) this.selfTile.video.srcObject = stream;
    this.selfTile.video.play().catch(() => {});
    this.layoutSoon();
  }

  /** The Stats button: a one-line summary over every tile (the i button opens the full panel). */
  setSummaries(on) {
    this.summaries = on;
    this.area.classList.toggle('show-summaries', on);
    if (on) for (const tile of this.tilesByMid.values()) tile.renderSummary();
  }

  /** Marks the own tile (speaking, muted camera or microphone). */
  updateSelf({ speaking, micOn, camOn }) {
    if (!this.selfTile) return;
    const { root, caption } = this.selfTile;
    root.classList.toggle('speaking', Boolean(speaking));
    root.classList.toggle('cam-muted', !camOn);
    const badges = caption.querySelector('.badges');
    badges.replaceChildren();
    if (!micOn) badges.append(el('span', 'badge-icon mic-off', 'mic off'));
    if (!camOn) badges.append(el('span', 'badge-icon cam-off', 'camera off'));
    showMarks(root, badges, this.conf?.identity ?? null, this.marks);
  }

  /** Hands and reactions (grid.marks) on every tile, the own one included. */
  renderMarks() {
    for (const tile of this.tilesByMid.values()) tile.renderMarks();
    if (this.selfTile) showMarks(this.selfTile.root, this.selfTile.caption.querySelector('.badges'), this.conf?.identity ?? null, this.marks);
  }

  /** Tiles for the occupied video slots of the last `slots` event; others go. */
  render() {
    const conf = this.conf;
    const offered = conf.offeredSlots();
    const wanted = new Map();
    for (const slot of conf.slots) {
      if (slot.kind !== 'video' || !slot.identity) continue;
      if (offered.size && offered.get(slot.mid) !== 'video') continue;
      // no filter on our own identity: the server never sends it (tests check that it does not)
      wanted.set(slot.mid, slot);
    }
    for (const [mid, tile] of this.tilesByMid) {
      if (!wanted.has(mid)) {
        tile.remove();
        this.tilesByMid.delete(mid);
      }
    }
    for (const [mid, slot] of wanted) {
      let tile = this.tilesByMid.get(mid);
      if (!tile) {
        tile = new Tile(mid, this);
        this.tilesByMid.set(mid, tile);
        this.area.append(tile.root);
        tile.bind(conf.receiver(mid), conf.whep?.answeredAt ?? performance.now());
        tile.note.style.display = this.reconnecting ? 'flex' : 'none';
        if (this.summaries) tile.renderSummary();
      }
      tile.update(slot, conf.participants.get(slot.identity), conf);
    }
    if (this.empty) this.empty.hidden = this.tilesByMid.size > 0 || conf.state !== 'joined';
    this.layoutSoon();
  }

  /** A new WHEP peer connection: every tile gets its new receiver. */
  bindMedia() {
    for (const tile of this.tilesByMid.values()) tile.remove();
    this.tilesByMid.clear();
    this.samples.clear();
    this.statsState = null;
    this.render();
  }

  /** Shows (or hides) "reconnecting…" over every tile, the ones made later included. */
  showReconnecting(on) {
    this.reconnecting = on;
    for (const tile of this.tilesByMid.values()) tile.note.style.display = on ? 'flex' : 'none';
  }

  clear() {
    for (const tile of this.tilesByMid.values()) tile.remove();
    this.tilesByMid.clear();
    this.samples.clear();
    this.statsState = null;
    if (this.empty) this.empty.hidden = true;
    this.layoutSoon();
  }

  layoutSoon() {
    if (this.layoutQueued) return;
    this.layoutQueued = true;
    requestAnimationFrame(() => {
      this.layoutQueued = false;
      this.layout();
    });
  }

  /** Sizes and places the tiles; then asks for the matching resolution caps. */
  layout() {
    const W = this.area.clientWidth;
    const H = this.area.clientHeight;
    if (!W || !H) return;
    const tiles = [...this.tilesByMid.values()].sort((a, b) => Number(a.mid) - Number(b.mid) || a.mid.localeCompare(b.mid));
    const screens = tiles.filter((t) => t.source === 'screen').map((t) => t.root);
    const cameras = tiles.filter((t) => t.source !== 'screen').map((t) => t.root);
    if (this.selfTile) cameras.push(this.selfTile.root);
    this.area.classList.toggle('has-screen', screens.length > 0);
    if (!screens.length) {
      place(cameras, { x: 0, y: 0, w: W, h: H });
    } else if (!cameras.length) {
      place(screens, { x: 0, y: 0, w: W, h: H });
    } else if (W >= H) {
      // stage on the left, a column of cameras on the right
      const stripW = Math.round(Math.min(320, Math.max(160, W * 0.22)));
      place(screens, { x: 0, y: 0, w: W - stripW - GAP, h: H });
      place(cameras, { x: W - stripW, y: 0, w: stripW, h: H });
    } else {
      const stripH = Math.round(Math.min(200, Math.max(90, H * 0.25)));
      place(screens, { x: 0, y: 0, w: W, h: H - stripH - GAP });
      place(cameras, { x: 0, y: H - stripH, w: W, h: stripH });
    }
    this.requestCaps();
  }

  /** Each slot's cap: its tile's size in device pixels. */
  requestCaps() {
    const dpr = window.devicePixelRatio || 1;
    const caps = new Map();
    for (const tile of this.tilesByMid.values()) {
      tile.root.classList.toggle('small', tile.root.clientHeight < 240 || tile.root.clientWidth < 400);
      if (!tile.panel.hidden) {
        tile.placePanel();
        tile.renderStats();
      }
      const w = Math.round(tile.root.clientWidth * dpr);
      const h = Math.round(tile.root.clientHeight * dpr);
      if (!w || !h) continue;
      tile.cap = { maxWidth: w, maxHeight: h };
      caps.set(tile.mid, tile.cap);
    }
    if (caps.size) this.conf.requestCaps(caps);
  }

  /** Per-second receive statistics of every slot (for the panels and tiles()). */
  startStats() {
    this.stopStats();
    let running = true;
    const tick = async () => {
      const pc = this.conf.whep?.pc;
      if (pc && pc.connectionState !== 'closed') {
        try {
          const trackMid = new Map(pc.getTransceivers().map((t) => [t.receiver.track.id, t.mid]));
          const { sample, state } = await sampleInboundByMid(pc, this.statsState, (id) => trackMid.get(id));
          if (!running) return;
          this.statsState = state;
          this.samples = sample.byMid;
          this.rttMs = sample.rttMs ?? null;
          this.sampledAt = sample.at;
          for (const tile of this.tilesByMid.values()) {
            tile.sample = this.samples.get(tile.mid) ?? null;
            if (!tile.panel.hidden) tile.renderStats();
            if (this.summaries) tile.renderSummary();
            const layer = this.conf.layers.get(tile.mid);
            tile.chart?.push({ receivedBps: tile.sample ? tile.sample.bitrateKbps * 1000 : null, layer: layer?.rid ?? null });
          }
        } catch {
          // closed meanwhile: the next tick finds out
        }
      }
      if (running) this.statsTimer = setTimeout(tick, STATS_INTERVAL_MS);
    };
    this.stopStats = () => {
      running = false;
      clearTimeout(this.statsTimer);
    };
    tick();
  }

  stopStats() {}

  /** The remote tiles, for tests and the hook. */
  tiles() {
    return [...this.tilesByMid.values()].map((t) => {
      const s = this.samples.get(t.mid);
      return {
        mid: t.mid,
        identity: t.identity,
        name: t.nameEl.textContent,
        source: t.source,
        width: t.video.videoWidth || s?.frameWidth || 0,
        height: t.video.videoHeight || s?.frameHeight || 0,
        framesDecoded: s?.framesDecoded ?? 0,
        fps: s?.fps ?? null,
        bitrateKbps: s?.bitrateKbps ?? null,
        packetsLost: s?.packetsLost ?? null,
        firstFrameMs: t.firstFrameMs,
        tileWidth: t.root.clientWidth,
        tileHeight: t.root.clientHeight,
        cap: t.cap ?? null,
        layer: this.conf.layers.get(t.mid) ?? null,
        speaking: t.root.classList.contains('speaking'),
      };
    });
  }
}

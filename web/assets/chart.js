// A small rolling line chart on a plain <canvas>: the server's bandwidth
// estimate for this viewer and the received video bitrate over the last N
// seconds, with a marker wherever the forwarded layer changed.
//
//   const chart = new BandwidthChart(canvas, { seconds: 60 });
//   chart.push({ estimateBps, receivedBps, layer: 'h' });   // about once a second
//   new BandwidthChart(canvas, { seconds: 30, keys: ['receivedBps'] });  // one line only
//
// Values are bit/s; null means "unknown" and leaves a gap in that line.

const NICE = [1, 2, 2.5, 5, 10];
const GRID_LINES = 4;

/** The smallest "round" number ≥ x (1, 2, 2.5, 5 × 10ⁿ). */
function niceCeil(x) {
  if (!(x > 0)) return 1;
  const exp = 10 ** Math.floor(Math.log10(x));
  for (const m of NICE) if (m * exp >= x) return m * exp;
  return 10 * exp;
}

export function formatBps(bps) {
  if (bps == null) return '–';
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(bps >= 1e7 ? 0 : 2).replace(/\.?0+$/, '')} Mbit/s`;
  return `${Math.round(bps / 1e3)} kbit/s`;
}

function axisLabel(bps) {
  if (bps === 0) return '0';
  if (bps >= 1e6) return `${+(bps / 1e6).toFixed(2)} M`;
  return `${+(bps / 1e3).toFixed(0)} k`;
}

export class BandwidthChart {
  constructor(canvas, { seconds = 60, keys = null } = {}) {
    this.canvas = canvas;
    this.seconds = seconds;
    this.points = []; // { t (ms, performance.now), estimateBps, receivedBps, layer }
    this.series = [
      { key: 'estimateBps', color: '--warn', fallback: '#b26b00', width: 2 },
      { key: 'receivedBps', color: '--accent', fallback: '#2f6feb', width: 2 },
    ].filter((s) => !keys || keys.includes(s.key));
    this.scheduled = false;
    if ('ResizeObserver' in window) {
      new ResizeObserver(() => this.draw()).observe(canvas);
    }
    this.draw();
  }

  push(point) {
    const t = point.t ?? performance.now();
    this.points.push({ ...point, t });
    const horizon = t - (this.seconds + 2) * 1000;
    while (this.points.length && this.points[0].t < horizon) this.points.shift();
    this.draw();
  }

  clear() {
    this.points = [];
    this.draw();
  }

  draw() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.render();
    });
  }

  render() {
    const canvas = this.canvas;
    const cssWidth = canvas.clientWidth || 600;
    const cssHeight = canvas.clientHeight || 180;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(cssWidth * dpr) || canvas.height !== Math.round(cssHeight * dpr)) {
      canvas.width = Math.round(cssWidth * dpr);
      canvas.height = Math.round(cssHeight * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssWidth, cssHeight);

    const style = getComputedStyle(canvas);
    const cssVar = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
    const muted = cssVar('--muted', '#5b6576');
    const grid = cssVar('--border', '#d9dee6');
    const font = `11px ${style.fontFamily || 'sans-serif'}`;

    const pad = { left: 52, right: 10, top: 10, bottom: 20 };
    const w = Math.max(10, cssWidth - pad.left - pad.right);
    const h = Math.max(10, cssHeight - pad.top - pad.bottom);
    const now = this.points.length ? Math.max(performance.now(), this.points.at(-1).t) : performance.now();
    const t0 = now - this.seconds * 1000;
    const x = (t) => pad.left + ((t - t0) / (this.seconds * 1000)) * w;

    let max = 0;
    for (const p of this.points) {
      if (p.t < t0) continue;
      for (const s of this.series) if (p[s.key] > max) max = p[s.key];
    }
    const step = niceCeil(Math.max(max * 1.1, 200_000) / GRID_LINES);
    const top = step * GRID_LINES;
    const y = (v) => pad.top + h - (v / top) * h;

    // grid and axes
    ctx.font = font;
    ctx.lineWidth = 1;
    ctx.strokeStyle = grid;
    ctx.fillStyle = muted;
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    for (let i = 0; i <= GRID_LINES; i++) {
      const v = step * i;
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(pad.left, yy);
      ctx.lineTo(pad.left + w, yy);
      ctx.stroke();
      ctx.fillText(axisLabel(v), pad.left - 6, yy);
    }
    ctx.textBaseline = 'top';
    ctx.textAlign = 'center';
    for (let s = 0; s <= this.seconds; s += 10) {
      const xx = Math.round(x(now - s * 1000)) + 0.5;
      ctx.fillText(s === 0 ? 'now' : `−${s} s`, Math.min(Math.max(xx, pad.left + 12), pad.left + w - 12), pad.top + h + 5);
    }

    const visible = this.points.filter((p) => p.t >= t0 - 1000);

    // layer changes: dashed vertical markers with the new layer's name
    ctx.save();
    ctx.setLineDash([3, 3]);
    ctx.strokeStyle = muted;
    ctx.fillStyle = muted;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'top';
    for (let i = 1; i < visible.length; i++) {
      const prev = visible[i - 1].layer;
      const cur = visible[i].layer;
      if (cur == null || prev == null || cur === prev || visible[i].t < t0) continue;
      const xx = Math.round(x(visible[i].t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(xx, pad.top);
      ctx.lineTo(xx, pad.top + h);
      ctx.stroke();
      ctx.fillText(cur, xx + 3, pad.top + 1);
    }
    ctx.restore();

    // the series
    ctx.save();
    ctx.beginPath();
    ctx.rect(pad.left, pad.top - 2, w, h + 4);
    ctx.clip();
    for (const s of this.series) {
      ctx.strokeStyle = cssVar(s.color, s.fallback);
      ctx.lineWidth = s.width;
      ctx.lineJoin = 'round';
      ctx.beginPath();
      let drawing = false;
      for (const p of visible) {
        const v = p[s.key];
        if (v == null) {
          drawing = false;
          continue;
        }
        if (drawing) ctx.lineTo(x(p.t), y(v));
        else ctx.moveTo(x(p.t), y(v));
        drawing = true;
      }
      ctx.stroke();
    }
    ctx.restore();

    if (!visible.length) {
      ctx.fillStyle = muted;
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.fillText('no data yet', pad.left + w / 2, pad.top + h / 2);
    }
  }
}

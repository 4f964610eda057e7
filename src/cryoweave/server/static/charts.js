// Charts drawn on <canvas> without libraries: axes with ticks, lines, bars and points.
import { h } from "./dom.js";

const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777"];
const PAD = { left: 56, right: 16, top: 14, bottom: 40 };

/** A canvas sized for the screen's pixel ratio; returns {canvas, ctx, width, height}. */
export function makeCanvas(width = 620, height = 320, testid) {
  const canvas = h("canvas.chart", { testid, width: width * devicePixelRatio, height: height * devicePixelRatio });
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.scale(devicePixelRatio, devicePixelRatio);
  return { canvas, ctx, width, height };
}

function niceTicks(min, max, count = 6) {
  if (!(max > min)) return [min];
  const span = max - min;
  const step0 = span / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
  const ticks = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function fmt(v) {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

/**
 * Axes over [x0,x1]×[y0,y1]; returns {X, Y} mapping data to pixels. `xLabelOf` formats x ticks.
 */
export function axes(c, { x0, x1, y0, y1, xlabel = "", ylabel = "", xLabelOf = fmt }) {
  const { ctx, width, height } = c;
  const w = width - PAD.left - PAD.right;
  const hgt = height - PAD.top - PAD.bottom;
  const X = (x) => PAD.left + ((x - x0) / (x1 - x0 || 1)) * w;
  const Y = (y) => PAD.top + hgt - ((y - y0) / (y1 - y0 || 1)) * hgt;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, width, height);
  ctx.font = "11px system-ui, sans-serif";
  ctx.strokeStyle = "#e5e7eb";
  ctx.fillStyle = "#4b5563";
  ctx.lineWidth = 1;
  ctx.textAlign = "center";
  for (const t of niceTicks(x0, x1)) {
    ctx.beginPath(); ctx.moveTo(X(t), PAD.top); ctx.lineTo(X(t), PAD.top + hgt); ctx.stroke();
    ctx.fillText(xLabelOf(t), X(t), PAD.top + hgt + 14);
  }
  ctx.textAlign = "right";
  for (const t of niceTicks(y0, y1, 5)) {
    ctx.beginPath(); ctx.moveTo(PAD.left, Y(t)); ctx.lineTo(PAD.left + w, Y(t)); ctx.stroke();
    ctx.fillText(fmt(t), PAD.left - 6, Y(t) + 4);
  }
  ctx.strokeStyle = "#9ca3af";
  ctx.strokeRect(PAD.left, PAD.top, w, hgt);
  ctx.textAlign = "center";
  ctx.fillText(xlabel, PAD.left + w / 2, height - 6);
  ctx.save();
  ctx.translate(12, PAD.top + hgt / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(ylabel, 0, 0);
  ctx.restore();
  return { X, Y };
}

/** Lines: series [{name, x: [], y: []}], optional horizontal guides [{y, label}]. */
export function lineChart(c, series, { xlabel, ylabel, guides = [], xLabelOf, y0, y1 } = {}) {
  const xs = series.flatMap((s) => s.x).filter(Number.isFinite);
  const ys = series.flatMap((s) => s.y).filter(Number.isFinite);
  const box = {
    x0: Math.min(...xs), x1: Math.max(...xs),
    y0: y0 ?? Math.min(0, ...ys), y1: y1 ?? Math.max(...ys),
  };
  const { X, Y } = axes(c, { ...box, xlabel, ylabel, xLabelOf });
  const { ctx } = c;
  for (const g of guides) {
    ctx.strokeStyle = "#6b7280";
    ctx.setLineDash([4, 4]);
    ctx.beginPath(); ctx.moveTo(X(box.x0), Y(g.y)); ctx.lineTo(X(box.x1), Y(g.y)); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = "#6b7280";
    ctx.textAlign = "right";
    ctx.fillText(g.label, X(box.x1) - 4, Y(g.y) - 4);
  }
  series.forEach((s, i) => {
    ctx.strokeStyle = COLORS[i % COLORS.length];
    ctx.lineWidth = 1.6;
    ctx.beginPath();
    let started = false;
    s.x.forEach((x, k) => {
      const y = s.y[k];
      if (!Number.isFinite(x) || !Number.isFinite(y)) { started = false; return; }
      if (started) ctx.lineTo(X(x), Y(y)); else ctx.moveTo(X(x), Y(y));
      started = true;
    });
    ctx.stroke();
  });
  return legend(series.map((s) => s.name));
}

/** Bars of a histogram {edges, counts}. */
export function histogramChart(c, hist, xlabel) {
  const { edges, counts } = hist;
  const { X, Y } = axes(c, { x0: edges[0], x1: edges[edges.length - 1], y0: 0, y1: Math.max(1, ...counts) * 1.05, xlabel, ylabel: "count" });
  const { ctx } = c;
  ctx.fillStyle = COLORS[0];
  counts.forEach((n, i) => {
    const left = X(edges[i]);
    const right = X(edges[i + 1]);
    ctx.fillRect(left, Y(n), Math.max(1, right - left - 1), Y(0) - Y(n));
  });
}

/** Points {x: [], y: []}, small and translucent so dense regions show. */
export function scatterChart(c, pts, xlabel, ylabel) {
  const fx = pts.x.filter(Number.isFinite);
  const fy = pts.y.filter(Number.isFinite);
  const pad = (lo, hi) => (hi > lo ? [lo, hi] : [lo - 1, hi + 1]);
  const [x0, x1] = pad(Math.min(...fx), Math.max(...fx));
  const [y0, y1] = pad(Math.min(...fy), Math.max(...fy));
  const { X, Y } = axes(c, { x0, x1, y0, y1, xlabel, ylabel });
  const { ctx } = c;
  ctx.fillStyle = "rgba(37, 99, 235, 0.45)";
  pts.x.forEach((x, i) => {
    const y = pts.y[i];
    if (Number.isFinite(x) && Number.isFinite(y)) ctx.fillRect(X(x) - 1.5, Y(y) - 1.5, 3, 3);
  });
}

function legend(names) {
  return h("div.legend", {}, names.map((n, i) => h("span.legend-item", {},
    h("span.swatch", { style: `background:${COLORS[i % COLORS.length]}` }), n)));
}

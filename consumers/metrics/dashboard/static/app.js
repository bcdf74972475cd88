// Clickstream minute-metrics dashboard: fetches /v1/metrics/{metric} for
// the last N minutes and draws one SVG line chart per <figure>, one line per
// dimension value. Plain JS, no libraries; refreshed on a timer.
"use strict";

const params = new URLSearchParams(location.search);
const MINUTES = clampInt(params.get("minutes"), 60, 5, 1440);
const REFRESH_MS = clampInt(params.get("refresh"), 15, 1, 3600) * 1000;
const MAX_SERIES = 8;
const COLORS = ["#3b6fd8", "#e0702b", "#2f9e62", "#c8384c", "#8a5cc9", "#1a9aa8", "#b58b1b", "#6b7385"];
const SVG = "http://www.w3.org/2000/svg";

// The read API wants a key (Authorization: Bearer KEY) unless it runs with
// --insecure-no-auth. Open the page as /#key=KEY once: the key is kept in
// this browser's localStorage and removed from the address bar.
const KEY_STORE = "clickstream-api-key";
const hashKey = new URLSearchParams(location.hash.slice(1)).get("key");
if (hashKey) {
  localStorage.setItem(KEY_STORE, hashKey);
  history.replaceState(null, "", location.pathname + location.search);
}
function authHeaders() {
  const k = localStorage.getItem(KEY_STORE);
  return k ? { Authorization: `Bearer ${k}` } : {};
}

function clampInt(s, def, lo, hi) {
  const n = parseInt(s, 10);
  return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : def;
}

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function format(kind, v) {
  switch (kind) {
    case "pct": return (v * 100).toFixed(v < 0.1 ? 1 : 0) + "%";
    case "ms": return v >= 1000 ? (v / 1000).toFixed(1) + " s" : Math.round(v) + " ms";
    default: return v >= 1e6 ? (v / 1e6).toFixed(1) + "M" : v >= 1e4 ? (v / 1e3).toFixed(0) + "k" : String(Math.round(v));
  }
}

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function hhmm(t) {
  const d = new Date(t);
  return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
}

// series groups API rows into one sorted point list per dimension value,
// keeping the MAX_SERIES largest (by sum of values).
function series(rows, value, dim) {
  const by = new Map();
  for (const r of rows) {
    const v = r.values[value];
    if (typeof v !== "number" || !Number.isFinite(v)) continue;
    const key = (r.dims && r.dims[dim]) || "(none)";
    if (!by.has(key)) by.set(key, []);
    by.get(key).push([Date.parse(r.window_start), v]);
  }
  const out = [...by.entries()].map(([name, pts]) => ({ name, pts: pts.sort((a, b) => a[0] - b[0]) }));
  out.sort((a, b) => b.pts.reduce((s, p) => s + p[1], 0) - a.pts.reduce((s, p) => s + p[1], 0) || a.name.localeCompare(b.name));
  return out.slice(0, MAX_SERIES);
}

function draw(fig, rows, from, to) {
  const W = 640, H = 230, L = 58, R = 14, T = 10, B = 26;
  const kind = fig.dataset.format;
  const ss = series(rows, fig.dataset.value, fig.dataset.dim);
  let top = 0;
  for (const s of ss) for (const p of s.pts) top = Math.max(top, p[1]);
  const yMax = fig.dataset.ymax ? Math.max(Number(fig.dataset.ymax), top) : niceMax(top * 1.05);
  const x = (t) => L + ((t - from) / (to - from)) * (W - L - R);
  const y = (v) => T + (1 - v / yMax) * (H - T - B);

  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": fig.querySelector("figcaption").textContent });
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    svg.append(el("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    svg.append(el("text", { class: "axis", x: L - 6, y: y(v) + 4, "text-anchor": "end" }, format(kind, v)));
  }
  const step = Math.max(1, Math.round(MINUTES / 6)) * 60000;
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) {
    svg.append(el("text", { class: "axis", x: x(t), y: H - 8, "text-anchor": "middle" }, hhmm(t)));
  }
  let points = 0;
  ss.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const d = s.pts.map((p, j) => (j ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1)).join(" ");
    svg.append(el("path", { class: "line", d, stroke: color, "data-series": s.name }));
    if (s.pts.length === 1) {
      svg.append(el("circle", { cx: x(s.pts[0][0]), cy: y(s.pts[0][1]), r: 3, fill: color }));
    }
    points += s.pts.length;
  });
  if (points === 0) {
    svg.append(el("text", { class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle" }, "no published windows in range"));
  }
  fig.querySelector(".plot").replaceChildren(svg);

  const legend = fig.querySelector(".legend");
  legend.replaceChildren(...ss.map((s, i) => {
    const li = document.createElement("li");
    li.style.setProperty("--c", COLORS[i % COLORS.length]);
    const last = s.pts[s.pts.length - 1];
    li.textContent = `${s.name}: ${format(kind, last[1])}`;
    return li;
  }));
  fig.dataset.series = String(ss.length);
  fig.dataset.points = String(points);
  fig.dataset.rendered = "true";
}

async function fetchMetric(metric, from, to) {
  const q = new URLSearchParams({ from: new Date(from).toISOString(), to: new Date(to).toISOString() });
  const resp = await fetch(`/v1/metrics/${encodeURIComponent(metric)}?${q}`, { cache: "no-store", headers: authHeaders() });
  if (resp.status === 401) throw new Error("the read API needs a key: open this page as /#key=YOUR_KEY");
  const body = await resp.json();
  if (!resp.ok) throw new Error(`${metric}: ${body.error || resp.statusText}`);
  return body.rows || [];
}

let refreshes = 0;

async function refresh() {
  const status = document.getElementById("status");
  const to = Math.floor(Date.now() / 60000) * 60000 + 60000;
  const from = to - MINUTES * 60000;
  const figs = [...document.querySelectorAll("figure[data-chart]")];
  const metrics = [...new Set(figs.map((f) => f.dataset.metric))];
  try {
    const rows = new Map(await Promise.all(metrics.map(async (m) => [m, await fetchMetric(m, from, to)])));
    for (const f of figs) draw(f, rows.get(f.dataset.metric), from, to);
    refreshes++;
    document.body.dataset.refreshes = String(refreshes);
    status.className = "";
    status.textContent = `last ${MINUTES} min · updated ${new Date().toLocaleTimeString()} · every ${REFRESH_MS / 1000}s`;
  } catch (err) {
    status.className = "error";
    status.textContent = `update failed: ${err.message}`;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();

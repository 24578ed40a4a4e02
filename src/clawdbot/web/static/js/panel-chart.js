// A small hand-drawn SVG line chart: one polyline per series (broken where a value is missing),
// three y grid lines with labels, clock labels on x, the last value in the heading. Drawn at the
// figure's real width (no scaled text), again when that width changes.

import { h } from "./dom.js";
import { fmtClock as fmtTime, fmtCompact, fmtDayClock } from "./panel-format.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const HEIGHT = 150;
const PAD = { left: 44, right: 10, top: 10, bottom: 22 };

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// The smallest of 1, 2, 2.5, 5 x 10^k at or above `max` (0 -> 1): round grid labels.
export function niceMax(max) {
  if (!(max > 0)) return 1;
  const base = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * base >= max * 0.999999) return step * base;
  }
  return 10 * base;
}

// Runs of consecutive non-null points: each becomes one polyline.
function segments(times, values, x, y) {
  const out = [];
  let run = [];
  for (let i = 0; i < times.length; i++) {
    const v = values[i];
    if (typeof v === "number" && Number.isFinite(v)) run.push([x(times[i]), y(v)]);
    else if (run.length) { out.push(run); run = []; }
  }
  if (run.length) out.push(run);
  return out;
}

function lastValue(values, end) {
  for (let i = Math.min(end, values.length) - 1; i >= 0; i--) {
    if (typeof values[i] === "number" && Number.isFinite(values[i])) return values[i];
  }
  return null;
}

export class LineChart {
  // key: data-chart; series: [{label}]; unit: "req/s", "%", "ms"
  constructor({ key, title, unit, series, windowS = 3600 }) {
    Object.assign(this, { key, title, unit, series, windowS });
    this.windowText = "last hour";
    this.data = null;
    this.last = h("span", { class: "chart-last" });
    this.svg = svg("svg", { class: "chart-svg", role: "img", "aria-label": title, preserveAspectRatio: "none" });
    const legend = series.length > 1
      ? h("ul", { class: "legend", "aria-hidden": "true" }, series.map((s, i) => h("li", { class: `s${i}` }, s.label)))
      : null;
    this.el = h("figure", { class: "chart", dataset: { chart: key, points: "0", max: "0" } },
      h("figcaption", { class: "chart-head" }, h("span", { class: "chart-title" }, title), this.last),
      this.svg, legend);
    this.width = 0;
    new ResizeObserver(() => {
      const w = Math.round(this.svg.clientWidth);
      if (w && w !== this.width && this.data) this.render();
    }).observe(this.el);
  }

  // the time the x axis spans, ending now ("last 7 days": its labels name the day too)
  setWindow(seconds, text) {
    this.windowS = seconds;
    this.windowText = text.toLowerCase();
  }

  // times: epoch seconds; values: one array per series, the same length as times; the heading
  // quotes the last value before index `settled` (default: the last of all)
  update(times, values, now, settled = times.length) {
    this.data = { times, values, now, settled };
    this.render();
  }

  render() {
    const { times, values, now } = this.data;
    const width = Math.max(200, Math.round(this.svg.clientWidth) || 360);
    this.width = width;
    const x0 = now - this.windowS;
    const innerW = width - PAD.left - PAD.right;
    const innerH = HEIGHT - PAD.top - PAD.bottom;
    let max = 0;
    let points = 0;
    for (const vs of values) {
      for (const v of vs) {
        if (typeof v === "number" && Number.isFinite(v)) { points++; if (v > max) max = v; }
      }
    }
    const top = niceMax(max);
    const x = (t) => PAD.left + Math.min(1, Math.max(0, (t - x0) / this.windowS)) * innerW;
    const y = (v) => PAD.top + innerH - (Math.min(v, top) / top) * innerH;

    const s = this.svg;
    while (s.firstChild) s.removeChild(s.firstChild);
    s.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
    for (const frac of [0, 0.5, 1]) {
      const gy = PAD.top + innerH - frac * innerH;
      s.append(svg("line", { class: "grid", x1: PAD.left, x2: width - PAD.right, y1: gy, y2: gy }));
      s.append(svg("text", { class: "axis-label", x: PAD.left - 6, y: gy + 4, "text-anchor": "end" }, fmtCompact(top * frac)));
    }
    const labelY = HEIGHT - 6;
    const fmtClock = this.windowS > 86400 ? fmtDayClock : fmtTime;
    s.append(svg("text", { class: "axis-label", x: PAD.left, y: labelY, "text-anchor": "start" }, fmtClock(x0)));
    s.append(svg("text", { class: "axis-label", x: PAD.left + innerW / 2, y: labelY, "text-anchor": "middle" },
      fmtClock(x0 + this.windowS / 2)));
    s.append(svg("text", { class: "axis-label", x: width - PAD.right, y: labelY, "text-anchor": "end" }, "now"));

    values.forEach((vs, i) => {
      for (const run of segments(times, vs, x, y)) {
        if (run.length === 1) {
          s.append(svg("circle", { class: `dot s${i}`, cx: run[0][0], cy: run[0][1], r: 2.5 }));
        } else {
          s.append(svg("polyline", { class: `line s${i}`, points: run.map((p) => `${p[0].toFixed(1)},${p[1].toFixed(1)}`).join(" ") }));
        }
      }
    });
    if (!points) {
      s.append(svg("text", { class: "no-data", x: PAD.left + innerW / 2, y: PAD.top + innerH / 2, "text-anchor": "middle" },
        "No data yet"));
    }
    this.el.dataset.points = String(points);
    this.el.dataset.max = String(max);
    this.showLast(values.map((vs) => lastValue(vs, this.data.settled)));
  }

  showLast(lasts) {
    const parts = [];
    const spoken = [];
    while (this.last.firstChild) this.last.removeChild(this.last.firstChild);
    lasts.forEach((v, i) => {
      const label = this.series.length > 1 ? `${this.series[i].label} ` : "";
      parts.push(h("span", null, label, h("strong", null, fmtCompact(v ?? NaN)), ` ${this.unit}`));
      spoken.push(`${label}${v === null ? "no value" : `${fmtCompact(v)} ${this.unit}`}`);
    });
    parts.forEach((p, i) => { if (i) this.last.append(" · "); this.last.append(p); });
    this.svg.setAttribute("aria-label", `${this.title}, ${this.windowText}. Latest: ${spoken.join(", ")}.`);
  }
}

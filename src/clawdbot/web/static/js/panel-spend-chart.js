// A key's, user's or team's spend per UTC day over the last 30 days, from GET /admin/api/spend?
// group_by=day&key_id=… (user_id=…, team_id=…)&since=<29 days ago>, as an SVG bar chart (a bar per
// day reads better than a line for a few priced requests; days without spend are zero). A daily budget is drawn as a dashed line with the
// y axis reaching up to it, unless it is more than 4x the highest day (the bars would be flat): then
// it is named above the chart. A monthly or total budget is quoted in the summary instead. Drawn at the
// figure's real width, again when that width changes (as panel-chart.js's line chart).

import { h } from "./dom.js";
import { fmtCompact, fmtUsd, utcDay } from "./panel-format.js";
import { niceMax } from "./panel-chart.js";
import { budgetText } from "./panel-keys-spend.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const DAYS = 30;
const DAY_MS = 86_400_000;
const HEIGHT = 170;
const PAD = { right: 10, top: 14, bottom: 22 };
const REF_SPAN = 4;  // a daily budget up to 4x the highest day is drawn to scale

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// The last `n` UTC days, oldest first, today last ("YYYY-MM-DD").
export function lastDays(now = Date.now(), n = DAYS) {
  return Array.from({ length: n }, (_, i) => utcDay(now - (n - 1 - i) * DAY_MS));
}

const usdTick = (v) => `$${fmtCompact(v)}`;

export class BarChart {
  constructor({ key, title }) {
    this.title = title;
    this.data = null;
    this.svg = svg("svg", { class: "chart-svg bar-chart", role: "img", "aria-label": title, preserveAspectRatio: "none" });
    this.el = h("figure", { class: "chart", dataset: { chart: key, bars: "0", max: "0", total: "0" } }, this.svg);
    this.width = 0;
    new ResizeObserver(() => {
      const w = Math.round(this.svg.clientWidth);
      if (w && w !== this.width && this.data) this.render();
    }).observe(this.el);
  }

  // bars: [{label: "YYYY-MM-DD", value: USD}], oldest first; reference: a daily budget (USD) or null
  update(bars, reference, summary) {
    this.data = { bars, reference, summary };
    this.render();
  }

  render() {
    const { bars, reference, summary } = this.data;
    const width = Math.max(240, Math.round(this.svg.clientWidth) || 480);
    this.width = width;
    let max = 0;
    let total = 0;
    for (const b of bars) {
      if (b.value > max) max = b.value;
      total += b.value;
    }
    // a daily budget far above the bars would flatten them: it is then named, not drawn
    const drawn = reference > 0 && (max === 0 || reference <= max * REF_SPAN);
    const top = niceMax(Math.max(max, drawn ? reference : 0));
    const ticks = [0, 0.5, 1].map((f) => [f, usdTick(top * f)]);
    const left = Math.max(36, Math.max(...ticks.map(([, t]) => t.length)) * 6.5 + 10);
    const innerW = width - left - PAD.right;
    const innerH = HEIGHT - PAD.top - PAD.bottom;
    const y = (v) => PAD.top + innerH - (Math.min(v, top) / top) * innerH;
    const s = this.svg;
    while (s.firstChild) s.removeChild(s.firstChild);
    s.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
    for (const [frac, text] of ticks) {
      const gy = y(top * frac);
      s.append(svg("line", { class: "grid", x1: left, x2: width - PAD.right, y1: gy, y2: gy }));
      s.append(svg("text", { class: "axis-label", x: left - 6, y: gy + 4, "text-anchor": "end" }, text));
    }
    const slot = innerW / Math.max(1, bars.length);
    const barW = Math.max(1, slot * 0.72);
    bars.forEach((b, i) => {
      const height = b.value > 0 ? Math.max(2, (Math.min(b.value, top) / top) * innerH) : 0;  // a cent still shows
      const rect = svg("rect", { class: "bar", x: (left + i * slot + (slot - barW) / 2).toFixed(1),
        y: (PAD.top + innerH - height).toFixed(1), width: barW.toFixed(1), height: height.toFixed(1),
        "data-day": b.label, "data-value": b.value });
      rect.append(svg("title", {}, `${b.label}: ${fmtUsd(b.value)}`));
      s.append(rect);
    });
    if (drawn) {
      const ry = y(reference);
      s.append(svg("line", { class: "ref-line", x1: left, x2: width - PAD.right, y1: ry, y2: ry }));
      s.append(svg("text", { class: "axis-label ref-label", x: width - PAD.right, y: ry - 4, "text-anchor": "end" },
        `daily budget ${fmtUsd(reference)}`));
    } else if (reference > 0) {
      s.append(svg("text", { class: "axis-label ref-label", x: width - PAD.right, y: PAD.top - 4, "text-anchor": "end" },
        `daily budget ${fmtUsd(reference)}, above the scale`));
    }
    if (bars.length) {
      const labelY = HEIGHT - 6;
      const mid = Math.floor(bars.length / 2);
      s.append(svg("text", { class: "axis-label", x: left, y: labelY, "text-anchor": "start" }, bars[0].label.slice(5)));
      s.append(svg("text", { class: "axis-label", x: left + (mid + 0.5) * slot, y: labelY, "text-anchor": "middle" },
        bars[mid].label.slice(5)));
      s.append(svg("text", { class: "axis-label", x: width - PAD.right, y: labelY, "text-anchor": "end" }, "today"));
    }
    if (!total) {
      s.append(svg("text", { class: "no-data", x: left + innerW / 2, y: PAD.top + innerH / 2, "text-anchor": "middle" },
        `No spend in these ${bars.length} days`));
    }
    Object.assign(this.el.dataset, { bars: String(bars.length), max: String(max), total: String(total) });
    s.setAttribute("aria-label", `${this.title}. ${summary}`);
  }
}

// A card by a table of the Keys tab (#key-spend, #user-spend, #team-spend): one record's chart at
// a time, opened by its row's button. kind: "key", "user" or "team" (the report's filter).
export class SpendCard {
  constructor(box, api, { kind, onClose }) {
    Object.assign(this, { box, api, kind, onClose });
    this.key = null;  // the record charted
    this.seq = 0;
    this.title = h("h2", { id: `${kind}-spend-title` });
    this.summary = h("p", { id: `${kind}-spend-summary`, class: "muted small" });
    this.error = h("p", { class: "form-error", role: "alert", hidden: true });
    this.chart = new BarChart({ key: `${kind}-spend`, title: "Spend per UTC day, last 30 days" });
    box.append(h("div", { class: "detail-head" }, this.title,
      h("button", { type: "button", id: `${kind}-spend-close`, class: "text-button", onclick: () => this.close() },
        "Close", h("span", { class: "sr-only" }, " the spend chart"))),
    h("p", { class: "muted small" }, "Per UTC day over the last 30 days; a day without requests is zero. Escape closes it."),
    this.summary, this.error, this.chart.el);
    box.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        this.close();
      }
    });
  }

  get id() {
    return this.key ? this.key.id : undefined;
  }

  async open(key) {
    this.key = key;
    this.title.textContent = `Daily spend of the ${this.kind} “${key.name || key.id}”`;
    this.box.hidden = false;
    this.box.scrollIntoView({ block: "nearest" });
    this.box.focus();
    await this.load();
  }

  // again, for the same record (the tab's Refresh); it may have a new budget
  async refresh(records) {
    if (!this.key) return;
    const fresh = records.find((k) => k.id === this.key.id);
    if (fresh) this.key = fresh;
    await this.load();
  }

  async load() {
    const key = this.key;
    const seq = ++this.seq;
    const days = lastDays();
    let report;
    try {
      report = await this.api.admin("spend", { group_by: "day", [`${this.kind}_id`]: key.id, since: days[0], limit: 1000 });
    } catch (err) {
      if (seq !== this.seq) return;
      const why = err.code === "spend_unavailable" ? "spend reports need a SQL database (not memory://)" : err.message;
      this.error.textContent = `Could not load the spend: ${why}`;
      this.error.hidden = false;
      return;
    }
    if (seq !== this.seq || this.key !== key) return;  // another record was opened meanwhile
    this.error.hidden = true;
    const byDay = new Map((report.data || []).map((r) => [r.group, r.cost_usd]));
    const bars = days.map((d) => ({ label: d, value: byDay.get(d) ?? 0 }));
    const total = bars.reduce((sum, b) => sum + b.value, 0);
    const today = bars[bars.length - 1].value;
    const daily = key.budget_usd != null && key.budget_period === "day" ? key.budget_usd : null;
    const budget = key.budget_usd != null ? ` · budget ${budgetText(key)}` : "";
    const summary = `Total ${fmtUsd(total)} over ${bars.length} days · today ${fmtUsd(today)}${budget}`;
    this.summary.textContent = summary;
    this.chart.update(bars, daily, summary);
  }

  close() {
    const id = this.id;
    if (id === undefined) return;
    this.key = null;
    this.seq++;
    this.box.hidden = true;
    this.onClose(id);
  }
}

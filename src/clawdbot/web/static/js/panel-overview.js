// Overview: a card per service (a dead one or an open breaker stands out) and the charts of all
// traffic or of one model or service, refreshed while the tab is open and the page visible:
// `panel.overview` events over the chat socket, or GET /panel/api/overview every 2 s when the
// socket is not there (panel-live.js); a range longer than the last hour comes from the request
// log every 30 s (panel-overview-range.js) while the cards stay live.

import { h, clear } from "./dom.js";
import { LineChart } from "./panel-chart.js";
import { fmtMs, fmtInt, orDash } from "./panel-format.js";
import { showError } from "./panel-table.js";
import { OverviewFeed } from "./panel-live.js";
import { RANGE_S, RANGE_TEXT, RangeFeed, fillChoices, scopeKey, scopeParams } from "./panel-overview-range.js";

// connecting: the socket is opening (the overview is fetched meanwhile); live: pushed over the
// socket; polling: fetched every 2 s (the socket is tried again)
const MODE_TEXT = { connecting: "connecting…", live: "live", polling: "polling" };

const CHARTS = [
  { key: "requests", title: "Requests", unit: "req/s", series: [{ label: "req/s" }] },
  { key: "errors", title: "Error rate", unit: "%", series: [{ label: "errors" }] },
  { key: "latency", title: "Latency", unit: "ms", series: [{ label: "p50" }, { label: "p99" }] },
  { key: "ttft", title: "Time to first token (p50)", unit: "ms", series: [{ label: "p50" }] },
  { key: "tokens", title: "Output tokens", unit: "tok/s", series: [{ label: "tok/s" }] },
];

function serviceState(s) {
  if (!s.reachable) return "down";
  if (s.breaker === "open") return "open";
  if (s.breaker === "half_open") return "half_open";
  return "ok";
}

const PILL = {
  ok: ["up", "ok"], down: ["unreachable", "bad"], open: ["breaker open", "bad"], half_open: ["half-open", "warn"],
};

function ago(seconds, now) {
  if (typeof seconds !== "number") return "–";
  const d = Math.max(0, Math.round(now - seconds));
  return d < 60 ? `${d} s ago` : `${Math.round(d / 60)} min ago`;
}

function serviceCard(s, now) {
  const state = serviceState(s);
  const [pill, kind] = PILL[state];
  const breakerCls = s.breaker === "open" ? "bad" : s.breaker === "half_open" ? "warn" : null;
  return h("li", { class: "service-card", dataset: { service: s.name, state, breaker: s.breaker || "closed" } },
    h("div", { class: "service-head" },
      h("h3", null, s.name),
      h("span", { class: "service-type" }, orDash(s.type)),
      h("span", { class: `status-pill ${kind}` }, pill)),
    h("dl", { class: "kv" },
      h("dt", null, "Reachable"), h("dd", { class: s.reachable ? null : "bad" }, s.reachable ? "yes" : "no"),
      h("dt", null, "Breaker"), h("dd", { class: breakerCls }, orDash(s.breaker).replace("_", "-")),
      h("dt", null, "In flight"), h("dd", null, fmtInt(s.inflight)),
      h("dt", null, "Queued"), h("dd", { class: s.queued > 0 ? "warn" : null }, fmtInt(s.queued)),
      h("dt", null, "Probe"), h("dd", null, fmtMs(s.latency_ms)),
      h("dt", null, "Checked"), h("dd", null, ago(s.checked_at, now))),
    s.detail ? h("p", { class: "service-detail" }, s.detail) : null);
}

// The overview's series as the charts' values. Each `t` is the end of its bucket (the last: now,
// the bucket still filling), so a bucket spans from the `t` before it; rates divide by that span
// (at least 1 s: a bucket a moment old would otherwise show a spike).
export function chartValues(o) {
  const s = o.series || {};
  const t = s.t || [];
  const bs = o.bucket_s || 10;
  const span = (i) => Math.max(1, i > 0 ? t[i] - t[i - 1] : bs);
  const col = (name) => s[name] || [];
  const num = (v) => (typeof v === "number" ? v : null);
  const rate = (name) => t.map((_, i) => (num(col(name)[i]) === null ? null : col(name)[i] / span(i)));
  const requests = col("requests");
  return {
    t,
    requests: [rate("requests")],
    errors: [t.map((_, i) => (requests[i] ? (100 * (col("errors")[i] || 0)) / requests[i] : null))],
    latency: [t.map((_, i) => num(col("p50_ms")[i])), t.map((_, i) => num(col("p99_ms")[i]))],
    ttft: [t.map((_, i) => num(col("ttft_p50_ms")[i]))],
    tokens: [rate("output_tokens")],
  };
}

export class OverviewTab {
  constructor(panel, api) {
    Object.assign(this, { panel, api });
    this.cards = panel.querySelector("#service-cards");
    this.updated = panel.querySelector("#overview-updated");
    this.modeLine = panel.querySelector("#overview-mode");
    this.scopeSel = panel.querySelector("#overview-scope");
    this.rangeSel = panel.querySelector("#overview-range");
    this.chartsTitle = panel.querySelector("#charts-title");
    this.chartsCount = panel.querySelector("#charts-count");
    this.charts = CHARTS.map((c) => new LineChart(c));
    panel.querySelector("#charts").append(...this.charts.map((c) => c.el));
    const onError = (message) => showError(this.panel, message);
    this.feed = new OverviewFeed(api, {
      onData: (o) => this.render(o),
      onMode: (mode) => this.showMode(mode),
      onError,
    });
    this.ranges = new RangeFeed(api, { onData: (o) => this.renderCharts(o), onError });
    for (const sel of [this.scopeSel, this.rangeSel]) sel.addEventListener("change", () => this.choose());
  }

  show() {
    this.feed.start();
    this.ranges.set(this.range(), scopeParams(this.scopeSel.value), true);
  }

  hide() {
    this.feed.stop();
    this.ranges.stop();
  }

  range() {
    return this.rangeSel.value in RANGE_S ? this.rangeSel.value : "1h";
  }

  // another scope or range: the live feed watches the scope (its cards stay), the range feed
  // loads a longer range; the charts are empty until the first answer
  choose() {
    const range = this.range();
    const scope = scopeParams(this.scopeSel.value);
    const label = this.scopeSel.selectedOptions[0];
    const what = scope.model ? `model ${scope.model}` : scope.service ? `service ${scope.service}` : "";
    this.chartsTitle.textContent = what ? `${RANGE_TEXT[range]} · ${what}` : RANGE_TEXT[range];
    this.panel.dataset.scope = label ? this.scopeSel.value : "all";
    this.panel.dataset.range = range;
    for (const chart of this.charts) chart.setWindow(RANGE_S[range], RANGE_TEXT[range]);
    this.feed.setScope(scope);
    this.ranges.set(range, scope, true);
  }

  // the session ended: its socket goes with it
  reset() {
    this.feed.close();
  }

  showMode(mode) {
    this.modeLine.dataset.mode = mode;
    this.modeLine.textContent = MODE_TEXT[mode] || "";
  }

  render(o) {
    const now = typeof o.now === "number" ? o.now : Date.now() / 1000;
    clear(this.cards);
    const services = o.services || [];
    if (!services.length) this.cards.append(h("li", { class: "empty" }, "No services configured."));
    for (const s of services) this.cards.append(serviceCard(s, now));
    fillChoices(this.scopeSel, this.rangeSel, o);
    if (this.range() === "1h") this.renderCharts(o);
    this.updated.textContent = `Updated ${new Date(now * 1000).toLocaleTimeString()}`;
  }

  // the charts of one overview: the live feed's last hour, or a longer range's
  renderCharts(o) {
    if ((o.range || "1h") !== this.range()) return;
    const now = typeof o.now === "number" ? o.now : Date.now() / 1000;
    this.panel.dataset.shown = `${o.range || "1h"}|${scopeKey(o.scope)}`;
    const values = chartValues({ ...o, now });
    const requests = ((o.series || {}).requests || []).reduce((a, n) => a + (typeof n === "number" ? n : 0), 0);
    this.chartsCount.textContent = `${fmtInt(requests)} ${requests === 1 ? "request" : "requests"}`;
    this.chartsCount.dataset.requests = String(requests);
    // the headline is the last complete bucket's: the one still filling is drawn, not quoted
    const settled = Math.max(1, values.t.length - 1);
    for (const chart of this.charts) chart.update(values.t, values[chart.key], now, settled);
  }
}

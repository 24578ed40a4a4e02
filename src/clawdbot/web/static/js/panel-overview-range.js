// The Overview's choice of traffic (all, one model as asked, one service as answered) and range
// (the last hour from the process; 6 h, 24 h and 7 days from the request log when it is kept),
// and the feed of the longer ranges: GET /panel/api/overview?range=... now and every 30 s while
// the Overview is shown (the request log is counted by the store; the gateway keeps an answer
// 15 s, observability/history.py).

import { h, clear } from "./dom.js";

export const RANGE_S = { "1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600, "7d": 7 * 24 * 3600 };
export const RANGE_TEXT = { "1h": "Last hour", "6h": "Last 6 hours", "24h": "Last 24 hours", "7d": "Last 7 days" };
const REFRESH_MS = 30000;

// "all", "model:<name>", "service:<name>" <-> the query's {model} / {service}
export function scopeParams(value) {
  const [kind, ...rest] = String(value || "all").split(":");
  const name = rest.join(":");
  return (kind === "model" || kind === "service") && name ? { [kind]: name } : {};
}

function option(value, text, selected) {
  const o = h("option", { value }, text);
  o.selected = value === selected;
  return o;
}

// An overview's scope as the select names it: "all", "model:<name>", "service:<name>" (both:
// "model:<name>,service:<name>", which the API allows and the select does not offer)
export function scopeKey(scope) {
  const parts = [];
  if (scope && scope.model) parts.push(`model:${scope.model}`);
  if (scope && scope.service) parts.push(`service:${scope.service}`);
  return parts.length ? parts.join(",") : "all";
}

// The selects' options from an overview (the config's models and services, the ranges the
// gateway offers), keeping the choice while it is still there.
export function fillChoices(scopeSel, rangeSel, o) {
  const scope = scopeSel.value || "all";
  const models = (o.models || []).map((m) => m.name);
  const services = (o.services || []).map((s) => s.name);
  const scopeKey = JSON.stringify([models, services]);
  if (scopeSel.dataset.options !== scopeKey) {
    scopeSel.dataset.options = scopeKey;
    clear(scopeSel);
    scopeSel.append(option("all", "All traffic", scope),
      h("optgroup", { label: "Model" }, models.map((m) => option(`model:${m}`, m, scope))),
      h("optgroup", { label: "Service" }, services.map((s) => option(`service:${s}`, s, scope))));
    if (scopeSel.value !== scope) scopeSel.value = "all";
  }
  const ranges = (o.ranges || ["1h"]).filter((r) => r in RANGE_S);
  const rangeKey = ranges.join(",");
  if (rangeSel.dataset.options !== rangeKey) {
    const range = rangeSel.value || "1h";
    rangeSel.dataset.options = rangeKey;
    clear(rangeSel);
    rangeSel.append(...ranges.map((r) => option(r, RANGE_TEXT[r], range)));
    if (rangeSel.value !== range) rangeSel.value = "1h";
  }
}

export class RangeFeed {
  // onData(overview) with the range's series; onError(message | "")
  constructor(api, { onData, onError }) {
    Object.assign(this, { api, onData, onError });
    this.range = "1h";
    this.scope = {};
    this.timer = null;
    this.active = false;
    this.asked = 0;  // answers to an earlier choice are dropped
  }

  set(range, scope, active) {
    this.range = range;
    this.scope = scope;
    this.active = active && range !== "1h";
    clearTimeout(this.timer);
    this.timer = null;
    if (this.active) this.load();
  }

  stop() {
    this.set(this.range, this.scope, false);
  }

  async load() {
    const asked = ++this.asked;
    try {
      const o = await this.api.get("/panel/api/overview", { range: this.range, ...this.scope });
      if (asked === this.asked && this.active) {
        this.onError("");
        this.onData(o);
      }
    } catch (err) {
      if (asked === this.asked) this.onError(`Could not load the ${RANGE_TEXT[this.range].toLowerCase()}: ${err.message}`);
    } finally {
      if (asked === this.asked && this.active) this.timer = setTimeout(() => this.load(), REFRESH_MS);
    }
  }
}

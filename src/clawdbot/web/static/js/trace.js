// The collapsible trace line under an assistant message:
//   local · gemma-3-270m · 41 ms TTFT · 180 ms · 12→2 tok · 14.1 tok/s
// Known keys get labels and units; any other key (retries, fallbacks, cache, guards, ...) is shown
// generically, so the trace can grow on the server without a page change.

import { h, icon, copyText, flashCopied } from "./dom.js";
import { fmtMs, fmtNum } from "./format.js";

const KNOWN = ["requestId", "service", "upstreamModel", "ttftMs", "totalMs", "promptTokens",
  "completionTokens", "tokensPerSecond", "attempts", "plugins", "costFree"];

export function traceSummary(trace, usage) {
  const t = { ...normalize(usage), ...trace };
  const parts = [];
  if (t.service) parts.push(String(t.service));
  if (t.upstreamModel) parts.push(String(t.upstreamModel));
  if (isNum(t.ttftMs)) parts.push(`${fmtMs(t.ttftMs)} TTFT`);
  if (isNum(t.totalMs)) parts.push(fmtMs(t.totalMs));
  if (isNum(t.promptTokens) || isNum(t.completionTokens)) {
    parts.push(`${fmtNum(t.promptTokens ?? 0)}→${fmtNum(t.completionTokens ?? 0)} tok`);
  }
  if (isNum(t.tokensPerSecond)) parts.push(`${t.tokensPerSecond.toFixed(1)} tok/s`);
  const attempts = Array.isArray(t.attempts) ? t.attempts.length : 0;
  if (attempts > 1) parts.push(`${attempts} attempts`);
  if (t.cache && typeof t.cache === "object" ? t.cache.hit : t.cache === "hit" || t.cache === true) {
    parts.push("cached");
  }
  // what each plugin did, as the server said it: "pii: masked 3 items", "cache: hit"
  if (Array.isArray(t.plugins)) for (const note of t.plugins) parts.push(String(note));
  if (t.costFree === true) parts.push("no charge");
  return parts.join(" · ") || "trace";
}

export function renderTrace(trace, usage) {
  const t = { ...normalize(usage), ...(trace || {}) };
  const details = h("details", { class: "trace" });
  details.appendChild(h("summary", { class: "trace-summary" }, traceSummary(trace || {}, usage)));
  const list = h("dl", { class: "trace-fields" });
  const row = (label, value) => list.append(h("dt", null, label), h("dd", null, value));

  if (t.requestId !== undefined) {
    const copy = h("button", {
      type: "button", class: "icon-button trace-copy", "aria-label": "Copy request id", title: "Copy request id",
      onclick: async () => flashCopied(copy, await copyText(String(t.requestId))),
    }, icon("copy"));
    row("Request ID", [h("code", { class: "trace-request-id" }, String(t.requestId)), copy]);
  }
  if (t.service != null) row("Service", String(t.service));
  if (t.upstreamModel != null) row("Upstream model", String(t.upstreamModel));
  if (t.ttftMs !== undefined) row("Time to first token", fmtMs(t.ttftMs));
  if (t.totalMs !== undefined) row("Total", fmtMs(t.totalMs));
  if (t.promptTokens !== undefined || t.completionTokens !== undefined) {
    row("Tokens in / out", `${fmtNum(t.promptTokens ?? 0)} / ${fmtNum(t.completionTokens ?? 0)}`);
  }
  if (t.tokensPerSecond !== undefined) row("Tokens/s", fmtNum(t.tokensPerSecond));
  if (Array.isArray(t.attempts)) row("Attempts", renderAttempts(t.attempts));
  if (Array.isArray(t.plugins)) row("Plugins", t.plugins.map(String).join("; ") || "none");
  if (t.costFree === true) row("Charge", "none (answered without a model)");
  for (const [key, value] of Object.entries(t)) {
    if (KNOWN.includes(key) || value === undefined) continue;
    row(labelFor(key), renderValue(value));
  }
  details.appendChild(list);
  return details;
}

function normalize(usage) {
  if (!usage || typeof usage !== "object") return {};
  const out = {};
  if (isNum(usage.promptTokens)) out.promptTokens = usage.promptTokens;
  if (isNum(usage.completionTokens)) out.completionTokens = usage.completionTokens;
  return out;
}

function renderAttempts(attempts) {
  if (!attempts.length) return "none";
  const ol = h("ol", { class: "trace-attempts" });
  for (const attempt of attempts) {
    if (!attempt || typeof attempt !== "object") {
      ol.appendChild(h("li", null, String(attempt)));
      continue;
    }
    const { service, ok, ...rest } = attempt;
    const extras = Object.entries(rest).filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
    ol.appendChild(h("li", { class: ok === false ? "attempt-failed" : "attempt-ok" },
      h("span", { class: "attempt-mark", "aria-label": ok === false ? "failed" : "ok" }, ok === false ? "✗" : "✓"),
      ` ${service ?? "?"}`,
      extras.length ? h("span", { class: "muted" }, ` — ${extras.join(", ")}`) : null));
  }
  return ol;
}

// Unknown values: scalars as text, flat objects as "key: value" chips, anything deeper as JSON.
function renderValue(value, depth = 0) {
  if (value === null) return "–";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "number") return fmtNum(value, 2);
  if (typeof value !== "object") return String(value);
  if (Array.isArray(value)) {
    if (!value.length) return "none";
    if (value.every((v) => v === null || typeof v !== "object")) return value.map((v) => renderValue(v)).join(", ");
  } else if (depth < 1) {
    const entries = Object.entries(value);
    if (!entries.length) return "–";
    return h("span", { class: "trace-kv" }, entries.map(([k, v]) =>
      h("span", { class: "trace-chip" }, `${labelFor(k).toLowerCase()}: `, renderValue(v, depth + 1))));
  }
  return h("pre", { class: "trace-json" }, JSON.stringify(value, null, 2));
}

// "fallbackModel" -> "Fallback model", "cache_hit" -> "Cache hit"
export function labelFor(key) {
  const words = String(key).replace(/[_-]+/g, " ").replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase().trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function isNum(v) {
  return typeof v === "number" && Number.isFinite(v);
}

// One request of the log (GET /admin/api/requests/{id}): timings, tokens, cost, every upstream
// attempt, what the plugins did, and the bodies when the model or key keeps them; for admins, Replay
// and Open in chat when the request body was kept (panel-replay.js).

import { h, append, clear, icon } from "./dom.js";
import { fmtInt, fmtMs, fmtTime, fmtUsd, orDash } from "./panel-format.js";
import { RequestActions, canAct } from "./panel-replay.js";

function row(label, value) {
  return value === null || value === undefined || value === "" ? [] : [h("dt", null, label), h("dd", null, value)];
}

function attemptItem(a) {
  const ok = Boolean(a.ok);
  const where = [a.service, a.model].filter(Boolean).join("/") || "?";
  const bits = [a.status != null ? `HTTP ${a.status}` : null, a.ms != null ? fmtMs(a.ms) : null,
    a.fallback ? "fallback" : null, a.error || null].filter(Boolean);
  return h("li", { class: ok ? "attempt-ok" : "attempt-failed" },
    h("span", { class: "attempt-mark", "aria-hidden": "true" }, ok ? "✓ " : "✗ "),
    h("span", { class: "sr-only" }, ok ? "succeeded: " : "failed: "),
    h("span", { class: "mono" }, where), bits.length ? ` · ${bits.join(" · ")}` : "");
}

function costText(r) {
  if (r.cached) return "no charge (answered from the cache)";
  if (r.cost_usd === null || r.cost_usd === undefined) return "not metered";
  return fmtUsd(r.cost_usd);
}

function tokensText(r) {
  if (r.prompt_tokens == null && r.completion_tokens == null) return null;
  return `${fmtInt(r.prompt_tokens)} in / ${fmtInt(r.completion_tokens)} out${r.tokens_estimated ? " (estimated)" : ""}`;
}

function pre(value) {
  return h("pre", { class: "json" }, typeof value === "string" ? value : JSON.stringify(value, null, 2));
}

export class RequestDetail {
  constructor(el, api, { onClose }) {
    Object.assign(this, { el, api, onClose });
    this.seq = 0;
    el.addEventListener("keydown", (e) => {
      if (e.key === "Escape") this.close();
    });
  }

  async load(id) {
    const seq = ++this.seq;
    this.el.hidden = false;
    this.frame(id, h("p", { class: "muted" }, "Loading…"));
    try {
      const r = await this.api.admin(`requests/${encodeURIComponent(id)}`);
      if (seq === this.seq) this.frame(id, this.body(r));
    } catch (err) {
      if (seq === this.seq) this.frame(id, h("p", { class: "form-error" }, `Could not load the request: ${err.message}`));
    }
    if (seq === this.seq) this.el.focus();
  }

  frame(id, content) {
    append(clear(this.el), [
      h("div", { class: "detail-head" },
        h("h2", { id: "request-detail-title" }, "Request ", h("span", { class: "mono" }, id)),
        h("button", { type: "button", class: "icon-button detail-close", "aria-label": "Close the request detail",
          onclick: () => this.close() }, icon("close"))),
      content]);
  }

  body(r) {
    const upstream = r.upstream_model && r.upstream_model !== r.model ? ` → ${r.upstream_model}` : "";
    const out = [h("dl", { class: "kv" },
      row("Time", fmtTime(r.at)),
      row("Status", String(r.status)),
      row("Endpoint", `${r.method || "POST"} ${r.path || ""}${r.stream ? " (stream)" : ""}`),
      row("Model", `${orDash(r.model)}${upstream}`),
      row("Answered as", r.response_model),
      row("Service", r.service),
      row("Key", r.key_id),
      row("Principal", r.principal),
      row("User", r.user_id),
      row("Team", r.team_id),
      row("Latency", fmtMs(r.latency_ms)),
      row("First token", r.ttft_ms != null ? fmtMs(r.ttft_ms) : null),
      row("Tokens", tokensText(r)),
      row("Cost", costText(r)),
      row("Error", r.error ? `${r.error_code ? `${r.error_code}: ` : ""}${r.error}` : null),
      row("Replay of", r.replay_of))];
    if (canAct(r)) out.push(new RequestActions(r, this.api).el);  // admins, with the body logged
    const attempts = Array.isArray(r.attempts) ? r.attempts : [];
    out.push(h("h3", null, "Attempts"),
      attempts.length ? h("ol", { class: "attempts" }, attempts.map(attemptItem)) : h("p", { class: "muted small" }, "None recorded."));
    const plugins = Array.isArray(r.plugins) ? r.plugins : [];
    out.push(h("h3", null, "Plugins"),
      plugins.length ? h("ul", { class: "plugin-notes" }, plugins.map((p) => h("li", null, String(p))))
        : h("p", { class: "muted small" }, "No plugin acted on this request."));
    if (r.has_bodies) {
      if (r.answer) out.push(h("h3", null, "Answer"), pre(r.answer));
      if (r.request_body != null) out.push(h("h3", null, "Request body (as sent upstream)"), pre(r.request_body));
      if (r.body_truncated) out.push(h("p", { class: "muted small" }, "Bodies were cut at request_log.max_body_bytes."));
    }
    return out;
  }

  close() {
    this.seq++;
    this.el.hidden = true;
    clear(this.el);
    this.onClose();
  }
}

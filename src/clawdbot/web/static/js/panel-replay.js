// Replay and Open in chat for one logged request (docs/panel.md): two buttons in a request's
// detail, for admins, when its request body was logged. Replay sends it again through the gateway
// (POST /panel/api/requests/{id}/replay, as the signed-in admin) and shows the new answer beside the
// original; Open in chat copies its conversation into a new chat session of the admin's
// (POST /panel/api/requests/{id}/chat) and goes to the chat page with it open.

import { h, append, clear } from "./dom.js";
import { fmtInt, fmtMs, fmtUsd, orDash } from "./panel-format.js";

// A chat request with its body in the log, and an admin to act on it (the server checks both again).
export function canAct(r) {
  const body = r.request_body;
  return document.body.dataset.role === "admin" && body !== null && typeof body === "object"
    && !Array.isArray(body) && Array.isArray(body.messages);
}

function tokens(x) {
  if (x.prompt_tokens == null && x.completion_tokens == null) return "–";
  return `${fmtInt(x.prompt_tokens)} in / ${fmtInt(x.completion_tokens)} out${x.tokens_estimated ? " (estimated)" : ""}`;
}

function cost(x) {
  if (x.cached) return "no charge (cache)";
  return x.cost_usd == null ? "not metered" : fmtUsd(x.cost_usd);
}

function where(x) {
  const up = x.upstream_model ? `/${x.upstream_model}` : "";
  return x.service ? `${x.service}${up}` : "–";
}

// One side of the comparison: the same rows for the original record and the replay's answer.
function side(title, x, extra) {
  const statusCls = `status-${String(x.status)[0]}`;
  const answer = x.answer != null && x.answer !== ""
    ? h("pre", { class: "json replay-answer" }, x.answer)
    : h("p", { class: "muted small" }, x.error ? "No answer." : "The answer was not kept.");
  return h("section", { class: "replay-side", "aria-label": title },
    h("h4", null, title),
    h("dl", { class: "kv" },
      h("dt", null, "Status"), h("dd", { class: statusCls }, String(x.status ?? "–")),
      h("dt", null, "Model"), h("dd", null, orDash(x.model)),
      h("dt", null, "Service"), h("dd", { class: "mono" }, where(x)),
      h("dt", null, "Latency"), h("dd", null, fmtMs(x.latency_ms)),
      h("dt", null, "Tokens"), h("dd", null, tokens(x)),
      h("dt", null, "Cost"), h("dd", null, cost(x)),
      extra),
    x.error ? h("p", { class: "form-error" }, `${x.error.code ? `${x.error.code}: ` : ""}${x.error.message || ""}`) : null,
    answer);
}

function errorOf(r) {
  return r.error ? { code: r.error_code, message: r.error } : null;
}

export class RequestActions {
  // r: the record with its bodies (GET /admin/api/requests/{id}); api: panel-api.js
  constructor(r, api, { navigate = (url) => window.location.assign(url) } = {}) {
    Object.assign(this, { r, api, navigate });
    this.busy = false;
    this.replayButton = h("button", { type: "button", class: "text-button replay-button",
      onclick: () => this.replay() }, "Replay");
    this.chatButton = h("button", { type: "button", class: "text-button open-chat-button",
      onclick: () => this.openInChat() }, "Open in chat");
    this.status = h("p", { class: "replay-status muted small", role: "status" });
    this.result = h("div", { class: "replay-result" });
    this.el = h("div", { class: "request-actions" },
      h("div", { class: "form-actions" }, this.replayButton, this.chatButton),
      h("p", { class: "muted small" }, "Replay sends the logged request again as you (charged to your key, not "
        + "the original one). Open in chat copies the conversation into a new chat of yours."),
      this.status, this.result);
  }

  setBusy(busy, text) {
    this.busy = busy;
    this.replayButton.disabled = busy;
    this.chatButton.disabled = busy;
    this.status.className = "replay-status muted small";
    this.status.textContent = text;
  }

  fail(what, err) {
    this.setBusy(false, "");
    this.status.className = "replay-status form-error";
    this.status.textContent = `${what}: ${err.message}`;
  }

  async replay() {
    if (this.busy) return;
    const id = this.r.id;
    this.setBusy(true, "Replaying…");
    clear(this.result);
    let out;
    try {
      out = await this.api.request("POST", `/panel/api/requests/${encodeURIComponent(id)}/replay`, {});
    } catch (err) {
      this.fail("Could not replay", err);
      return;
    }
    const said = [`Replayed as request ${out.request_id}: HTTP ${out.status} in ${fmtMs(out.latency_ms)}.`];
    if (out.streamed) said.push("The original was streamed; the replay was not.");
    if (out.audited === false) said.push("Its audit entry could not be written.");
    this.setBusy(false, said.join(" "));
    this.render(out);
    this.result.scrollIntoView({ block: "nearest" });
  }

  render(out) {
    const r = this.r;
    const original = { ...r, error: errorOf(r) };
    append(clear(this.result), [
      h("h3", { id: `replay-title-${out.request_id}` }, "Replay"),
      h("div", { class: "replay-compare", "aria-labelledby": `replay-title-${out.request_id}`, role: "group" },
        side("Original", original, [h("dt", null, "Key"), h("dd", { class: "mono" }, orDash(r.key_id || r.principal))]),
        side("Replay", out, [h("dt", null, "Run as"), h("dd", { class: "mono" }, orDash(out.key_id || out.principal || "local admin")),
          h("dt", null, "Request"), h("dd", { class: "mono replay-id" }, out.request_id)])),
    ]);
  }

  async openInChat() {
    if (this.busy) return;
    this.setBusy(true, "Opening in chat…");
    let out;
    try {
      out = await this.api.request("POST", `/panel/api/requests/${encodeURIComponent(this.r.id)}/chat`, {});
    } catch (err) {
      this.fail("Could not open it in chat", err);
      return;
    }
    const left = out.left_out ? ` (${out.left_out} message${out.left_out === 1 ? "" : "s"} left out: system, tool or no text)` : "";
    this.setBusy(false, `Chat “${out.title}” made with ${out.messages} messages${left}; opening it…`);
    this.navigate(out.url);
  }
}

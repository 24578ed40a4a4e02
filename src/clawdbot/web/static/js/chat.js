// The message list: user messages (plain text), assistant messages (streamed Markdown with
// copy/regenerate and a trace), and client-only system cards (never sent to the model).

import { h, icon, clear, copyText, flashCopied } from "./dom.js";
import { MarkdownView } from "./markdown.js";
import { renderTrace } from "./trace.js";
import { fullTime } from "./format.js";

export class ChatView {
  constructor(root, { onRegenerate, emptyState }) {
    this.root = root; // #messages, the scroll container
    this.onRegenerate = onRegenerate;
    this.emptyState = emptyState;
    this.stick = true;
    root.addEventListener("scroll", () => {
      this.stick = root.scrollHeight - root.scrollTop - root.clientHeight < 80;
      this.onStickChange?.(this.stick);
    }, { passive: true });
    root.addEventListener("click", (e) => this.onClick(e));
  }

  onClick(e) {
    const button = e.target.closest("button");
    if (!button || !this.root.contains(button)) return;
    if (button.classList.contains("code-copy")) {
      const code = button.closest(".code-block")?.querySelector("code");
      copyText(code ? code.textContent : "").then((ok) => {
        button.textContent = ok ? "Copied" : "Copy failed";
        setTimeout(() => { button.textContent = "Copy"; }, 1500);
      });
    }
  }

  clear() {
    clear(this.root);
    this.stick = true;
  }

  showEmpty() {
    this.clear();
    this.root.appendChild(this.emptyState());
  }

  dropEmpty() {
    this.root.querySelector(".empty-state")?.remove();
  }

  append(el, { before } = {}) {
    this.dropEmpty();
    if (before && before.parentNode === this.root) this.root.insertBefore(el, before);
    else this.root.appendChild(el);
    this.refreshActions();
    this.scroll();
    return el;
  }

  scroll(force = false) {
    if (force) this.stick = true;
    if (this.stick) this.root.scrollTop = this.root.scrollHeight;
  }

  renderHistory(messages, { hasMore = false, loadOlder = null } = {}) {
    this.clear();
    if (!messages.length) return this.showEmpty();
    this.root.appendChild(this.fragment(messages));
    if (hasMore && loadOlder) this.offerOlder(loadOlder);
    this.refreshActions();
    this.scroll(true);
  }

  fragment(messages) {
    const frag = document.createDocumentFragment();
    for (const m of messages) {
      if (m.role === "user") frag.appendChild(userMessage(m.content, m));
      else if (m.role === "assistant") frag.appendChild(new AssistantMessage(this, m).el);
      else frag.appendChild(card(`${m.role || "system"} message`, h("div", { class: "plain" }, m.content || "")));
    }
    return frag;
  }

  // A long chat arrives a page at a time (newest first): this button above the first message
  // fetches the page before it and keeps the view where it was.
  offerOlder(loadOlder) {
    const button = h("button", { type: "button", class: "older-messages" }, "Show earlier messages");
    button.addEventListener("click", async () => {
      button.disabled = true;
      const page = await loadOlder().catch(() => null);
      if (!page) { button.disabled = false; return; }
      const height = this.root.scrollHeight;
      button.remove();
      this.root.insertBefore(this.fragment(page.messages), this.root.firstChild);
      if (page.hasMore) this.offerOlder(loadOlder);
      this.root.scrollTop += this.root.scrollHeight - height;
    });
    this.root.insertBefore(button, this.root.firstChild);
  }

  addUser(text, meta = {}, opts) {
    return this.append(userMessage(text, meta), opts);
  }

  addAssistant(meta) {
    const msg = new AssistantMessage(this, { status: "streaming", ...meta });
    this.append(msg.el);
    return msg;
  }

  addCard(title, content, { kind = "info", wide = false } = {}) {
    const el = card(title, content, kind);
    if (wide) el.classList.add("wide");
    return this.append(el);
  }

  lastAssistant() {
    const all = this.root.querySelectorAll(".message.assistant");
    return all[all.length - 1] || null;
  }

  // Only the last assistant message, once it is done, offers Regenerate.
  refreshActions() {
    for (const b of this.root.querySelectorAll(".regenerate")) b.remove();
    const last = this.lastAssistant();
    if (!last || last.dataset.status === "streaming") return;
    const actions = last.querySelector(".message-actions");
    actions.appendChild(h("button", {
      type: "button", class: "icon-button regenerate", "aria-label": "Regenerate response", title: "Regenerate",
      onclick: () => this.onRegenerate(last),
    }, icon("refresh"), h("span", { class: "button-text" }, "Regenerate")));
  }
}

function copyButton(getText) {
  const button = h("button", {
    type: "button", class: "icon-button copy", "aria-label": "Copy message", title: "Copy",
    onclick: async () => flashCopied(button, await copyText(getText())),
  }, icon("copy"));
  return button;
}

function userMessage(text, meta) {
  const el = h("article", {
    class: "message user", "data-status": meta.status || "complete", "aria-label": "Your message",
    dataset: meta.id ? { messageId: meta.id } : undefined,
  },
  h("div", { class: "message-body plain" }, text),
  h("div", { class: "message-actions" }, copyButton(() => text),
    meta.createdAt ? h("time", { class: "muted", datetime: new Date(meta.createdAt).toISOString(), title: fullTime(meta.createdAt) },
      new Date(meta.createdAt).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })) : null));
  return el;
}

function card(title, content, kind = "info") {
  return h("section", { class: `card system-card ${kind}`, role: kind === "error" ? "alert" : "status", "aria-label": title },
    h("header", { class: "card-head" }, kind === "error" ? icon("alert") : null, h("h3", null, title),
      h("button", {
        type: "button", class: "icon-button card-close", "aria-label": "Dismiss", title: "Dismiss",
        onclick: (e) => e.currentTarget.closest(".system-card").remove(),
      }, icon("close"))),
    h("div", { class: "card-body" }, content));
}

export class AssistantMessage {
  constructor(view, meta) {
    this.view = view;
    this.text = meta.content || "";
    this.reasoning = "";
    this.frame = 0;
    this.body = h("div", { class: "message-body markdown" });
    this.markdown = new MarkdownView(this.body);
    this.errorBox = h("div", { class: "message-error", role: "alert", hidden: true });
    this.actions = h("div", { class: "message-actions" }, copyButton(() => this.text));
    this.modelLabel = h("span", { class: "message-model" }, meta.model || "");
    this.el = h("article", { class: "message assistant", "data-status": meta.status || "complete", "aria-label": "Assistant message" },
      h("div", { class: "message-meta" }, h("span", { class: "message-role" }, "Assistant"), this.modelLabel),
      this.body,
      h("div", { class: "typing", "aria-hidden": "true" }, h("span"), h("span"), h("span")),
      this.errorBox,
      this.actions);
    this.el.controller = this;
    if (meta.id) this.el.dataset.messageId = meta.id;
    if (meta.runId) this.el.dataset.runId = meta.runId;
    if (this.text) this.markdown.update(this.text);
    // A stored message keeps no error object; the trace may carry one.
    if (meta.status === "error") this.showError(meta.error || meta.trace?.error || { message: "The reply failed." });
    if (meta.status === "aborted") this.markStopped();
    if (meta.trace || meta.usage) this.setTrace(meta.trace, meta.usage);
  }

  get status() {
    return this.el.dataset.status;
  }

  appendDelta(delta) {
    this.text += delta;
    this.schedule();
  }

  appendReasoning(delta) {
    this.reasoning += delta;
    if (!this.reasoningBox) {
      this.reasoningText = h("div", { class: "reasoning-text plain" });
      this.reasoningBox = h("details", { class: "reasoning" }, h("summary", null, "Reasoning"), this.reasoningText);
      this.body.before(this.reasoningBox);
    }
    this.schedule();
  }

  // The agent loop's steps (docs/websocket.md, "Tools"): each call with its arguments, then its
  // outcome, in a list above the answer. Text only: the names and values come from the model.
  addToolEvent(p) {
    if (!this.toolList) {
      this.toolList = h("ol");
      this.toolBox = h("details", { class: "tool-steps", open: true }, h("summary", null, "Tools"), this.toolList);
      (this.reasoningBox || this.body).before(this.toolBox);
    }
    if (p.state === "tool_call") {
      for (const call of p.calls || []) {
        const status = h("span", { class: "tool-status" }, " running…");
        const item = h("li", { class: "tool-call" }, h("code", null, `${call.name}(${call.arguments || ""})`), status);
        item.dataset.callId = call.id || "";
        item.status = status;
        this.toolList.append(item);
      }
    } else {
      const item = [...this.toolList.children].find((li) => li.dataset.callId === (p.id || ""));
      if (item) {
        item.status.dataset.status = p.status || "";
        item.status.textContent = ` ${p.status || "done"}${typeof p.ms === "number" ? ` · ${Math.round(p.ms)} ms` : ""}`;
      }
    }
    this.view.scroll();
  }

  // Re-render at most once per animation frame, however many deltas arrive.
  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.el.classList.toggle("has-text", this.text.length > 0);
    if (this.text) this.markdown.update(this.text);
    if (this.reasoningText && this.reasoningText.textContent.length !== this.reasoning.length) {
      this.reasoningText.textContent = this.reasoning;
    }
    this.view.scroll();
  }

  // state: "final" | "aborted" | "error"; payload is the chat event's payload.
  finish(state, payload) {
    const message = payload.message || {};
    if (typeof message.content === "string" && message.content !== this.text) {
      this.text = message.content;
      this.markdown.reset(this.text);
    }
    this.flush();
    if (message.id) this.el.dataset.messageId = message.id;
    if (message.model) this.modelLabel.textContent = message.model;
    const status = state === "final" ? message.status || "complete" : state;
    this.el.dataset.status = status;
    this.el.classList.toggle("has-text", this.text.length > 0);
    if (status === "aborted") this.markStopped();
    if (state === "error") this.showError(payload.error || {});
    if (payload.trace || payload.usage) this.setTrace(payload.trace, payload.usage);
    this.view.refreshActions();
    this.view.scroll();
  }

  // The run's events were lost (connection reset); leave what arrived, marked as such.
  interrupt() {
    this.flush();
    this.el.dataset.status = "interrupted";
    this.showError({ message: "Connection was reset while this reply was streaming. It will appear here once stored." });
    this.view.refreshActions();
  }

  markStopped() {
    if (!this.el.querySelector(".stopped-badge")) {
      this.actions.prepend(h("span", { class: "stopped-badge" }, "Stopped"));
    }
  }

  showError(error) {
    clear(this.errorBox);
    this.errorBox.hidden = false;
    this.errorBox.append(icon("alert"),
      h("div", null,
        h("strong", null, error.code ? `Error: ${error.code}` : "Error"),
        h("div", null, error.message || "The reply could not be completed.")));
  }

  setTrace(trace, usage) {
    this.el.querySelector(".trace")?.remove();
    this.el.appendChild(renderTrace(trace || {}, usage));
  }
}

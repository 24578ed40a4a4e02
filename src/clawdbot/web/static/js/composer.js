// The input area: a growing textarea (Enter sends, Shift+Enter breaks the line), Send/Stop,
// slash-command suggestions and the inline notice (rate limits, busy, send errors).

import { h, clear, icon } from "./dom.js";
import { suggestions } from "./commands.js";

const MAX_HEIGHT_VH = 0.4;

export class Composer {
  constructor({ form, input, send, stop, notice, hints }, { onSubmit, onStop }) {
    Object.assign(this, { form, input, send, stop, notice, hints, onSubmit, onStop });
    this.streaming = false;
    this.sending = false;
    this.blockedUntil = 0;
    this.noticeTimer = null;
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    input.addEventListener("keydown", (e) => this.onKey(e));
    input.addEventListener("input", () => this.refresh());
    stop.addEventListener("click", () => this.onStop());
    this.refresh();
  }

  onKey(e) {
    const hint = this.hints.querySelector(".hint.active");
    if (e.key === "Tab" && hint && !e.shiftKey) {
      e.preventDefault();
      this.complete(hint.dataset.command);
      return;
    }
    if (e.key === "Escape" && !this.hints.hidden) {
      this.hideHints();
      return;
    }
    // isComposing: Enter that confirms an IME candidate must not send.
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      this.submit();
    }
  }

  submit() {
    const text = this.input.value;
    if (!text.trim() || this.sending) return;
    if (Date.now() < this.blockedUntil) {
      this.flashNotice();
      return;
    }
    this.hideHints();
    this.onSubmit(text);
  }

  complete(name) {
    this.input.value = `/${name}${name === "model" ? " " : ""}`;
    this.input.focus();
    this.refresh();
  }

  clear() {
    this.input.value = "";
    this.refresh();
  }

  setText(text) {
    this.input.value = text;
    this.refresh();
  }

  focus() {
    this.input.focus({ preventScroll: true });
  }

  setSending(sending) {
    this.sending = sending;
    this.refresh();
  }

  setStreaming(streaming) {
    this.streaming = streaming;
    this.stop.hidden = !streaming;
    this.send.hidden = streaming;
    this.refresh();
  }

  refresh() {
    this.autosize();
    const empty = !this.input.value.trim();
    this.send.disabled = empty || this.sending || this.streaming;
    this.form.classList.toggle("sending", this.sending);
    this.renderHints();
  }

  autosize() {
    const input = this.input;
    input.style.height = "auto";
    const max = Math.max(120, window.innerHeight * MAX_HEIGHT_VH);
    input.style.height = `${Math.min(input.scrollHeight + 2, max)}px`;
    input.style.overflowY = input.scrollHeight + 2 > max ? "auto" : "hidden";
  }

  renderHints() {
    const matches = suggestions(this.input.value);
    if (!matches.length || matches.some((c) => `/${c.name}` === this.input.value && c.name !== "model")) {
      this.hideHints();
      return;
    }
    clear(this.hints);
    matches.forEach((c, i) => {
      this.hints.appendChild(h("li", {
        class: `hint${i === 0 ? " active" : ""}`, role: "option", "aria-selected": i === 0 ? "true" : "false",
        dataset: { command: c.name },
        onmousedown: (e) => { e.preventDefault(); this.complete(c.name); },
      }, h("code", null, c.usage), h("span", { class: "muted" }, c.description)));
    });
    this.hints.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
  }

  hideHints() {
    this.hints.hidden = true;
    this.input.setAttribute("aria-expanded", "false");
  }

  // kind: "warn" | "error" | "info". retryAfter (s) shows a countdown and holds sending.
  showNotice(message, { kind = "warn", retryAfter } = {}) {
    clearInterval(this.noticeTimer);
    clear(this.notice);
    const text = h("span", { class: "notice-text" }, message);
    this.notice.append(icon(kind === "info" ? "check" : "alert"), text,
      h("button", { type: "button", class: "icon-button", "aria-label": "Dismiss notice", onclick: () => this.hideNotice() }, icon("close")));
    this.notice.className = `notice ${kind}`;
    this.notice.hidden = false;
    if (retryAfter > 0) {
      this.blockedUntil = Date.now() + retryAfter * 1000;
      const tick = () => {
        const left = Math.ceil((this.blockedUntil - Date.now()) / 1000);
        if (left <= 0) {
          this.hideNotice();
          return;
        }
        text.textContent = `${message} Try again in ${left} s.`;
      };
      tick();
      this.noticeTimer = setInterval(tick, 250);
    }
  }

  // The text stays in the input whatever went wrong, so sending again is one keypress.
  showSendError(err) {
    if (err.code === "rate_limited") {
      this.showNotice("You’re sending messages too quickly.", { retryAfter: err.retryAfter || 1 });
    } else if (err.code === "busy") {
      this.showNotice("A reply is still being written in this chat. Stop it or wait for it to finish.");
    } else if (err.code === "disconnected" || err.code === "timeout") {
      this.showNotice("Not sent: the connection dropped. Your message is still here; send it again once reconnected.", { kind: "error" });
    } else if (err.code === "not_found") {
      this.showNotice("This chat no longer exists.", { kind: "error" });
    } else {
      this.showNotice(`Not sent: ${err.message}`, { kind: "error" });
    }
  }

  flashNotice() {
    this.notice.classList.remove("flash");
    void this.notice.offsetWidth; // restart the CSS animation
    this.notice.classList.add("flash");
  }

  hideNotice() {
    clearInterval(this.noticeTimer);
    this.blockedUntil = 0;
    this.notice.hidden = true;
    clear(this.notice);
  }
}

// Which session is open: opening (with sessions.get), creating, renaming, deleting, and the
// empty state. Shared state (current session, runs, views) lives on the App.

import { h } from "./dom.js";
import { UNTITLED } from "./sessions.js";

export class Navigator {
  constructor(app) {
    this.app = app;
    this.loadToken = 0; // bumps on every navigation, so a late sessions.get answer is dropped
    this.loadFailed = false;
  }

  showEmpty() {
    this.loadToken++;
    this.app.currentSessionId = null;
    this.app.sessions.select(null);
    this.setTitle(null);
    this.app.chat.showEmpty();
    this.app.composer.setStreaming(false);
    this.app.syncPicker();
    history.replaceState(null, "", location.pathname + location.search);
  }

  async open(id, { keepDrawer = false, poll = false } = {}) {
    const token = ++this.loadToken;
    // Cards a command adds while the history loads (/debug typed at once) outlive its rendering.
    const shown = new Set(this.app.chat.root.querySelectorAll(".system-card"));
    const switching = id !== this.app.currentSessionId;
    this.app.currentSessionId = id;
    this.app.sessions.select(id);
    this.setTitle(this.app.sessions.get(id));
    this.app.syncPicker();
    if (!keepDrawer) this.app.drawer.close({ restoreFocus: false });
    if (location.hash.slice(1) !== id) history.replaceState(null, "", `#${encodeURIComponent(id)}`);
    if (switching) this.app.chat.root.setAttribute("aria-busy", "true");
    let res;
    try {
      res = await this.app.request("sessions.get", { sessionId: id });
    } catch (err) {
      if (token !== this.loadToken) return;
      this.app.chat.root.removeAttribute("aria-busy");
      if (err.code === "not_found") {
        this.app.sessions.remove(id);
        const next = this.app.sessions.sessions[0];
        return next ? this.open(next.id, { keepDrawer }) : this.showEmpty();
      }
      this.loadFailed = true;
      this.app.chat.addCard("Could not load this chat", h("p", null, err.message), { kind: "error" });
      return;
    }
    if (token !== this.loadToken) return;
    this.loadFailed = false;
    this.app.chat.root.removeAttribute("aria-busy");
    if (res.session) this.app.sessions.upsert(res.session);
    this.setTitle(this.app.sessions.get(id));
    this.app.runs.detachAll();
    const messages = res.messages || [];
    let oldest = messages[0]?.createdAt;
    const loadOlder = async () => {
      if (token !== this.loadToken) return null;
      const page = await this.app.request("sessions.get", { sessionId: id, before: oldest });
      if (token !== this.loadToken || !page.messages?.length) return null;
      oldest = page.messages[0].createdAt;
      return page;
    };
    const added = [...this.app.chat.root.querySelectorAll(".system-card")].filter((c) => !shown.has(c));
    this.app.chat.renderHistory(messages, { hasMore: Boolean(res.hasMore), loadOlder });
    for (const c of added) this.app.chat.append(c);
    const run = this.app.runs.active(id);
    if (run) this.app.showRun(run);
    this.app.composer.setStreaming(Boolean(run));
    this.app.syncPicker();
    if (poll && !run && messages.at(-1)?.role === "user") this.pollForReply(id, token, 1);
  }

  // After a lost connection, a reply that was streaming is stored only when its run ends.
  pollForReply(id, token, attempt) {
    if (attempt > 10) return;
    setTimeout(async () => {
      if (token !== this.loadToken || this.app.runs.active(id)) return;
      const res = await this.app.request("sessions.get", { sessionId: id }).catch(() => null);
      if (!res || token !== this.loadToken) return;
      if (res.messages?.at(-1)?.role === "user") this.pollForReply(id, token, attempt + 1);
      else this.open(id, { keepDrawer: true });
    }, 2000 * attempt);
  }

  async create() {
    const res = await this.app.request("sessions.create", this.app.modelParam());
    this.loadToken++;
    this.app.sessions.upsert(res.session);
    this.app.currentSessionId = res.session.id;
    this.app.sessions.select(res.session.id);
    this.setTitle(res.session);
    this.app.chat.showEmpty();
    this.app.composer.setStreaming(false);
    this.app.syncPicker();
    history.replaceState(null, "", `#${encodeURIComponent(res.session.id)}`);
    this.app.drawer.close({ restoreFocus: false });
    this.app.composer.focus();
  }

  async rename(id, title) {
    try {
      const res = await this.app.request("sessions.rename", { sessionId: id, title });
      this.app.sessions.upsert(res.session || { id, title });
      if (id === this.app.currentSessionId) this.setTitle(this.app.sessions.get(id));
    } catch (err) {
      this.app.sessions.render();
      this.app.composer.showNotice(`Rename failed: ${err.message}`, { kind: "error" });
    }
  }

  async remove(id) {
    const s = this.app.sessions.get(id);
    const ok = await this.app.confirm({
      title: "Delete this chat?",
      message: `“${s?.title || UNTITLED}” and its messages will be deleted. This cannot be undone.`,
    });
    if (!ok) return;
    try {
      await this.app.request("sessions.delete", { sessionId: id });
    } catch (err) {
      if (err.code !== "not_found") {
        this.app.composer.showNotice(`Delete failed: ${err.message}`, { kind: "error" });
        return;
      }
    }
    this.app.sessions.remove(id);
    this.app.modelChoice.forget(id);
    if (id === this.app.currentSessionId) {
      const next = this.app.sessions.sessions[0];
      if (next) await this.open(next.id, { keepDrawer: true });
      else this.showEmpty();
    }
  }

  setTitle(session) {
    const text = session ? session.title || UNTITLED : UNTITLED;
    this.app.title.textContent = text;
    document.title = session ? `${text} · clawdbot` : "clawdbot";
  }
}

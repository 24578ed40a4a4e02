// The model picker: the list from models.list, and which model each session uses. A session's
// own choice wins, then the model the session was stored with, then (for a chat not yet created)
// the last model picked on this browser, then the gateway's default.

import { h } from "./dom.js";

const MODEL_KEY = "clawdbot.model";

export class ModelChoice {
  constructor(picker, onChange) {
    this.picker = picker;
    this.models = [];
    this.defaultModel = null;
    this.perSession = new Map();
    picker.addEventListener("change", () => onChange(picker.value));
  }

  load(payload) {
    this.models = (payload && payload.models) || [];
    this.defaultModel = (payload && payload.default) || this.models[0]?.id || null;
    this.picker.replaceChildren(...this.models.map((m) =>
      h("option", { value: m.id, title: m.description || m.ownedBy || "" }, m.id)));
    this.picker.disabled = !this.models.length;
  }

  ids() {
    return this.models.map((m) => m.id);
  }

  current(session) {
    const ids = new Set(this.ids());
    let stored = null;
    try { stored = localStorage.getItem(MODEL_KEY); } catch { /* storage unavailable */ }
    const candidates = [session && this.perSession.get(session.id), session?.model, session ? null : stored, this.defaultModel];
    return candidates.find((m) => m && (ids.has(m) || !ids.size)) || null;
  }

  set(name, session) {
    if (session) {
      this.perSession.set(session.id, name);
      session.model = name;
    }
    try { localStorage.setItem(MODEL_KEY, name); } catch { /* storage unavailable */ }
    this.sync(session);
  }

  sync(session) {
    const model = this.current(session);
    if (model && this.picker.value !== model) this.picker.value = model;
  }

  forget(sessionId) {
    this.perSession.delete(sessionId);
  }
}

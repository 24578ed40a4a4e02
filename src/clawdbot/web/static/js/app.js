// The chat controller: sessions, sending, streaming runs, model choice. Views live in their own
// modules; this one turns protocol events and user intents into calls on them.

import { Runs } from "./runs.js";
import { parseCommand, runCommand, unescapeSlash } from "./commands.js";
import { ModelChoice } from "./models.js";
import { Navigator } from "./navigation.js";

const PAGE = 50;
const MAX_TEXT_BYTES = 240 * 1024; // under web.max_frame_bytes (256 KiB) with the frame around it

export class App {
  constructor({ client, sessions, chat, composer, picker, title, live, confirm, drawer, tools, onAuth }) {
    Object.assign(this, { client, sessions, chat, composer, picker, title, live, confirm, drawer, tools, onAuth });
    this.runs = new Runs();
    this.modelChoice = new ModelChoice(picker, (name) => this.setModel(name));
    this.nav = new Navigator(this);
    this.currentSessionId = null;
    this.pendingSend = null;
    this.refreshTimer = null;
  }

  request(method, params) {
    return this.client.request(method, params).catch((err) => {
      if (err.code === "unauthorized") this.onAuth();
      throw err;
    });
  }

  // ---- connection lifecycle -------------------------------------------------------------

  onResumed() {
    if (this.nav.loadFailed && this.currentSessionId) this.openSession(this.currentSessionId, { keepDrawer: true });
  }

  async onHello({ reset }) {
    if (reset) {
      // Events of the old connection are gone: what was streaming is now stored (or still running).
      for (const run of this.runs.clear()) run.msg?.interrupt();
    }
    await Promise.all([this.loadModels(), this.loadSessions()]);
    // `/#<session id>` opens that chat (the panel's "Open in chat" links here), even one older than
    // the first page of the list; an id that is gone falls back to the newest (navigation.js).
    const fromHash = decodeURIComponent(location.hash.slice(1));
    const target = this.currentSessionId || fromHash || this.sessions.sessions[0]?.id;
    if (target) await this.openSession(target, { keepDrawer: true, poll: reset });
    else this.showEmpty();
  }

  async loadModels() {
    const res = await this.request("models.list", {}).catch(() => null);
    this.modelChoice.load(res);
    this.syncPicker();
  }

  async loadSessions() {
    const limit = Math.max(PAGE, this.sessions.sessions.length);
    const res = await this.request("sessions.list", { limit });
    const list = res.sessions || [];
    this.sessions.set(list, list.length >= limit);
    for (const id of this.runs.busySessions()) this.sessions.setBusy(id, true);
    if (this.currentSessionId && this.sessions.get(this.currentSessionId)) this.setTitle(this.sessions.get(this.currentSessionId));
  }

  async loadOlderSessions() {
    const oldest = this.sessions.sessions.at(-1);
    try {
      const res = await this.request("sessions.list", { limit: PAGE, before: oldest?.updatedAt });
      const more = res.sessions || [];
      this.sessions.set([...this.sessions.sessions, ...more], more.length >= PAGE);
    } catch (err) {
      this.sessions.render();
      this.composer.showNotice(`Could not load older chats: ${err.message}`, { kind: "error" });
    }
  }

  refreshSessionsSoon() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.loadSessions().catch(() => {}), 250);
  }

  // ---- sessions (navigation.js) --------------------------------------------------------

  showEmpty() { return this.nav.showEmpty(); }
  openSession(id, opts) { return this.nav.open(id, opts); }
  newSession() { return this.nav.create(); }
  renameSession(id, title) { return this.nav.rename(id, title); }
  deleteSession(id) { return this.nav.remove(id); }
  setTitle(session) { return this.nav.setTitle(session); }

  // ---- models ---------------------------------------------------------------------------

  get models() {
    return this.modelChoice.models;
  }

  currentModel() {
    return this.modelChoice.current(this.sessions.get(this.currentSessionId));
  }

  modelParam() {
    const model = this.currentModel();
    return model ? { model } : {};
  }

  setModel(name) {
    this.modelChoice.set(name, this.sessions.get(this.currentSessionId));
  }

  syncPicker() {
    this.modelChoice.sync(this.sessions.get(this.currentSessionId));
  }

  // ---- sending --------------------------------------------------------------------------

  async submit(raw) {
    const parsed = parseCommand(raw);
    if (parsed) {
      this.composer.clear();
      await runCommand(this, parsed);
      return;
    }
    const text = unescapeSlash(raw);
    if (new TextEncoder().encode(text).length > MAX_TEXT_BYTES) {
      this.composer.showNotice("This message is too long to send (the limit is about 240 KB).", { kind: "error" });
      return;
    }
    await this.send({ text });
  }

  regenerate(el) {
    const users = this.chat.root.querySelectorAll(".message.user .message-body");
    const lastUser = users[users.length - 1]?.textContent || "";
    return this.send({ text: lastUser, regenerate: true, replace: el });
  }

  async send({ text, regenerate = false, replace = null }) {
    if (this.pendingSend) return;
    const sessionId = this.currentSessionId;
    if (sessionId && this.runs.active(sessionId)) {
      this.composer.showNotice("A reply is still being written. Stop it or wait for it to finish.");
      return;
    }
    const params = { text, ...this.modelParam() };
    if (sessionId) params.sessionId = sessionId;
    if (regenerate) params.regenerate = true;
    if (this.tools?.on) params.tools = true;
    this.pendingSend = { sessionId };
    this.composer.setSending(true);
    try {
      const res = await this.request("chat.send", params);
      this.composer.hideNotice();
      if (!regenerate) this.composer.clear();
      this.attachRun(res, { text, regenerate, replace, sessionId });
    } catch (err) {
      this.composer.showSendError(err);
      this.live.say(this.composer.notice.textContent);
      if (err.code === "not_found") this.refreshSessionsSoon();
    } finally {
      this.pendingSend = null;
      this.composer.setSending(false);
      // Runs that ended while this send was unanswered were held back; settle them now.
      for (const run of [...this.runs.byId.values()]) if (run.done) this.endRun(run);
    }
  }

  attachRun(res, { text, regenerate, replace, sessionId }) {
    if (!sessionId) {
      const now = Date.now();
      this.sessions.upsert({ id: res.sessionId, title: null, model: this.currentModel(), createdAt: now, updatedAt: now, messageCount: 1 });
      if (this.currentSessionId === null) {
        this.currentSessionId = res.sessionId;
        this.sessions.select(res.sessionId);
        this.setTitle(this.sessions.get(res.sessionId));
        history.replaceState(null, "", `#${encodeURIComponent(res.sessionId)}`);
      }
    }
    const run = this.runs.ensure(res.runId, res.sessionId);
    this.sessions.setBusy(res.sessionId, !run.done);
    if (res.sessionId !== this.currentSessionId) return;
    if (regenerate) (replace?.isConnected ? replace : this.chat.lastAssistant())?.remove();
    if (!run.msg) this.showRun(run);
    if (!regenerate) this.chat.addUser(text, { id: res.userMessageId }, { before: run.msg.el });
    this.chat.scroll(true);
    if (run.done) this.endRun(run);
    else {
      this.composer.setStreaming(true);
      this.live.say("Assistant is responding…");
    }
  }

  // Put a run's message on screen with what has streamed so far.
  showRun(run) {
    run.msg = this.chat.addAssistant({ runId: run.runId, content: run.text, model: this.currentModel() || "" });
    if (run.reasoning) run.msg.appendReasoning(run.reasoning);
    if (run.text) run.msg.flush();
    return run.msg;
  }

  async stop() {
    const run = this.runs.active(this.currentSessionId);
    if (!run || run.stopping) return;
    run.stopping = true;
    try {
      await this.request("chat.abort", { runId: run.runId });
    } catch (err) {
      run.stopping = false;
      this.composer.showNotice(`Could not stop: ${err.message}`, { kind: "error" });
    }
  }

  // ---- chat events ----------------------------------------------------------------------

  onChatEvent(p) {
    if (!p || !p.runId) return;
    const current = p.sessionId === this.currentSessionId;
    const awaited = this.pendingSend && (this.pendingSend.sessionId === p.sessionId || this.pendingSend.sessionId === null);
    let run = this.runs.get(p.runId);
    if (!run) {
      run = this.runs.ensure(p.runId, p.sessionId);
      // A run we did not start here (another tab, or a send whose answer was lost).
      if (current && !awaited) {
        run.msg = this.chat.addAssistant({ runId: p.runId });
        this.composer.setStreaming(true);
      }
      this.sessions.setBusy(p.sessionId, true);
    }
    if (p.state === "delta") {
      if (p.delta) { run.text += p.delta; run.msg?.appendDelta(p.delta); }
      if (p.reasoning) { run.reasoning += p.reasoning; run.msg?.appendReasoning(p.reasoning); }
      return;
    }
    if (p.state === "tool_call" || p.state === "tool_result") {
      run.msg?.addToolEvent(p);
      return;
    }
    if (p.state !== "final" && p.state !== "error" && p.state !== "aborted") return;
    run.done = true;
    run.end = { state: p.state, payload: p };
    // While a send is unanswered its run may not be known yet: attachRun (or send) ends it.
    if (run.msg || !awaited) this.endRun(run);
  }

  endRun(run) {
    this.runs.delete(run.runId);
    this.sessions.setBusy(run.sessionId, false);
    this.refreshSessionsSoon();
    if (run.sessionId !== this.currentSessionId) return;
    if (run.msg) run.msg.finish(run.end.state, run.end.payload);
    else if (!this.pendingSend) this.openSession(run.sessionId, { keepDrawer: true }); // ended while loading
    this.composer.setStreaming(Boolean(this.runs.active(run.sessionId)));
    const said = { final: "Reply complete.", aborted: "Reply stopped.", error: "The reply failed." };
    this.live.say(said[run.end.state]);
  }
}

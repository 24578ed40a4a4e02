// Chat runs in flight, keyed by runId, for every session (not only the open one), so switching
// back to a session mid-reply shows the text so far and keeps streaming.

export class Runs {
  constructor() {
    this.byId = new Map();
  }

  get(runId) {
    return this.byId.get(runId) || null;
  }

  ensure(runId, sessionId) {
    let run = this.byId.get(runId);
    if (!run) {
      run = { runId, sessionId, text: "", reasoning: "", msg: null, done: false, end: null, claimed: false };
      this.byId.set(runId, run);
    }
    return run;
  }

  delete(runId) {
    this.byId.delete(runId);
  }

  active(sessionId) {
    for (const run of this.byId.values()) if (run.sessionId === sessionId && !run.done) return run;
    return null;
  }

  busySessions() {
    return new Set([...this.byId.values()].filter((r) => !r.done).map((r) => r.sessionId));
  }

  // Runs whose message is on screen lose their view when the chat is re-rendered.
  detachAll() {
    for (const run of this.byId.values()) run.msg = null;
  }

  clear() {
    const runs = [...this.byId.values()];
    this.byId.clear();
    return runs;
  }
}

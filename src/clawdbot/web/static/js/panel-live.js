// The overview's feed: `panel.overview` events over the chat WebSocket (/ws, the session cookie
// authenticates it; docs/websocket.md) while a tab that shows it (the Overview; the Models tab's
// requests per deployment) is shown and the page visible, and GET /panel/api/overview every 2 s
// whenever the socket is not watching (it cannot open, closed, did not answer within 3 s, or
// refused the watch). A closed socket is opened again with a growing delay (1 s .. 30 s). While
// the socket is live nothing is polled.
//
// The page has one socket, shared by every feed: one tab is open at a time, so one feed watches
// at a time (the server keeps one watch per socket; a panel.watch replaces it).
//
//   const feed = new OverviewFeed(api, {onData(overview), onMode("connecting" | "live" | "polling"),
//                                       onError(message | "")});
//   feed.start(); feed.stop(); feed.close()  (the session ended: the socket goes too)
//   feed.setScope({model} | {service} | {})  (the charts of one model or service: watched again)

import { defaultUrl, parseFrame } from "./ws.js";

export const POLL_MS = 2000;
const WATCH_MS = 2000;
const OPEN_TIMEOUT_MS = 3000;  // no watching answer by then: poll meanwhile
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];

// the page's one socket: opened when a feed wants it, again after a growing delay when it closes
const socket = {
  ws: null,
  ready: false,       // hello received on ws
  attempt: 0,
  retryTimer: null,
  nextId: 1,
  feeds: new Set(),

  want() {
    if (!this.ws && !this.retryTimer) this.connect();
  },

  connect() {
    let ws;
    try {
      ws = new WebSocket(defaultUrl());
    } catch {
      this.lost();
      return;
    }
    this.ws = ws;
    this.ready = false;
    ws.onmessage = (e) => {
      if (ws === this.ws) this.message(e.data);
    };
    ws.onclose = () => {
      if (ws === this.ws) this.lost();
    };
    ws.onerror = () => {};  // onclose follows
  },

  lost() {
    this.ws = null;
    this.ready = false;
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt++;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      for (const f of this.feeds) if (f.active) f.sync();
    }, delay);
    for (const f of this.feeds) f.lost();
  },

  message(data) {
    const frame = parseFrame(data);
    if (!frame) return;
    if (frame.type === "event" && frame.event === "hello") {
      this.ready = true;
      for (const f of this.feeds) if (f.active) f.sync();
    } else {
      for (const f of this.feeds) f.message(frame);
    }
  },

  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  },

  // the session ended (logout, another key): the socket belonged to it
  close() {
    this.attempt = 0;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, "panel closed");
    }
    this.ready = false;
    for (const f of this.feeds) f.detached();
  },
};

export class OverviewFeed {
  constructor(api, { onData, onMode, onError }) {
    Object.assign(this, { api, onData, onMode, onError });
    this.active = false;     // its tab is shown
    this.live = false;       // panel.watch answered: events are coming
    this.refused = false;    // the server said forbidden: poll until the session changes
    this.failed = false;     // the socket closed or did not answer since it last watched
    this.watchId = null;
    this.openTimer = null;
    this.pollTimer = null;
    this.polling = false;
    this.inFlight = false;
    this.mode = null;
    this.scope = {};         // {model, service} (either or both); {}: all traffic
    socket.feeds.add(this);
    document.addEventListener("visibilitychange", () => {
      if (this.active) this.sync();
    });
  }

  visible() {
    return document.visibilityState === "visible";
  }

  start() {
    this.active = true;
    this.sync();
  }

  stop() {
    this.active = false;
    this.sync();
  }

  setScope(scope) {
    this.scope = { ...scope };
    if (this.live || this.watchId !== null) this.watch();  // the server replaces the socket's watch
    else if (this.polling) this.poll();
  }

  // an overview of the scope asked for (a watch's events from before a change are dropped)
  current(o) {
    const s = o.scope || {};
    return (s.model ?? null) === (this.scope.model ?? null) && (s.service ?? null) === (this.scope.service ?? null);
  }

  close() {
    this.active = false;
    socket.close();
  }

  // the socket went away on purpose (close()): nothing is watched, nothing is retried
  detached() {
    this.refused = this.failed = false;
    this.stopPolling();
    this.stopTimeout();
    this.live = false;
    this.watchId = null;
    this.mode = null;
  }

  // watch when wanted and possible; poll when wanted and not watching
  sync() {
    const want = this.active && this.visible();
    if (!want) {
      if (this.live || this.watchId !== null) this.unwatch();
      this.stopPolling();
      return;
    }
    if (!this.refused) {
      socket.want();
      if (socket.ws && socket.ready && this.watchId === null) this.watch();
      else if (socket.ws && !this.live && this.openTimer === null) this.armTimeout();
    }
    const mode = this.live ? "live" : this.refused || this.failed ? "polling" : "connecting";
    this.setMode(mode);
    if (mode === "polling") this.startPolling();
    else this.stopPolling();  // connecting: the watch's first event comes at once
  }

  setMode(mode) {
    if (mode === this.mode) return;
    this.mode = mode;
    this.onMode(mode);
  }

  // -- the socket ------------------------------------------------------------------------------

  // no hello or watch answer in time: poll meanwhile (the socket may still answer)
  armTimeout() {
    const ws = socket.ws;
    clearTimeout(this.openTimer);
    this.openTimer = setTimeout(() => {
      this.openTimer = null;
      if (socket.ws === ws && !this.live && this.active) {
        this.failed = true;
        this.sync();
      }
    }, OPEN_TIMEOUT_MS);
  }

  stopTimeout() {
    clearTimeout(this.openTimer);
    this.openTimer = null;
  }

  // the socket closed (or never opened): poll until it is open again
  lost() {
    this.live = false;
    this.watchId = null;
    this.stopTimeout();
    this.failed = true;
    if (this.active) this.sync();
  }

  watch() {
    this.watchId = socket.nextId++;
    this.armTimeout();
    socket.send({ type: "req", id: this.watchId, method: "panel.watch", params: { intervalMs: WATCH_MS, ...this.scope } });
  }

  unwatch() {
    this.live = false;
    this.watchId = null;
    socket.send({ type: "req", id: socket.nextId++, method: "panel.unwatch", params: {} });
  }

  message(frame) {
    if (frame.type === "event" && frame.event === "panel.overview") {
      // watching, or about to (the first event may come before the answer); none after an unwatch
      const o = frame.payload;
      if (this.active && (this.live || this.watchId !== null) && o && typeof o === "object" && this.current(o)) {
        this.onError("");
        this.onData(o);
      }
    } else if (frame.type === "res" && frame.id === this.watchId && this.watchId !== null) {
      this.answered(frame);
    }
  }

  answered(frame) {
    if (frame.ok && frame.payload && frame.payload.watching) {
      this.live = true;
      this.failed = false;
      socket.attempt = 0;
      this.stopTimeout();
      this.sync();  // stops polling (or unwatches: hidden meanwhile)
      return;
    }
    this.watchId = null;
    // forbidden (no panel role on the socket), or anything else: HTTP polling says why, if it fails
    this.refused = true;
    this.sync();
  }

  // -- polling -------------------------------------------------------------------------------

  startPolling() {
    if (this.polling) return;
    this.polling = true;
    this.poll();
  }

  stopPolling() {
    this.polling = false;
    clearTimeout(this.pollTimer);
  }

  async poll() {
    clearTimeout(this.pollTimer);
    if (!this.polling || this.inFlight) return;
    this.inFlight = true;
    try {
      const o = await this.api.get("/panel/api/overview", this.scope);
      if ((this.polling || this.live) && this.current(o)) this.onData(o);
      this.onError("");
    } catch (err) {
      this.onError(`Could not load the overview: ${err.message}`);
    } finally {
      this.inFlight = false;
      if (this.polling) this.pollTimer = setTimeout(() => this.poll(), POLL_MS);
    }
  }
}

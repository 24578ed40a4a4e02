// Client for the gateway's WebSocket protocol (docs/websocket.md).
//
// Emits (as CustomEvents, detail in brackets):
//   "state"   {state}  connecting | ready | reconnecting | auth | offline
//   "hello"   {payload, reset}   a new logical connection; reset: an older one was lost with
//                                its events (resume failed), so reload what is on screen
//   "resumed" {replayed}         the old logical connection continues; missed events follow
//   "event"   {event, payload, seq}
//
// Requests made while not ready wait in a bounded queue; requests in flight when the socket drops
// are rejected with code "disconnected" (they may or may not have run; their events, if any,
// still arrive after a successful resume).

export class ProtocolError extends Error {
  constructor(code, message, retryAfter) {
    super(message || code);
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

const MAX_QUEUE = 100;
const REQUEST_TIMEOUT_MS = 30000;
const HELLO_TIMEOUT_MS = 8000;

export class Client extends EventTarget {
  constructor(url, { authStatusUrl = "/auth/status" } = {}) {
    super();
    this.url = url;
    this.authStatusUrl = authStatusUrl;
    this.ws = null;
    this.state = "idle";
    this.nextId = 1;
    this.pending = new Map(); // id -> {resolve, reject, timer}
    this.queue = [];
    this.conn = null; // {connId, resumeToken, lastSeq}
    this.ready = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.helloTimer = null;
    this.server = null;
    this.user = null;
    this.lost = false;
    this.stopped = false;
  }

  close() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000, "bye");
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", { state });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (this.ws && this.ws.readyState <= 1) return;
    this.stopped = false;
    this.setState(this.conn ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.ready = false;
    this.gotFrame = false;
    this.resuming = null;
    ws.onopen = () => this.onOpen(ws);
    ws.onmessage = (e) => this.onMessage(ws, e.data);
    ws.onclose = (e) => this.onClose(ws, e);
    ws.onerror = () => {}; // onclose follows with what little the browser tells us
  }

  onOpen(ws) {
    if (ws !== this.ws) return;
    if (this.conn) {
      const { connId, resumeToken, lastSeq } = this.conn;
      this.resuming = { pendingHello: null };
      this.send({ type: "req", id: this.nextId, method: "connect.resume", params: { connId, resumeToken, lastSeq } });
      this.track(this.nextId++, "connect.resume", 10000).then(
        (payload) => this.onResumed(payload),
        (err) => this.onResumeFailed(err),
      );
    }
    this.armHelloTimer();
  }

  armHelloTimer() {
    clearTimeout(this.helloTimer);
    this.helloTimer = setTimeout(() => {
      if (!this.ready && this.ws) this.ws.close(4000, "no hello");
    }, HELLO_TIMEOUT_MS);
  }

  onResumed(payload) {
    this.resuming = null;
    this.markReady();
    this.emit("resumed", { replayed: payload && payload.replayed });
  }

  onResumeFailed(err) {
    if (err.code === "disconnected") return;
    const hello = this.resuming && this.resuming.pendingHello;
    this.resuming = null;
    this.conn = null;
    this.lost = true;
    if (hello) this.adoptHello(hello);
    else this.armHelloTimer(); // the fresh hello is on its way
  }

  adoptHello(frame) {
    const p = frame.payload || {};
    const reset = this.lost || this.conn !== null;
    this.lost = false;
    this.conn = { connId: p.connId, resumeToken: p.resumeToken, lastSeq: frame.seq || 0 };
    this.server = p.server || null;
    this.user = p.user || null;
    this.markReady();
    this.emit("hello", { payload: p, reset });
  }

  markReady() {
    clearTimeout(this.helloTimer);
    this.ready = true;
    this.attempt = 0;
    this.setState("ready");
    const queued = this.queue.splice(0);
    for (const item of queued) this.transmit(item);
  }

  onMessage(ws, data) {
    if (ws !== this.ws) return;
    this.gotFrame = true;
    const frame = parseFrame(data);
    if (!frame) return;
    if (frame.type === "res") this.onResponse(frame);
    else if (frame.type === "event") this.onEvent(frame);
  }

  onResponse(frame) {
    const entry = this.pending.get(frame.id);
    if (!entry) return;
    this.pending.delete(frame.id);
    clearTimeout(entry.timer);
    if (frame.ok) entry.resolve(frame.payload || {});
    else {
      const e = frame.error || {};
      entry.reject(new ProtocolError(e.code || "internal", e.message, e.retryAfter));
    }
  }

  onEvent(frame) {
    if (frame.event === "hello") {
      const p = frame.payload || {};
      if (this.resuming) this.resuming.pendingHello = frame;
      else if (!this.conn || p.connId !== this.conn.connId) this.adoptHello(frame);
      return;
    }
    if (this.conn && typeof frame.seq === "number") {
      if (frame.seq <= this.conn.lastSeq) return; // already seen (replay overlap)
      if (frame.seq > this.conn.lastSeq + 1) console.warn(`clawdbot: event gap ${this.conn.lastSeq} -> ${frame.seq}`);
      this.conn.lastSeq = frame.seq;
    }
    this.emit("event", { event: frame.event, payload: frame.payload || {}, seq: frame.seq });
  }

  async onClose(ws, event) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.ready = false;
    clearTimeout(this.helloTimer);
    for (const [id, entry] of this.pending) {
      clearTimeout(entry.timer);
      entry.reject(new ProtocolError("disconnected", "Connection lost"));
      this.pending.delete(id);
    }
    if (this.stopped) return;
    // A refused upgrade (401/403) looks like any other failure from here: ask the server.
    if (!this.gotFrame && (await this.authRequired())) {
      this.setState("auth");
      return;
    }
    if (event.code === 1008 && (await this.authRequired())) {
      this.setState("auth");
      return;
    }
    this.scheduleReconnect();
  }

  async authRequired() {
    try {
      const res = await fetch(this.authStatusUrl, { credentials: "same-origin", cache: "no-store" });
      if (!res.ok) return false;
      const body = await res.json();
      return Boolean(body.required && !body.authenticated);
    } catch {
      return false;
    }
  }

  scheduleReconnect() {
    this.setState(navigator.onLine === false ? "offline" : "reconnecting");
    const base = Math.min(10000, 300 * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 10);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), base * (0.8 + Math.random() * 0.4));
  }

  // Skip the backoff wait (the network came back, the tab became visible, the user clicked).
  reconnectNow() {
    if (this.state === "reconnecting" || this.state === "offline") {
      this.attempt = 0;
      this.connect();
    }
  }

  request(method, params = {}, { timeout = REQUEST_TIMEOUT_MS } = {}) {
    return new Promise((resolve, reject) => {
      const item = { method, params, timeout, resolve, reject };
      if (this.ready) this.transmit(item);
      else if (this.queue.length >= MAX_QUEUE) reject(new ProtocolError("disconnected", "Not connected"));
      else this.queue.push(item);
    });
  }

  transmit(item) {
    const id = this.nextId++;
    this.track(id, item.method, item.timeout).then(item.resolve, item.reject);
    if (!this.send({ type: "req", id, method: item.method, params: item.params })) {
      const entry = this.pending.get(id);
      this.pending.delete(id);
      clearTimeout(entry.timer);
      entry.reject(new ProtocolError("disconnected", "Not connected"));
    }
  }

  track(id, method, timeout) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ProtocolError("timeout", `${method} timed out`));
      }, timeout);
      this.pending.set(id, { resolve, reject, timer });
    });
  }

  send(frame) {
    if (!this.ws || this.ws.readyState !== 1) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }
}

// A text frame as an object; null when it is not JSON or not an object (ignored).
export function parseFrame(data) {
  let frame;
  try {
    frame = JSON.parse(data);
  } catch {
    return null;
  }
  return frame && typeof frame === "object" ? frame : null;
}

export function defaultUrl(loc = window.location) {
  return `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}/ws`;
}

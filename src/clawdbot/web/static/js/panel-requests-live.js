// The Requests tab's Live toggle: follows the request log's live stream, GET
// /panel/api/admin/requests/stream (the admin API's Server-Sent Events, under the session cookie),
// with the search form's model, key, status, errors and latency filters (the time window is the
// search's only). Each record that ends is handed to onRecord (the tab puts it on top of the table).
//
// Why the SSE stream and not the chat socket's panel.watch: the stream pushes each record as its
// request ends, filtered by the server with the same query as the search, bounded there (a reader
// that falls behind is dropped, not buffered); panel.watch sends a snapshot every 1..60 s, which
// would mean fetching and diffing pages of the log. EventSource also reconnects by itself.
//
// The stream is open only while the toggle is on, the tab shown and the page visible; coming back
// the tab follows again and searches (what ended meanwhile). A stream the server refuses
// (403, 409, 429 too many streams) is tried again after 2, 4, 8, 16, then every 30 s.
//
//   const live = new RequestsLive(container, {filters: () => params, onRecord(rec), onResume()});
//   live.show(); live.hide(); live.close() (the session ended)

import { h } from "./dom.js";
import { withQuery } from "./panel-api.js";

const STREAM = "/panel/api/admin/requests/stream";
const FILTERS = ["model", "key_id", "status", "errors", "min_latency_ms"];
const BACKOFF_MS = [2000, 4000, 8000, 16000, 30000];
const TEXT = { off: "", connecting: "connecting…", live: "following new requests",
  retrying: "the stream is not open; trying again", paused: "paused while the page is hidden" };

export class RequestsLive {
  constructor(container, { filters, onRecord, onResume }) {
    Object.assign(this, { filters, onRecord, onResume });
    this.toggle = h("input", { type: "checkbox", id: "requests-live" });
    this.status = h("span", { id: "requests-live-status", class: "muted small", role: "status" });
    this.count = h("span", { id: "requests-live-count", class: "muted small" });
    this.el = h("div", { class: "requests-live" },
      h("label", { class: "check" }, this.toggle, "Live"), this.status, this.count);
    container.append(this.el);
    this.shown = false;
    this.source = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.received = 0;
    this.toggle.addEventListener("change", () => {
      this.received = 0;
      this.count.textContent = "";
      if (this.toggle.checked) this.resume();
      else this.sync();
    });
    document.addEventListener("visibilitychange", () => {
      if (!this.shown || !this.toggle.checked) return;
      if (this.visible()) this.resume();
      else this.sync();
    });
  }

  get on() {
    return this.toggle.checked;
  }

  visible() {
    return document.visibilityState === "visible";
  }

  show() {
    this.shown = true;
    this.sync();
  }

  hide() {
    this.shown = false;
    this.sync();
  }

  close() {
    this.toggle.checked = false;
    this.hide();
  }

  // follow again, and search (what ended while not following; the tab keeps what the stream
  // brings while the search runs)
  async resume() {
    if (!this.shown) return;
    this.disconnect();
    this.sync();
    await this.onResume();
  }

  // the filters changed (a new search): follow with them
  restart() {
    this.received = 0;
    this.count.textContent = "";
    if (this.source) {
      this.disconnect();
      this.sync();
    }
  }

  sync() {
    const want = this.shown && this.toggle.checked;
    if (!want || !this.visible()) {
      this.disconnect();
      this.say(want ? "paused" : "off");
      return;
    }
    if (!this.source && !this.retryTimer) this.connect();
  }

  connect() {
    const params = this.filters();
    const query = Object.fromEntries(FILTERS.map((k) => [k, params[k]]));
    const source = new EventSource(withQuery(STREAM, query));
    this.source = source;
    this.say("connecting");
    source.onopen = () => {
      if (source !== this.source) return;
      this.attempt = 0;
      this.say("live");
    };
    source.onmessage = (e) => {
      if (source !== this.source) return;
      let rec;
      try {
        rec = JSON.parse(e.data);
      } catch {
        return;
      }
      if (!rec || typeof rec !== "object" || typeof rec.id !== "string") return;
      this.received++;
      this.count.textContent = `${this.received} new`;
      this.onRecord(rec);
    };
    // the server dropped this reader (it fell behind): what was missed is in a search
    source.addEventListener("dropped", () => {
      if (source === this.source) this.resume();
    });
    source.onerror = () => {
      if (source !== this.source) return;
      if (source.readyState === EventSource.CLOSED) this.lost();  // refused: EventSource gives up
      else this.say("connecting");  // it reconnects by itself
    };
  }

  lost() {
    this.disconnect();
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt++;
    this.say("retrying");
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.sync();
    }, delay);
  }

  disconnect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.source) {
      this.source.close();
      this.source = null;
    }
  }

  say(state) {
    this.el.dataset.state = state;
    const text = TEXT[state] ?? "";
    if (this.status.textContent !== text) this.status.textContent = text;
  }
}

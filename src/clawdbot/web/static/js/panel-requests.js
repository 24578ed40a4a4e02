// Requests: the request log (GET /admin/api/requests) searched by model, key, status, latency and
// time, newest first, a page at a time; a row opened (click, Enter or Space) shows its detail.
// Live (panel-requests-live.js) puts each request that ends on top as it ends, keeping at most
// LIVE_ROWS rows in the page.

import { fmtInt, fmtMs, fmtTime, fmtUsd, localMs, orDash } from "./panel-format.js";
import { fillTable, showError } from "./panel-table.js";
import { RequestDetail } from "./panel-request-detail.js";
import { RequestsLive } from "./panel-requests-live.js";

const PAGE = 100;
export const LIVE_ROWS = 200;

function statusClass(status) {
  return `status-${String(status)[0]}`;
}

const COLUMNS = [
  { label: "Time", cell: (r) => fmtTime(r.at) },
  { label: "Model", cell: (r) => (r.replay_of ? `${orDash(r.model)} (replay)` : orDash(r.model)) },
  { label: "Key", cell: (r) => orDash(r.key_id || r.principal), cls: "mono" },
  { label: "Status", cell: (r) => String(r.status), num: true },
  { label: "Latency", cell: (r) => fmtMs(r.latency_ms), num: true },
  { label: "TTFT", cell: (r) => fmtMs(r.ttft_ms), num: true },
  { label: "Tokens in / out", cell: (r) => `${fmtInt(r.prompt_tokens)} / ${fmtInt(r.completion_tokens)}`, num: true },
  { label: "Cost", cell: (r) => (r.cached ? "cached" : fmtUsd(r.cost_usd)), num: true },
  { label: "Service", cell: (r) => orDash(r.service) },
];

export class RequestsTab {
  constructor(panel, api) {
    Object.assign(this, { panel, api });
    this.form = panel.querySelector("#requests-form");
    this.table = panel.querySelector("#requests-table");
    this.more = panel.querySelector("#requests-more");
    this.layout = panel.querySelector(".requests-layout");
    this.cursor = null;
    this.arrived = [];
    this.seq = 0;  // bumps with every search
    this.detail = new RequestDetail(panel.querySelector("#request-detail"), api, {
      onClose: () => this.closeDetail(),
    });
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.load();
    });
    this.more.addEventListener("click", () => this.load(this.cursor));
    this.live = new RequestsLive(panel.querySelector(".panel-head"), {
      filters: () => this.params(),
      onRecord: (rec) => this.prepend(rec),
      onResume: () => this.load(),
    });
    this.form.addEventListener("submit", () => this.live.restart());
  }

  show() {
    this.live.show();
    this.load();
  }

  hide() {
    this.live.hide();
  }

  // the session ended: the stream belonged to it
  reset() {
    this.live.close();
  }

  params() {
    const v = (sel) => this.form.querySelector(sel).value.trim();
    return {
      model: v("#req-model"), key_id: v("#req-key"), status: v("#req-status"),
      min_latency_ms: v("#req-min-latency"), errors: this.form.querySelector("#req-errors").checked ? "true" : "",
      since: localMs(v("#req-since")), until: localMs(v("#req-until")), limit: PAGE,
    };
  }

  // Only the latest search is shown: an earlier one answering later is dropped. The table is
  // aria-busy while a search runs.
  async load(cursor = null) {
    if (!cursor && !this.form.reportValidity()) return;
    const seq = ++this.seq;
    if (!cursor) this.arrived = [];  // what the live stream brings while this search runs
    this.table.setAttribute("aria-busy", "true");
    try {
      const page = await this.api.admin("requests", { ...this.params(), cursor });
      if (seq !== this.seq) return;
      showError(this.panel, "");
      this.cursor = page.next_cursor || null;
      this.more.hidden = !this.cursor;
      this.render(page.data || [], Boolean(cursor));
      if (!cursor) for (const rec of this.arrived.splice(0)) this.prepend(rec);
    } catch (err) {
      if (seq !== this.seq) return;
      this.more.hidden = true;
      showError(this.panel, `Could not search the request log: ${err.message}`);
    } finally {
      if (seq === this.seq) this.table.removeAttribute("aria-busy");
    }
  }

  render(records, more) {
    fillTable(this.table, COLUMNS, records, {
      append: more,
      empty: "No requests match.",
      row: (r, tr) => this.rowOf(r, tr),
    });
  }

  // a record the live stream brought: on top, once; the oldest rows go past LIVE_ROWS (and with
  // them the page the Older button would have fetched: a search pages again)
  prepend(rec) {
    if (this.table.hasAttribute("aria-busy") && this.arrived.length < LIVE_ROWS) this.arrived.push(rec);
    const body = this.table.tBodies[0];
    if (!body || body.querySelector(`tr[data-request-id="${CSS.escape(rec.id)}"]`)) return;
    for (const tr of [...body.rows]) if (!tr.dataset.requestId) tr.remove();  // "No requests match."
    const scratch = document.createElement("table");
    const tr = fillTable(scratch, COLUMNS, [rec], { row: (r, row) => this.rowOf(r, row) }).rows[0];
    tr.classList.add("fresh");
    body.prepend(tr);
    const rows = body.rows;
    if (rows.length > LIVE_ROWS) {
      for (const old of [...rows].slice(LIVE_ROWS)) {
        if (!old.classList.contains("selected")) old.remove();
      }
      this.cursor = null;
      this.more.hidden = true;
    }
  }

  rowOf(r, tr) {
    tr.className = "request-row";
    tr.tabIndex = 0;
    tr.dataset.requestId = r.id;
    tr.cells[3].classList.add(statusClass(r.status));
    tr.addEventListener("click", () => this.open(r.id, tr));
    tr.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        this.open(r.id, tr);
      }
    });
  }

  open(id, row) {
    for (const tr of this.table.querySelectorAll("tr.selected")) {
      tr.classList.remove("selected");
      tr.removeAttribute("aria-current");
    }
    row.classList.add("selected");
    row.setAttribute("aria-current", "true");
    this.opener = row;
    this.layout.classList.add("with-detail");
    this.detail.load(id);
  }

  closeDetail() {
    this.layout.classList.remove("with-detail");
    for (const tr of this.table.querySelectorAll("tr.selected")) tr.classList.remove("selected");
    if (this.opener?.isConnected) this.opener.focus();
  }
}

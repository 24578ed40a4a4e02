// One list of the Keys tab (keys, users or teams) page by page: GET /panel/api/admin/<kind>s with
// `limit` (the store's page, 500), `cursor` (the answer's `next_cursor`: keyset paging by creation
// time and id, so a record created meanwhile neither shifts nor repeats a page) and `q` (a filter
// by name, id or a key's hint, case-insensitive, matched by the server). Its controls are made here
// around the list's table: a filter form before it, "Show more" and a count after it.

import { h } from "./dom.js";
import { fmtInt } from "./panel-format.js";

export const PAGE = 500;  // the store's largest page (state/keys_sql.py)
const MAX_FILTER = 200;  // the admin API's bound on `q`

export class ListPager {
  // plural: "keys", "users" or "teams"; wrap: the table's scroll box; noun: what the count names;
  // changed(): the records changed (the tab renders them again); fail(text): the tab's error line
  constructor(plural, wrap, api, { noun, changed, fail }) {
    Object.assign(this, { plural, api, noun, changed, fail });
    this.records = [];
    this.cursor = null;
    this.filter = "";
    this.pages = 1;  // how many pages are shown
    this.seq = 0;
    const id = `${plural}-filter`;
    this.input = h("input", { id: `${id}-input`, type: "search", maxlength: String(MAX_FILTER), autocomplete: "off",
      spellcheck: "false", placeholder: plural === "keys" ? "name, id or hint" : "name or id" });
    this.form = h("form", { id, class: "filter-form list-filter", role: "search", "aria-label": `Filter the ${noun}s` },
      h("div", { class: "field" }, h("label", { for: this.input.id }, `Filter ${noun}s`), this.input),
      h("div", { class: "form-actions" },
        h("button", { type: "submit", id: `${id}-apply`, class: "text-button" }, "Filter"),
        h("button", { type: "button", id: `${id}-clear`, class: "text-button", onclick: () => this.clear() }, "Clear")));
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.search();
    });
    this.count = h("p", { id: `${plural}-count`, class: "muted small list-count", "aria-live": "polite" });
    this.more = h("button", { type: "button", id: `${plural}-more`, class: "text-button more", hidden: true,
      onclick: () => this.next() }, `Show more ${noun}s`);
    wrap.before(this.form);
    wrap.after(this.count, this.more);
  }

  // whether every record (of the filter) is loaded
  get complete() {
    return this.cursor === null;
  }

  query(cursor) {
    const q = { limit: PAGE };
    if (cursor) q.cursor = cursor;
    if (this.filter) q.q = this.filter;
    return q;
  }

  // the first page again (a new filter), or as many pages as were shown (keep: Refresh, a change,
  // so that a record edited on a later page stays in sight); throws what the API said
  async first({ keep = false } = {}) {
    const seq = ++this.seq;
    const pages = keep ? Math.max(1, this.pages || 1) : 1;
    let records = [];
    let cursor = null;
    for (let i = 0; i < pages && (i === 0 || cursor); i++) {  // bounded by the pages loaded before
      const page = await this.api.admin(this.plural, this.query(cursor));
      if (seq !== this.seq) return false;  // a newer load won
      const seen = new Set(records.map((r) => r.id));
      records = records.concat((page.data || []).filter((r) => !seen.has(r.id)));
      cursor = page.next_cursor || null;
    }
    this.records = records;
    this.cursor = cursor;
    this.pages = pages;
    this.show();
    return true;
  }

  async next() {
    if (!this.cursor) return;
    const seq = ++this.seq;
    this.more.disabled = true;
    try {
      const page = await this.api.admin(this.plural, this.query(this.cursor));
      if (seq !== this.seq) return;
      const seen = new Set(this.records.map((r) => r.id));
      this.records = this.records.concat((page.data || []).filter((r) => !seen.has(r.id)));
      this.cursor = page.next_cursor || null;
      this.pages = (this.pages || 1) + 1;
      this.show();
      await this.changed();
    } catch (err) {
      this.fail(`Could not load more ${this.noun}s: ${err.message}`);
    } finally {
      this.more.disabled = false;
    }
  }

  async search() {
    const text = this.input.value.trim();
    if (text.length > MAX_FILTER) return;  // maxlength holds it; a pasted value past it is cut there
    this.filter = text;
    try {
      if (await this.first()) await this.changed();
    } catch (err) {
      this.fail(`Could not filter the ${this.noun}s: ${err.message}`);
    }
  }

  clear() {
    this.input.value = "";
    if (this.filter) this.search();
    this.input.focus();
  }

  // the filter goes with the session
  reset() {
    this.input.value = "";
    this.filter = "";
    this.records = [];
    this.cursor = null;
    this.pages = 1;
    this.seq++;
  }

  show() {
    const n = fmtInt(this.records.length);
    const nouns = this.records.length === 1 ? this.noun : `${this.noun}s`;
    const what = this.filter ? `${nouns} matching “${this.filter}”` : nouns;
    this.count.textContent = this.complete ? (this.filter ? `${n} ${what}.` : "")
      : `Showing the newest ${n} ${what}; there are more.`;
    this.count.hidden = !this.count.textContent;
    this.more.hidden = this.complete;
  }
}

// Audit: every change made through the admin API and the panel, newest first (GET
// /admin/api/audit), searched by action, actor, target and time, with the fields each changed and
// the record before and after.

import { h } from "./dom.js";
import { fmtTime, localMs, orDash } from "./panel-format.js";
import { fillTable, showError, tag } from "./panel-table.js";

const PAGE = 100;

// The top-level fields whose values differ between `before` and `after`.
export function changedFields(before, after) {
  const keys = new Set([...Object.keys(before || {}), ...Object.keys(after || {})]);
  keys.delete("updated_at");
  return [...keys].filter((k) => JSON.stringify((before || {})[k]) !== JSON.stringify((after || {})[k])).sort();
}

function changesCell(e) {
  if (!e.before && !e.after) return "–";
  const fields = changedFields(e.before, e.after);
  let summary = fields.length ? fields.join(", ") : "no field changed";
  if (!e.before) summary = "created: show the record";
  else if (!e.after) summary = "deleted: show the record";
  return h("details", { class: "audit-changes" },
    h("summary", null, summary),
    e.before ? [h("div", { class: "muted small" }, "Before"), h("pre", { class: "json" }, JSON.stringify(e.before, null, 2))] : null,
    e.after ? [h("div", { class: "muted small" }, "After"), h("pre", { class: "json" }, JSON.stringify(e.after, null, 2))] : null);
}

function actionKind(action) {
  if (/\.(revoke|delete)$/.test(action)) return "bad";
  if (/\.create$/.test(action)) return "ok";
  return null;
}

const COLUMNS = [
  { label: "Time", cell: (e) => fmtTime(e.at) },
  { label: "Actor", cell: (e) => e.actor, cls: "mono" },
  { label: "Action", cell: (e) => tag(e.action, actionKind(e.action)) },
  { label: "Target", cell: (e) => [`${e.target_type} `, h("span", { class: "mono" }, orDash(e.target_id))] },
  { label: "Changes", cell: changesCell, cls: "wrap" },
];

export class AuditTab {
  constructor(panel, api) {
    Object.assign(this, { panel, api });
    this.table = panel.querySelector("#audit-table");
    this.more = panel.querySelector("#audit-more");
    this.form = panel.querySelector("#audit-form");
    this.before = null;
    this.more.addEventListener("click", () => this.load(this.before));
    panel.querySelector('[data-refresh="audit"]').addEventListener("click", () => this.load());
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.load();
    });
  }

  // the form's filters; `until` is the newest time, paged on by `before`
  filters() {
    const v = (sel) => this.panel.querySelector(sel).value.trim();
    return {
      action: v("#audit-action"), actor: v("#audit-actor"), target_id: v("#audit-target"),
      since: localMs(v("#audit-since")), until: localMs(v("#audit-until")),
    };
  }

  show() {
    this.load();
  }

  hide() {}

  async load(before = null) {
    try {
      const { until, ...filters } = this.filters();
      const page = await this.api.admin("audit", { ...filters, limit: PAGE, before: before ?? until });
      showError(this.panel, "");
      const entries = page.data || [];
      this.before = entries.length === PAGE ? page.next_before : null;
      this.more.hidden = this.before == null;
      fillTable(this.table, COLUMNS, entries, {
        append: before != null,
        empty: Object.values(this.filters()).some((x) => x) ? "No change matches." : "No admin changes yet.",
        row: (e, tr) => { tr.dataset.auditId = e.id; },
      });
    } catch (err) {
      this.more.hidden = true;
      showError(this.panel, `Could not load the audit log: ${err.message}`);
    }
  }
}

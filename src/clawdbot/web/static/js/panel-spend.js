// Spend: GET /admin/api/spend grouped by key, model, day, user, team or service over a window of
// UTC dates, as a table with its total; "Export CSV" saves exactly the rows shown.

import { h } from "./dom.js";
import { fmtInt, fmtTime, fmtUsd } from "./panel-format.js";
import { clearTable, fillTable, showError } from "./panel-table.js";
import { download, toCsv } from "./panel-csv.js";

const GROUP_LABEL = { key: "Key", model: "Model", day: "Day (UTC)", user: "User", team: "Team", service: "Service" };
const NO_GROUP = { key: "(master key / no key)", user: "(no user)", team: "(no team)" };
const ROW_LIMIT = 1000;

export class SpendTab {
  constructor(panel, api) {
    Object.assign(this, { panel, api });
    this.form = panel.querySelector("#spend-form");
    this.table = panel.querySelector("#spend-table");
    this.csvButton = panel.querySelector("#spend-csv");
    this.windowText = panel.querySelector("#spend-window");
    this.report = null;
    this.keyNames = new Map();
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.load();
    });
    this.csvButton.addEventListener("click", () => this.exportCsv());
  }

  show() {
    this.load();
  }

  hide() {}

  params() {
    const v = (sel) => this.form.querySelector(sel).value;
    return { group_by: v("#spend-group"), since: v("#spend-since"), until: v("#spend-until"), limit: ROW_LIMIT };
  }

  async load() {
    const params = this.params();
    try {
      const [report] = await Promise.all([this.api.admin("spend", params), params.group_by === "key" ? this.loadKeyNames() : null]);
      showError(this.panel, "");
      this.report = report;
      this.render(report);
    } catch (err) {
      this.report = null;
      this.csvButton.disabled = true;
      clearTable(this.table);
      const why = err.code === "spend_unavailable" ? "Spend reports need a SQL database (not memory://)." : err.message;
      showError(this.panel, `Could not load the spend report: ${why}`);
    }
  }

  // key id -> name, so the report by key is readable (best effort: ids alone are shown without it)
  async loadKeyNames() {
    try {
      const keys = (await this.api.admin("keys", { limit: 1000 })).data || [];
      this.keyNames = new Map(keys.map((k) => [k.id, k.name]));
    } catch { /* ids only */ }
  }

  groupName(group, by) {
    if (group === null || group === undefined) return NO_GROUP[by] || "(none)";
    return group;
  }

  render(report) {
    const by = report.group_by;
    const rows = report.data || [];
    const total = report.total || {};
    const groupCell = (r) => {
      const name = by === "key" && r.group ? this.keyNames.get(r.group) : null;
      const label = this.groupName(r.group, by);
      return name ? [h("span", { class: "mono" }, label), h("span", { class: "muted" }, ` ${name}`)] : label;
    };
    const cols = [
      { label: GROUP_LABEL[by] || by, cell: groupCell },
      { label: "Requests", num: true, cell: (r) => fmtInt(r.requests) },
      { label: "Prompt tokens", num: true, cell: (r) => fmtInt(r.prompt_tokens) },
      { label: "Completion tokens", num: true, cell: (r) => fmtInt(r.completion_tokens) },
      { label: "Cost", num: true, cell: (r) => fmtUsd(r.cost_usd) },
    ];
    const groups = total.groups ?? rows.length;
    fillTable(this.table, cols, rows, {
      empty: "No spend in this window.",
      row: (r, tr) => { tr.dataset.group = r.group ?? ""; },
      foot: rows.length ? [`Total (${fmtInt(groups)} ${groups === 1 ? "group" : "groups"})`, fmtInt(total.requests),
        fmtInt(total.prompt_tokens), fmtInt(total.completion_tokens), fmtUsd(total.cost_usd)] : null,
    });
    const from = report.since != null ? fmtTime(report.since) : "the first record";
    const to = report.until != null ? fmtTime(report.until) : "now";
    const cut = groups > rows.length ? ` Showing the first ${rows.length} of ${groups} groups.` : "";
    this.windowText.textContent = `From ${from} to ${to} (local time).${cut}`;
    this.csvButton.disabled = !rows.length;
  }

  exportCsv() {
    const report = this.report;
    if (!report) return;
    const by = report.group_by;
    const header = [by, ...(by === "key" ? ["key_name"] : []), "requests", "prompt_tokens", "completion_tokens", "cost_usd"];
    const rows = (report.data || []).map((r) => [
      r.group, ...(by === "key" ? [this.keyNames.get(r.group) ?? ""] : []),
      r.requests, r.prompt_tokens, r.completion_tokens, r.cost_usd,
    ]);
    const p = this.params();
    const span = [p.since, p.until].filter(Boolean).join("_to_") || "all";
    download(`clawdbot-spend-by-${by}-${span}.csv`, toCsv(header, rows));
  }
}

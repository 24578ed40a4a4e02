// Models: every model entry of the config with its strategy, deployments and fallbacks, from the
// overview's `models`. Admins edit a route (Edit: panel-route-editor.js): preview the change to the
// config file, apply it, and the table shows the reloaded config.

import { h, clear } from "./dom.js";
import { fmtInt, fmtNum, orDash } from "./panel-format.js";
import { fillTable, showError, tag } from "./panel-table.js";
import { ConfigTab } from "./panel-config-tab.js";
import { RouteEditor } from "./panel-route-editor.js";
import { reloadSummary } from "./panel-route-rows.js";

const DEPLOYMENT_COLUMNS = [
  { label: "Service", cell: (d) => d.service },
  { label: "Model", cell: (d) => d.model, cls: "wrap" },
  { label: "Weight", cell: (d) => fmtNum(d.weight, 2), num: true },
  { label: "Priority", cell: (d) => orDash(d.priority), num: true },
  { label: "Requests", cell: (d) => fmtInt(d.requests), num: true },
];

export class ModelsTab extends ConfigTab {
  constructor(panel, api, { live }) {
    super(panel, api, live, "models");
    this.list = panel.querySelector("#model-list");
    this.readOnly = null;  // why routes cannot be edited (409 config_read_only), once known
    this.editor = null;
    this.models = [];
    this.services = [];
  }

  // the session ended: an open editor and what the last one said go with it
  reset() {
    this.editor = null;
    this.say("");
  }

  async load() {
    try {
      const o = await this.api.get("/panel/api/overview");
      showError(this.panel, "");
      this.models = o.models || [];
      this.services = (o.services || []).map((s) => s.name);
      this.render();
    } catch (err) {
      showError(this.panel, `Could not load the models: ${err.message}`);
    }
  }

  render() {
    if (this.editor && !this.models.some((m) => m.name === this.editor.name)) this.editor = null;
    clear(this.list);
    this.readOnlyNote.textContent = this.readOnly ? `Routes cannot be edited here: ${this.readOnly}` : "";
    this.readOnlyNote.hidden = !this.readOnly || !this.admin;
    if (!this.models.length) this.list.append(h("p", { class: "empty" }, "No models configured."));
    for (const m of this.models) this.list.append(this.card(m));
  }

  card(m) {
    const table = h("table", { class: "data-table" }, h("caption", { class: "sr-only" }, `Deployments of ${m.name}`));
    fillTable(table, DEPLOYMENT_COLUMNS, m.deployments || [], { empty: "No deployments." });
    const fallbacks = m.fallbacks || [];
    const editing = this.editor?.name === m.name;
    const edit = this.admin ? h("button", {
      type: "button", class: "text-button edit-model", "aria-expanded": String(editing),
      disabled: Boolean(this.readOnly) && !editing, onclick: () => this.open(m.name),
    }, "Edit", h("span", { class: "sr-only" }, ` the route of ${m.name}`)) : null;
    return h("article", { class: editing ? "model-card editing" : "model-card", dataset: { model: m.name } },
      h("div", { class: "model-head" }, h("h2", null, m.name), edit),
      h("dl", { class: "kv" },
        h("dt", null, "Strategy"), h("dd", null, orDash(m.strategy)),
        h("dt", null, "Fallbacks"), h("dd", null, fallbacks.length ? fallbacks.map((f) => tag(f)) : "none")),
      h("div", { class: "table-wrap" }, table),
      editing ? this.editor.el : null);
  }

  cardOf(name) {
    return [...this.list.querySelectorAll(".model-card")].find((c) => c.dataset.model === name) || null;
  }

  open(name) {
    if (this.editor?.name === name) {
      this.editor.focus();
      return;
    }
    const model = this.models.find((m) => m.name === name);
    if (!model) return;
    this.say("");
    this.editor = new RouteEditor(model, this.services, this.models.map((m) => m.name), {
      api: this.api, live: this.live,
      onApplied: (n, out) => this.applied(n, out),
      onReadOnly: (message) => this.lock(message),
      onClose: () => this.close(name),
    });
    this.render();
    this.editor.focus();
  }

  close(name) {
    this.editor = null;
    this.render();
    const edit = this.cardOf(name)?.querySelector(".edit-model");
    if (edit && !edit.disabled) edit.focus();
    else this.readOnlyNote.focus();  // editing is off: the note says why
  }

  lock(message) {
    this.readOnly = message;
    this.readOnlyNote.textContent = `Routes cannot be edited here: ${message}`;
    this.readOnlyNote.hidden = false;
    for (const b of this.list.querySelectorAll(".edit-model[aria-expanded=false]")) b.disabled = true;
  }

  async applied(name, out) {
    this.editor = null;
    const warning = out.warning ? ` Warning: ${out.warning}.` : "";
    this.say(`Applied the route of ${name}: the config file is written and ${reloadSummary(out.reload)}.${warning}`);
    await this.load();
    this.cardOf(name)?.querySelector(".edit-model")?.focus();
  }
}

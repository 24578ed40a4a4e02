// Models: every model entry of the config with its strategy, deployments and fallbacks, from the
// overview's `models`. Admins add a model, edit a route or remove a model (panel-route-editor.js):
// preview the change to the config file, apply it, and the table shows the reloaded config.
// While the tab is open the overview's feed (panel-live.js: panel.watch on the chat socket, or a
// poll) keeps each deployment's requests in the last hour current, and a route changed elsewhere
// (another admin, a reload of the file) is shown as it now is, unless an editor is open.

import { h, clear } from "./dom.js";
import { fmtInt, fmtNum, orDash } from "./panel-format.js";
import { fillTable, showError, tag } from "./panel-table.js";
import { CardsTab } from "./panel-config-tab.js";
import { RouteEditor } from "./panel-route-editor.js";
import { reloadSummary } from "./panel-route-rows.js";
import { OverviewFeed } from "./panel-live.js";

const FEED_TEXT = { connecting: "connecting…", live: "live", polling: "polling" };
// a model list without its counts: what a re-render is for
const shape = (models) => JSON.stringify(models.map((m) => ({ ...m,
  deployments: (m.deployments || []).map(({ requests, ...d }) => d) })));

const VERB = { add: "Added the model", edit: "Applied the route of", remove: "Removed the model" };

const DEPLOYMENT_COLUMNS = [
  { label: "Service", cell: (d) => d.service },
  { label: "Model", cell: (d) => d.model, cls: "wrap" },
  { label: "Weight", cell: (d) => fmtNum(d.weight, 2), num: true },
  { label: "Priority", cell: (d) => orDash(d.priority), num: true },
  { label: "Requests", cell: (d) => fmtInt(d.requests), num: true },
];

export class ModelsTab extends CardsTab {
  constructor(panel, api, { confirm, live }) {
    super(panel, api, live, "models", { kind: "model", noun: "Routes" });
    this.confirm = confirm;
    this.list = panel.querySelector("#model-list");
    this.fresh = panel.querySelector("#model-new");
    this.addButton = panel.querySelector("#models-add");
    this.addButton.addEventListener("click", () => this.open(null, "add"));
    this.models = [];
    this.services = [];
    this.feedStatus = h("span", { id: "models-feed-status", class: "muted" });
    panel.querySelector(".tab-intro")?.append(" Counts: ", this.feedStatus, ".");
    this.feed = new OverviewFeed(api, {
      onData: (o) => this.update(o),
      onMode: (mode) => {
        this.feedStatus.textContent = FEED_TEXT[mode] || mode;
        this.feedStatus.dataset.mode = mode;
      },
      onError: () => {},  // a failed refresh keeps the table as it was; the next one may answer
    });
  }

  // the feed starts once the tab's own load answered (it renders the cards the feed updates)
  async show() {
    this.shown = true;
    await this.load();
    if (this.shown) this.feed.start();
  }

  hide() {
    this.shown = false;
    this.feed.stop();
  }

  // the session ended: an open editor and what the last one said go with it, the socket too
  reset() {
    this.feed.close();
    this.editor = null;
    this.say("");
  }

  // the overview's feed: the counts in place; the cards again when a route changed (no editor open)
  update(o) {
    if (typeof o.now === "number" && o.now < (this.loadedAt || 0)) return;  // older than the table
    const models = o.models || [];
    if (shape(models) !== shape(this.models)) {
      if (this.editor) return;
      const focused = document.activeElement;
      const where = focused?.closest?.(".model-card")?.dataset.model;
      const cls = [...(focused?.classList || [])].find((c) => c === "edit-model" || c === "remove-model");
      this.models = models;
      this.services = (o.services || []).map((s) => s.name);
      this.render();
      if (where && cls) this.cardOf(where)?.querySelector(`.${cls}`)?.focus();
      return;
    }
    this.models = models;
    for (const m of models) {
      const rows = this.cardOf(m.name)?.querySelectorAll("tbody tr[data-service]") || [];
      (m.deployments || []).forEach((d, i) => {
        const tr = rows[i];
        const text = fmtInt(d.requests);
        if (tr && tr.dataset.service === d.service && tr.cells[4].textContent !== text) tr.cells[4].textContent = text;
      });
    }
  }

  async load() {
    try {
      const o = await this.api.get("/panel/api/overview");
      this.loadedAt = o.now;
      showError(this.panel, "");
      this.models = o.models || [];
      this.services = (o.services || []).map((s) => s.name);
      this.render();
    } catch (err) {
      showError(this.panel, `Could not load the models: ${err.message}`);
    }
  }

  render() {
    const ed = this.editor;
    if (ed && ed.mode !== "add" && !this.models.some((m) => m.name === ed.name)) this.editor = null;
    this.addButton.hidden = !this.admin;
    this.addButton.disabled = Boolean(this.readOnly) || this.editor?.mode === "add";
    clear(this.fresh);
    if (this.editor?.mode === "add") this.fresh.append(h("div", { class: "model-card editing" }, this.editor.el));
    this.fresh.hidden = this.editor?.mode !== "add";
    clear(this.list);
    this.readOnlyNote.textContent = this.readOnly ? `Routes cannot be edited here: ${this.readOnly}` : "";
    this.readOnlyNote.hidden = !this.readOnly || !this.admin;
    if (!this.models.length) this.list.append(h("p", { class: "empty" }, "No models configured."));
    for (const m of this.models) this.list.append(this.card(m));
  }

  card(m) {
    const table = h("table", { class: "data-table" }, h("caption", { class: "sr-only" }, `Deployments of ${m.name}`));
    fillTable(table, DEPLOYMENT_COLUMNS, m.deployments || [], { empty: "No deployments.",
      row: (d, tr) => { tr.dataset.service = d.service; } });
    const fallbacks = m.fallbacks || [];
    const editor = this.editor && this.editor.mode !== "add" && this.editor.name === m.name ? this.editor : null;
    const editing = Boolean(editor);
    const locked = Boolean(this.readOnly) && !editing;
    const edit = this.admin ? h("div", { class: "card-actions" },
      h("button", { type: "button", class: "text-button edit-model", "aria-expanded": String(editor?.mode === "edit"),
        disabled: locked, onclick: () => this.open(m.name, "edit") },
      "Edit", h("span", { class: "sr-only" }, ` the route of ${m.name}`)),
      h("button", { type: "button", class: "text-button danger remove-model",
        "aria-expanded": String(editor?.mode === "remove"), disabled: locked, onclick: () => this.open(m.name, "remove") },
      "Remove", h("span", { class: "sr-only" }, ` the model ${m.name}`))) : null;
    return h("article", { class: editing ? "model-card editing" : "model-card", dataset: { model: m.name } },
      h("div", { class: "model-head" }, h("h2", null, m.name), edit),
      h("dl", { class: "kv" },
        h("dt", null, "Strategy"), h("dd", null, orDash(m.strategy)),
        h("dt", null, "Fallbacks"), h("dd", null, fallbacks.length ? fallbacks.map((f) => tag(f)) : "none")),
      h("div", { class: "table-wrap" }, table),
      editing ? editor.el : null);
  }

  cardOf(name) {
    return [...this.list.querySelectorAll(".model-card")].find((c) => c.dataset.model === name) || null;
  }

  // name: null to add one; mode: add, edit, remove
  open(name, mode) {
    if (this.editor && this.editor.mode === mode && this.editor.name === (name ?? "")) {
      this.editor.focus();
      return;
    }
    const model = name === null ? null : this.models.find((m) => m.name === name);
    if (name !== null && !model) return;
    this.say("");
    this.editor = new RouteEditor(model, mode, this.services, this.models.map((m) => m.name), {
      api: this.api, live: this.live, confirm: this.confirm,
      onApplied: (n, how, out) => this.applied(n, how, out),
      onReadOnly: (message) => this.lock(message),
      onClose: () => this.close(),
    });
    this.render();
    this.editor.focus();
  }

  async applied(name, mode, out) {
    this.editor = null;
    const warning = out.warning ? ` Warning: ${out.warning}.` : "";
    this.say(`${VERB[mode]} ${name}: the config file is written and ${reloadSummary(out.reload)}.${warning}`);
    await this.load();
    (this.cardOf(name)?.querySelector(".edit-model") || this.addButton).focus();
  }
}

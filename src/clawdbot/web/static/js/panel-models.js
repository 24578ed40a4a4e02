// Models: every model entry of the config with its strategy, deployments and fallbacks (read-only
// in this step), from the overview's `models`.

import { h, clear } from "./dom.js";
import { fmtInt, fmtNum, orDash } from "./panel-format.js";
import { fillTable, showError, tag } from "./panel-table.js";

const DEPLOYMENT_COLUMNS = [
  { label: "Service", cell: (d) => d.service },
  { label: "Model", cell: (d) => d.model, cls: "wrap" },
  { label: "Weight", cell: (d) => fmtNum(d.weight, 2), num: true },
  { label: "Priority", cell: (d) => orDash(d.priority), num: true },
  { label: "Requests", cell: (d) => fmtInt(d.requests), num: true },
];

function modelCard(m) {
  const table = h("table", { class: "data-table" }, h("caption", { class: "sr-only" }, `Deployments of ${m.name}`));
  fillTable(table, DEPLOYMENT_COLUMNS, m.deployments || [], { empty: "No deployments." });
  const fallbacks = m.fallbacks || [];
  return h("article", { class: "model-card", dataset: { model: m.name } },
    h("h2", null, m.name),
    h("dl", { class: "kv" },
      h("dt", null, "Strategy"), h("dd", null, orDash(m.strategy)),
      h("dt", null, "Fallbacks"), h("dd", null, fallbacks.length ? fallbacks.map((f) => tag(f)) : "none")),
    h("div", { class: "table-wrap" }, table));
}

export class ModelsTab {
  constructor(panel, api) {
    Object.assign(this, { panel, api });
    this.list = panel.querySelector("#model-list");
  }

  async show() {
    try {
      const o = await this.api.get("/panel/api/overview");
      showError(this.panel, "");
      this.render(o.models || []);
    } catch (err) {
      showError(this.panel, `Could not load the models: ${err.message}`);
    }
  }

  hide() {}

  render(models) {
    clear(this.list);
    if (!models.length) this.list.append(h("p", { class: "empty" }, "No models configured."));
    for (const m of models) this.list.append(modelCard(m));
  }
}

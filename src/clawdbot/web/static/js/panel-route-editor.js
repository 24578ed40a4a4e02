// The route editor of one `models:` entry (admins): strategy, deployments, fallbacks. Preview and
// Apply are panel-edit-flow.js's, against POST /panel/api/models/<name>: Preview shows the config
// file's diff and, when the loader refuses it, the loader's error; Apply (only after a valid preview
// of this very edit) writes the file and hot-reloads the gateway.

import { h } from "./dom.js";
import { EditFlow } from "./panel-edit-flow.js";
import { DeploymentRows, strategySelect } from "./panel-route-rows.js";

// model: the overview's entry; services: service names; models: every model name (fallback hints);
// onApplied(name, answer); onReadOnly(message): the gateway has no config file it can write;
// onClose(): Cancel.
export class RouteEditor {
  constructor(model, services, models, { api, live, onApplied, onReadOnly, onClose }) {
    Object.assign(this, { model, api, live, onClose });
    this.name = model.name;
    this.flow = new EditFlow("route", {
      read: () => this.edit(),
      send: (entry, apply) => this.api.request("POST", `/panel/api/models/${encodeURIComponent(this.name)}`,
        { entry, apply }),
      onApplied: (out) => onApplied(this.name, out),
      onReadOnly,
      noun: "Routes",
    });
    this.build(services, models.filter((m) => m !== model.name));
  }

  build(services, others) {
    const title = h("h3", { id: "route-editor-title" }, "Edit the route of ", h("span", { class: "mono" }, this.name));
    this.strategy = strategySelect("route-strategy", this.model.strategy);
    this.fallbacks = h("input", {
      id: "route-fallbacks", name: "fallbacks", type: "text", spellcheck: "false", autocomplete: "off",
      placeholder: "none", "aria-describedby": "route-fallbacks-hint",
    });
    this.fallbacks.value = (this.model.fallbacks || []).join(", ");
    const table = h("table", { id: "route-deps", class: "data-table route-deps" },
      h("caption", null, "Deployments, in the order the strategy starts from"));
    this.rows = new DeploymentRows(table, services, this.model.deployments || [], {
      onChange: () => this.flow.changed(), say: (text) => this.live.say(text),
    });
    this.cancelButton = h("button", { type: "button", id: "route-cancel", class: "text-button",
      onclick: () => this.onClose() }, "Cancel");
    const { formError, status, diffBox } = this.flow;
    this.el = h("form", { id: "route-editor", class: "route-editor", "aria-labelledby": "route-editor-title",
      autocomplete: "off", novalidate: true },
      title,
      h("p", { class: "muted small" }, "Preview shows the change to the config file; Apply writes it (its comments " +
        "stay) and reloads the gateway at once."),
      h("div", { class: "form-grid" },
        h("label", { class: "field" }, h("span", null, "Strategy"), this.strategy),
        h("label", { class: "field route-fallbacks" }, h("span", null, "Fallbacks"), this.fallbacks)),
      h("p", { id: "route-fallbacks-hint", class: "muted small" }, "Other models to try, in order, when every " +
        `deployment fails; separate them with commas.${others.length ? ` Models: ${others.join(", ")}.` : ""}`),
      h("div", { class: "table-wrap" }, table),
      h("button", { type: "button", id: "route-add", class: "text-button", onclick: () => this.rows.add() },
        "Add deployment"),
      formError,
      h("div", { class: "form-actions route-actions" }, ...this.flow.buttons, this.cancelButton),
      status, diffBox);
    this.el.addEventListener("submit", (e) => {
      e.preventDefault();
      this.flow.preview();
    });
    for (const el of [this.strategy, this.fallbacks]) el.addEventListener("input", () => this.flow.changed());
  }

  focus() {
    this.strategy.focus();
  }

  // {body}: the entry for the API, or {error}
  edit() {
    const deps = this.rows.value();
    if (deps.error) return { error: deps.error };
    const fallbacks = this.fallbacks.value.split(",").map((f) => f.trim()).filter(Boolean);
    return { body: { strategy: this.strategy.value, deployments: deps.deployments, fallbacks } };
  }
}

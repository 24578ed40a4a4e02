// The route editor of one `models:` entry (admins): add a model, edit its strategy, deployments
// and fallbacks, or remove it. Preview and Apply are panel-edit-flow.js's, against
// POST /panel/api/models/<name> (`entry` null removes it): Preview shows the config file's diff
// and, when the loader refuses it, the loader's error; Apply (only after a valid preview of this
// very edit; a removal asks first) writes the file and hot-reloads the gateway.

import { h } from "./dom.js";
import { EditFlow } from "./panel-edit-flow.js";
import { DeploymentRows, strategySelect } from "./panel-route-rows.js";

const MAX_NAME = 200;
const NEW_MODEL = { name: "", strategy: "ordered", deployments: [], fallbacks: [] };

// model: the overview's entry (null to add one); mode: "add", "edit" or "remove"; services:
// service names; models: every model name (fallback hints; a new name must be new);
// onApplied(name, mode, answer); onReadOnly(message): no config file it can write; onClose(): Cancel.
export class RouteEditor {
  constructor(model, mode, services, models, { api, live, confirm, onApplied, onReadOnly, onClose }) {
    this.model = model || NEW_MODEL;
    Object.assign(this, { api, live, mode, models, onClose });
    this.name = this.model.name;
    this.flow = new EditFlow("route", {
      read: () => this.edit(),
      send: (body, apply) => this.api.request("POST", `/panel/api/models/${encodeURIComponent(body.name)}`,
        { entry: body.entry, apply }),
      onApplied: (out) => onApplied(this.edit().body.name, mode, out),
      onReadOnly,
      noun: "Routes",
      beforeApply: mode === "remove" ? () => confirm({
        title: "Remove this model?",
        message: `“${this.name}” leaves the config file and the gateway answers it no more, at once. A route ` +
          "that falls back to it would make the config invalid: the preview says so.",
        confirmLabel: "Remove",
      }) : null,
    });
    if (mode === "remove") this.removeForm();
    else this.build(services, models.filter((m) => m !== this.name));
    this.el.addEventListener("submit", (e) => {
      e.preventDefault();
      this.flow.preview();
    });
    if (mode === "remove") this.flow.preview();
  }

  cancel() {
    return h("button", { type: "button", id: "route-cancel", class: "text-button", onclick: () => this.onClose() }, "Cancel");
  }

  heading(text) {
    return h("h3", { id: "route-editor-title" }, text, this.name ? h("span", { class: "mono" }, ` ${this.name}`) : null);
  }

  removeForm() {
    this.cancelButton = this.cancel();
    this.el = h("form", { id: "route-editor", class: "route-editor", "aria-labelledby": "route-editor-title",
      novalidate: true },
    this.heading("Remove the model"),
    h("p", { class: "muted small" }, "Preview shows the change to the config file; Apply removes the model from " +
      "it and reloads the gateway."),
    h("div", { class: "form-actions route-actions" }, ...this.flow.buttons, this.cancelButton),
    ...this.flow.feedback);
  }

  build(services, others) {
    const adding = this.mode === "add";
    this.nameInput = adding ? h("input", {
      id: "route-name", name: "name", type: "text", maxlength: String(MAX_NAME), spellcheck: "false",
      autocomplete: "off", required: true, placeholder: "the name clients ask for",
    }) : null;
    this.strategy = strategySelect("route-strategy", this.model.strategy);
    this.fallbacks = h("input", {
      id: "route-fallbacks", name: "fallbacks", type: "text", spellcheck: "false", autocomplete: "off",
      placeholder: "none", "aria-describedby": "route-fallbacks-hint",
    });
    this.fallbacks.value = (this.model.fallbacks || []).join(", ");
    const table = h("table", { id: "route-deps", class: "data-table route-deps" },
      h("caption", null, "Deployments, in the order the strategy starts from"));
    const deps = adding ? [{ service: services[0] || "" }] : this.model.deployments || [];  // a new model: one to fill in
    this.rows = new DeploymentRows(table, services, deps, {
      onChange: () => this.flow.changed(), say: (text) => this.live.say(text),
    });
    this.cancelButton = this.cancel();
    const { formError, status, diffBox } = this.flow;
    this.el = h("form", { id: "route-editor", class: "route-editor", "aria-labelledby": "route-editor-title",
      autocomplete: "off", novalidate: true },
    this.heading(adding ? "Add a model" : "Edit the route of"),
    h("p", { class: "muted small" }, "Preview shows the change to the config file; Apply writes it (its comments " +
        "stay) and reloads the gateway at once."),
    h("div", { class: "form-grid" },
      adding ? h("label", { class: "field" }, h("span", null, "Name"), this.nameInput) : null,
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
    for (const el of [this.nameInput, this.strategy, this.fallbacks]) el?.addEventListener("input", () => this.flow.changed());
  }

  focus() {
    if (this.mode === "remove") this.cancelButton.focus();
    else (this.nameInput || this.strategy).focus();
  }

  // {body: {name, entry}} for the API (entry null: remove), or {error}
  edit() {
    if (this.mode === "remove") return { body: { name: this.name, entry: null } };
    const name = this.nameInput ? this.nameInput.value.trim() : this.name;
    if (!name) return { error: "Give the model a name." };
    if (name.includes("/")) return { error: "A model's name may not hold “/” (it is how a service's model is named)." };
    if (this.nameInput && this.models.includes(name)) return { error: `There is a model ${name} already: edit that one.` };
    const deps = this.rows.value();
    if (deps.error) return { error: deps.error };
    const fallbacks = this.fallbacks.value.split(",").map((f) => f.trim()).filter(Boolean);
    return { body: { name, entry: { strategy: this.strategy.value, deployments: deps.deployments, fallbacks } } };
  }
}

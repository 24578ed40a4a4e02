// The route editor of one `models:` entry (admins): strategy, deployments, fallbacks. Preview sends
// the edit (POST /panel/api/models/<name>, apply false) and shows the config file's diff and, when
// the loader refuses it, the loader's error; Apply (only after a valid preview of this very edit)
// writes the file and hot-reloads the gateway.

import { h } from "./dom.js";
import { DeploymentRows, renderDiff, strategySelect } from "./panel-route-rows.js";

const STALE = "The edit changed since this preview: preview it again before applying.";

// model: the overview's entry; services: service names; models: every model name (fallback hints);
// onApplied(name, answer); onReadOnly(message): the gateway has no config file it can write;
// onClose(): Cancel.
export class RouteEditor {
  constructor(model, services, models, { api, live, onApplied, onReadOnly, onClose }) {
    Object.assign(this, { model, api, live, onApplied, onReadOnly, onClose });
    this.name = model.name;
    this.previewed = null;  // the JSON of the edit whose valid, non-empty diff is shown
    this.busy = false;
    this.readOnly = false;
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
      onChange: () => this.sync(), say: (text) => this.live.say(text),
    });
    this.formError = h("p", { id: "route-form-error", class: "form-error", role: "alert", hidden: true });
    this.previewButton = h("button", { type: "submit", id: "route-preview", class: "text-button" }, "Preview");
    this.applyButton = h("button", { type: "button", id: "route-apply", class: "primary-button", disabled: true,
      onclick: () => this.apply() }, "Apply");
    this.cancelButton = h("button", { type: "button", id: "route-cancel", class: "text-button",
      onclick: () => this.onClose() }, "Cancel");
    this.status = h("p", { id: "route-status", class: "route-status", role: "status" });
    this.loaderError = h("p", { id: "route-error", class: "form-error route-error", role: "alert", hidden: true });
    this.diff = h("pre", { id: "route-diff", class: "diff", tabindex: "0", role: "region",
      "aria-label": "Change to the config file" });
    this.diffBox = h("section", { class: "route-preview", "aria-labelledby": "route-preview-title", hidden: true },
      h("h4", { id: "route-preview-title" }, "Preview"), this.loaderError, this.diff);
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
      this.formError,
      h("div", { class: "form-actions route-actions" }, this.previewButton, this.applyButton, this.cancelButton),
      this.status, this.diffBox);
    this.el.addEventListener("submit", (e) => {
      e.preventDefault();
      this.preview();
    });
    for (const el of [this.strategy, this.fallbacks]) el.addEventListener("input", () => this.sync());
  }

  focus() {
    this.strategy.focus();
  }

  // {entry} for the API, or {error}
  edit() {
    const deps = this.rows.value();
    if (deps.error) return { error: deps.error };
    const fallbacks = this.fallbacks.value.split(",").map((f) => f.trim()).filter(Boolean);
    return { entry: { strategy: this.strategy.value, deployments: deps.deployments, fallbacks } };
  }

  // Apply only for the edit the shown preview is of; any change makes that preview stale.
  sync() {
    const edit = this.edit();
    const same = !edit.error && this.previewed !== null && JSON.stringify(edit.entry) === this.previewed;
    this.applyButton.disabled = this.readOnly || this.busy || !same;
    this.previewButton.disabled = this.readOnly || this.busy;
    if (this.previewed !== null && !same) {
      this.previewed = null;
      this.status.textContent = STALE;
    }
  }

  setError(message) {
    this.formError.textContent = message || "";
    this.formError.hidden = !message;
  }

  async send(apply) {
    const edit = this.edit();
    this.setError(edit.error);
    if (edit.error) return null;
    this.busy = true;
    this.sync();
    this.status.textContent = apply ? "Applying…" : "Checking the edit…";
    try {
      const out = await this.api.request("POST", `/panel/api/models/${encodeURIComponent(this.name)}`,
        { entry: edit.entry, apply });
      return { key: JSON.stringify(edit.entry), out };
    } catch (err) {
      this.failed(err);
      return null;
    } finally {
      this.busy = false;
    }
  }

  async preview() {
    if (this.busy || this.readOnly) return;
    const sent = await this.send(false);
    if (sent) this.show(sent.out, sent.key);
    this.sync();
  }

  async apply() {
    if (this.busy || this.readOnly || this.previewed === null) return;
    if (JSON.stringify(this.edit().entry) !== this.previewed) return;  // only what the preview showed
    const sent = await this.send(true);
    if (sent && sent.out.applied) {
      this.onApplied(this.name, sent.out);
      return;
    }
    if (sent) {
      this.show(sent.out, null);
      if (!sent.out.error) this.status.textContent = "Nothing was applied.";
    }
    this.sync();
  }

  // a preview's (or a refused apply's) answer: the diff, and the loader's error when invalid
  show(out, key) {
    const diff = typeof out.diff === "string" ? out.diff : "";
    renderDiff(this.diff, diff);
    this.diff.hidden = !diff;
    this.loaderError.textContent = out.error ? `Not valid: ${out.error}` : "";
    this.loaderError.hidden = !out.error;
    this.diffBox.hidden = !diff && !out.error;
    this.previewed = out.valid && diff && key ? key : null;
    if (out.error) this.status.textContent = "The gateway would refuse this edit; nothing can be applied.";
    else if (!diff) this.status.textContent = "No change: the config file already says this.";
    else this.status.textContent = "The config file would change as shown. Apply writes it and reloads the gateway.";
  }

  failed(err) {
    if (err.status === 409 && err.code === "config_read_only") {
      this.readOnly = true;
      this.status.textContent = "";
      this.setError(`Routes cannot be edited here: ${err.message}`);
      this.onReadOnly(err.message);
      return;
    }
    this.status.textContent = "";
    this.setError(err.status === 403 ? `Not allowed: ${err.message}` : `Could not send the edit: ${err.message}`);
  }
}

// Preview, then apply, an edit of the config file (the Models tab's route editor, the Services and
// Plugins editors). Preview sends the edit with apply false and shows the file's diff and, when
// the loader refuses it, its error; Apply is enabled only by a valid preview with a change of this
// very edit (any change after it disables Apply until the next Preview), and sends it with apply
// true: the gateway writes the file and hot-reloads.
//
//   const flow = new EditFlow("svc", {read, send, onApplied, onReadOnly, beforeApply, noun});
//   read({sending}): {body} or {error} (sending: about to go to the gateway); send(body, apply) -> the
//   answer; beforeApply(): Promise<bool> (a confirmation); onShown(out), onFailed(err): optional
//   flow.buttons (Preview, Apply), flow.feedback (form error, status, loader error, diff); flow.changed()

import { h } from "./dom.js";
import { renderDiff } from "./panel-route-rows.js";

const STALE = "The edit changed since this preview: preview it again before applying.";

export class EditFlow {
  constructor(prefix, { read, send, onApplied, onReadOnly, beforeApply, onShown, onFailed, noun = "This" }) {
    Object.assign(this, { read, send, onApplied, onReadOnly, beforeApply, onShown, onFailed, noun });
    this.previewed = null;  // the JSON of the body whose valid, non-empty diff is shown
    this.busy = false;
    this.readOnly = false;
    this.previewButton = h("button", { type: "submit", id: `${prefix}-preview`, class: "text-button" }, "Preview");
    this.applyButton = h("button", { type: "button", id: `${prefix}-apply`, class: "primary-button", disabled: true,
      onclick: () => this.apply() }, "Apply");
    this.formError = h("p", { id: `${prefix}-form-error`, class: "form-error", role: "alert", hidden: true });
    this.status = h("p", { id: `${prefix}-status`, class: "route-status", role: "status" });
    this.loaderError = h("p", { id: `${prefix}-error`, class: "form-error route-error", role: "alert", hidden: true });
    this.diff = h("pre", { id: `${prefix}-diff`, class: "diff", tabindex: "0", role: "region",
      "aria-label": "Change to the config file" });
    this.diffBox = h("section", { class: "route-preview", "aria-labelledby": `${prefix}-preview-title`, hidden: true },
      h("h4", { id: `${prefix}-preview-title` }, "Preview"), this.loaderError, this.diff);
    this.buttons = [this.previewButton, this.applyButton];
    this.feedback = [this.formError, this.status, this.diffBox];
  }

  // Apply only for the body the shown preview is of; any change makes that preview stale.
  changed() {
    const read = this.read({});
    const same = !read.error && this.previewed !== null && JSON.stringify(read.body) === this.previewed;
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

  async post(apply) {
    const read = this.read({ sending: true });
    this.setError(read.error);
    if (read.error) {
      this.status.textContent = "";
      return null;
    }
    this.busy = true;
    this.changed();
    this.status.textContent = apply ? "Applying…" : "Checking the edit…";
    try {
      const out = await this.send(read.body, apply);
      return { key: JSON.stringify(read.body), out };
    } catch (err) {
      this.failed(err);
      return null;
    } finally {
      this.busy = false;
    }
  }

  async preview() {
    if (this.busy || this.readOnly) return;
    const sent = await this.post(false);
    if (sent) this.show(sent.out, sent.key);
    this.changed();
  }

  async apply() {
    if (this.busy || this.readOnly || this.previewed === null) return;
    const read = this.read({});
    if (read.error || JSON.stringify(read.body) !== this.previewed) return;  // only what the preview showed
    if (this.beforeApply && !(await this.beforeApply())) return;
    const sent = await this.post(true);
    if (sent && sent.out.applied) {
      this.previewed = null;
      this.onApplied(sent.out);
      return;
    }
    if (sent) {
      this.show(sent.out, null);
      if (!sent.out.error) this.status.textContent = "Nothing was applied.";
    }
    this.changed();
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
    this.onShown?.(out);  // e.g. the loader's error shown by its field (out.path)
  }

  failed(err) {
    this.status.textContent = "";
    if (err.status === 409 && err.code === "config_read_only") {
      this.readOnly = true;
      this.setError(`${this.noun} cannot be edited here: ${err.message}`);
      this.onReadOnly?.(err.message);
    } else if (err.code === "secret_in_config") {
      this.setError(`Refused: ${err.message}`);
    } else if (err.status === 403) {
      this.setError(`Not allowed: ${err.message}`);
    } else {
      this.setError(`Could not send the edit: ${err.message}`);
    }
    this.onFailed?.(err);  // e.g. a refusal shown by the field it names (err.param)
  }

  // the form is gone or replaced: nothing previewed any more
  clear() {
    this.previewed = null;
    this.setError("");
    this.status.textContent = "";
    this.diffBox.hidden = true;
    this.changed();
  }
}

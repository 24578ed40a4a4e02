// The editor of one key, user or team (admins), shown by its table: name, owners, limits, budget
// and its period, and for a key its expiry, tags, allowed models, panel role and metadata
// (panel-keys-fields.js, panel-keys-meta.js). Save sends only what changed (PATCH
// /panel/api/admin/<kind>s/<id>: the metadata only when it changed, the role as a part of it); a new
// user or team is a POST of what is filled in. An error the server names a field for (its `param`;
// `metadata.plugins.cache` is the metadata's) is shown by that field, any other under the form.
// Enter in a field saves (not in the metadata's text area); Escape or Cancel closes the editor.

import { h, clear } from "./dom.js";
import { effectivePeriod, FIELDS, KIND_FIELDS } from "./panel-keys-fields.js";
import { linkRole, normalMeta, roleOf, withRole } from "./panel-keys-meta.js";

const NOTE = {
  key: "Changes apply to the key's next request, on every replica; a new panel role at its next panel call.",
  user: "Counted over every key of the user, as well as each key's own limits.",
  team: "Counted over every key of the team (a key's own team, else its user's).",
};

// order-free for lists (allowed models, tags): the same set is no change
function norm(v) {
  return Array.isArray(v) ? [...v].sort() : v ?? null;
}

function same(name, a, b) {
  return FIELDS[name].same ? FIELDS[name].same(a, b) : JSON.stringify(norm(a)) === JSON.stringify(norm(b));
}

// outside the grid of short fields: a group of checkboxes, or a wide field (the metadata)
const below = (name) => FIELDS[name].group || FIELDS[name].wide;

// The server's message without the parts a field already says ("Invalid request body:", "- at `$.rpm`").
function fieldMessage(err) {
  return err.message.replace(/^Invalid request body:\s*/, "").replace(/\s*- at `\$[^`]*`\s*$/, "");
}

function formMessage(err) {
  if (err.status === 403) return `Not allowed: ${err.message}`;
  if (err.status === 409) return `Refused: ${err.message}`;
  return `Could not save: ${err.message}`;
}

export class RecordEditor {
  // record: null for a new user or team; ctx: {users, teams, models} (the selects' and checkboxes'
  // choices); save(body) -> Promise of the API call; close(saved, answer)
  constructor(kind, record, ctx, { save, close }) {
    Object.assign(this, { kind, record, save, close });
    this.ctx = { ...ctx, kind };
    this.id = record ? record.id : null;
    this.busy = false;
    this.controls = {};
    this.errors = {};
    const prefix = `${kind}-edit`;
    const old = this.oldValues();
    const fields = KIND_FIELDS[kind].map((name) => [name, this.field(prefix, name, old[name])]);
    this.formError = h("p", { id: `${prefix}-form-error`, class: "form-error", role: "alert", hidden: true });
    this.saveButton = h("button", { type: "submit", id: `${prefix}-save`, class: "primary-button" },
      record ? "Save" : `Create ${kind}`);
    const title = record ? `Edit ${kind} “${record.name || record.id}”` : `New ${kind}`;
    this.el = h("form", { id: `${kind}-editor`, class: "record-editor", novalidate: true, autocomplete: "off",
      "aria-labelledby": `${prefix}-title`, dataset: { recordId: this.id || "" } },
    h("h3", { id: `${prefix}-title` }, title),
    h("p", { class: "muted small" }, NOTE[kind], " Empty fields: no limit. Escape cancels."),
    h("div", { class: "form-grid" }, fields.filter(([n]) => !below(n)).map(([, el]) => el)),
    fields.filter(([n]) => below(n)).map(([, el]) => el),
    this.formError,
    h("div", { class: "form-actions" }, this.saveButton,
      h("button", { type: "button", id: `${prefix}-cancel`, class: "text-button", onclick: () => this.close(false) }, "Cancel")));
    this.el.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    if (this.controls.panel_role) linkRole(this.controls.panel_role, this.controls.metadata);
    this.el.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !e.defaultPrevented) {
        e.preventDefault();
        this.close(false);
      }
    });
  }

  // the record's values as the form shows them (a new record: none)
  oldValues() {
    if (!this.record) return {};
    const metadata = normalMeta(this.record.metadata);
    return { ...this.record, budget_period: effectivePeriod(this.record), metadata, panel_role: roleOf(metadata) };
  }

  field(prefix, name, value) {
    const def = FIELDS[name];
    const id = `${prefix}-${name.replaceAll("_", "-")}`;
    const control = def.build(id, value, this.ctx);
    const error = h("p", { id: `${id}-error`, class: "field-error", hidden: true });
    this.controls[name] = control;
    this.errors[name] = error;
    if (def.wide) {  // a long text edited after a refusal: the refusal no longer describes it
      control.addEventListener("input", () => {
        error.hidden = true;
        control.removeAttribute("aria-invalid");
        control.removeAttribute("aria-describedby");
      });
    }
    if (def.group) return h("div", { class: "field-group", dataset: { field: name } }, control, error);
    return h("div", { class: "field", dataset: { field: name } },
      h("label", { for: id }, def.label, def.hint ? h("span", { class: "field-hint muted" }, ` (${def.hint})`) : null),
      control, error);
  }

  focus() {
    this.controls.name.focus();
  }

  // {body} (what changed; for a new record, what is filled in) or {errors: {field: message}}
  read() {
    const values = {};
    const errors = {};
    for (const name of KIND_FIELDS[this.kind]) {
      const got = FIELDS[name].read(this.controls[name], this.record?.[name], this.ctx);
      if (got.error) errors[name] = got.error;
      else values[name] = got.value;
    }
    if (values.budget_usd === null) values.budget_period = null;  // a period only with a budget
    if ("panel_role" in values) {  // the role is a part of the metadata, not a field of the API
      if ("metadata" in values && roleOf(values.metadata) !== values.panel_role) {
        values.metadata = withRole(values.metadata, values.panel_role);
      }
      delete values.panel_role;
    }
    if (Object.keys(errors).length) return { errors };
    if (!this.record) return { body: Object.fromEntries(Object.entries(values).filter(([, v]) => v !== null)) };
    const old = this.oldValues();
    return { body: Object.fromEntries(Object.entries(values).filter(([k, v]) => !same(k, v, old[k]))) };
  }

  async submit() {
    if (this.busy) return;
    const read = this.read();
    if (read.errors) {
      this.show(read.errors, "Check the fields marked.");
      return;
    }
    if (this.record && !Object.keys(read.body).length) {
      this.show({}, "Nothing changed: there is nothing to save.");
      return;
    }
    this.show({}, "");
    this.busy = true;
    this.saveButton.disabled = true;
    try {
      const out = await this.save(read.body);
      this.close(true, out);
    } catch (err) {
      const field = err.param?.split(/[.[]/)[0];  // metadata.plugins.cache: the metadata's
      if (field && this.controls[field]) this.show({ [field]: fieldMessage(err) }, "");
      else this.show({}, formMessage(err));
    } finally {
      this.busy = false;
      this.saveButton.disabled = false;
    }
  }

  // errors by field, and a message for the form; the first field in error gets the focus
  show(errors, message) {
    let first = null;
    for (const [name, el] of Object.entries(this.errors)) {
      const text = errors[name] || "";
      const control = this.controls[name];
      el.textContent = text;
      el.hidden = !text;
      if (text) control.setAttribute("aria-describedby", el.id);
      else control.removeAttribute("aria-describedby");
      if (text && !FIELDS[name].group) control.setAttribute("aria-invalid", "true");
      else control.removeAttribute("aria-invalid");
      if (text && !first) first = FIELDS[name].group ? control.querySelector("input") : control;
    }
    this.formError.textContent = message || "";
    this.formError.hidden = !message;
    first?.focus();
  }
}

// One editor at a time in a slot by a table: opening another replaces it.
export class EditorSlot {
  constructor(slot) {
    this.slot = slot;
    this.editor = null;
  }

  get id() {
    return this.editor ? this.editor.id : undefined;
  }

  open(editor) {
    clear(this.slot).append(editor.el);
    this.editor = editor;
    this.slot.hidden = false;
    editor.el.scrollIntoView({ block: "nearest" });
    editor.focus();
  }

  close() {
    clear(this.slot);
    this.editor = null;
    this.slot.hidden = true;
  }
}

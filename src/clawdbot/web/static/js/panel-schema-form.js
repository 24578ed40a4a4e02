// A plugin's settings (`with:`) as a form, from the JSON schema of its Settings struct
// (msgspec.json.schema: a "$ref" into "$defs"). Leaf fields (panel-schema-fields.js): a string is
// a text field, an enum a select, a boolean a checkbox, an integer or number a number field, an
// array of scalars a text area of one item a line. A nested struct is a fieldset of its own (its
// fields the same way, down to MAX_DEPTH), an array of structs a list of such fieldsets with Add
// and Remove; a JSON text area is left only for what a form cannot say: a union of several types
// (not just "or null"), a free-form map (an object without named properties), deeper nesting.
// Each field's schema description is its help text (aria-describedby).
//
// An empty field leaves the setting out (the plugin's default); a setting the file already had
// stays spelt out; keys the schema does not know are sent back as they were, and a setting not
// touched is sent back exactly as the file had it.
//
//   const form = new SettingsForm(schema | null, values, {label: "pii", onChange});
//   form.el; form.value({sending}) -> {with: {...}} or {error} (sending: a secret typed as it is is
//   cleared from its field, never sent)

import { h, icon } from "./dom.js";
import { defaultHint, fieldKind, fits, helpLine, leafField, resolve, uid } from "./panel-schema-fields.js";

export { fieldKind, isSecretName } from "./panel-schema-fields.js";

const MAX_ITEMS = 200;  // structs in one list
const isMap = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

// the named properties of an object schema as fields; read() -> {value: {...}} or {error}
class ObjectGroup {
  constructor(schema, objSchema, values, ctx) {
    Object.assign(this, { schema, ctx });
    this.values = isMap(values) ? values : {};
    this.props = objSchema.properties || {};
    const required = new Set(Array.isArray(objSchema.required) ? objSchema.required : []);
    this.fields = Object.entries(this.props).map(([name, prop]) => this.field(name, prop, required.has(name)));
    this.el = h("div", { class: "settings-fields" }, this.fields.map((f) => f.el));
    if (!this.fields.length) this.el.append(h("p", { class: "muted small" }, "No settings."));
  }

  field(name, prop, required) {
    const { schema, ctx } = this;
    let info = fieldKind(schema, prop, ctx.depth);
    const had = Object.hasOwn(this.values, name);
    const current = had ? this.values[name] : undefined;
    if (!fits(info, current)) info = { ...info, kind: "json" };
    const path = ctx.path ? `${ctx.path}.${name}` : name;
    const spec = { name, path, label: ctx.label, info, had, current, dflt: prop.default, required,
      hint: defaultHint(prop.default, required) };
    if (info.kind === "object") return this.objectField(spec);
    if (info.kind === "objects") return this.listOfObjects(spec);
    return leafField(spec);
  }

  // a struct: a fieldset of its own; nothing set in it and not in the file: left out
  objectField({ name, path, info, had, current, hint }) {
    const group = new ObjectGroup(this.schema, info.inner, current,
      { ...this.ctx, path, depth: this.ctx.depth + 1 });
    const help = helpLine(info.description);
    const el = h("fieldset", { class: "setting setting-group wide", dataset: { setting: name, kind: "object" },
      "aria-describedby": help?.id ?? null },
    h("legend", null, h("span", { class: "mono" }, name), hint ? h("span", { class: "muted field-hint" }, ` ${hint}`) : null),
    help, group.el);
    return { name, el, read: (sending) => {
      const r = group.read(sending);
      if (r.error) return r;
      if (Object.keys(r.value).length) return { value: r.value };
      if (!had) return {};
      return { value: current === null ? null : r.value };
    } };
  }

  // an array of structs: one fieldset per item, Remove on each, Add at the end
  listOfObjects({ name, path, info, had, current, hint }) {
    const itemSchema = info.items;
    const help = helpLine(info.description || itemSchema.description);
    const itemsEl = h("ol", { class: "setting-items" });
    const items = [];
    const add = h("button", { type: "button", class: "text-button setting-add" }, `Add to ${name}`);
    const renumber = () => items.forEach((it, i) => {
      it.title.textContent = `${name} ${i + 1}`;
      it.remove.setAttribute("aria-label", `Remove ${name} ${i + 1}`);
      it.remove.title = `Remove ${name} ${i + 1}`;
    });
    const make = (value) => {
      const group = new ObjectGroup(this.schema, itemSchema, value,
        { ...this.ctx, path: `${path}[${items.length}]`, depth: this.ctx.depth + 1 });
      const title = h("span", { class: "mono" });
      const it = { group, title, value };
      it.remove = h("button", { type: "button", class: "icon-button setting-remove", onclick: () => {
        const at = items.indexOf(it);
        items.splice(at, 1);
        it.el.remove();
        renumber();
        this.ctx.onChange();
        (items[Math.min(at, items.length - 1)]?.remove || add).focus();
      } }, icon("trash"));
      it.el = h("li", { class: "setting-item" }, h("fieldset", { class: "setting-group" },
        h("legend", null, title), h("div", { class: "setting-item-head" }, it.remove), group.el));
      items.push(it);
      itemsEl.append(it.el);
      return it;
    };
    for (const v of Array.isArray(current) ? current.slice(0, MAX_ITEMS) : []) make(v);
    add.addEventListener("click", () => {
      if (items.length >= MAX_ITEMS) return;
      const it = make({});
      renumber();
      this.ctx.onChange();
      it.el.querySelector("input, select, textarea")?.focus();
    });
    renumber();
    const el = h("fieldset", { class: "setting setting-group wide", dataset: { setting: name, kind: "objects" },
      "aria-describedby": help?.id ?? null },
    h("legend", null, h("span", { class: "mono" }, name), hint ? h("span", { class: "muted field-hint" }, ` ${hint}`) : null),
    help, itemsEl, h("div", { class: "form-actions" }, add));
    const extra = Array.isArray(current) ? current.slice(MAX_ITEMS) : [];  // beyond the form: kept
    return { name, el, read: (sending) => {
      const out = [];
      for (const it of items) {
        const r = it.group.read(sending);
        if (r.error) return r;
        out.push(r.value);
      }
      out.push(...extra);
      if (!out.length && !had) return {};
      return { value: out };
    } };
  }

  // {value: {...}} or {error}: unknown keys kept, the file's order first, then the schema's
  read(sending) {
    const out = {};
    for (const [k, v] of Object.entries(this.values)) if (!Object.hasOwn(this.props, k)) out[k] = v;
    for (const f of this.fields) {
      const r = f.read(sending);
      if (r.error) return { error: r.error };
      if (Object.hasOwn(r, "value")) out[f.name] = r.value;
    }
    const order = [...Object.keys(this.values), ...Object.keys(out).filter((k) => !Object.hasOwn(this.values, k))];
    return { value: Object.fromEntries(order.filter((k) => Object.hasOwn(out, k)).map((k) => [k, out[k]])) };
  }
}

export class SettingsForm {
  constructor(schema, values, { label, onChange }) {
    Object.assign(this, { schema, label, onChange });
    this.values = isMap(values) ? values : {};
    const root = schema ? resolve(schema, schema) : null;
    const props = root?.properties && typeof root.properties === "object" ? root.properties : null;
    if (props) {
      this.group = new ObjectGroup(schema, root, this.values, { label, path: "", depth: 0, onChange: () => this.onChange() });
      this.el = this.group.el;
    } else {
      this.whole = this.wholeJson();
      this.el = h("div", { class: "settings-fields" }, this.whole.el);
    }
    this.el.addEventListener("input", () => this.onChange());
    this.el.addEventListener("change", () => this.onChange());
  }

  // no schema (not installed, or it failed to load): the whole `with:` as JSON
  wholeJson() {
    const area = h("textarea", { id: uid("json"), class: "json-input", rows: "4", spellcheck: "false",
      "aria-label": `Settings of ${this.label} (JSON)` });
    area.value = Object.keys(this.values).length ? JSON.stringify(this.values, null, 2) : "";
    const initial = area.value;
    const el = h("div", { class: "field wide" }, h("span", null, "Settings (JSON object)"), area);
    return { el, read: () => {
      if (area.value === initial) return { value: this.values };
      const text = area.value.trim();
      if (!text) return { value: {} };
      try {
        const v = JSON.parse(text);
        if (isMap(v)) return { value: v };
      } catch { /* said below */ }
      return { error: `The settings of ${this.label} are not a JSON object.` };
    } };
  }

  // {with} or {error}
  value({ sending = false } = {}) {
    const r = this.group ? this.group.read(sending) : this.whole.read();
    return r.error ? { error: r.error } : { with: r.value };
  }
}

// A plugin's settings (`with:`) as form fields, from the JSON schema of its Settings struct
// (msgspec.json.schema: a "$ref" into "$defs"). A string is a text field, an enum a select, a
// boolean a checkbox, an integer or number a number field, an array of strings or enums a comma
// list; anything else (objects, arrays of objects, unions) a JSON text area checked as you go.
// An empty field leaves the setting out (the plugin's default); a setting the file already had
// stays spelt out; keys the schema does not know are sent back as they were.
//
//   const form = new SettingsForm(schema | null, values, {label: "pii", onChange});
//   form.el; form.value({sending}) -> {with: {...}} or {error} (sending: a secret typed as it is is
//   cleared from its field, never sent)

import { h } from "./dom.js";
import { MASK, REFERENCE } from "./panel-format.js";

// as config/dump.py's is_secret_name: such a setting is written as a ${VAR} reference only
const SECRET_NAME = /(^|[_-])(key|api[_-]?key|secret|token|password|passwd|credentials?|authorization|cookie|private[_-]?key)$/i;
const NOT_SECRET = new Set(["key_id", "key_ids", "keys", "key_labels", "max_key_series", "key_cache_ttl"]);
export const isSecretName = (name) => !NOT_SECRET.has(name) && SECRET_NAME.test(name);

function resolve(schema, node) {
  let n = node;
  for (let i = 0; i < 10 && n && typeof n.$ref === "string"; i++) {
    n = schema.$defs?.[n.$ref.replace("#/$defs/", "")];
  }
  return n || {};
}

// {kind, inner, nullable}: kind is enum | bool | integer | number | string | list | json
export function fieldKind(schema, prop) {
  let inner = resolve(schema, prop);
  let nullable = false;
  if (Array.isArray(inner.anyOf)) {
    const options = inner.anyOf.filter((o) => o.type !== "null");
    nullable = options.length < inner.anyOf.length;
    if (options.length !== 1) return { kind: "json", inner, nullable };
    inner = resolve(schema, options[0]);
  }
  if (Array.isArray(inner.enum)) return { kind: "enum", inner, nullable };
  if (inner.type === "boolean") return { kind: "bool", inner, nullable };
  if (inner.type === "integer" || inner.type === "number") return { kind: inner.type, inner, nullable };
  if (inner.type === "string") return { kind: "string", inner, nullable };
  if (inner.type === "array") {
    const items = resolve(schema, inner.items || {});
    if (items.type === "string" || Array.isArray(items.enum)) return { kind: "list", inner, items, nullable };
  }
  return { kind: "json", inner, nullable };
}

const shown = (v) => (typeof v === "string" ? v : JSON.stringify(v));

export class SettingsForm {
  constructor(schema, values, { label, onChange }) {
    Object.assign(this, { schema, label, onChange });
    this.values = values && typeof values === "object" && !Array.isArray(values) ? values : {};
    const root = schema ? resolve(schema, schema) : null;
    this.props = root?.properties && typeof root.properties === "object" ? root.properties : null;
    this.required = new Set(Array.isArray(root?.required) ? root.required : []);
    this.fields = [];
    this.el = h("div", { class: "settings-fields" });
    if (this.props) {
      for (const [name, prop] of Object.entries(this.props)) this.fields.push(this.field(name, prop));
      this.el.append(...this.fields.map((f) => f.el));
      if (!this.fields.length) this.el.append(h("p", { class: "muted small" }, "No settings."));
    } else {
      this.fields.push(this.whole());
      this.el.append(this.fields[0].el);
    }
    this.el.addEventListener("input", () => this.onChange());
    this.el.addEventListener("change", () => this.onChange());
  }

  // no schema (not installed, or it failed to load): the whole `with:` as JSON
  whole() {
    const area = h("textarea", { class: "json-input", rows: "4", spellcheck: "false", "aria-label": `Settings of ${this.label} (JSON)` });
    area.value = Object.keys(this.values).length ? JSON.stringify(this.values, null, 2) : "";
    const el = h("div", { class: "field wide" }, h("span", null, "Settings (JSON object)"), area);
    return { name: null, el, read: () => {
      const text = area.value.trim();
      if (!text) return { value: {} };
      try {
        const v = JSON.parse(text);
        if (v && typeof v === "object" && !Array.isArray(v)) return { value: v };
      } catch { /* said below */ }
      return { error: `The settings of ${this.label} are not a JSON object.` };
    } };
  }

  field(name, prop) {
    const info = fieldKind(this.schema, prop);
    const had = Object.hasOwn(this.values, name);
    const current = had ? this.values[name] : undefined;
    const dflt = prop.default;
    const hint = dflt === undefined || dflt === null ? (this.required.has(name) ? "required" : "")
      : `default: ${Array.isArray(dflt) ? dflt.join(", ") || "none" : shown(dflt)}`;
    const secret = isSecretName(name);
    const make = { enum: "enumField", bool: "boolField", integer: "numberField", number: "numberField",
      string: "textField", list: "listField", json: "jsonField" }[info.kind];
    const { control, read } = this[make]({ name, info, had, current, dflt, hint, secret });
    const label = h("span", null, h("span", { class: "mono" }, name),
      hint && info.kind !== "bool" ? h("span", { class: "muted field-hint" }, ` ${hint}`) : null,
      secret ? h("span", { class: "muted field-hint" }, " a ${VAR} reference") : null);
    const el = info.kind === "bool"
      ? h("label", { class: "check setting", dataset: { setting: name } }, control, h("span", { class: "mono" }, name),
        h("span", { class: "muted field-hint" }, ` ${hint}`))
      : h("label", { class: info.kind === "json" ? "field setting wide" : "field setting", dataset: { setting: name } },
        label, control);
    return { name, el, read };
  }

  enumField({ info, had, current, dflt }) {
    const values = had && !info.inner.enum.includes(current) ? [...info.inner.enum, current] : info.inner.enum;
    const control = h("select", { class: "setting-input" },
      h("option", { value: "" }, dflt === undefined ? "(not set)" : `(default: ${shown(dflt)})`),
      values.map((v, i) => h("option", { value: String(i), selected: had && v === current }, shown(v))));
    return { control, read: () => (control.value === "" ? {} : { value: values[Number(control.value)] }) };
  }

  boolField({ had, current, dflt }) {
    const base = typeof dflt === "boolean" ? dflt : false;
    const control = h("input", { type: "checkbox", class: "setting-input", checked: had ? Boolean(current) : base });
    return { control, read: () => (had || control.checked !== base ? { value: control.checked } : {}) };
  }

  numberField({ name, info, current, dflt }) {
    const integer = info.kind === "integer";
    const control = h("input", { type: "number", class: "setting-input", step: integer ? "1" : "any",
      inputmode: integer ? "numeric" : "decimal", min: info.inner.minimum ?? null, max: info.inner.maximum ?? null,
      placeholder: typeof dflt === "number" ? String(dflt) : null });
    control.value = typeof current === "number" ? String(current) : "";
    return { control, read: () => {
      const text = control.value.trim();
      if (!text) return {};
      const n = Number(text);
      if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
        return { error: `${this.label}: ${name} is ${integer ? "a whole number" : "a number"}.` };
      }
      return { value: n };
    } };
  }

  textField({ name, current, dflt, secret }) {
    const control = h("input", { type: "text", class: "setting-input", spellcheck: "false", autocomplete: "off",
      placeholder: secret ? "${MY_SECRET}" : typeof dflt === "string" ? dflt : null });
    control.value = typeof current === "string" ? current : "";
    return { control, read: (sending) => {
      const text = control.value.trim();
      if (!text) return {};
      // the mask stands for a secret the file already holds: sent back as it is, the gateway keeps it
      const kept = text === MASK && current === MASK;
      if (secret && !kept && !REFERENCE.test(text)) {
        if (sending) control.value = "";
        return { error: `${this.label}: ${name} is a secret: give it as an environment variable reference like ` +
          "${MY_SECRET}, never the value itself." };
      }
      return { value: text };
    } };
  }

  listField({ info, had, current }) {
    const control = h("input", { type: "text", class: "setting-input", spellcheck: "false", autocomplete: "off",
      placeholder: Array.isArray(info.items.enum) ? info.items.enum.map(shown).join(", ") : "comma-separated" });
    control.value = Array.isArray(current) ? current.map(shown).join(", ") : "";
    return { control, read: () => {
      const items = control.value.split(",").map((x) => x.trim()).filter(Boolean);
      if (!items.length) return had && Array.isArray(current) ? { value: [] } : {};
      return { value: items };
    } };
  }

  jsonField({ name, had, current }) {
    const control = h("textarea", { class: "setting-input json-input", rows: "3", spellcheck: "false" });
    control.value = had ? JSON.stringify(current, null, 2) : "";
    return { control, read: () => {
      const text = control.value.trim();
      if (!text) return {};
      try {
        return { value: JSON.parse(text) };
      } catch {
        return { error: `${this.label}: ${name} is not valid JSON.` };
      }
    } };
  }

  // {with} or {error}: the settings the form says, keys it does not know kept as they were
  value({ sending = false } = {}) {
    if (!this.props) {
      const r = this.fields[0].read();
      return r.error ? { error: r.error } : { with: r.value };
    }
    const out = {};
    for (const [k, v] of Object.entries(this.values)) if (!Object.hasOwn(this.props, k)) out[k] = v;
    for (const f of this.fields) {
      const r = f.read(sending);
      if (r.error) return { error: r.error };
      if (Object.hasOwn(r, "value")) out[f.name] = r.value;
    }
    // the file's order first, then new settings in the schema's order
    const order = [...Object.keys(this.values), ...Object.keys(out).filter((k) => !Object.hasOwn(this.values, k))];
    return { with: Object.fromEntries(order.filter((k) => Object.hasOwn(out, k)).map((k) => [k, out[k]])) };
  }
}

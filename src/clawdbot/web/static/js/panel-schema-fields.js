// The leaf fields of a plugin's settings form (panel-schema-form.js builds the objects around
// them): what kind of field a JSON-schema property gets, and the field itself with its label, its
// default, its description (help text tied to the control by aria-describedby) and a read() that
// gives {value}, {} (leave the setting out: the plugin's default) or {error}.
//
// A field the operator did not touch gives back exactly the value the file had (whatever its
// type), so an edit elsewhere never rewrites it.

import { h } from "./dom.js";
import { MASK, REFERENCE } from "./panel-format.js";

// as config/dump.py's is_secret_name: such a setting is written as a ${VAR} reference only
const SECRET_NAME = /(^|[_-])(key|api[_-]?key|secret|token|password|passwd|credentials?|authorization|cookie|private[_-]?key)$/i;
const NOT_SECRET = new Set(["key_id", "key_ids", "keys", "key_labels", "max_key_series", "key_cache_ttl"]);
export const isSecretName = (name) => !NOT_SECRET.has(name) && SECRET_NAME.test(name);

export const MAX_DEPTH = 4;        // objects inside objects deeper than this are JSON
export const MAX_LIST_ITEMS = 1000; // lines of a list field
const SCALARS = new Set(["string", "integer", "number"]);
let serial = 0;
export const uid = (what) => `setting-${++serial}-${what}`;

export function resolve(schema, node) {
  let n = node;
  for (let i = 0; i < 10 && n && typeof n.$ref === "string"; i++) {
    n = schema.$defs?.[n.$ref.replace("#/$defs/", "")];
  }
  return n || {};
}

const isObjectSchema = (s) => s.type === "object" && s.properties && typeof s.properties === "object"
  && !Array.isArray(s.properties) && (s.additionalProperties === false || Object.keys(s.properties).length > 0);

// {kind, inner, items, nullable, description}: kind is enum | bool | integer | number | string |
// list (an array of scalars) | object (a struct: a form of its own) | objects (an array of structs)
// | json (a union of several types, a free-form map, anything deeper than MAX_DEPTH)
export function fieldKind(schema, prop, depth = 0) {
  let inner = resolve(schema, prop);
  let nullable = false;
  const description = prop.description || inner.description || null;
  const out = (kind, more) => ({ kind, inner, nullable, description: description || inner.description || null, ...more });
  if (Array.isArray(inner.anyOf)) {
    const options = inner.anyOf.filter((o) => o.type !== "null");
    nullable = options.length < inner.anyOf.length;
    if (options.length !== 1) return out("json");
    inner = resolve(schema, options[0]);
  }
  if (Array.isArray(inner.enum)) return out("enum");
  if (inner.type === "boolean") return out("bool");
  if (inner.type === "integer" || inner.type === "number") return out(inner.type);
  if (inner.type === "string") return out("string");
  if (inner.type === "array") {
    const items = resolve(schema, inner.items || {});
    if (Array.isArray(items.enum) || SCALARS.has(items.type)) return out("list", { items });
    if (isObjectSchema(items) && depth < MAX_DEPTH) return out("objects", { items });
  }
  if (isObjectSchema(inner) && depth < MAX_DEPTH) return out("object");
  return out("json");
}

// does the file's value fit the field (else the field is JSON, so nothing is lost)
export function fits(info, v) {
  if (v === undefined || (v === null && info.nullable)) return true;
  switch (info.kind) {
    case "enum": return true;  // an unknown value is offered as one more option
    case "bool": return typeof v === "boolean";
    case "integer": return Number.isInteger(v);
    case "number": return typeof v === "number";
    case "string": return typeof v === "string";
    case "list": return Array.isArray(v) && v.every((x) => typeof x === "string" || typeof x === "number");
    case "objects": return Array.isArray(v) && v.every((x) => x && typeof x === "object" && !Array.isArray(x));
    case "object": return v !== null && typeof v === "object" && !Array.isArray(v);
    default: return true;
  }
}

export const shown = (v) => (typeof v === "string" ? v : JSON.stringify(v));

export function defaultHint(dflt, required) {
  if (dflt === undefined || dflt === null) return required ? "required" : "";
  return `default: ${Array.isArray(dflt) ? dflt.map(shown).join(", ") || "none" : shown(dflt)}`;
}

// the help line under a field (or a group): its id goes to the control's aria-describedby
export function helpLine(text) {
  return text ? h("p", { id: uid("help"), class: "field-help muted small" }, text) : null;
}

// spec: {name, path, label (the plugin), info, had, current, dflt, hint, required}
export function leafField(spec) {
  const { name, info, hint } = spec;
  const secret = isSecretName(name);
  const help = helpLine(info.description);
  const make = { enum: enumField, bool: boolField, integer: numberField, number: numberField,
    string: textField, list: listField, json: jsonField }[info.kind];
  const { control, read } = make({ ...spec, secret });
  if (help) control.setAttribute("aria-describedby", help.id);
  const title = h("span", { class: "mono" }, name);
  const label = info.kind === "bool"
    ? h("label", { class: "check" }, control, title, hint ? h("span", { class: "muted field-hint" }, ` ${hint}`) : null)
    : h("label", { class: "field" }, h("span", null, title,
      hint ? h("span", { class: "muted field-hint" }, ` ${hint}`) : null,
      secret ? h("span", { class: "muted field-hint" }, " a ${VAR} reference") : null,
      info.kind === "list" ? h("span", { class: "muted field-hint" }, " (one a line)") : null), control);
  const wide = info.kind === "json";
  const el = h("div", { class: `setting${wide ? " wide" : ""}`, dataset: { setting: name, kind: info.kind } }, label, help);
  return { name, el, read };
}

// untouched: the file's value exactly as it was
function keep(had, current, control, initial, fresh) {
  return had && control.value === initial ? { value: current } : fresh();
}

function enumField({ info, had, current, dflt }) {
  const values = had && !info.inner.enum.includes(current) ? [...info.inner.enum, current] : info.inner.enum;
  const control = h("select", { class: "setting-input" },
    h("option", { value: "" }, dflt === undefined || dflt === null ? "(not set)" : `(default: ${shown(dflt)})`),
    values.map((v, i) => h("option", { value: String(i), selected: had && v === current }, shown(v))));
  return { control, read: () => (control.value === "" ? {} : { value: values[Number(control.value)] }) };
}

function boolField({ had, current, dflt }) {
  const base = typeof dflt === "boolean" ? dflt : false;
  const control = h("input", { type: "checkbox", class: "setting-input", checked: had ? Boolean(current) : base });
  const initial = control.checked;
  return { control, read: () => {
    if (had && control.checked === initial) return { value: current };
    return had || control.checked !== base ? { value: control.checked } : {};
  } };
}

function numberField({ path, label, info, had, current, dflt }) {
  const integer = info.kind === "integer";
  const lo = info.inner.minimum ?? info.inner.exclusiveMinimum;
  const control = h("input", { type: "number", class: "setting-input", step: integer ? "1" : "any",
    inputmode: integer ? "numeric" : "decimal", min: lo ?? null, max: info.inner.maximum ?? null,
    placeholder: typeof dflt === "number" ? String(dflt) : null });
  control.value = typeof current === "number" ? String(current) : "";
  const initial = control.value;
  return { control, read: () => keep(had, current, control, initial, () => {
    const text = control.value.trim();
    if (!text) return {};
    const n = Number(text);
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
      return { error: `${label}: ${path} is ${integer ? "a whole number" : "a number"}.` };
    }
    const { minimum, maximum, exclusiveMinimum } = info.inner;
    if ((minimum !== undefined && n < minimum) || (maximum !== undefined && n > maximum)
        || (exclusiveMinimum !== undefined && n <= exclusiveMinimum)) {
      const from = exclusiveMinimum !== undefined ? `more than ${exclusiveMinimum}` : `${minimum ?? "any"}`;
      return { error: `${label}: ${path} is out of range (${from} to ${maximum ?? "any"}).` };
    }
    return { value: n };
  }) };
}

function textField({ path, label, had, current, dflt, secret }) {
  const control = h("input", { type: "text", class: "setting-input", spellcheck: "false", autocomplete: "off",
    placeholder: secret ? "${MY_SECRET}" : typeof dflt === "string" ? dflt : null });
  control.value = typeof current === "string" ? current : "";
  const initial = control.value;
  return { control, read: (sending) => keep(had, current, control, initial, () => {
    const text = control.value.trim();
    if (!text) return {};
    // the mask stands for a secret the file already holds: sent back as it is, the gateway keeps it
    const kept = text === MASK && current === MASK;
    if (secret && !kept && !REFERENCE.test(text)) {
      if (sending) control.value = "";
      return { error: `${label}: ${path} is a secret: give it as an environment variable reference like ` +
        "${MY_SECRET}, never the value itself." };
    }
    return { value: text };
  }) };
}

// an array of strings, enums or numbers: one item a line (a comma may be part of an item, as in
// a regex), each line checked against the item's type
function listField({ path, label, info, had, current }) {
  const items = info.items;
  const choices = Array.isArray(items.enum) ? items.enum : null;
  const hintText = choices ? `one a line, of: ${choices.map(shown).join(", ")}` : "one a line";
  const control = h("textarea", { class: "setting-input list-input", rows: "2", spellcheck: "false",
    autocomplete: "off", placeholder: hintText });
  control.value = Array.isArray(current) ? current.map(shown).join("\n") : "";
  const initial = control.value;
  return { control, read: () => keep(had, current, control, initial, () => {
    const lines = control.value.split("\n").map((x) => x.trim()).filter(Boolean);
    if (lines.length > MAX_LIST_ITEMS) return { error: `${label}: ${path} has more than ${MAX_LIST_ITEMS} lines.` };
    const out = [];
    for (const [i, line] of lines.entries()) {
      let v = line;
      if (choices) {
        const at = choices.map(shown).indexOf(line);
        if (at < 0) return { error: `${label}: ${path}, line ${i + 1}: "${line}" is not one of ${choices.map(shown).join(", ")}.` };
        v = choices[at];
      } else if (items.type === "integer" || items.type === "number") {
        v = Number(line);
        if (!Number.isFinite(v) || (items.type === "integer" && !Number.isInteger(v))) {
          return { error: `${label}: ${path}, line ${i + 1}: "${line}" is not ${items.type === "integer" ? "a whole number" : "a number"}.` };
        }
      }
      out.push(v);
    }
    if (!out.length) return had ? { value: [] } : {};
    return { value: out };
  }) };
}

function jsonField({ path, label, had, current }) {
  const control = h("textarea", { class: "setting-input json-input", rows: "3", spellcheck: "false" });
  control.value = had ? JSON.stringify(current, null, 2) : "";
  const initial = control.value;
  return { control, read: () => keep(had, current, control, initial, () => {
    const text = control.value.trim();
    if (!text) return {};
    try {
      return { value: JSON.parse(text) };
    } catch {
      return { error: `${label}: ${path} is not valid JSON.` };
    }
  }) };
}

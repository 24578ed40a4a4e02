// A key's metadata in its editor (panel-keys-editor.js): a JSON object in a text area, and its
// panel role as a choice, the two kept in step. The role is the metadata's own convention
// (docs/panel.md, docs/tenancy.md): `"role": "admin"` makes an admin key (the whole admin API and
// panel), `"panel_role": "viewer"` a viewer (reads the panel, changes nothing); neither: no panel.
// The page checks what it can before sending (a JSON object, at most MAX_METADATA_BYTES); what the
// server refuses in it (`metadata.log_bodies`, `metadata.plugins.<id>`) is shown by the text area.

import { h } from "./dom.js";

// The admin API takes 64 KiB per body (api/app.py ADMIN_BODY_BYTES): the metadata and the other
// changed fields must fit in it.
export const MAX_METADATA_BYTES = 60 * 1024;
export const ROLES = [["none", "none (no panel)"], ["viewer", "viewer (read only)"], ["admin", "admin (everything)"]];

export function roleOf(meta) {
  if (meta?.role === "admin") return "admin";
  return meta?.panel_role === "viewer" ? "viewer" : "none";
}

// `meta` (an object or null) with `role` set, the other keys as they are; null when nothing is left
export function withRole(meta, role) {
  const out = { ...(meta || {}) };
  if (out.role === "admin" && role !== "admin") delete out.role;
  if (role !== "viewer") delete out.panel_role;
  if (role === "admin") out.role = "admin";
  if (role === "viewer") out.panel_role = "viewer";
  return Object.keys(out).length ? out : null;
}

// JSON with every object's keys sorted: two metadata that differ only in key order are the same
export function canonical(value) {
  const sort = (v) => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === "object") return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort(v[k])]));
    return v;
  };
  return JSON.stringify(sort(value ?? null));
}

// an empty object is no metadata
export function normalMeta(meta) {
  return meta && typeof meta === "object" && Object.keys(meta).length ? meta : null;
}

function pretty(meta) {
  return normalMeta(meta) ? JSON.stringify(meta, null, 2) : "";
}

// {value: object or null} or {error}
export function parseMetadata(text) {
  const trimmed = text.trim();
  if (!trimmed) return { value: null };
  if (new TextEncoder().encode(trimmed).length > MAX_METADATA_BYTES) {
    return { error: `At most ${MAX_METADATA_BYTES / 1024} KiB of JSON (the admin API takes 64 KiB per change).` };
  }
  let value;
  try {
    value = JSON.parse(trimmed);
  } catch (err) {
    return { error: `Not valid JSON: ${err.message}` };
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    return { error: 'A JSON object, like {"owner": "ops"} (empty: no metadata).' };
  }
  return { value: normalMeta(value) };
}

// The role select follows the text area when it holds valid JSON, and the text area the select.
export function linkRole(select, area) {
  select.addEventListener("change", () => {
    const got = parseMetadata(area.value);
    if (!got.error) area.value = pretty(withRole(got.value, select.value));
  });
  area.addEventListener("input", () => {
    const got = parseMetadata(area.value);
    if (!got.error) select.value = roleOf(got.value);
  });
}

export const META_FIELDS = {
  panel_role: {
    label: "Panel role",
    hint: "admin: the whole admin API",
    build(id, v) {
      const el = h("select", { id });
      for (const [value, label] of ROLES) el.append(h("option", { value, selected: value === (v || "none") }, label));
      return el;
    },
    read: (el) => ({ value: el.value }),
  },
  metadata: {
    label: "Metadata",
    hint: "a JSON object; empty: none",
    wide: true,
    build: (id, v) => {
      const el = h("textarea", { id, class: "json-input mono", rows: "5", spellcheck: "false", autocomplete: "off" });
      el.value = pretty(v);
      return el;
    },
    read: (el) => parseMetadata(el.value),
    same: (a, b) => canonical(normalMeta(a)) === canonical(normalMeta(b)),
  },
};

// The fields of the key, user and team editor (panel-keys-editor.js). Each builds its control from
// the record's value and reads it back as the admin API's value ({value}), or says what is wrong
// ({error}, shown by the field). An empty field is null: no limit, no budget, no owner, never expires.
// What the server refuses beyond these checks (a number past its bound, a name taken) comes back
// from the PATCH or POST and is shown by its field too.

import { h } from "./dom.js";
import { META_FIELDS } from "./panel-keys-meta.js";

// Which fields each kind has, in order (the admin API's KeyFields, UserUpdate, TeamUpdate; a key's
// panel role is a part of its metadata, panel-keys-meta.js).
export const KIND_FIELDS = {
  key: ["name", "user_id", "team_id", "rpm", "tpm", "max_parallel", "budget_usd", "budget_period", "expires_at",
    "tags", "panel_role", "allowed_models", "metadata"],
  user: ["name", "team_id", "rpm", "tpm", "max_parallel", "budget_usd", "budget_period"],
  team: ["name", "rpm", "tpm", "max_parallel", "budget_usd", "budget_period"],
};

const PERIODS = ["day", "month", "total"];
const NOUN = { key: "key", user: "user", team: "team" };

function input(id, value, attrs) {
  const el = h("input", { id, autocomplete: "off", spellcheck: "false", ...attrs });
  el.value = value === null || value === undefined ? "" : String(value);
  return el;
}

function select(id, options, selected) {
  const el = h("select", { id });
  for (const [value, label] of options) el.append(h("option", { value, selected: value === (selected ?? "") }, label));
  return el;
}

// [[id, name]] of users or teams, with "(none)" first and an id the list lacks (a record past its page)
function owners(records, selected) {
  const options = [["", "(none)"], ...records.map((r) => [r.id, r.name])];
  if (selected && !records.some((r) => r.id === selected)) options.push([selected, selected]);
  return options;
}

// ms since the epoch -> "YYYY-MM-DDTHH:MM" in local time, for <input type="datetime-local">
export function localInput(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "";
  const d = new Date(ms);
  const p = (x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function readCount(el) {
  if (el.validity.badInput) return { error: "Not a number: a whole number, 0 or more (empty: no limit)." };
  const text = el.value.trim();
  if (!text) return { value: null };
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) return { error: "A whole number, 0 or more (empty: no limit)." };
  return { value: n };
}

const count = (label) => ({
  label,
  build: (id, v) => input(id, v, { type: "number", min: "0", step: "1", inputmode: "numeric", placeholder: "no limit" }),
  read: readCount,
});

export const FIELDS = {
  name: {
    label: "Name",
    build: (id, v) => input(id, v, { type: "text", maxlength: "200", spellcheck: "true" }),
    read(el, old, ctx) {
      const name = el.value.trim();
      if (name) return { value: name };
      return ctx.kind === "key" ? { value: null } : { error: `Give the ${NOUN[ctx.kind]} a name.` };
    },
  },
  user_id: {
    label: "User",
    build: (id, v, ctx) => select(id, owners(ctx.users, v), v),
    read: (el) => ({ value: el.value || null }),
  },
  team_id: {
    label: "Team",
    build: (id, v, ctx) => select(id, owners(ctx.teams, v), v),
    read: (el) => ({ value: el.value || null }),
  },
  rpm: count("Requests per minute"),
  tpm: count("Tokens per minute"),
  max_parallel: count("Parallel requests"),
  budget_usd: {
    label: "Budget (USD)",
    build: (id, v) => input(id, v, { type: "number", min: "0", step: "any", inputmode: "decimal", placeholder: "no budget" }),
    read(el) {
      if (el.validity.badInput) return { error: "Not a number: an amount in USD, 0 or more (empty: no budget)." };
      const text = el.value.trim();
      if (!text) return { value: null };
      const usd = Number(text);
      if (!Number.isFinite(usd) || usd < 0) return { error: "An amount in USD, 0 or more (empty: no budget)." };
      return { value: usd };
    },
  },
  budget_period: {
    label: "Budget period",
    build: (id, v) => select(id, PERIODS.map((p) => [p, p === "total" ? "total (all time)" : `${p} (UTC)`]), v || "month"),
    read: (el) => ({ value: el.value }),
  },
  expires_at: {
    label: "Expires (local time)",
    hint: "empty: never",
    build: (id, v) => input(id, localInput(v), { type: "datetime-local" }),
    read(el, old) {
      if (el.validity.badInput) return { error: "Not a date and time." };
      if (!el.value) return { value: null };
      if (el.value === localInput(old)) return { value: old };  // unchanged: keep its seconds
      const ms = new Date(el.value).getTime();
      return Number.isFinite(ms) ? { value: ms } : { error: "Not a date and time." };
    },
  },
  tags: {
    label: "Tags",
    hint: "comma-separated",
    build: (id, v) => input(id, Array.isArray(v) ? v.join(", ") : "", { type: "text" }),
    read(el) {
      const tags = el.value.split(",").map((t) => t.trim()).filter(Boolean);
      return { value: tags.length ? tags : null };
    },
  },
  allowed_models: {
    label: "Allowed models",
    hint: "none ticked: every model",
    group: true,
    build(id, v, ctx) {
      const ticked = new Set(Array.isArray(v) ? v : []);
      const names = [...ctx.models, ...[...ticked].filter((m) => !ctx.models.includes(m))];
      const box = h("fieldset", { id, class: "model-checks" },
        h("legend", null, "Allowed models ", h("span", { class: "muted small" }, "(none ticked: every model)")));
      if (!names.length) box.append(h("span", { class: "muted small" }, "No models are configured."));
      for (const m of names) {
        box.append(h("label", { class: "check" },
          h("input", { type: "checkbox", name: "model", value: m, checked: ticked.has(m) }), m));
      }
      return box;
    },
    read(el) {
      const models = [...el.querySelectorAll("input:checked")].map((i) => i.value);
      return { value: models.length ? models : null };
    },
  },
  ...META_FIELDS,
};

// The period a budget counts in as the form shows it: none without a budget, "total" for a budget
// the record has without one.
export function effectivePeriod(r) {
  return r.budget_usd != null ? r.budget_period || "total" : null;
}

// One configured plugin in the Plugins tab: its place in the chain (move up or down, remove), the
// enable switch, its scope (models, keys, tags as comma lists; an instance id) and its settings
// (panel-schema-form.js), and what it did in the last hour (the gateway's plugin action counters:
// "masked 3", "hit 5 · miss 2"). The card keeps every key of the entry it does not show.
//
//   const card = new PluginCard(entry, installed | undefined, {admin, modelNames, actions, windowS,
//                                                              onChange, onMove, onRemove});
//   card.el; card.setPosition(i, count); card.value({sending}) -> {entry} or {error}

import { h, icon } from "./dom.js";
import { SettingsForm } from "./panel-schema-form.js";
import { fmtInt } from "./panel-format.js";

const LISTS = [["models", "Models"], ["keys", "Key ids"], ["tags", "Tags"]];
let serial = 0;

const commaList = (text) => text.split(",").map((x) => x.trim()).filter(Boolean);

function iconButton(cls, name, label, onclick) {
  return h("button", { type: "button", class: `icon-button ${cls}`, "aria-label": label, title: label, onclick }, icon(name));
}

// "in the last hour" (or since the gateway started, when that is shorter)
function windowText(windowS) {
  if (typeof windowS !== "number" || windowS >= 3540) return "in the last hour";
  const min = Math.max(1, Math.round(windowS / 60));
  return `in the last ${min} minute${min === 1 ? "" : "s"} (since the gateway started)`;
}

// actions: {action: requests} of this plugin's id; a summary line and a list, by count
export function actionSummary(title, actions, windowS) {
  const entries = Object.entries(actions || {}).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  const when = windowText(windowS);
  const el = h("div", { class: "plugin-actions", dataset: { total: String(entries.reduce((t, [, n]) => t + n, 0)) } });
  if (!entries.length) {
    el.append(h("p", { class: "muted small" }, `Did nothing ${when}.`));
    return el;
  }
  const hits = (actions.hit || 0) + (actions["semantic-hit"] || 0);
  const lookups = hits + (actions.miss || 0);
  el.append(h("p", { class: "small plugin-actions-title" }, `What it did ${when}`,
    lookups ? ` (hit rate ${Math.round((100 * hits) / lookups)}%)` : "", ":"),
  h("ul", { class: "plugin-action-list", "aria-label": `What ${title} did ${when}` },
    entries.map(([action, n]) => h("li", { dataset: { action } },
      h("span", { class: "mono" }, action), " ", h("strong", null, fmtInt(n))))));
  return el;
}

export class PluginCard {
  constructor(entry, installed, { admin, modelNames, actions, windowS, onChange, onMove, onRemove }) {
    this.entry = structuredClone(entry);
    this.name = String(entry.name ?? "");
    const uid = `plugin-${++serial}`;
    const title = this.entry.id ? `${this.name} (${this.entry.id})` : this.name;
    this.position = h("span", { class: "plugin-position muted" });
    this.enabled = h("input", { type: "checkbox", class: "plugin-enabled", checked: this.entry.enabled !== false });
    this.lists = LISTS.map(([key, label]) => {
      const el = h("input", { type: "text", class: `plugin-${key}`, spellcheck: "false", autocomplete: "off",
        placeholder: key === "models" ? "every model" : "any", "aria-describedby": key === "models" ? `${uid}-models-hint` : null });
      el.value = Array.isArray(this.entry[key]) ? this.entry[key].join(", ") : "";
      return [key, label, el];
    });
    this.idInput = h("input", { type: "text", class: "plugin-id", spellcheck: "false", autocomplete: "off", placeholder: "none" });
    this.idInput.value = this.entry.id ?? "";
    this.settings = new SettingsForm(installed?.schema ?? null, this.entry.with, { label: this.name, onChange });
    this.up = iconButton("plugin-up", "down", `Move ${title} up`, () => onMove(this, -1));
    this.down = iconButton("plugin-down", "down", `Move ${title} down`, () => onMove(this, 1));
    const remove = iconButton("plugin-remove", "trash", `Remove ${title}`, () => onRemove(this));
    let note = null;
    if (!installed) note = "This plugin is not installed in this gateway: the config would not load.";
    else if (installed.error) note = `Its settings could not be read: ${installed.error}`;
    const hint = modelNames.length ? ` Models: ${modelNames.join(", ")}.` : "";
    const body = h("fieldset", { class: "plugin-body", disabled: !admin },
      h("legend", { class: "sr-only" }, `${title}: scope and settings`),
      h("div", { class: "form-grid" },
        this.lists.map(([, label, el]) => h("label", { class: "field" }, h("span", null, label), el)),
        h("label", { class: "field" }, h("span", null, "Instance id"), this.idInput)),
      h("p", { id: `${uid}-models-hint`, class: "muted small" }, "Model names or globs, comma-separated; an empty " +
        `list: every request. Keys and tags narrow it further.${hint}`),
      h("h3", { class: "plugin-settings-title" }, "Settings"),
      this.settings.el);
    this.el = h("li", { class: "plugin-card", dataset: { plugin: this.name } },
      h("div", { class: "plugin-head" },
        h("h2", { id: `${uid}-title` }, this.position, " ", h("span", { class: "mono" }, title)),
        h("label", { class: "check" }, this.enabled, "Enabled",
          h("span", { class: "sr-only" }, ` ${title}`)),
        admin ? h("span", { class: "plugin-order" }, this.up, this.down, remove) : null),
      note ? h("p", { class: "form-error" }, note) : null,
      actionSummary(title, actions, windowS),
      body);
    this.enabled.disabled = !admin;
    this.el.addEventListener("input", (e) => {
      if (!this.settings.el.contains(e.target)) onChange();
    });
    this.el.addEventListener("change", (e) => {
      if (!this.settings.el.contains(e.target)) onChange();
    });
  }

  setPosition(i, count) {
    this.position.textContent = `${i + 1}.`;
    this.up.disabled = i === 0;
    this.down.disabled = i === count - 1;
    this.el.dataset.index = String(i);
  }

  // {entry} for the API's list, or {error}
  value({ sending = false } = {}) {
    const e = structuredClone(this.entry);
    const settings = this.settings.value({ sending });
    if (settings.error) return { error: settings.error };
    if (Object.keys(settings.with).length || Object.hasOwn(this.entry, "with")) e.with = settings.with;
    else delete e.with;
    for (const [key, , el] of this.lists) {
      const items = commaList(el.value);
      if (items.length) e[key] = items;
      else if (Object.hasOwn(this.entry, key)) e[key] = [];
      else delete e[key];
    }
    if (!this.enabled.checked) e.enabled = false;
    else if (Object.hasOwn(this.entry, "enabled")) e.enabled = true;
    else delete e.enabled;
    const id = this.idInput.value.trim();
    if (id) e.id = id;
    else delete e.id;
    return { entry: e };
  }
}

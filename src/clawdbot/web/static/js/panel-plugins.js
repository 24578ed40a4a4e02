// Plugins: the config file's `plugins:` chain in order (GET /panel/api/plugins), each with its scope
// and its settings as a form made from the plugin's schema (panel-plugin-card.js). Admins reorder,
// enable or disable, remove and add plugins, then preview the whole list's change to the file and
// apply it (POST /panel/api/plugins, panel-edit-flow.js). Viewers read the same cards, disabled.

import { h, clear } from "./dom.js";
import { showError } from "./panel-table.js";
import { reloadSummary } from "./panel-route-rows.js";
import { ConfigTab } from "./panel-config-tab.js";
import { EditFlow } from "./panel-edit-flow.js";
import { PluginCard } from "./panel-plugin-card.js";

export class PluginsTab extends ConfigTab {
  constructor(panel, api, { live }) {
    super(panel, api, live, "plugins");
    this.form = panel.querySelector("#plugins-form");
    this.list = panel.querySelector("#plugin-list");
    this.addRow = panel.querySelector("#plugin-add-row");
    this.addName = panel.querySelector("#plugin-add-name");
    this.installedList = panel.querySelector("#plugins-installed");
    this.actions = panel.querySelector("#plugins-actions");
    this.feedback = panel.querySelector("#plugins-feedback");
    this.discard = panel.querySelector("#plugins-discard");
    this.cards = [];
    this.data = null;
    this.touched = false;  // edited since loaded: showing the tab again keeps the edits
    this.flow = new EditFlow("plugins", {
      read: (opts) => this.read(opts),
      send: (body, apply) => api.request("POST", "/panel/api/plugins", { plugins: body.plugins, apply }),
      onApplied: (out) => this.applied(out),
      onReadOnly: (message) => this.lock(message),
      noun: "Plugins",
    });
    this.actions.prepend(...this.flow.buttons);
    this.feedback.append(...this.flow.feedback);
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (this.admin) this.flow.preview();
    });
    panel.querySelector("#plugin-add").addEventListener("click", () => this.add());
    this.discard.addEventListener("click", () => this.load(true));
  }

  show() {
    if (!this.touched) this.load();
  }

  reset() {
    this.touched = false;
    this.flow.readOnly = false;
    this.cards = [];
    this.data = null;
    clear(this.list);
    this.say("");
  }

  async load(discarding = false) {
    try {
      const [data, overview] = await Promise.all([
        this.api.get("/panel/api/plugins"),
        this.api.get("/panel/api/overview").catch(() => null),
      ]);
      showError(this.panel, "");
      this.data = data;
      this.modelNames = (overview?.models || []).map((m) => m.name);
      this.touched = false;
      this.discard.hidden = true;
      this.flow.clear();
      this.render();
      if (discarding) this.live.say("Changes discarded: the plugins as the config file has them.");
    } catch (err) {
      showError(this.panel, `Could not load the plugins: ${err.message}`);
    }
  }

  installed(name) {
    return (this.data?.installed || []).find((p) => p.name === name);
  }

  render() {
    const editable = this.admin && this.data?.editable !== false && !this.flow.readOnly;
    const reason = this.data?.editable === false ? this.data.reason || "the config file cannot be written" : null;
    this.readOnlyNote.textContent = reason ? `Plugins cannot be edited here: ${reason}` : "";
    this.readOnlyNote.hidden = !reason || !this.admin;
    this.addRow.hidden = !editable;
    this.actions.hidden = !this.admin;
    if (reason) this.flow.readOnly = true;
    clear(this.addName);
    for (const p of this.data?.installed || []) {
      this.addName.append(h("option", { value: p.name, disabled: Boolean(p.error) },
        p.error ? `${p.name} (cannot load)` : p.name));
    }
    clear(this.installedList);
    for (const p of this.data?.installed || []) {
      this.installedList.append(h("li", null, h("span", { class: "mono" }, p.name), " ",
        h("span", { class: "muted small" }, p.error ? `cannot load: ${p.error}` : p.source || "")));
    }
    this.cards = (this.data?.configured || []).map((entry) => this.card(entry, editable));
    this.layout();
    this.flow.changed();
  }

  card(entry, editable) {
    return new PluginCard(entry, this.installed(entry.name), {
      admin: editable, modelNames: this.modelNames || [],
      actions: this.data?.actions?.[entry.id || entry.name], windowS: this.data?.actions_window_s,
      onChange: () => this.changed(),
      onMove: (card, by) => this.move(card, by),
      onRemove: (card) => this.remove(card),
    });
  }

  layout() {
    clear(this.list);
    this.cards.forEach((c, i) => {
      c.setPosition(i, this.cards.length);
      this.list.append(c.el);
    });
    if (!this.cards.length) this.list.append(h("li", { class: "empty muted" }, "No plugins configured."));
  }

  changed(message) {
    this.touched = true;
    this.discard.hidden = false;
    if (message) this.live.say(message);
    this.flow.changed();
  }

  move(card, by) {
    const i = this.cards.indexOf(card);
    const j = i + by;
    if (i < 0 || j < 0 || j >= this.cards.length) return;
    [this.cards[i], this.cards[j]] = [this.cards[j], this.cards[i]];
    this.layout();
    this.changed(`${card.name} moved to position ${j + 1}.`);
    const same = by < 0 ? card.up : card.down;
    (same.disabled ? (by < 0 ? card.down : card.up) : same).focus();
  }

  remove(card) {
    const i = this.cards.indexOf(card);
    if (i < 0) return;
    this.cards.splice(i, 1);
    this.layout();
    this.changed(`${card.name} removed from the list; preview and apply to save.`);
    const next = this.cards[Math.min(i, this.cards.length - 1)];
    (next ? next.el.querySelector(".plugin-remove") : this.addName).focus();
  }

  add() {
    const name = this.addName.value;
    if (!name) return;
    const card = this.card({ name }, true);
    this.cards.push(card);
    this.layout();
    this.changed(`${name} added at position ${this.cards.length}.`);
    card.enabled.focus();
  }

  // {body: {plugins}} or {error}
  read({ sending = false } = {}) {
    const plugins = [];
    for (const card of this.cards) {
      const v = card.value({ sending });
      if (v.error) return { error: v.error };
      plugins.push(v.entry);
    }
    return { body: { plugins } };
  }

  lock(message) {
    this.data = { ...(this.data || {}), editable: false, reason: message };
    this.readOnlyNote.textContent = `Plugins cannot be edited here: ${message}`;
    this.readOnlyNote.hidden = false;
    this.addRow.hidden = true;
  }

  async applied(out) {
    const warning = out.warning ? ` Warning: ${out.warning}.` : "";
    this.say(`Applied the plugins: the config file is written and ${reloadSummary(out.reload)}.${warning}`);
    this.discard.hidden = true;
    await this.load();
    this.notice.focus();
  }
}

// Keys: the virtual keys with their owner (user, team), limits, budget and what they spent in the
// budget's period (all time without a budget), and below them the Users and Teams sections
// (panel-users-teams.js). Admins create keys (the new key is shown once), edit a key's limits,
// budget, owners, metadata and panel role (panel-keys-editor.js) and revoke it. Every role may open
// a key's, user's or team's daily spend chart (panel-spend-chart.js). Each list is paged and
// filtered by the server (panel-keys-pager.js): the newest 500 first, Show more for the next 500.

import { h, clear, copyText } from "./dom.js";
import { fmtTime } from "./panel-format.js";
import { fillTable, showError, tag } from "./panel-table.js";
import { keyStatus, limitsText, readKeyForm } from "./panel-keys-form.js";
import { budgetText, nameOf, nearLimit, spendByPeriod, spendCell, spentIn } from "./panel-keys-spend.js";
import { EditorSlot, RecordEditor } from "./panel-keys-editor.js";
import { OwnerSection } from "./panel-users-teams.js";
import { SpendCard } from "./panel-spend-chart.js";
import { ListPager } from "./panel-keys-pager.js";
import { roleOf } from "./panel-keys-meta.js";

export class KeysTab {
  constructor(panel, api, { confirm, live }) {
    Object.assign(this, { panel, api, confirm, live });
    this.admin = false;
    this.data = { keys: [], users: [], teams: [] };
    this.models = [];
    this.table = panel.querySelector("#keys-table");
    this.form = panel.querySelector("#key-create-form");
    this.formError = this.form.querySelector(".form-error");
    this.modelChecks = panel.querySelector("#key-models");
    this.newKey = panel.querySelector("#new-key");
    this.newKeyValue = panel.querySelector("#new-key-value");
    this.notice = panel.querySelector("#keys-notice");
    this.editor = new EditorSlot(panel.querySelector("#key-editor-slot"));
    this.chart = new SpendCard(panel.querySelector("#key-spend"), api, {
      kind: "key", onClose: (id) => { this.markRows(); this.rowButton(id, ".key-spend-open")?.focus(); },
    });
    const fail = (text) => showError(panel, text);
    const changed = () => this.rerender().catch((err) => fail(`Could not load the keys: ${err.message}`));
    const pager = (plural, table, noun) => new ListPager(plural, table.closest(".table-wrap"), api,
      { noun, changed, fail });
    this.lists = { keys: pager("keys", this.table, "key"), users: pager("users", panel.querySelector("#users-table"), "user"),
      teams: pager("teams", panel.querySelector("#teams-table"), "team") };
    const shared = { api, confirm, say: (text) => this.say(text), fail, reload: () => this.load(), context: () => this.context() };
    this.users = new OwnerSection("user", panel.querySelector("#users-section"), shared);
    this.teams = new OwnerSection("team", panel.querySelector("#teams-section"), shared);
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.create();
    });
    panel.querySelector("#new-key-copy").addEventListener("click", (e) => this.copyKey(e.currentTarget));
    panel.querySelector("#new-key-done").addEventListener("click", () => this.dismissKey());
    panel.querySelector('[data-refresh="keys"]').addEventListener("click", () => this.load());
  }

  setRole(role) {
    this.admin = role === "admin";
    this.form.hidden = !this.admin;
    this.users.setRole(this.admin);
    this.teams.setRole(this.admin);
    if (!this.admin) this.editor.close();
  }

  show() {
    this.load();
    if (this.admin) this.loadModels();
  }

  hide() {}

  // the session ended: a new key still on screen goes with it, and so do open editors
  reset() {
    this.newKeyValue.value = "";
    this.newKey.hidden = true;
    this.editor.close();
    this.users.reset();
    this.teams.reset();
    this.chart.close();
    for (const list of Object.values(this.lists)) list.reset();
    this.say("");
  }

  say(text) {
    this.notice.textContent = text;
    this.notice.hidden = !text;
    if (text) this.live.say(text);
  }

  // the editors' choices: owners to pick, models to allow
  context() {
    return { users: this.data.users, teams: this.data.teams, models: this.models };
  }

  // each list again (with its filter, as many pages as it showed), then their spend
  async load() {
    try {
      const fresh = await Promise.all(Object.values(this.lists).map((list) => list.first({ keep: true })));
      if (fresh.every(Boolean)) await this.rerender();
    } catch (err) {
      showError(this.panel, `Could not load the keys: ${err.message}`);
    }
  }

  // the records the lists hold (after a load, Show more or a filter) with their spend
  async rerender() {
    const [keys, users, teams] = [this.lists.keys.records, this.lists.users.records, this.lists.teams.records];
    const [keySpend, userSpend, teamSpend] = await Promise.all([
      spendByPeriod(this.api, "key", keys), spendByPeriod(this.api, "user", users), spendByPeriod(this.api, "team", teams)]);
    showError(this.panel, "");
    this.data = { keys, users, teams };
    const byId = (records) => new Map(records.map((r) => [r.id, r]));
    const owners = { usersById: byId(users), teamsById: byId(teams) };
    // a count over keys (or users) is of those loaded: said so when some are not
    const partial = { keys: !this.lists.keys.complete || !!this.lists.keys.filter,
      users: !this.lists.users.complete || !!this.lists.users.filter };
    this.render(keys, keySpend, owners);
    const common = { teamsById: owners.teamsById, keys, users, partial };
    this.users.render(users, userSpend, { ...common, filtered: !!this.lists.users.filter });
    this.teams.render(teams, teamSpend, { ...common, filtered: !!this.lists.teams.filter });
    await Promise.all([this.chart.refresh(keys), this.users.chart.refresh(users), this.teams.chart.refresh(teams)]);
  }

  columns(spent, { usersById, teamsById }) {
    const owner = (k) => {
      const user = nameOf(usersById, k.user_id);
      const viaUser = !k.team_id && k.user_id ? usersById.get(k.user_id)?.team_id : null;
      const team = nameOf(teamsById, k.team_id || viaUser);
      if (!user && !team) return "–";
      return [user ? h("div", { class: "owner-user" }, h("span", { class: "muted" }, "user "), user) : null,
        team ? h("div", { class: "owner-team" }, h("span", { class: "muted" }, viaUser ? "team (user's) " : "team "), team) : null];
    };
    return [
      { label: "Name", cell: (k) => [h("div", null, k.name || "(unnamed)", roleTag(k)), h("div", { class: "muted small mono" }, k.id),
        h("div", { class: "muted small mono" }, k.hint)] },
      { label: "Owner", cell: owner },
      { label: "Models", cls: "wrap", cell: (k) => (k.allowed_models?.length ? k.allowed_models.map((m) => tag(m)) : "all") },
      { label: "Limits", cell: (k) => limitsText(k) },
      { label: "Budget", cell: (k) => budgetText(k) },
      // the chart's button by the amount it details, for every role
      { label: "Spend", num: true, cell: (k) => [h("div", null, spendCell(spentIn(spent, k), k.budget_usd)),
        h("div", { class: "row-actions end" }, h("button", { type: "button", class: "text-button small-button key-spend-open",
          "aria-controls": "key-spend", "aria-expanded": "false", onclick: () => this.openChart(k) },
        "Daily spend", h("span", { class: "sr-only" }, ` of the key ${k.name || k.id}`)))] },
      { label: "Status", cell: (k) => statusCell(k) },
      { label: "Created", cell: (k) => fmtTime(k.created_at) },
      this.admin ? { label: "Actions", cell: (k) => this.actions(k) } : null,
    ].filter(Boolean);
  }

  actions(k) {
    if (keyStatus(k) === "revoked") return "";
    return h("div", { class: "row-actions" },
      h("button", { type: "button", class: "text-button edit-key", "aria-controls": "key-editor-slot",
        "aria-expanded": "false", onclick: () => this.openEditor(k) }, "Edit", h("span", { class: "sr-only" }, ` the key ${k.name || k.id}`)),
      h("button", { type: "button", class: "text-button danger revoke-key",
        "aria-label": `Revoke key ${k.name || k.id}`, onclick: () => this.revoke(k) }, "Revoke"));
  }

  render(keys, spent, owners) {
    fillTable(this.table, this.columns(spent, owners), keys, {
      empty: this.lists.keys.filter ? "No key matches the filter." : "No keys yet.",
      row: (k, tr) => {
        tr.dataset.keyId = k.id;
        if (nearLimit(k, spentIn(spent, k))) tr.classList.add("near-limit");
        if (keyStatus(k) !== "active") tr.classList.add("revoked");
      },
    });
    this.markRows();
  }

  // which key's editor and chart are open: its buttons say so, its row is marked
  markRows() {
    for (const tr of this.table.querySelectorAll("tbody tr[data-key-id]")) {
      const id = tr.dataset.keyId;
      tr.querySelector(".edit-key")?.setAttribute("aria-expanded", String(this.editor.id === id));
      tr.querySelector(".key-spend-open")?.setAttribute("aria-expanded", String(this.chart.id === id));
      tr.classList.toggle("editing", this.editor.id === id);
      tr.classList.toggle("charted", this.chart.id === id);
    }
  }

  rowButton(id, selector) {
    const tr = [...this.table.querySelectorAll("tbody tr[data-key-id]")].find((row) => row.dataset.keyId === id);
    return tr?.querySelector(selector) || null;
  }

  openEditor(k) {
    this.editor.open(new RecordEditor("key", k, this.context(), {
      save: (body) => this.api.adminWrite("PATCH", `keys/${encodeURIComponent(k.id)}`, body),
      close: (saved) => this.editorClosed(k, saved),
    }));
    this.markRows();
  }

  async editorClosed(k, saved) {
    this.editor.close();
    if (saved) {
      this.say(`Saved the key ${k.name || k.id}.`);
      await this.load();
    }
    this.markRows();
    this.rowButton(k.id, ".edit-key")?.focus();
  }

  async openChart(k) {
    const opening = this.chart.open(k);
    this.markRows();
    await opening;
  }

  async loadModels() {
    try {
      const o = await this.api.get("/panel/api/overview");
      this.models = (o.models || []).map((m) => m.name);
      const checked = new Set([...this.modelChecks.querySelectorAll("input:checked")].map((i) => i.value));
      const legend = this.modelChecks.querySelector("legend");
      clear(this.modelChecks).append(legend);
      for (const m of this.models) {
        this.modelChecks.append(h("label", { class: "check" },
          h("input", { type: "checkbox", name: "model", value: m, checked: checked.has(m) }), m));
      }
    } catch { /* the form still works: no model ticked means every model */ }
  }

  async create() {
    const { body, error } = readKeyForm(this.form);
    this.setFormError(error);
    if (error) return;
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const out = await this.api.adminWrite("POST", "keys", body);
      this.form.reset();
      this.showKey(out);
      await this.load();
    } catch (err) {
      this.setFormError(`Could not create the key: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  }

  setFormError(message) {
    this.formError.textContent = message || "";
    this.formError.hidden = !message;
  }

  showKey(out) {
    this.newKeyValue.value = out.key;
    this.panel.querySelector("#new-key-name").textContent = out.name ? `“${out.name}”` : "";
    this.newKey.hidden = false;
    this.newKey.focus();
    this.live.say("Key created. It is shown once: copy it now.");
  }

  dismissKey() {
    this.newKeyValue.value = "";  // the page keeps no copy once it is dismissed
    this.newKey.hidden = true;
    this.form.querySelector("#key-name").focus();
  }

  async copyKey(button) {
    const ok = await copyText(this.newKeyValue.value);
    button.textContent = ok ? "Copied" : "Copy failed";
    button.classList.toggle("copied", ok);
    setTimeout(() => { button.textContent = "Copy"; button.classList.remove("copied"); }, 1500);
  }

  async revoke(k) {
    const ok = await this.confirm({
      title: "Revoke this key?",
      message: `“${k.name || k.id}” (${k.id}) stops working at once, on every replica. This cannot be undone.`,
      confirmLabel: "Revoke",
    });
    if (!ok) return;
    try {
      await this.api.adminWrite("POST", `keys/${encodeURIComponent(k.id)}/revoke`, {});
      if (this.editor.id === k.id) this.editor.close();
      this.live.say(`Key ${k.name || k.id} revoked.`);
      await this.load();
    } catch (err) {
      showError(this.panel, `Could not revoke the key: ${err.message}`);
    }
  }
}

// an admin or viewer key says so by its name
function roleTag(k) {
  const role = roleOf(k.metadata);
  return role === "none" ? null : [" ", h("span", { class: "tag key-role" }, role)];
}

function statusCell(k) {
  const status = keyStatus(k);
  const kind = { active: "ok", revoked: "bad", expired: "warn" }[status];
  const el = tag(status, kind);
  if (k.expires_at && status === "active") return [el, h("div", { class: "muted small" }, `expires ${fmtTime(k.expires_at)}`)];
  return el;
}

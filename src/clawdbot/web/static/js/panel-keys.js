// Keys: the virtual keys with their limits, budget and what they spent in the budget's period
// (all time without a budget); admins create keys (the new key is shown once) and revoke them.

import { h, clear, copyText } from "./dom.js";
import { fmtTime, fmtUsd, utcDay, utcMonthStart } from "./panel-format.js";
import { fillTable, showError, tag } from "./panel-table.js";
import { keyStatus, limitsText, readKeyForm } from "./panel-keys-form.js";

const NEAR_LIMIT = 0.8;
const PERIOD_SINCE = { day: () => utcDay(), month: () => utcMonthStart(), total: () => null };

export class KeysTab {
  constructor(panel, api, { confirm, live }) {
    Object.assign(this, { panel, api, confirm, live });
    this.admin = false;
    this.table = panel.querySelector("#keys-table");
    this.form = panel.querySelector("#key-create-form");
    this.formError = this.form.querySelector(".form-error");
    this.modelChecks = panel.querySelector("#key-models");
    this.newKey = panel.querySelector("#new-key");
    this.newKeyValue = panel.querySelector("#new-key-value");
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
  }

  show() {
    this.load();
    if (this.admin) this.loadModels();
  }

  hide() {}

  // the session ended: a new key still on screen goes with it
  reset() {
    this.newKeyValue.value = "";
    this.newKey.hidden = true;
  }

  async load() {
    try {
      const keys = (await this.api.admin("keys", { limit: 1000 })).data || [];
      const spent = await this.spendByPeriod(keys);
      showError(this.panel, "");
      this.render(keys, spent);
    } catch (err) {
      showError(this.panel, `Could not load the keys: ${err.message}`);
    }
  }

  // {period: Map(key id -> USD)} for "total" and each budget period in use; null when the spend
  // report is unavailable (memory:// database).
  async spendByPeriod(keys) {
    const periods = new Set(["total"]);
    for (const k of keys) if (k.budget_usd != null && k.budget_period) periods.add(k.budget_period);
    const out = {};
    try {
      await Promise.all([...periods].map(async (p) => {
        const report = await this.api.admin("spend", { group_by: "key", since: PERIOD_SINCE[p](), limit: 1000 });
        out[p] = new Map((report.data || []).map((r) => [r.group, r.cost_usd]));
      }));
    } catch {
      return null;
    }
    return out;
  }

  columns(spent) {
    const spendOf = (k) => {
      if (!spent) return null;
      const period = k.budget_usd != null && k.budget_period ? k.budget_period : "total";
      return spent[period]?.get(k.id) ?? 0;
    };
    const cols = [
      { label: "Name", cell: (k) => [h("div", null, k.name || "(unnamed)"), h("div", { class: "muted small mono" }, k.hint)] },
      { label: "ID", cell: (k) => h("span", { class: "mono" }, k.id) },
      { label: "Models", cls: "wrap", cell: (k) => (k.allowed_models?.length ? k.allowed_models.map((m) => tag(m)) : "all") },
      { label: "Limits", cell: (k) => limitsText(k) },
      { label: "Budget", cell: (k) => (k.budget_usd != null ? `${fmtUsd(k.budget_usd)} / ${k.budget_period || "total"}` : "–") },
      { label: "Spend", num: true, cell: (k) => spendCell(spendOf(k), k.budget_usd) },
      { label: "Status", cell: (k) => statusCell(k) },
      { label: "Created", cell: (k) => fmtTime(k.created_at) },
    ];
    if (this.admin) {
      cols.push({ label: "Actions", cell: (k) => (keyStatus(k) === "revoked" ? "" : h("button", {
        type: "button", class: "text-button danger revoke-key", "aria-label": `Revoke key ${k.name || k.id}`,
        onclick: () => this.revoke(k),
      }, "Revoke")) });
    }
    return { cols, spendOf };
  }

  render(keys, spent) {
    const { cols, spendOf } = this.columns(spent);
    fillTable(this.table, cols, keys, {
      empty: "No keys yet.",
      row: (k, tr) => {
        tr.dataset.keyId = k.id;
        const used = spendOf(k);
        if (k.budget_usd > 0 && used != null && used / k.budget_usd >= NEAR_LIMIT) tr.classList.add("near-limit");
        if (keyStatus(k) !== "active") tr.classList.add("revoked");
      },
    });
  }

  async loadModels() {
    try {
      const o = await this.api.get("/panel/api/overview");
      const checked = new Set([...this.modelChecks.querySelectorAll("input:checked")].map((i) => i.value));
      const legend = this.modelChecks.querySelector("legend");
      clear(this.modelChecks).append(legend);
      for (const m of o.models || []) {
        this.modelChecks.append(h("label", { class: "check" },
          h("input", { type: "checkbox", name: "model", value: m.name, checked: checked.has(m.name) }), m.name));
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
      this.live.say(`Key ${k.name || k.id} revoked.`);
      await this.load();
    } catch (err) {
      showError(this.panel, `Could not revoke the key: ${err.message}`);
    }
  }
}

function spendCell(used, budget) {
  if (used == null) return "–";
  if (!(budget > 0)) return fmtUsd(used);
  const share = used / budget;
  const pct = `${Math.round(share * 100)}%`;
  if (share >= 1) return [fmtUsd(used), " ", tag(`${pct}: budget used up`, "bad")];
  if (share >= NEAR_LIMIT) return [fmtUsd(used), " ", tag(pct, "warn")];
  return `${fmtUsd(used)} (${pct})`;
}

function statusCell(k) {
  const status = keyStatus(k);
  const kind = { active: "ok", revoked: "bad", expired: "warn" }[status];
  const el = tag(status, kind);
  if (k.expires_at && status === "active") return [el, h("div", { class: "muted small" }, `expires ${fmtTime(k.expires_at)}`)];
  return el;
}

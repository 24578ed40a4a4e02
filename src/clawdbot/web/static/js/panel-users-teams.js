// The Keys tab's Users and Teams sections: each lists its records (GET /panel/api/admin/users or
// /teams) with their limits, budget and what they spent in its period (>= 80% of the budget
// highlighted), and how many keys (and, for a team, users) they hold. Admins create one (New user,
// New team), edit its limits and budget (panel-keys-editor.js) and delete it after a confirmation.
// Every role opens a record's Daily spend chart (panel-spend-chart.js), in a card above its table.
// The Keys tab loads the data (keys, users, teams and their spend together) and calls render().

import { h } from "./dom.js";
import { fmtInt, fmtTime } from "./panel-format.js";
import { fillTable } from "./panel-table.js";
import { limitsText } from "./panel-keys-form.js";
import { budgetText, nameOf, nearLimit, spendCell, spentIn } from "./panel-keys-spend.js";
import { EditorSlot, RecordEditor } from "./panel-keys-editor.js";
import { SpendCard } from "./panel-spend-chart.js";

const GONE = {
  user: "Its keys keep working, no longer counted against this user's limits and budget; its spend stays in the " +
    "reports. This cannot be undone.",
  team: "Its users and keys keep working, no longer counted against this team's limits and budget; its spend stays " +
    "in the reports. This cannot be undone.",
};

export class OwnerSection {
  // kind: "user" or "team"; root: its <section> (#users-section, #teams-section); reload(): the Keys
  // tab loads everything again; context(): {users, teams, models} for the editor; say(text): the
  // notice; fail(text): the tab's error line
  constructor(kind, root, { api, confirm, say, fail, reload, context }) {
    Object.assign(this, { kind, root, api, confirm, say, fail, reload, context });
    this.plural = `${kind}s`;
    this.admin = false;
    this.table = root.querySelector(`#${this.plural}-table`);
    this.addButton = root.querySelector(`#${this.plural}-add`);
    this.editor = new EditorSlot(root.querySelector(`#${kind}-editor-slot`));
    this.addButton.addEventListener("click", () => this.open(null));
    const box = h("section", { id: `${kind}-spend`, class: "key-spend", hidden: true, tabindex: "-1",
      "aria-labelledby": `${kind}-spend-title` });
    this.partial = h("p", { class: "muted small partial-counts", hidden: true });
    this.table.closest(".table-wrap").before(box, this.partial);
    this.chart = new SpendCard(box, api, { kind, onClose: (id) => {
      this.markButtons();
      this.rowOf(id)?.querySelector(`.${kind}-spend-open`)?.focus();
    } });
  }

  setRole(admin) {
    this.admin = admin;
    this.addButton.hidden = !admin;
    if (!admin) this.editor.close();
  }

  reset() {
    this.editor.close();
    this.chart.close();
    this.markButtons();
  }

  // records: this kind's; spent: spendByPeriod's; teamsById; keys and users (the counts); partial:
  // {keys, users} true when the Keys tab holds only some of them (a page, a filter); filtered: this list has
  // a filter
  render(records, spent, { teamsById, keys, users, partial, filtered }) {
    const teamOf = new Map(users.map((u) => [u.id, u.team_id]));
    // a key counts for its user, and for its own team, else its user's (as its limits do)
    const ownerOf = this.kind === "user" ? (k) => k.user_id : (k) => k.team_id || teamOf.get(k.user_id);
    const countOf = (list, idOf) => {
      const counts = new Map();
      for (const r of list) if (idOf(r)) counts.set(idOf(r), (counts.get(idOf(r)) || 0) + 1);
      return counts;
    };
    const keyCount = countOf(keys.filter((k) => !k.revoked_at), ownerOf);
    const userCount = this.kind === "team" ? countOf(users, (u) => u.team_id) : null;
    const cols = [
      { label: "Name", cell: (r) => [h("div", null, r.name), h("div", { class: "muted small mono" }, r.id)] },
      this.kind === "user"
        ? { label: "Team", cell: (r) => nameOf(teamsById, r.team_id) ?? "–" }
        : { label: "Users", num: true, cell: (r) => fmtInt(userCount.get(r.id) || 0) },
      { label: "Active keys", num: true, cell: (r) => fmtInt(keyCount.get(r.id) || 0) },
      { label: "Limits", cell: (r) => limitsText(r) },
      { label: "Budget", cell: (r) => budgetText(r) },
      { label: "Spend", num: true, cell: (r) => [h("div", null, spendCell(spentIn(spent, r), r.budget_usd)),
        h("div", { class: "row-actions end" }, h("button", { type: "button",
          class: `text-button small-button ${this.kind}-spend-open`, "aria-controls": `${this.kind}-spend`,
          "aria-expanded": "false", onclick: () => this.openChart(r) },
        "Daily spend", h("span", { class: "sr-only" }, ` of the ${this.kind} ${r.name}`)))] },
      { label: "Created", cell: (r) => fmtTime(r.created_at) },
    ];
    if (this.admin) cols.push({ label: "Actions", cell: (r) => this.actions(r) });
    fillTable(this.table, cols, records, {
      empty: filtered ? `No ${this.kind} matches the filter.` : `No ${this.plural} yet.`,
      row: (r, tr) => {
        tr.dataset.recordId = r.id;
        if (nearLimit(r, spentIn(spent, r))) tr.classList.add("near-limit");
      },
    });
    const counted = [partial?.keys ? "keys" : null, this.kind === "team" && partial?.users ? "users" : null].filter(Boolean);
    this.partial.textContent = counted.length ? `The counts of ${counted.join(" and ")} are of those loaded above ` +
      "(a filter or more to show)." : "";
    this.partial.hidden = !counted.length || !records.length;
    this.markButtons();
  }

  async openChart(r) {
    const opening = this.chart.open(r);
    this.markButtons();
    await opening;
  }

  actions(r) {
    const name = h("span", { class: "sr-only" }, ` the ${this.kind} ${r.name}`);
    return h("div", { class: "row-actions" },
      h("button", { type: "button", class: `text-button edit-${this.kind}`, "aria-controls": `${this.kind}-editor-slot`,
        "aria-expanded": "false", onclick: () => this.open(r) }, "Edit", name),
      h("button", { type: "button", class: `text-button danger delete-${this.kind}`, onclick: () => this.remove(r) },
        "Delete", name.cloneNode(true)));
  }

  // the Edit buttons say which record's editor is open
  markButtons() {
    for (const tr of this.table.querySelectorAll("tbody tr[data-record-id]")) {
      const open = this.editor.id === tr.dataset.recordId;
      const charted = this.chart.id === tr.dataset.recordId;
      tr.querySelector(`.edit-${this.kind}`)?.setAttribute("aria-expanded", String(open));
      tr.querySelector(`.${this.kind}-spend-open`)?.setAttribute("aria-expanded", String(charted));
      tr.classList.toggle("editing", open);
      tr.classList.toggle("charted", charted);
    }
    this.addButton.setAttribute("aria-expanded", String(this.editor.editor !== null && this.editor.id === null));
  }

  rowOf(id) {
    return [...this.table.querySelectorAll("tbody tr[data-record-id]")].find((tr) => tr.dataset.recordId === id) || null;
  }

  open(record) {
    const path = record ? `${this.plural}/${encodeURIComponent(record.id)}` : this.plural;
    const editor = new RecordEditor(this.kind, record, this.context(), {
      save: (body) => this.api.adminWrite(record ? "PATCH" : "POST", path, body),
      close: (saved, out) => this.closed(record, saved, out),
    });
    this.editor.open(editor);
    this.markButtons();
  }

  async closed(record, saved, out) {
    this.editor.close();
    if (saved) {
      this.say(`${record ? "Saved" : "Created"} the ${this.kind} ${out?.name || record?.name || ""}.`);
      await this.reload();
    }
    this.markButtons();
    const id = record ? record.id : out?.id;
    const button = id ? this.rowOf(id)?.querySelector(`.edit-${this.kind}`) : null;
    (button || this.addButton).focus();
  }

  async remove(r) {
    const ok = await this.confirm({ title: `Delete the ${this.kind} “${r.name}”?`, message: GONE[this.kind],
      confirmLabel: "Delete" });
    if (!ok) return;
    try {
      await this.api.adminWrite("DELETE", `${this.plural}/${encodeURIComponent(r.id)}`, {});
      if (this.editor.id === r.id) this.editor.close();
      if (this.chart.id === r.id) this.chart.close();
      this.say(`Deleted the ${this.kind} ${r.name}.`);
      await this.reload();
      this.addButton.focus();
    } catch (err) {
      this.fail(`Could not delete the ${this.kind} ${r.name}: ${err.message}`);
    }
  }
}

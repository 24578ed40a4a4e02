// The route editor's parts: the deployments table (a row per deployment: service, model, weight,
// priority, move up or down, remove) and the diff of the config file as text lines.

import { h, clear, icon } from "./dom.js";

export const STRATEGIES = ["ordered", "round_robin", "weighted", "least_inflight", "latency", "cost", "rules"];

function iconButton(cls, name, label, onclick, disabled) {
  return h("button", { type: "button", class: `icon-button ${cls}`, "aria-label": label, title: label, disabled, onclick },
    icon(name));
}

function options(select, values, selected) {
  for (const v of values) select.append(h("option", { value: v, selected: v === selected }, v));
  return select;
}

// The deployments as rows of a table, kept in `this.deps` ({service, model, weight, priority} with
// the inputs' text for weight and priority); onChange: any edit.
export class DeploymentRows {
  constructor(table, services, deps, { onChange, say }) {
    Object.assign(this, { table, services, onChange, say });
    this.deps = deps.map((d) => ({
      service: d.service || "", model: d.model || "",
      weight: d.weight === null || d.weight === undefined ? "1" : String(d.weight),
      priority: d.priority === null || d.priority === undefined ? "0" : String(d.priority),
    }));
    this.body = h("tbody");
    table.append(h("thead", null, h("tr", null,
      ["#", "Service", "Model", "Weight", "Priority"].map((c) => h("th", { scope: "col" }, c)),
      h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Order and removal")))), this.body);
    this.render();
  }

  add() {
    this.deps.push({ service: this.services[0] || "", model: "", weight: "1", priority: "0" });
    this.render();
    this.changed(`Deployment ${this.deps.length} added.`);
    this.body.lastElementChild?.querySelector(".dep-service")?.focus();
  }

  move(i, by) {
    const j = i + by;
    if (j < 0 || j >= this.deps.length) return;
    [this.deps[i], this.deps[j]] = [this.deps[j], this.deps[i]];
    this.render();
    this.changed(`Deployment moved to position ${j + 1}.`);
    const row = this.body.children[j];
    const same = row.querySelector(by < 0 ? ".dep-up" : ".dep-down");
    (same.disabled ? row.querySelector(by < 0 ? ".dep-down" : ".dep-up") : same)?.focus();
  }

  remove(i) {
    this.deps.splice(i, 1);
    this.render();
    this.changed(`Deployment ${i + 1} removed.`);
    const row = this.body.children[Math.min(i, this.deps.length - 1)];
    (row ? row.querySelector(".dep-remove") : this.table.closest("form")?.querySelector("#route-add"))?.focus();
  }

  changed(message) {
    if (message) this.say(message);
    this.onChange();
  }

  render() {
    clear(this.body);
    const last = this.deps.length - 1;
    this.deps.forEach((d, i) => this.body.append(this.row(d, i, last)));
    if (!this.deps.length) {
      this.body.append(h("tr", null, h("td", { colspan: "6", class: "muted" }, "No deployments: add one.")));
    }
  }

  row(d, i, last) {
    const n = i + 1;
    const known = this.services.includes(d.service) || !d.service ? this.services : [d.service, ...this.services];
    const service = options(h("select", { class: "dep-service", "aria-label": `Service of deployment ${n}` }), known, d.service);
    service.addEventListener("change", () => { d.service = service.value; this.changed(); });
    const input = (cls, label, key, attrs) => {
      const el = h("input", { class: cls, "aria-label": label, ...attrs });
      el.value = d[key];
      el.addEventListener("input", () => { d[key] = el.value; this.changed(); });
      return el;
    };
    return h("tr", { class: "deployment-row", dataset: { index: String(i) } },
      h("td", { class: "num muted" }, String(n)),
      h("td", null, service),
      h("td", null, input("dep-model", `Model of deployment ${n}`, "model",
        { type: "text", placeholder: "as asked", spellcheck: "false", maxlength: "256" })),
      h("td", null, input("dep-weight", `Weight of deployment ${n}`, "weight",
        { type: "number", min: "0", step: "any", inputmode: "decimal", required: true })),
      h("td", null, input("dep-priority", `Priority of deployment ${n}`, "priority",
        { type: "number", step: "1", inputmode: "numeric", required: true })),
      h("td", { class: "dep-actions" },  // .dep-up's arrow is the down arrow turned (panel.css)
        iconButton("dep-up", "down", `Move deployment ${n} up`, () => this.move(i, -1), i === 0),
        iconButton("dep-down", "down", `Move deployment ${n} down`, () => this.move(i, 1), i === last),
        iconButton("dep-remove", "trash", `Remove deployment ${n}`, () => this.remove(i))));
  }

  // [{service, model, weight, priority}] for the API, or a message saying what is wrong.
  value() {
    const out = [];
    for (const [i, d] of this.deps.entries()) {
      const n = i + 1;
      const weight = Number(d.weight);
      const priority = Number(d.priority);
      if (!d.service) return { error: `Deployment ${n}: choose a service.` };
      if (d.weight.trim() === "" || !Number.isFinite(weight) || weight < 0) {
        return { error: `Deployment ${n}: the weight is a number of 0 or more.` };
      }
      if (d.priority.trim() === "" || !Number.isInteger(priority)) {
        return { error: `Deployment ${n}: the priority is a whole number.` };
      }
      out.push({ service: d.service, model: d.model.trim() || null, weight, priority });
    }
    return { deployments: out };
  }
}

export function strategySelect(id, selected) {
  const known = STRATEGIES.includes(selected) || !selected ? STRATEGIES : [selected, ...STRATEGIES];
  return options(h("select", { id, name: "strategy" }), known, selected || "ordered");
}

// A unified diff as lines of text: added lines .diff-add, removed .diff-del, hunk heads .diff-hunk.
export function renderDiff(pre, text) {
  clear(pre);
  const lines = (text || "").split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  for (const line of lines) {
    let cls = "diff-ctx";
    if (line.startsWith("+++") || line.startsWith("---")) cls = "diff-file";
    else if (line.startsWith("@@")) cls = "diff-hunk";
    else if (line.startsWith("+")) cls = "diff-add";
    else if (line.startsWith("-")) cls = "diff-del";
    pre.append(h("span", { class: `diff-line ${cls}` }, line), "\n");
  }
}

// The reload's summary ({generation, services, models, new_services}) in words.
export function reloadSummary(reload) {
  if (!reload || typeof reload !== "object") return "the gateway reloaded its config";
  const count = (list, one) => {
    const n = Array.isArray(list) ? list.length : 0;
    return `${n} ${one}${n === 1 ? "" : "s"}`;
  };
  const fresh = Array.isArray(reload.new_services) && reload.new_services.length
    ? `; new: ${reload.new_services.join(", ")}` : "";
  return `the gateway reloaded its config (generation ${reload.generation ?? "?"}: ` +
    `${count(reload.services, "service")}, ${count(reload.models, "model")}${fresh})`;
}

// Services: the config file's `services:` as cards (type, endpoint, model id, the auth key as the
// ${VAR} it names, timeouts, headers' names, breaker, limits, TLS, proxy), from GET /panel/api/services. Admins add, edit and remove one
// (panel-service-editor.js): test the connection, preview the change, apply it; a gateway without a
// file it may write says why and offers no editing. Viewers read.

import { h, clear } from "./dom.js";
import { MASK, orDash } from "./panel-format.js";
import { showError, tag } from "./panel-table.js";
import { reloadSummary } from "./panel-route-rows.js";
import { CardsTab } from "./panel-config-tab.js";
import { ServiceEditor } from "./panel-service-editor.js";

const VERB = { add: "Added", edit: "Changed", remove: "Removed", rename: "Renamed" };

function authText(auth) {
  if (!auth || typeof auth !== "object") return "none";
  const key = auth.key === undefined || auth.key === null ? "no key" : auth.key === MASK
    ? "a key written into the file (masked)" : String(auth.key);
  return auth.type ? `${key} (${auth.type})` : key;
}

// a settings mapping as "key value, ..." (breaker, limits, tls), or null when the file says nothing
function settingsText(obj) {
  if (!obj || typeof obj !== "object" || !Object.keys(obj).length) return null;
  return Object.entries(obj).map(([k, v]) => `${k.replaceAll("_", " ")} ${typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(", ");
}

function timeoutsText(t) {
  if (!t || typeof t !== "object" || !Object.keys(t).length) return "defaults";
  return Object.entries(t).map(([k, v]) => `${k.replace("_", " ")} ${v} s`).join(", ");
}

export class ServicesTab extends CardsTab {
  constructor(panel, api, { confirm, live }) {
    super(panel, api, live, "services", { kind: "service", noun: "Services" });
    this.confirm = confirm;
    this.list = panel.querySelector("#service-list");
    this.fresh = panel.querySelector("#service-new");
    this.addButton = panel.querySelector("#services-add");
    this.addButton.addEventListener("click", () => this.open(null, "add"));
    this.data = null;
  }

  reset() {
    this.editor = null;
    this.readOnly = null;
    this.say("");
  }

  async load() {
    try {
      this.data = await this.api.get("/panel/api/services");
      showError(this.panel, "");
      if (this.data.editable === false) this.readOnly = this.data.reason || "the config file cannot be written";
      this.render();
    } catch (err) {
      showError(this.panel, `Could not load the services: ${err.message}`);
    }
  }

  services() {
    return Array.isArray(this.data?.services) ? this.data.services : [];
  }

  render() {
    const services = this.services();
    if (this.editor && this.editor.mode !== "add" && !services.some((s) => s.name === this.editor.name)) this.editor = null;
    this.addButton.hidden = !this.admin;
    this.addButton.disabled = Boolean(this.readOnly) || this.editor?.mode === "add";
    this.readOnlyNote.textContent = this.readOnly ? `Services cannot be edited here: ${this.readOnly}` : "";
    this.readOnlyNote.hidden = !this.readOnly || !this.admin;
    clear(this.fresh);
    if (this.editor?.mode === "add") this.fresh.append(h("div", { class: "model-card editing" }, this.editor.el));
    this.fresh.hidden = this.editor?.mode !== "add";
    clear(this.list);
    if (!services.length) this.list.append(h("p", { class: "empty" }, "No services in the config file."));
    for (const s of services) this.list.append(this.card(s));
  }

  card(s) {
    const editing = this.editor && this.editor.mode !== "add" && this.editor.name === s.name ? this.editor : null;
    const controls = this.admin ? h("div", { class: "card-actions" },
      h("button", { type: "button", class: "text-button edit-service", "aria-expanded": String(editing?.mode === "edit"),
        disabled: Boolean(this.readOnly) && !editing, onclick: () => this.open(s, "edit") },
      "Edit", h("span", { class: "sr-only" }, ` the service ${s.name}`)),
      h("button", { type: "button", class: "text-button danger remove-service", "aria-expanded": String(editing?.mode === "remove"),
        disabled: Boolean(this.readOnly) && !editing, onclick: () => this.open(s, "remove") },
      "Remove", h("span", { class: "sr-only" }, ` the service ${s.name}`))) : null;
    const grpc = s.grpc && typeof s.grpc === "object" ? s.grpc : null;
    return h("article", { class: editing ? "model-card svc-card editing" : "model-card svc-card", dataset: { service: s.name } },
      h("div", { class: "model-head" }, h("h2", null, s.name, " ", tag(orDash(s.type))), controls),
      h("dl", { class: "kv" },
        h("dt", null, "Endpoint"), h("dd", { class: "mono" }, orDash(s.endpoint)),
        h("dt", null, "Model id"), h("dd", null, orDash(s.metadata?.model_id)),
        h("dt", null, "Auth key"), h("dd", { class: "mono svc-auth" }, authText(s.auth)),
        h("dt", null, "Timeouts"), h("dd", null, timeoutsText(s.timeouts)),
        grpc ? [h("dt", null, "gRPC preset"), h("dd", null, orDash(grpc.preset))] : null,
        s.headers && Object.keys(s.headers).length
          ? [h("dt", null, "Headers"), h("dd", { class: "svc-headers-names" }, Object.keys(s.headers).join(", "))] : null,
        [["Breaker", s.breaker, "svc-breaker-text"], ["Limits", s.limits, "svc-limits-text"], ["TLS", s.tls, "svc-tls-text"]]
          .map(([label, value, cls]) => settingsText(value)
            ? [h("dt", null, label), h("dd", { class: cls }, settingsText(value))] : null),
        s.proxy ? [h("dt", null, "Proxy"), h("dd", { class: "mono" }, s.proxy)] : null),
      editing ? editing.el : null);
  }

  cardOf(name) {
    return [...this.list.querySelectorAll(".svc-card")].find((c) => c.dataset.service === name) || null;
  }

  open(service, mode) {
    if (this.editor && this.editor.mode === mode && this.editor.name === (service?.name ?? "")) {
      this.editor.focus();
      return;
    }
    this.say("");
    const names = this.services().map((s) => s.name);
    this.editor = new ServiceEditor(service, mode, names, {
      api: this.api, confirm: this.confirm,
      onApplied: (name, how, out, from) => this.applied(name, how, out, from),
      onReadOnly: (message) => this.lock(message),
      onClose: () => this.close(),
    });
    this.render();
    this.editor.focus();
  }

  async applied(name, mode, out, from) {
    this.editor = null;
    const warning = out.warning ? ` Warning: ${out.warning}.` : "";
    const which = mode === "rename" ? `${from} to ${name} (and the routes naming it)` : name;
    this.say(`${VERB[mode]} the service ${which}: the config file is written and ${reloadSummary(out.reload)}.${warning}`);
    await this.load();
    const card = this.cardOf(name);
    (card?.querySelector(".edit-service") || this.addButton).focus();
  }
}

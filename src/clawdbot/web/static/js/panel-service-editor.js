// The editor of one service (admins): add, edit, rename or remove a `services:` entry. The form sets
// name (a new one renames the service, and the gateway rewrites every route naming it), type,
// endpoint, metadata.model_id, the auth key (a ${VAR} reference only: the page never sends a key
// itself), auth.type and auth.header, the timeouts (idle: seconds, or no limit: null), a gRPC
// preset, extra headers (panel-service-headers.js), the breaker, the limits and their fair share,
// proxy and TLS, and every other key as JSON (panel-service-more.js); what no field shows is sent
// back as it was. "Test connection" probes the service as the form says (POST
// /panel/api/service-test, nothing saved); Preview and Apply are panel-edit-flow.js's, against POST
// /panel/api/services/<name>. An error the page or the gateway finds is shown by its field.

import { h } from "./dom.js";
import { EditFlow } from "./panel-edit-flow.js";
import { fmtMs, MASK, REFERENCE } from "./panel-format.js";
import { HeaderRows } from "./panel-service-headers.js";
import { ServiceMore } from "./panel-service-more.js";

export const SERVICE_TYPES = ["http", "openai", "ollama", "anthropic", "local", "mock", "grpc"];
export const GRPC_PRESETS = ["triton", "mlserver"];
const TIMEOUTS = [["connect", "Connect", "5"], ["first_byte", "First byte", "120"], ["total", "Total", "600"],
  ["idle", "Idle between chunks", "60"]];
export const AUTH_TYPES = ["api_key", "bearer", "header", "none"];  // schema.py's Auth.type
export const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,200}$/;  // an HTTP header name
export const KEY_RULE = "The key must be an environment variable reference like ${MY_SERVICE_KEY}, set in the " +
  "gateway's environment: the config file and this page never hold a key itself.";

function select(id, values, selected) {
  const known = values.includes(selected) || !selected ? values : [selected, ...values];
  const el = h("select", { id });
  for (const v of known) el.append(h("option", { value: v, selected: v === selected }, v));
  return el;
}

function input(id, value, attrs) {
  const el = h("input", { id, type: "text", spellcheck: "false", autocomplete: "off", ...attrs });
  el.value = value === null || value === undefined ? "" : String(value);
  return el;
}

const field = (label, control, cls) => h("label", { class: cls ? `field ${cls}` : "field" }, h("span", null, label), control);

// mode: "add" (service null), "edit" or "remove"; names: the services there are (a new name must be new)
export class ServiceEditor {
  constructor(service, mode, names, { api, confirm, onApplied, onReadOnly, onClose }) {
    Object.assign(this, { api, mode, names, onClose });
    this.original = service ? structuredClone(service) : null;
    this.name = service ? service.name : "";
    this.flow = new EditFlow("svc", {
      read: (opts) => this.read(opts),
      send: (body, apply) => api.request("POST", `/panel/api/services/${encodeURIComponent(body.name)}`,
        { service: body.service, apply }),
      onApplied: (out) => {
        const now = this.read({}).body.service?.name ?? this.name;
        onApplied(now, mode === "edit" && now !== this.name ? "rename" : mode, out, this.name);
      },
      onShown: (out) => this.showPath(out.error && out.path, out.error),
      onFailed: (err) => this.showPath(err.param, err.message),
      onReadOnly, noun: "Services",
      beforeApply: mode === "remove" ? () => confirm({
        title: "Remove this service?",
        message: `“${this.name}” leaves the config file and the gateway stops using it at once. A route that ` +
          "still names it would make the config invalid: the preview says so.",
        confirmLabel: "Remove",
      }) : null,
    });
    this.el = mode === "remove" ? this.removeForm() : this.editForm();
    this.el.addEventListener("submit", (e) => {
      e.preventDefault();
      this.flow.preview();
    });
    if (mode === "remove") this.flow.preview();
    else this.flow.changed();
  }

  heading(text) {
    return h("h3", { id: "svc-editor-title" }, text, this.name ? h("span", { class: "mono" }, ` ${this.name}`) : null);
  }

  cancelButton() {
    return h("button", { type: "button", id: "svc-cancel", class: "text-button", onclick: () => this.onClose() }, "Cancel");
  }

  removeForm() {
    return h("form", { id: "service-editor", class: "route-editor", "aria-labelledby": "svc-editor-title", novalidate: true },
      this.heading("Remove the service"),
      h("p", { class: "muted small" }, "Preview shows the change to the config file; Apply removes the service " +
        "from it and reloads the gateway."),
      h("div", { class: "form-actions route-actions" }, ...this.flow.buttons, this.cancelButton()),
      ...this.flow.feedback);
  }

  editForm() {
    const s = this.original || {};
    const adding = this.mode === "add";
    this.nameInput = input("svc-name", s.name, { maxlength: "200", required: true,
      "aria-describedby": adding ? null : "svc-name-hint" });
    this.type = select("svc-type", SERVICE_TYPES, s.type || (adding ? "openai" : "http"));
    this.endpoint = input("svc-endpoint", s.endpoint, { placeholder: "http://host:port/v1", inputmode: "url" });
    this.modelId = input("svc-model-id", s.metadata?.model_id, { placeholder: "optional" });
    this.key = input("svc-key", s.auth?.key, { placeholder: "${MY_SERVICE_KEY}", "aria-describedby": "svc-key-hint" });
    this.authType = select("svc-auth-type", ["", ...AUTH_TYPES], s.auth?.type ?? "");
    this.authType.options[0].textContent = "default (api_key)";
    this.authHeader = input("svc-auth-header", s.auth?.header, { maxlength: "200", placeholder: "the type's own",
      "aria-describedby": "svc-key-hint" });
    this.timeouts = TIMEOUTS.map(([k, label, dflt]) => [k, field(label, h("input", {
      id: `svc-${k.replace("_", "-")}`, type: "number", min: "0", step: "any", inputmode: "decimal",
      placeholder: `${dflt} s`, value: s.timeouts?.[k] ?? null,
    }))]);
    this.idleOff = h("input", { type: "checkbox", id: "svc-idle-off", checked: s.timeouts?.idle === null });
    this.preset = select("svc-preset", GRPC_PRESETS, s.grpc?.preset || "triton");
    this.presetField = field("gRPC preset", this.preset);
    this.headers = new HeaderRows(s.headers, () => this.changed());
    this.more = new ServiceMore(s);
    this.fieldError = h("p", { id: "svc-field-error", class: "field-error" });
    this.testButton = h("button", { type: "button", id: "svc-test", class: "text-button", onclick: () => this.test() },
      "Test connection");
    this.testResult = h("p", { id: "svc-test-result", class: "test-result", role: "status" });
    const form = h("form", { id: "service-editor", class: "route-editor", "aria-labelledby": "svc-editor-title",
      autocomplete: "off", novalidate: true },
      this.heading(adding ? "Add a service" : "Edit the service"),
      h("p", { class: "muted small" }, "Test connection tries the service as the form says, without saving it; " +
        "Preview shows the change to the config file; Apply writes it and reloads the gateway."),
      h("div", { class: "form-grid svc-grid" },
        field("Name", this.nameInput), field("Type", this.type), field("Endpoint", this.endpoint, "wide"),
        field("Model id", this.modelId), field("Auth key", this.key), field("Auth type", this.authType),
        field("Auth header", this.authHeader), this.presetField),
      adding ? null : h("p", { id: "svc-name-hint", class: "muted small" }, "A new name renames the service: " +
        "every route, fallback and cost that names it is rewritten in the same edit (the preview shows them)."),
      h("p", { id: "svc-key-hint", class: "muted small" }, KEY_RULE, " Empty: no key. Auth header: the header the " +
        "key goes in (an HTTP header name; empty: Authorization as a Bearer token, x-api-key for anthropic); " +
        "type header needs it."),
      h("fieldset", { class: "svc-timeouts" }, h("legend", null, "Timeouts (seconds; empty: the default)"),
        h("div", { class: "form-grid" }, this.timeouts.map(([, f]) => f),
          h("label", { class: "check" }, this.idleOff, "No idle limit"))),
      this.headers.el, ...this.more.el,
      h("div", { class: "form-actions route-actions" }, this.testButton, ...this.flow.buttons, this.cancelButton()),
      this.testResult, ...this.flow.feedback);
    form.addEventListener("input", () => this.changed());
    form.addEventListener("change", () => this.changed());
    this.syncPreset();
    return form;
  }

  changed() {
    this.syncPreset();
    this.flow.changed();
  }

  syncPreset() {
    if (this.presetField) this.presetField.hidden = this.type.value !== "grpc";
    if (this.idleOff) this.controlFor("timeouts.idle").disabled = this.idleOff.checked;
  }

  focus() {
    if (this.mode === "remove") this.el.querySelector("#svc-cancel").focus();
    else (this.mode === "add" ? this.nameInput : this.type).focus();
  }

  // {body: {name, service}} for the API, or {error}. sending: a refused key leaves the field.
  read({ sending = false } = {}) {
    if (this.mode === "remove") return { body: { name: this.name, service: null } };
    const out = this.fields(sending);
    if (sending) {
      this.showField(null);
      if (out.keyError) this.key.value = "";  // whatever was typed there is not shown again, nor sent
      if (out.control) {
        this.showField(out.control, out.error);
        out.control.focus();
      }
    }
    return out;
  }

  // the control a key path of the service (`breaker.failures`, `headers.X-Team`) is edited in
  controlFor(path) {
    if (typeof path !== "string" || !path) return null;
    const key = path.replace(/^services\[\d+\]\.?/, "");
    if (key === path && /^(models|costs|web|plugins)\b/.test(path)) return null;
    const direct = { name: this.nameInput, type: this.type, endpoint: this.endpoint, metadata: this.modelId,
      "metadata.model_id": this.modelId, auth: this.key, "auth.key": this.key, "auth.type": this.authType,
      "auth.header": this.authHeader, "grpc.preset": this.preset };
    if (direct[key]) return direct[key];
    if (key.startsWith("timeouts.")) return this.timeouts.find(([k]) => key === `timeouts.${k}`)?.[1].querySelector("input") || null;
    const header = /^headers(?:\.(.+)|\["(.*)"\])?$/.exec(key);
    if (header) return this.headers.control(header[1] ?? header[2] ?? "");
    return this.more.control(key);
  }

  showPath(path, message) {
    const control = this.controlFor(path);
    this.showField(control, message);
    control?.focus();
  }

  // a message by the control it is about (aria-invalid, described by it); null: none any more
  showField(control, message) {
    if (!this.fieldError) return;
    const was = this.marked;
    if (was) {
      was.removeAttribute("aria-invalid");
      const rest = (was.getAttribute("aria-describedby") || "").replace("svc-field-error", "").trim();
      if (rest) was.setAttribute("aria-describedby", rest);
      else was.removeAttribute("aria-describedby");
    }
    this.marked = null;
    this.fieldError.remove();
    if (!control || !message) return;
    this.fieldError.textContent = message;
    (control.closest(".svc-header-row") || control.closest("label.field") || control).after(this.fieldError);
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-describedby", `${control.getAttribute("aria-describedby") || ""} svc-field-error`.trim());
    this.marked = control;
  }

  fields(sending = false) {
    const s = this.original ? structuredClone(this.original) : {};
    const name = this.nameInput.value.trim();
    const named = (error) => ({ error, control: this.nameInput });
    if (!name) return named("Give the service a name.");
    if (/[/\s]/.test(name)) return named("A service name has no slash and no space.");
    if (name !== this.name && this.names.includes(name)) return named(`There is a service named ${name} already.`);
    s.name = name;
    s.type = this.type.value;
    const endpoint = this.endpoint.value.trim();
    if (endpoint) s.endpoint = endpoint;
    else delete s.endpoint;
    const metadata = { ...(s.metadata || {}) };
    const modelId = this.modelId.value.trim();
    if (modelId) metadata.model_id = modelId;
    else delete metadata.model_id;
    if (Object.keys(metadata).length) s.metadata = metadata;
    else delete s.metadata;
    const key = this.key.value.trim();
    // the mask stands for the key the file holds itself: sent back as it is, the gateway keeps it
    const kept = key === MASK && this.original?.auth?.key === MASK;
    if (key && !kept && !REFERENCE.test(key)) return { keyError: true, error: `Not sent: ${KEY_RULE}`, control: this.key };
    const auth = { ...(s.auth || {}) };
    if (key) auth.key = key;
    else delete auth.key;
    const header = this.authHeader.value.trim();
    const headerError = header && !TOKEN.test(header)
      ? "Auth header: an HTTP header name (letters, digits, - and _)."
      : !header && this.authType.value === "header" ? "Auth type header needs the auth header's name." : "";
    if (headerError) return { error: headerError, control: this.authHeader };
    for (const [k, v] of [["type", this.authType.value], ["header", header]]) {
      if (v) auth[k] = v;
      else delete auth[k];
    }
    if (Object.keys(auth).length) s.auth = auth;
    else delete s.auth;
    const timeouts = { ...(s.timeouts || {}) };
    for (const [k, f] of this.timeouts) {
      const text = f.querySelector("input").value.trim();
      const value = Number(text);
      if (k === "idle" && this.idleOff.checked) timeouts.idle = null;  // no limit
      else if (!text) delete timeouts[k];
      else if (!Number.isFinite(value) || value <= 0) {
        return { error: `The ${k.replace("_", " ")} timeout is a number of seconds above 0.`, control: f.querySelector("input") };
      }
      else timeouts[k] = value;
    }
    if (Object.keys(timeouts).length) s.timeouts = timeouts;
    else delete s.timeouts;
    if (!this.headers || !this.more) return { error: "The editor is not ready." };
    const wrong = this.headers.write(s, sending) || this.more.write(s, sending);
    if (wrong) return wrong;
    if (s.type === "grpc") s.grpc = { ...this.more.grpcRest, preset: this.preset.value };
    else delete s.grpc;
    return { body: { name: this.mode === "add" ? name : this.name, service: s } };
  }

  async test() {
    const read = this.read({ sending: true });
    this.flow.setError(read.error);
    if (read.error) {
      this.showTest(null, "");
      return;
    }
    this.testButton.disabled = true;
    this.showTest(null, "Testing the connection…");
    try {
      const out = await this.api.request("POST", "/panel/api/service-test",
        { service: read.body.service, was: this.mode === "add" ? null : this.name });
      const models = Array.isArray(out.models) && out.models.length ? ` · models: ${out.models.join(", ")}` : "";
      const latency = typeof out.latency_ms === "number" ? ` · ${fmtMs(out.latency_ms)}` : "";
      const detail = out.detail ? ` · ${out.detail}` : "";
      this.showTest(Boolean(out.ok), out.ok ? `Connection ok${latency}${models}` : `Connection failed${detail}`);
    } catch (err) {
      this.showTest(false, `Could not test: ${err.message}`);
    } finally {
      this.testButton.disabled = false;
    }
  }

  showTest(ok, text) {
    this.testResult.textContent = text;
    if (ok === null) delete this.testResult.dataset.ok;
    else this.testResult.dataset.ok = String(ok);
  }
}

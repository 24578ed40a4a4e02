// The service editor's further settings (panel-service-editor.js): the breaker, the limits and their
// fair share (limits.fair_share: enabled, by, default_weight, max_queue_per_tenant, and weights as
// `tenant = weight` lines), the outbound proxy and TLS as fields, and every other key the service
// has (a local model's settings, the rest of `grpc:`, discover, max_pool, ...) as a bounded JSON
// text area. Extra headers are
// panel-service-headers.js's. What no field shows (other metadata, a fair_share key the schema
// lacks) is kept as the file has it.
//
//   const more = new ServiceMore(service); form.append(...more.el);
//   more.write(s, sending) -> null or {error, control}: s (a copy of the service) set as the fields say
//   more.control(path) -> the control a key path (`breaker.failures`) is edited in, or null

import { h } from "./dom.js";
import { MASK, REFERENCE } from "./panel-format.js";

// key, label, kind (int: a whole number; num: a number), lowest allowed (gt: above it), default shown
const BREAKER = [["failures", "Failures to open", "int", 1, "5"], ["error_rate", "Error rate (0–1]", "rate", 0, "0.5"],
  ["window", "Window (s)", "num", 0, "30"], ["min_requests", "Min requests", "int", 1, "20"],
  ["cooldown", "Cooldown (s)", "num", 0, "30"], ["trials", "Half-open trials", "int", 1, "1"]];
const LIMITS = [["max_inflight", "Max in flight", "int", 1, "no limit"], ["max_queue", "Max queue", "int0", 0, "64"],
  ["queue_timeout", "Queue timeout (s)", "num", 0, "10"]];
const FAIR = [["default_weight", "Default weight", "num", 0, "1"],
  ["max_queue_per_tenant", "Max queue per tenant", "int", 1, "max queue"]];
export const MAX_WEIGHTS = 100;  // tenant = weight lines
const TLS = [["ca_bundle", "CA bundle (PEM path)"], ["client_cert", "Client certificate (PEM path)"],
  ["client_key", "Client key (PEM path)"]];
// the keys a field (here or in the editor) sets; the rest go to the JSON text area
export const FORM_KEYS = ["name", "type", "endpoint", "metadata", "auth", "timeouts", "headers", "breaker", "limits",
  "tls", "proxy", "grpc"];
export const MAX_OTHER = 16000;  // characters of the JSON text area
const PROXY_RULE = "A proxy's password must be an environment variable reference: http://user:${PROXY_PASSWORD}@host:3128.";

const id = (group, key) => `svc-${group.replace("limits.fair_share", "fair")}-${key.replaceAll("_", "-")}`;
const field = (label, control, cls) => h("label", { class: cls ? `field ${cls}` : "field" }, h("span", null, label), control);

function numberInput(group, [key, , kind, , dflt], value) {
  return h("input", { id: id(group, key), type: "number", step: kind.startsWith("int") ? "1" : "any",
    min: kind === "int" ? "1" : "0", max: kind === "rate" ? "1" : null, inputmode: kind.startsWith("int") ? "numeric" : "decimal",
    placeholder: dflt, value: value ?? null });
}

function choice(elId, options, value) {
  const shown = String(value ?? "");
  const known = options.some(([v]) => v === shown) ? options : [[shown, shown], ...options];
  return h("select", { id: elId }, known.map(([v, label]) => h("option", { value: v, selected: v === shown }, label)));
}

function textInput(elId, value, attrs) {
  const el = h("input", { id: elId, type: "text", spellcheck: "false", autocomplete: "off", maxlength: "2000", ...attrs });
  el.value = value === null || value === undefined ? "" : String(value);
  return el;
}

// a number field's value, or {error}; "" when empty
function numberOf(input, [key, label, kind, low]) {
  const text = input.value.trim();
  if (!text) return "";
  const n = Number(text);
  const name = label.replace(/ \(.*\)$/, "");
  if (!Number.isFinite(n)) return { error: `${name}: a number.` };
  if (kind.startsWith("int") && !Number.isInteger(n)) return { error: `${name}: a whole number.` };
  if (kind === "int" && n < low) return { error: `${name}: ${low} or more.` };
  if (kind === "int0" && n < 0) return { error: `${name}: 0 or more.` };
  if ((kind === "num" || kind === "rate") && n <= 0) return { error: `${name}: a number above 0.` };
  if (kind === "rate" && n > 1) return { error: `${name}: at most 1 (a share of the requests).` };
  if (Math.abs(n) > 1e12) return { error: `${name}: too large.` };
  return n;
}

function urlPassword(text) {
  const m = /^[a-z][\w+.-]*:\/\/[^/@]*:([^/@]*)@/i.exec(text);
  return m ? m[1] : null;
}

export class ServiceMore {
  constructor(service) {
    const s = service || {};
    this.original = s;
    this.controls = new Map();
    const group = (name, spec, values) => spec.map((row) => {
      const input = numberInput(name, row, values?.[row[0]]);
      this.controls.set(`${name}.${row[0]}`, input);
      return field(row[1], input);
    });
    const enabled = s.breaker?.enabled;
    this.breakerOn = h("select", { id: "svc-breaker-enabled" },
      h("option", { value: "", selected: enabled === undefined }, "on (default)"),
      h("option", { value: "true", selected: enabled === true }, "on"),
      h("option", { value: "false", selected: enabled === false }, "off"));
    this.controls.set("breaker.enabled", this.breakerOn);
    const breaker = h("fieldset", { class: "svc-timeouts svc-breaker" },
      h("legend", null, "Circuit breaker (empty: the default)"),
      h("div", { class: "form-grid" }, field("Breaker", this.breakerOn), group("breaker", BREAKER, s.breaker)));
    const fair = s.limits?.fair_share && typeof s.limits.fair_share === "object" ? s.limits.fair_share : {};
    this.fairOn = choice("svc-fair-enabled", [["", "on (default)"], ["true", "on"], ["false", "off"]], fair.enabled);
    this.fairBy = choice("svc-fair-by", [["", "key (default)"], ...["key", "user", "team"].map((v) => [v, v])], fair.by);
    const weights = fair.weights && typeof fair.weights === "object" ? fair.weights : {};
    this.weights = h("textarea", { id: "svc-fair-weights", class: "json-input", rows: "3", spellcheck: "false", maxlength: "8000",
      placeholder: "team-a = 2", "aria-describedby": "svc-fair-hint" });
    this.weights.value = Object.entries(weights).map(([k, v]) => `${k} = ${v}`).join("\n");
    this.fairOriginal = fair;
    for (const [key, c] of [["enabled", this.fairOn], ["by", this.fairBy], ["weights", this.weights]]) {
      this.controls.set(`limits.fair_share.${key}`, c);
    }
    const limits = h("fieldset", { class: "svc-timeouts svc-limits" },
      h("legend", null, "Limits (empty: the default)"),
      h("div", { class: "form-grid" }, group("limits", LIMITS, s.limits),
        field("Fair share", this.fairOn), field("Fair share by", this.fairBy),
        group("limits.fair_share", FAIR, fair), field("Weights (tenant = weight)", this.weights, "wide")),
      h("p", { id: "svc-fair-hint", class: "muted small" }, "Fair share: how a full queue is shared between " +
        "tenants (a key, its user or its team). Weights: one tenant id (or master, anonymous) = its share per " +
        "line, relative to the default weight. Max queue per tenant: 1 to max queue."));
    this.proxy = textInput("svc-proxy", s.proxy, { placeholder: "from the environment", inputmode: "url",
      "aria-describedby": "svc-proxy-hint" });
    this.controls.set("proxy", this.proxy);
    const tls = TLS.map(([key, label]) => {
      const input = textInput(id("tls", key), s.tls?.[key], { placeholder: "none" });
      this.controls.set(`tls.${key}`, input);
      return field(label, input);
    });
    const connection = h("fieldset", { class: "svc-timeouts svc-connection" },
      h("legend", null, "Proxy and TLS"),
      h("div", { class: "form-grid" }, field("Outbound proxy", this.proxy, "wide"), tls),
      h("p", { id: "svc-proxy-hint", class: "muted small" }, "Proxy: http://host:port, or direct for none; empty: " +
        "HTTP_PROXY / HTTPS_PROXY of the gateway's environment. ", PROXY_RULE,
        " TLS (https and grpcs endpoints): files on the gateway's host."));
    const rest = this.rest(s);
    this.other = h("textarea", { id: "svc-other", class: "json-input", rows: "4", spellcheck: "false",
      maxlength: String(MAX_OTHER), "aria-describedby": "svc-other-hint" });
    this.other.value = Object.keys(rest).length ? JSON.stringify(rest, null, 2) : "";
    this.otherOriginal = JSON.stringify(rest);
    const other = h("fieldset", { class: "svc-timeouts svc-other" },
      h("legend", null, "Other settings"),
      field("Other settings (JSON)", this.other, "wide"),
      h("p", { id: "svc-other-hint", class: "muted small" }, "Every other key of the service as JSON: a local " +
        "model's settings (model, model_path, chat_format, system_prompt, sampling, n_ctx, n_threads, " +
        "stream_interval), the rest of grpc: (beside its preset), discover, max_pool, health_interval, " +
        "max_response_bytes, max_tokens_field. Left as it is, the file keeps them untouched."));
    this.el = [breaker, limits, connection, other];
  }

  // the service's keys no field sets (with grpc: minus the preset), as the text area shows them
  rest(s) {
    const out = {};
    for (const [k, v] of Object.entries(s)) if (!FORM_KEYS.includes(k)) out[k] = v;
    if (s.grpc && typeof s.grpc === "object") {
      const { preset, ...grpc } = s.grpc;
      if (Object.keys(grpc).length) out.grpc = grpc;
    }
    return out;
  }

  control(path) {
    if (this.controls.has(path)) return this.controls.get(path);
    const top = path.split(/[.[]/)[0];
    if (top === "tls") return this.controls.get("tls.ca_bundle");
    if (path.startsWith("limits.fair_share")) {
      const key = path.split(/[.[]/)[2];
      return this.controls.get(`limits.fair_share.${key}`) || this.fairBy;
    }
    if (top === "breaker" || top === "limits") return this.controls.get(`${top}.${path.split(".")[1]}`) || null;
    if (!FORM_KEYS.includes(top) || (top === "grpc" && path !== "grpc.preset")) return this.other;
    return null;
  }

  section(s, key, spec, extra) {
    const obj = { ...(s[key] && typeof s[key] === "object" ? s[key] : {}) };
    for (const row of spec) {
      const control = this.controls.get(`${key}.${row[0]}`);
      const value = numberOf(control, row);
      if (value && typeof value === "object") return { error: value.error, control };
      if (value === "") delete obj[row[0]];
      else obj[row[0]] = value;
    }
    if (extra) extra(obj);
    if (Object.keys(obj).length) s[key] = obj;
    else delete s[key];
    return null;
  }

  // limits.fair_share as the fields say (the keys the schema lacks kept), or {error, control}
  fairShare(s) {
    const fair = { ...this.fairOriginal };
    for (const row of FAIR) {
      const control = this.controls.get(`limits.fair_share.${row[0]}`);
      const value = numberOf(control, row);
      if (value && typeof value === "object") return { error: value.error, control };
      if (value === "") delete fair[row[0]];
      else fair[row[0]] = value;
    }
    const cap = fair.max_queue_per_tenant;
    const queue = s.limits?.max_queue ?? 64;
    if (cap !== undefined && typeof queue === "number" && cap > queue) {
      return { error: `Max queue per tenant: at most max queue (${queue}).`,
        control: this.controls.get("limits.fair_share.max_queue_per_tenant") };
    }
    for (const [key, c] of [["enabled", this.fairOn], ["by", this.fairBy]]) {
      if (c.value) fair[key] = key === "enabled" ? c.value === "true" : c.value;
      else delete fair[key];
    }
    const weights = {};
    const lines = this.weights.value.split("\n").map((l) => l.trim()).filter(Boolean);
    const bad = (error) => ({ error: `Weights: ${error}`, control: this.weights });
    if (lines.length > MAX_WEIGHTS) return bad(`at most ${MAX_WEIGHTS} tenants.`);
    for (const line of lines) {
      const at = line.lastIndexOf("=");
      const tenant = at > 0 ? line.slice(0, at).trim() : "";
      const text = at > 0 ? line.slice(at + 1).trim() : "";
      const weight = Number(text);
      if (!tenant || !text) return bad(`“${line.slice(0, 80)}” is not tenant = weight.`);
      if (!(weight > 0 && weight <= 1e12)) return bad(`${tenant}'s weight is a number above 0.`);
      if (Object.hasOwn(weights, tenant)) return bad(`${tenant} is given twice.`);
      weights[tenant] = weight;
    }
    const was = this.fairOriginal.weights;
    const entries = (w) => JSON.stringify(Object.entries(w));
    const same = was && typeof was === "object" && entries(was) === entries(weights);
    if (lines.length || same) fair.weights = same ? was : weights;  // `weights: {}` left as it is stays
    else delete fair.weights;
    return { fair };
  }

  write(s, sending = false) {
    let wrong = this.section(s, "breaker", BREAKER, (obj) => {
      if (this.breakerOn.value) obj.enabled = this.breakerOn.value === "true";
      else delete obj.enabled;
    }) || this.section(s, "limits", LIMITS);
    if (wrong) return wrong;
    const fair = this.fairShare(s);
    if (fair.error) return fair;
    wrong = this.section(s, "limits", [], (obj) => {
      if (Object.keys(fair.fair).length) obj.fair_share = fair.fair;
      else delete obj.fair_share;
    });
    if (wrong) return wrong;
    const proxy = this.proxy.value.trim();
    const password = urlPassword(proxy);
    const unchanged = proxy === (this.original.proxy ?? "");
    if (password !== null && !unchanged && !REFERENCE.test(password)) {
      if (sending) this.proxy.value = "";  // the password typed is not shown again, nor sent
      return { error: `Not sent: ${PROXY_RULE}`, control: this.proxy };
    }
    if (password === MASK && !unchanged) return { error: `Not sent: ${PROXY_RULE}`, control: this.proxy };
    if (proxy) s.proxy = proxy;
    else delete s.proxy;
    const tls = { ...(s.tls && typeof s.tls === "object" ? s.tls : {}) };
    for (const [key] of TLS) {
      const value = this.controls.get(`tls.${key}`).value.trim();
      if (value) tls[key] = value;
      else delete tls[key];
    }
    if (Object.keys(tls).length) s.tls = tls;
    else delete s.tls;
    return this.writeOther(s);
  }

  writeOther(s) {
    const text = this.other.value.trim();
    let rest = {};
    if (text.length > MAX_OTHER) return { error: `Other settings: at most ${MAX_OTHER} characters.`, control: this.other };
    if (text) {
      try {
        rest = JSON.parse(text);
      } catch (err) {
        return { error: `Other settings: not JSON (${err.message}).`, control: this.other };
      }
      if (!rest || typeof rest !== "object" || Array.isArray(rest)) {
        return { error: "Other settings: a JSON object of keys and values, like {\"max_pool\": 16}.", control: this.other };
      }
    }
    const taken = Object.keys(rest).find((k) => FORM_KEYS.includes(k) && k !== "grpc");
    if (taken) return { error: `Other settings: ${taken} has its own field.`, control: this.other };
    for (const k of Object.keys(s)) if (!FORM_KEYS.includes(k)) delete s[k];
    const { grpc, ...others } = rest;
    Object.assign(s, others);
    if (grpc !== undefined && (!grpc || typeof grpc !== "object" || Array.isArray(grpc))) {
      return { error: "Other settings: grpc is an object of its settings.", control: this.other };
    }
    this.grpcRest = grpc || {};
    return null;
  }
}

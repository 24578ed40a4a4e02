// The service editor's extra headers (panel-service-editor.js): a row per header (name, value,
// remove) and Add header. A header whose name says it carries a credential (Authorization,
// X-Api-Key, anything with key, token, secret, auth, cookie, ...) or whose value reads like one
// (`Bearer ...`, `sk-...`, a long mix of letters and digits) is sent only as a ${VAR} reference,
// as the auth key is: a value typed as it is is refused here, emptied, and never sent (the gateway
// refuses it too). A value the file holds as it is comes masked and, left so, stays in the file.
//
//   const headers = new HeaderRows(service.headers, onChange); form.append(headers.el);
//   headers.write(s, sending) -> null or {error, control, secret}; headers.control(name) -> its value input

import { h } from "./dom.js";
import { MASK, REFERENCE } from "./panel-format.js";

export const MAX_HEADERS = 64;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,200}$/;
const SECRET_NAME = /auth|key|token|secret|password|passwd|cookie|credential|session|signature/i;
const SECRET_VALUE = /^(?:(?:bearer|basic|token|digest)\s+\S+|(?:sk|pk|rk|ghp|gho|ghs|xox[abp]|glpat|hf|AKIA)[-_].*|(?=[\w+/=.~-]*\d)(?=[\w+/=.~-]*[A-Za-z])[\w+/=.~-]{24,})$/i;
export const HEADER_RULE = "must be an environment variable reference like ${MY_TOKEN}, set in the gateway's " +
  "environment: a header that carries a credential is never written into the config file or shown here.";

export const headerIsSecret = (name, value) => SECRET_NAME.test(name) || SECRET_VALUE.test(value);

export class HeaderRows {
  constructor(headers, onChange) {
    this.onChange = onChange;
    this.original = headers && typeof headers === "object" ? headers : {};
    this.rows = [];
    this.body = h("div", { class: "svc-header-rows" });
    this.addButton = h("button", { type: "button", id: "svc-header-add", class: "text-button",
      onclick: () => this.add("", "", true) }, "Add header");
    this.el = h("fieldset", { class: "svc-timeouts svc-headers" }, h("legend", null, "Extra headers"),
      this.body,
      h("p", { id: "svc-headers-hint", class: "muted small" }, "Sent with every request to the service. A header " +
        `carrying a credential ${HEADER_RULE}`),
      this.addButton);
    for (const [name, value] of Object.entries(this.original)) this.add(name, value, false);
    this.sync();
  }

  add(name, value, focus) {
    if (this.rows.length >= MAX_HEADERS) return;
    const n = this.rows.length + 1;
    const nameInput = h("input", { type: "text", class: "svc-header-name", spellcheck: "false", autocomplete: "off",
      maxlength: "200", "aria-label": `Header ${n} name`, placeholder: "X-Header-Name" });
    const valueInput = h("input", { type: "text", class: "svc-header-value", spellcheck: "false", autocomplete: "off",
      maxlength: "4096", "aria-label": `Header ${n} value`, placeholder: "value or ${MY_TOKEN}",
      "aria-describedby": "svc-headers-hint" });
    nameInput.value = name;
    valueInput.value = value === null || value === undefined ? "" : String(value);
    const row = { nameInput, valueInput };
    row.el = h("div", { class: "svc-header-row" }, nameInput, valueInput,
      h("button", { type: "button", class: "text-button danger svc-header-remove", onclick: () => this.remove(row) },
        "Remove", h("span", { class: "sr-only" }, ` header ${n}`)));
    this.rows.push(row);
    this.body.append(row.el);
    this.sync();
    if (focus) {  // added by the user (the rows the file has are built before the editor reads them)
      nameInput.focus();
      this.onChange?.();
    }
  }

  remove(row) {
    const at = this.rows.indexOf(row);
    this.rows.splice(at, 1);
    row.el.remove();
    this.sync();
    (this.rows[Math.min(at, this.rows.length - 1)]?.nameInput || this.addButton).focus();
    this.onChange?.();
  }

  sync() {
    this.addButton.disabled = this.rows.length >= MAX_HEADERS;
    this.body.hidden = !this.rows.length;
  }

  control(name) {
    return this.rows.find((r) => r.nameInput.value.trim() === name)?.valueInput || this.rows[0]?.nameInput || this.addButton;
  }

  write(s, sending = false) {
    const headers = {};
    const seen = new Set();
    for (const { nameInput, valueInput } of this.rows) {
      const name = nameInput.value.trim();
      const value = valueInput.value;
      if (!name && !value.trim()) continue;  // an empty row is no header
      if (!TOKEN.test(name)) {
        return { error: `Header name “${name.slice(0, 60)}”: letters, digits and - only (an HTTP token).`, control: nameInput };
      }
      if (seen.has(name.toLowerCase())) return { error: `Header ${name} is there twice.`, control: nameInput };
      seen.add(name.toLowerCase());
      if (/[\r\n\0]/.test(value)) return { error: `Header ${name}: one line, no control characters.`, control: valueInput };
      const kept = value === MASK && this.original[name] === MASK;  // the file's own value, left as it is
      if (headerIsSecret(name, value) && !kept && !REFERENCE.test(value.trim())) {
        if (sending) valueInput.value = "";  // whatever was typed there is not shown again, nor sent
        return { error: `Not sent: the value of ${name} ${HEADER_RULE}`, control: valueInput, secret: true };
      }
      headers[name] = REFERENCE.test(value.trim()) ? value.trim() : value;
    }
    if (Object.keys(headers).length) s.headers = headers;
    else delete s.headers;
    return null;
  }
}

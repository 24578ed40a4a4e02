// Login when the gateway has a master key. The key goes to POST /auth/login once, which sets an
// HttpOnly cookie; the page never stores it (no localStorage, no variable kept after the request).
// The form is made here, for the chat page and the panel alike: #login-view > #login-form with
// #login-key and #login-error, hidden until show().

import { h, logo } from "./dom.js";

// brand: the name by the logo; hint: which key the page asks for
function loginView(brand, hint) {
  const mark = logo();
  mark.setAttribute("focusable", "false");
  const input = h("input", { id: "login-key", name: "key", type: "password", autocomplete: "current-password",
    required: true, "aria-describedby": "login-error" });
  const error = h("p", { id: "login-error", class: "form-error", role: "alert", hidden: true });
  const form = h("form", { id: "login-form", class: "login-card", autocomplete: "on" },
    h("div", { class: "brand" }, mark, ` ${brand}`),
    h("h2", { id: "login-title" }, "Sign in"),
    h("p", { class: "muted" }, hint),
    h("input", { type: "text", name: "username", value: "clawdbot", autocomplete: "username", hidden: true }),
    h("label", { for: "login-key" }, "Gateway key"),
    input, error,
    h("button", { type: "submit", class: "primary-button" }, "Sign in"));
  const view = h("section", { id: "login-view", class: "login-view", hidden: true, "aria-labelledby": "login-title" },
    form);
  return { view, form, input, error };
}

export class Login {
  // before: the element the view goes in front of (the end of <body> when null)
  constructor({ brand, hint, before = null }, { onLoggedIn }) {
    const { view, form, input, error } = loginView(brand, hint);
    Object.assign(this, { view, form, input, error, onLoggedIn });
    document.body.insertBefore(view, before);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
  }

  show(message) {
    this.view.hidden = false;
    document.body.classList.add("locked");
    this.setError(message || "");
    this.input.focus();
  }

  hide() {
    this.view.hidden = true;
    document.body.classList.remove("locked");
  }

  setError(message) {
    this.error.textContent = message;
    this.error.hidden = !message;
    this.input.setAttribute("aria-invalid", message ? "true" : "false");
  }

  async submit() {
    const key = this.input.value;
    if (!key) {
      this.setError("Enter the gateway key.");
      return;
    }
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    this.setError("");
    try {
      const res = await fetch("/auth/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        credentials: "same-origin",
        cache: "no-store",
        body: JSON.stringify({ key }),
      });
      if (res.ok) {
        this.input.value = "";
        this.hide();
        this.onLoggedIn();
        return;
      }
      if (res.status === 429) {
        const after = res.headers.get("Retry-After");
        this.setError(`Too many attempts.${after ? ` Try again in ${after} s.` : " Wait a moment and try again."}`);
      } else if (res.status === 401 || res.status === 403) {
        this.setError("That key was not accepted.");
      } else {
        this.setError(`Login failed (HTTP ${res.status}).`);
      }
    } catch {
      this.setError("Could not reach the gateway.");
    } finally {
      button.disabled = false;
    }
    this.input.select();
  }
}

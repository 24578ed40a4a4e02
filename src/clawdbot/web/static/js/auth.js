// Login when the gateway has a master key. The key goes to POST /auth/login once, which sets an
// HttpOnly cookie; the page never stores it (no localStorage, no variable kept after the request).

export class Login {
  constructor({ view, form, input, error }, { onLoggedIn }) {
    Object.assign(this, { view, form, input, error, onLoggedIn });
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

// Page chrome: theme toggle, phone drawer, connection banner, confirm dialog, live region. The
// operator panel uses the theme toggle, the confirm dialog and the live region too.

import { h, setIcon } from "./dom.js";

const THEME_KEY = "clawdbot.theme";  // read before first paint by theme-init.js

// Without a stored choice the page follows prefers-color-scheme, unless <html data-theme> says
// otherwise (the panel's "dark").
export function setupTheme(button) {
  const root = document.documentElement;
  const media = window.matchMedia("(prefers-color-scheme: dark)");
  const effective = () => root.dataset.theme || (media.matches ? "dark" : "light");
  const sync = () => {
    const dark = effective() === "dark";
    setIcon(button, dark ? "sun" : "moon");
    button.setAttribute("aria-label", dark ? "Switch to light theme" : "Switch to dark theme");
    button.title = button.getAttribute("aria-label");
    document.querySelector('meta[name="theme-color"]')?.setAttribute("content", dark ? "#17181c" : "#ffffff");
  };
  button.addEventListener("click", () => {
    const next = effective() === "dark" ? "light" : "dark";
    root.dataset.theme = next;
    try { localStorage.setItem(THEME_KEY, next); } catch { /* private mode */ }
    sync();
  });
  media.addEventListener("change", sync);
  sync();
}

export class Drawer {
  constructor({ toggle, panel, backdrop }) {
    Object.assign(this, { toggle, panel, backdrop });
    this.media = window.matchMedia("(max-width: 719.98px)");
    toggle.addEventListener("click", () => (this.isOpen() ? this.close() : this.open()));
    backdrop.addEventListener("click", () => this.close());
    this.media.addEventListener("change", () => this.sync());
    this.sync();
  }

  isOpen() {
    return document.body.classList.contains("drawer-open");
  }

  isDrawer() {
    return this.media.matches;
  }

  open() {
    if (!this.isDrawer()) return;
    document.body.classList.add("drawer-open");
    this.sync();
    (this.panel.querySelector('[aria-current="page"]') || this.panel.querySelector("button"))?.focus();
  }

  close({ restoreFocus = true } = {}) {
    if (!this.isOpen()) return;
    document.body.classList.remove("drawer-open");
    this.sync();
    if (restoreFocus) this.toggle.focus();
  }

  sync() {
    const open = this.isOpen() && this.isDrawer();
    if (!this.isDrawer()) document.body.classList.remove("drawer-open");
    this.toggle.setAttribute("aria-expanded", String(open));
    this.backdrop.hidden = !open;
    // Off-screen drawer content must not be reachable by Tab.
    if (this.isDrawer() && !open) this.panel.setAttribute("inert", "");
    else this.panel.removeAttribute("inert");
  }
}

export class Banner {
  constructor(el, { onRetry }) {
    this.el = el;
    this.text = el.querySelector(".banner-text");
    el.querySelector(".banner-retry").addEventListener("click", onRetry);
    this.timer = null;
  }

  show(text, { delay = 0, retry = true } = {}) {
    clearTimeout(this.timer);
    const apply = () => {
      this.text.textContent = text;
      this.el.querySelector(".banner-retry").hidden = !retry;
      this.el.hidden = false;
    };
    if (delay) this.timer = setTimeout(apply, delay);
    else apply();
  }

  hide() {
    clearTimeout(this.timer);
    this.el.hidden = true;
  }
}

// The <dialog id="confirm-dialog"> that confirmDialog opens, put in front of `before`.
export function makeConfirmDialog(before) {
  const dialog = h("dialog", { id: "confirm-dialog", class: "dialog", "aria-labelledby": "confirm-title" },
    h("form", { method: "dialog" },
      h("h2", { id: "confirm-title", class: "dialog-title" }, "Are you sure?"),
      h("p", { class: "dialog-message" }),
      h("div", { class: "dialog-buttons" },
        h("button", { type: "submit", value: "cancel", class: "text-button dialog-cancel" }, "Cancel"),
        h("button", { type: "submit", value: "confirm", class: "danger-button dialog-confirm" }, "Delete"))));
  before.before(dialog);
  return dialog;
}

// Promise<boolean> from the <dialog id="confirm-dialog">; Escape or Cancel resolve false.
export function confirmDialog(dialog, { title, message, confirmLabel = "Delete" }) {
  dialog.querySelector(".dialog-title").textContent = title;
  dialog.querySelector(".dialog-message").textContent = message;
  const ok = dialog.querySelector(".dialog-confirm");
  ok.textContent = confirmLabel;
  const opener = document.activeElement;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "confirm");
      // The browser gives the focus back to the opener as the dialog closes; this event comes a task
      // later, so only step in when the focus went nowhere (the opener gone): never take it back from
      // a field the user has moved to since.
      const lost = !document.activeElement || document.activeElement === document.body;
      if (lost && opener && opener.isConnected) opener.focus();
    }, { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    dialog.querySelector(".dialog-cancel").focus();
  });
}

export class LiveRegion {
  constructor(el) {
    this.el = el;
  }

  say(text) {
    this.el.textContent = "";
    // A separate task so screen readers notice a repeated message.
    setTimeout(() => { this.el.textContent = text; }, 50);
  }
}

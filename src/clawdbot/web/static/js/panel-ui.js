// Panel chrome: the theme toggle (dark unless light was chosen; the chat page's stored choice) and
// the tabs: links to #<name>, so a tab survives a reload and Back goes to the tab before.

import { setIcon } from "./dom.js";

const THEME_KEY = "clawdbot.theme";  // shared with the chat page (theme-init.js)
const DEFAULT_TAB = "overview";

export function setupTheme(button) {
  const root = document.documentElement;
  const effective = () => (root.dataset.theme === "light" ? "light" : "dark");
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
  sync();
}

// tabs: {name: {show(), hide(), reset()?}} (reset: the session ended); panelOf(name): its <section>. Only the open tab does work (the
// overview polls only while it is open).
export class Tabs {
  constructor(nav, tabs, panelOf) {
    Object.assign(this, { nav, tabs, panelOf });
    this.current = null;
    this.running = false;
    window.addEventListener("hashchange", () => {
      if (this.running) this.activate(this.fromHash());
    });
  }

  fromHash() {
    const name = decodeURIComponent(location.hash.slice(1));
    return Object.hasOwn(this.tabs, name) ? name : DEFAULT_TAB;
  }

  start() {
    this.running = true;
    if (this.current) this.tabs[this.current].hide();
    this.current = null;  // a fresh session shows its tab again (another role, other controls)
    this.activate(this.fromHash());
  }

  stop() {
    this.running = false;
    if (this.current) this.tabs[this.current].hide();
    this.current = null;
    for (const [name, tab] of Object.entries(this.tabs)) {
      this.panelOf(name).hidden = true;
      tab.reset?.();
    }
  }

  activate(name) {
    if (name === this.current) return;
    if (this.current) this.tabs[this.current].hide();
    for (const link of this.nav.querySelectorAll("a.tab")) {
      if (link.dataset.tab === name) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    for (const other of Object.keys(this.tabs)) this.panelOf(other).hidden = other !== name;
    this.current = name;
    document.title = `${this.nav.querySelector(`a[data-tab="${name}"]`)?.textContent || name} · clawdbot panel`;
    this.tabs[name].show();
  }
}

// The panel's tabs: links to #<name>, so a tab survives a reload and Back goes to the tab before.

const DEFAULT_TAB = "overview";

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

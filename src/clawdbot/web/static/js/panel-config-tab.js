// What the tabs whose admins edit the config file (Models, Services, Plugins) share: the role, a
// load each time the tab is shown, and the notice line saying what the last edit did (also said in
// the live region). A tab extends it with load() and its own rendering.

export class ConfigTab {
  // name: the tab's (its notice is #<name>-notice, its read-only note #<name>-read-only)
  constructor(panel, api, live, name) {
    Object.assign(this, { panel, api, live });
    this.notice = panel.querySelector(`#${name}-notice`);
    this.readOnlyNote = panel.querySelector(`#${name}-read-only`);
    this.admin = false;
  }

  setRole(role) {
    this.admin = role === "admin";
  }

  show() {
    this.load();
  }

  hide() {}

  say(text) {
    this.notice.textContent = text;
    this.notice.hidden = !text;
    if (text) this.live.say(text);
  }
}

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

// A ConfigTab of cards with Edit and Remove buttons (.edit-<kind>, .remove-<kind>), an Add button
// (this.addButton) and one editor open at a time (this.editor: mode add, edit or remove; name):
// the Models and Services tabs. noun: what the read-only note says cannot be edited.
export class CardsTab extends ConfigTab {
  constructor(panel, api, live, name, { kind, noun }) {
    super(panel, api, live, name);
    Object.assign(this, { kind, noun });
    this.editor = null;
    this.readOnly = null;  // why the file cannot be edited, once known
  }

  // Cancel: the editor goes, focus returns to the button that opened it (or what is left)
  close() {
    const was = this.editor;
    this.editor = null;
    this.render();
    const card = was && was.mode !== "add" ? this.cardOf(was.name) : null;
    const target = card?.querySelector(was.mode === "remove" ? `.remove-${this.kind}` : `.edit-${this.kind}`);
    if (target && !target.disabled) target.focus();
    else if (!this.addButton.disabled && !this.addButton.hidden) this.addButton.focus();
    else this.readOnlyNote.focus();  // editing is off: the note says why
  }

  // the gateway has no config file it can write: every control but the open editor's goes off
  lock(message) {
    this.readOnly = message;
    this.readOnlyNote.textContent = `${this.noun} cannot be edited here: ${message}`;
    this.readOnlyNote.hidden = false;
    this.addButton.disabled = true;
    for (const b of this.list.querySelectorAll(`.edit-${this.kind}, .remove-${this.kind}`)) {
      if (b.getAttribute("aria-expanded") !== "true") b.disabled = true;
    }
  }
}

// The composer's Tools toggle: shown when the gateway runs MCP tools for the chat page (the hello
// says `tools: true`); pressed, the next messages are sent with `tools: true` (docs/websocket.md,
// "Tools"). The choice is kept for the page's life, not stored.

export class ToolsToggle {
  constructor(button) {
    this.button = button;
    button.addEventListener("click", () => this.set(!this.on));
  }

  get on() {
    return !this.button.hidden && this.button.getAttribute("aria-pressed") === "true";
  }

  set(on) {
    this.button.setAttribute("aria-pressed", String(on));
  }

  // the hello's `tools`: a gateway without MCP hides the toggle (and sends nothing extra)
  available(yes) {
    this.button.hidden = !yes;
  }
}

// Slash commands typed in the input. Their output is a system card in the chat, never sent to
// the model. "//text" sends "/text" as an ordinary message.

import { h } from "./dom.js";
import { renderDebug, renderStatus } from "./debug.js";

export const COMMANDS = [
  { name: "help", usage: "/help", description: "List the commands", run: help },
  { name: "new", usage: "/new", description: "Start a new chat", run: (app) => app.newSession() },
  { name: "model", usage: "/model NAME", description: "Switch this chat's model (no name: list models)", run: model },
  { name: "status", usage: "/status", description: "Gateway version, uptime and service reachability", run: status },
  { name: "debug", usage: "/debug", description: "Link health, latency and load per process", run: debug },
];

// -> {command, arg} | {unknown: name} | null (not a command: send it)
export function parseCommand(text) {
  const trimmed = text.trim();
  if (!trimmed.startsWith("/") || trimmed.startsWith("//")) return null;
  const m = /^\/(\S+)(?:\s+([\s\S]*))?$/.exec(trimmed);
  if (!m) return null;
  const command = COMMANDS.find((c) => c.name === m[1].toLowerCase());
  return command ? { command, arg: (m[2] || "").trim() } : { unknown: m[1] };
}

// "//etc" is an escaped slash: the model gets "/etc".
export function unescapeSlash(text) {
  return text.trimStart().startsWith("//") ? text.trimStart().slice(1) : text;
}

export function suggestions(text) {
  if (!/^\/\S*$/.test(text) || text.startsWith("//")) return [];
  const prefix = text.slice(1).toLowerCase();
  return COMMANDS.filter((c) => c.name.startsWith(prefix));
}

export async function runCommand(app, parsed) {
  if (parsed.unknown !== undefined) {
    app.chat.addCard("Unknown command", h("p", null, `/${parsed.unknown} is not a command. Type /help to see them, or start with // to send a message that begins with /.`), { kind: "error" });
    return;
  }
  try {
    await parsed.command.run(app, parsed.arg);
  } catch (err) {
    app.chat.addCard(`/${parsed.command.name} failed`, h("p", null, `${err.code ? `${err.code}: ` : ""}${err.message}`), { kind: "error" });
  }
}

function help(app) {
  const table = h("table", { class: "help-table" },
    h("tbody", null, COMMANDS.map((c) => h("tr", null, h("th", { scope: "row" }, h("code", null, c.usage)), h("td", null, c.description)))));
  app.chat.addCard("Commands", [
    table,
    h("p", { class: "muted" }, "Enter sends, Shift+Enter starts a new line. Start with // to send text beginning with /."),
  ]);
}

function model(app, name) {
  const ids = app.models.map((m) => m.id);
  if (!name) {
    const list = h("ul", { class: "model-list" }, app.models.map((m) =>
      h("li", null, h("code", null, m.id), m.id === app.currentModel() ? h("span", { class: "badge" }, "current") : null,
        m.description ? h("span", { class: "muted" }, ` — ${m.description}`) : null)));
    app.chat.addCard("Models", ids.length ? list : h("p", null, "No models available."));
    return;
  }
  if (!ids.includes(name)) {
    app.chat.addCard("Unknown model", [
      h("p", null, `There is no model named “${name}”.`),
      ids.length ? h("p", null, "Available: ", ids.flatMap((id, i) => [i ? ", " : "", h("code", null, id)])) : null,
    ], { kind: "error" });
    return;
  }
  app.setModel(name);
  app.chat.addCard("Model switched", h("p", null, "This chat now uses ", h("code", null, name), "."));
}

async function status(app) {
  // The doc lists no params, yet answers with "the session's" model: offer the session id and
  // fall back to {} should the server insist on exactly that.
  const sid = app.currentSessionId;
  let payload;
  try {
    payload = await app.request("status", sid ? { sessionId: sid } : {});
  } catch (err) {
    if (err.code !== "bad_params" || !sid) throw err;
    payload = await app.request("status", {});
  }
  app.chat.addCard("Status", renderStatus(payload, { model: app.currentModel() }));
}

async function debug(app) {
  const payload = await app.request("debug", {});
  const body = h("div", null, renderDebug(payload));
  const refresh = h("button", { type: "button", class: "text-button", onclick: async () => {
    refresh.disabled = true;
    try {
      const fresh = await app.request("debug", {});
      body.replaceChildren(renderDebug(fresh));
      stamp.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      stamp.textContent = `Refresh failed: ${err.message}`;
    } finally {
      refresh.disabled = false;
    }
  } }, "Refresh");
  const stamp = h("span", { class: "muted" }, `Updated ${new Date().toLocaleTimeString()}`);
  app.chat.addCard("Debug", [body, h("div", { class: "card-foot" }, refresh, stamp)], { wide: true });
}

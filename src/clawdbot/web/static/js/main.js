// Entry point: find the page's elements, build the views and the protocol client, wire them.

import { h, icon, logo } from "./dom.js";
import { Client, defaultUrl } from "./ws.js";
import { SessionList } from "./sessions.js";
import { ChatView } from "./chat.js";
import { Composer } from "./composer.js";
import { App } from "./app.js";
import { ToolsToggle } from "./tools.js";
import { Login } from "./auth.js";
import { setupTheme, Drawer, Banner, confirmDialog, LiveRegion, makeConfirmDialog } from "./ui.js";

const $ = (sel) => document.querySelector(sel);

function emptyState() {
  return h("div", { class: "empty-state" },
    logo("empty-logo"),
    h("h2", null, "How can I help?"),
    h("p", { class: "muted" }, "Ask anything. Replies stream in as they are written."),
    h("p", { class: "muted small" }, "Type ", h("kbd", null, "/"), " for commands · ",
      h("kbd", null, "Enter"), " to send · ", h("kbd", null, "Shift"), "+", h("kbd", null, "Enter"), " for a new line"));
}

function main() {
  const client = new Client(defaultUrl());
  const live = new LiveRegion($("#live-status"));
  const drawer = new Drawer({ toggle: $("#drawer-toggle"), panel: $("#sidebar"), backdrop: $("#backdrop") });
  setupTheme($("#theme-toggle"));

  let app = null;
  const chat = new ChatView($("#messages"), { onRegenerate: (el) => app.regenerate(el), emptyState });
  const composer = new Composer({
    form: $("#composer"), input: $("#input"), send: $("#send"), stop: $("#stop"),
    notice: $("#notice"), hints: $("#command-hints"),
  }, { onSubmit: (text) => app.submit(text), onStop: () => app.stop() });
  const sessions = new SessionList($("#session-list"), {
    onOpen: (id) => app.openSession(id),
    onRename: (id, title) => app.renameSession(id, title),
    onDelete: (id) => app.deleteSession(id),
    onMore: () => app.loadOlderSessions(),
  });
  const login = new Login({ brand: "clawdbot", hint: "This gateway needs its key.", before: $("#live-status") },
    { onLoggedIn: () => client.connect() });
  const confirmEl = makeConfirmDialog($("#live-status"));

  const banner = new Banner($("#banner"), { onRetry: () => client.reconnectNow() });
  const showLogin = async () => {
    if (await client.authRequired()) {
      client.close();
      banner.hide();
      login.show();
    }
  };

  const tools = new ToolsToggle($("#tools-toggle"));
  app = new App({
    client, sessions, chat, composer, live, drawer, tools,
    picker: $("#model-picker"),
    title: $("#chat-title"),
    confirm: (opts) => confirmDialog(confirmEl, opts),
    onAuth: showLogin,
  });

  const dot = $("#conn-dot");
  client.addEventListener("state", (e) => {
    const { state } = e.detail;
    dot.dataset.state = state;
    dot.title = { ready: "Connected", connecting: "Connecting…", reconnecting: "Reconnecting…", offline: "Offline", auth: "Sign-in required" }[state] || state;
    if (state === "ready") banner.hide();
    else if (state === "reconnecting") banner.show("Reconnecting…");
    else if (state === "offline") banner.show("You are offline. Reconnecting when the network returns…");
    else if (state === "connecting") banner.show("Connecting…", { delay: 1500, retry: false });
    else if (state === "auth") {
      banner.hide();
      login.show();
    }
  });
  client.addEventListener("hello", (e) => {
    const server = e.detail.payload.server || {};
    $("#user-name").textContent = e.detail.payload.user || "";
    tools.available(Boolean(e.detail.payload.tools));
    $("#server-version").textContent = server.version ? `v${server.version}${server.role ? ` · ${server.role}` : ""}` : "";
    app.onHello(e.detail).catch((err) => chat.addCard("Could not load chats", h("p", null, err.message), { kind: "error" }));
  });
  client.addEventListener("resumed", () => app.onResumed());
  client.addEventListener("event", (e) => {
    const { event, payload } = e.detail;
    if (event === "chat") app.onChatEvent(payload);
    else if (payload && payload.session && payload.session.id) {
      sessions.upsert(payload.session);
      // the first message names a new chat: keep the header in step with the list
      if (payload.session.id === app.currentSessionId) app.nav.setTitle(sessions.get(payload.session.id));
    }
  });

  $("#new-session").addEventListener("click", () => app.newSession().catch((err) =>
    composer.showNotice(`Could not create a chat: ${err.message}`, { kind: "error" })));
  const jump = $("#jump-latest");
  jump.append(icon("down"));
  jump.addEventListener("click", () => chat.scroll(true));
  chat.onStickChange = (stick) => { jump.hidden = stick; };

  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && drawer.isOpen()) drawer.close();
  });
  window.addEventListener("online", () => client.reconnectNow());
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") client.reconnectNow();
  });
  window.addEventListener("hashchange", () => {
    const id = decodeURIComponent(location.hash.slice(1));
    if (id && id !== app.currentSessionId && sessions.get(id)) app.openSession(id);
  });

  client.authRequired().then((required) => {
    if (required) {
      dot.dataset.state = "auth";
      login.show();
    } else client.connect();
  });
  composer.focus();
}

main();

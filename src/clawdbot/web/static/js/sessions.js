// The session list in the sidebar: most recent first, grouped by day, current one highlighted.
// Keyboard: Tab/Enter open, ArrowUp/ArrowDown move, F2 renames, Delete asks to delete.

import { h, icon, clear } from "./dom.js";
import { relativeTime, dayGroup, fullTime } from "./format.js";

export const UNTITLED = "New chat";

export class SessionList {
  constructor(root, { onOpen, onRename, onDelete, onMore }) {
    this.root = root; // #session-list (ul)
    this.onOpen = onOpen;
    this.onRename = onRename;
    this.onDelete = onDelete;
    this.onMore = onMore;
    this.hasMore = false;
    this.sessions = [];
    this.currentId = null;
    this.busy = new Set();
    root.addEventListener("keydown", (e) => this.onKey(e));
  }

  set(sessions, hasMore = this.hasMore) {
    const byId = new Map(sessions.map((s) => [s.id, s]));
    this.sessions = [...byId.values()].sort((a, b) => (b.updatedAt || 0) - (a.updatedAt || 0));
    this.hasMore = hasMore;
    this.render();
  }

  upsert(session) {
    const i = this.sessions.findIndex((s) => s.id === session.id);
    if (i >= 0) this.sessions[i] = { ...this.sessions[i], ...session };
    else this.sessions.push(session);
    this.set(this.sessions);
  }

  remove(id) {
    this.sessions = this.sessions.filter((s) => s.id !== id);
    this.render();
  }

  get(id) {
    return this.sessions.find((s) => s.id === id) || null;
  }

  select(id) {
    this.currentId = id;
    for (const item of this.root.querySelectorAll(".session-item")) {
      const current = item.dataset.sessionId === id;
      item.classList.toggle("current", current);
      const button = item.querySelector(".session-open");
      if (current) button.setAttribute("aria-current", "page");
      else button.removeAttribute("aria-current");
    }
  }

  setBusy(id, busy) {
    if (busy) this.busy.add(id);
    else this.busy.delete(id);
    this.root.querySelector(`.session-item[data-session-id="${CSS.escape(id)}"]`)?.classList.toggle("busy", busy);
  }

  render() {
    const focusedId = document.activeElement?.closest?.(".session-item")?.dataset.sessionId;
    const focusedClass = document.activeElement?.className;
    clear(this.root);
    if (!this.sessions.length) {
      this.root.appendChild(h("li", { class: "session-empty muted" }, "No conversations yet"));
      return;
    }
    let group = null;
    for (const s of this.sessions) {
      const g = dayGroup(s.updatedAt || s.createdAt || 0);
      if (g !== group) {
        group = g;
        this.root.appendChild(h("li", { class: "session-group", role: "presentation" }, g));
      }
      this.root.appendChild(this.item(s));
    }
    if (this.hasMore) {
      const more = h("button", { type: "button", class: "text-button session-more", onclick: () => {
        more.disabled = true;
        this.onMore();
      } }, "Show older chats");
      this.root.appendChild(h("li", { class: "session-more-item" }, more));
    }
    this.select(this.currentId);
    if (focusedId) {
      const item = this.root.querySelector(`.session-item[data-session-id="${CSS.escape(focusedId)}"]`);
      const target = item?.querySelector(`.${(focusedClass || "").split(" ").find((c) => c.startsWith("session-")) || "session-open"}`);
      (target || item?.querySelector(".session-open"))?.focus();
    }
  }

  item(s) {
    const title = s.title || UNTITLED;
    const li = h("li", { class: "session-item", dataset: { sessionId: s.id } });
    if (this.busy.has(s.id)) li.classList.add("busy");
    li.append(
      h("button", {
        type: "button", class: "session-open", title: `${title}\n${fullTime(s.updatedAt)}`,
        onclick: () => this.onOpen(s.id),
      },
      h("span", { class: "session-title" }, title),
      h("span", { class: "session-meta" }, relativeTime(s.updatedAt),
        typeof s.messageCount === "number" ? ` · ${s.messageCount} msg` : "")),
      h("span", { class: "session-actions" },
        h("button", {
          type: "button", class: "icon-button session-rename", "aria-label": `Rename “${title}”`, title: "Rename",
          onclick: () => this.startRename(s.id),
        }, icon("edit")),
        h("button", {
          type: "button", class: "icon-button session-delete", "aria-label": `Delete “${title}”`, title: "Delete",
          onclick: () => this.onDelete(s.id),
        }, icon("trash"))));
    return li;
  }

  // Inline rename: Enter saves, Escape cancels, blur saves.
  startRename(id) {
    const li = this.root.querySelector(`.session-item[data-session-id="${CSS.escape(id)}"]`);
    const session = this.get(id);
    if (!li || !session || li.classList.contains("renaming")) return;
    li.classList.add("renaming");
    const input = h("input", {
      type: "text", class: "session-rename-input", "aria-label": "Chat title", maxlength: 200,
    });
    input.value = session.title || "";
    let done = false;
    const finish = (save) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      li.classList.remove("renaming");
      if (save && title && title !== session.title) this.onRename(id, title);
      else this.render();
      li.querySelector(".session-open")?.focus();
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); finish(true); }
      if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); finish(false); }
    });
    input.addEventListener("blur", () => finish(true));
    li.querySelector(".session-open").replaceWith(input);
    input.focus();
    input.select();
  }

  onKey(e) {
    const item = e.target.closest(".session-item");
    if (!item || e.target.tagName === "INPUT") return;
    const id = item.dataset.sessionId;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const items = [...this.root.querySelectorAll(".session-item .session-open")];
      const i = items.indexOf(item.querySelector(".session-open"));
      const next = items[Math.max(0, Math.min(items.length - 1, i + (e.key === "ArrowDown" ? 1 : -1)))];
      next?.focus();
    } else if (e.key === "F2") {
      e.preventDefault();
      this.startRename(id);
    } else if (e.key === "Delete") {
      e.preventDefault();
      this.onDelete(id);
    }
  }
}

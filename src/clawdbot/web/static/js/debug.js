// System cards for /status and /debug. Pure views: payload in, DOM out.

import { h } from "./dom.js";
import { fmtMs, fmtNum, fmtPct, fmtDuration } from "./format.js";
import { labelFor } from "./trace.js";

const DEBUG_COLUMNS = ["Process", "Service", "Reachable", "Circuit", "Probe", "p50", "p95", "In flight", "Errors",
  "Error rate (1m)", "Last error"];

export function renderDebug(payload) {
  const processes = Array.isArray(payload.processes) ? payload.processes : [];
  const body = h("div", { class: "debug" });
  const table = h("table", { class: "debug-table" },
    h("caption", { class: "sr-only" }, "Service health per process"),
    h("thead", null, h("tr", null, DEBUG_COLUMNS.map((c) => h("th", { scope: "col" }, c)))));
  const tbody = h("tbody");
  for (const proc of processes) {
    const services = Object.entries(proc.services || {});
    if (!services.length) {
      tbody.appendChild(h("tr", { "data-process": proc.role || "" },
        h("td", null, proc.role || "?"), h("td", { colspan: DEBUG_COLUMNS.length - 1, class: "muted" }, "no services")));
    }
    for (const [name, svc] of services) tbody.appendChild(serviceRow(proc, name, svc || {}));
  }
  table.appendChild(tbody);
  body.appendChild(h("div", { class: "table-wrap" }, table));
  for (const proc of processes) body.appendChild(loadBlock(proc));
  if (!processes.length) body.appendChild(h("p", { class: "muted" }, "No processes reported."));
  return body;
}

function serviceRow(proc, name, svc) {
  const reachable = svc.reachable;
  const errorRate = svc.errorRate1m;
  return h("tr", { "data-process": proc.role || "", "data-service": name },
    h("td", null, proc.role || "?"),
    h("th", { scope: "row" }, name, svc.type ? h("span", { class: "badge" }, String(svc.type)) : null),
    h("td", null, h("span", {
      class: `health ${reachable === true ? "ok" : reachable === false ? "bad" : "unknown"}`,
    }, reachable === true ? "yes" : reachable === false ? "no" : "?")),
    h("td", { class: `circuit ${svc.circuit === "closed" ? "ok" : svc.circuit ? "bad" : "unknown"}` },
      svc.circuit || "–"),
    h("td", { class: "num" }, fmtMs(svc.probeLatencyMs)),
    h("td", { class: "num" }, fmtMs(svc.latencyP50Ms)),
    h("td", { class: "num" }, fmtMs(svc.latencyP95Ms)),
    h("td", { class: "num" }, fmtNum(svc.inFlight)),
    h("td", { class: "num" }, fmtNum(svc.errors)),
    h("td", { class: `num${errorRate > 0 ? " warn" : ""}` }, fmtPct(errorRate)),
    h("td", { class: "last-error" }, lastError(svc.lastError)));
}

function lastError(err) {
  if (err === null || err === undefined || err === "") return "–";
  if (typeof err === "string") return err;
  const parts = [err.code, err.message].filter(Boolean).join(": ");
  const when = typeof err.at === "number" ? ` (${new Date(err.at).toLocaleTimeString()})` : "";
  return (parts || JSON.stringify(err)) + when;
}

const LOAD_FIELDS = [
  ["wsConnections", "WS connections", fmtNum],
  ["chatsInFlight", "Chats in flight", fmtNum],
  ["httpInFlight", "HTTP in flight", fmtNum],
  ["loopLagP50Ms", "Loop lag p50", fmtMs],
  ["loopLagMaxMs", "Loop lag max", fmtMs],
];

function loadBlock(proc) {
  const load = proc.load || {};
  const dl = h("dl", { class: "kv" });
  const add = (label, value) => dl.append(h("dt", null, label), h("dd", null, value));
  for (const [key, label, fmt] of LOAD_FIELDS) if (key in load) add(label, fmt(load[key]));
  for (const [key, value] of Object.entries(load)) {
    if (!LOAD_FIELDS.some(([k]) => k === key)) add(labelFor(key), typeof value === "number" ? fmtNum(value, 2) : String(value));
  }
  // overheadP*: the latency this process itself adds on top of its upstream.
  add("Added latency p50", fmtMs(proc.overheadP50Ms));
  add("Added latency p95", fmtMs(proc.overheadP95Ms));
  return h("section", { class: "debug-load", "data-process": proc.role || "" },
    h("h4", null, h("span", { class: "process-role" }, proc.role || "process"), " load", proc.url ? h("span", { class: "muted" }, ` · ${proc.url}`) : null),
    dl);
}

export function renderStatus(payload, { model } = {}) {
  const dl = h("dl", { class: "kv" });
  const add = (label, value) => dl.append(h("dt", null, label), h("dd", null, value));
  add("Version", payload.version ?? "–");
  add("Role", payload.role ?? "–");
  add("Uptime", fmtDuration(payload.uptimeS));
  add("User", payload.user ?? "–");
  add("Model", payload.model || model || "–");
  const services = Object.entries(payload.services || {});
  const list = h("ul", { class: "status-services" });
  for (const [name, svc] of services) {
    const ok = svc && svc.reachable;
    list.appendChild(h("li", null,
      h("span", { class: `health ${ok ? "ok" : ok === false ? "bad" : "unknown"}`, "aria-label": ok ? "reachable" : "unreachable" }, ok ? "●" : "○"),
      ` ${name} `,
      h("span", { class: "muted" }, ok ? fmtMs(svc.latencyMs) : "unreachable")));
  }
  const known = new Set(["version", "role", "uptimeS", "user", "model", "services"]);
  for (const [key, value] of Object.entries(payload)) {
    if (!known.has(key)) add(labelFor(key), typeof value === "object" ? JSON.stringify(value) : String(value));
  }
  return h("div", { class: "status" }, dl,
    services.length ? [h("h4", null, "Services"), list] : h("p", { class: "muted" }, "No services reported."));
}

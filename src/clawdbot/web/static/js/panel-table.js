// Plain tables from column definitions. Cells are text (textContent) or nodes built with h().
//
//   fillTable(table, [{label: "Name", cell: (r) => r.name}, {label: "Cost", cell: ..., num: true}], rows,
//             {empty: "No keys yet.", row: (r, tr) => { tr.dataset.keyId = r.id; }, foot: ["Total", ...]})

import { h, append, clear } from "./dom.js";

function cellNode(tag, value, col) {
  const cls = [col.num ? "num" : "", col.cls || ""].filter(Boolean).join(" ") || null;
  const el = h(tag, { class: cls });
  if (value instanceof Node || Array.isArray(value)) append(el, [value]);
  else el.textContent = value === null || value === undefined ? "" : String(value);
  return el;
}

export function fillTable(table, columns, rows, { empty = "Nothing to show.", row, foot, append: more = false } = {}) {
  let body = table.tBodies[0];
  if (!more || !body) {
    clearTable(table);
    table.append(h("thead", null, h("tr", null,
      columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))));
    body = h("tbody");
    table.append(body);
  }
  if (!rows.length && !more) {
    body.append(h("tr", null, h("td", { colspan: String(columns.length), class: "muted" }, empty)));
  }
  for (const r of rows) {
    const tr = h("tr", null, columns.map((c) => cellNode("td", c.cell(r), c)));
    if (row) row(r, tr);
    body.append(tr);
  }
  if (foot) {
    table.tFoot?.remove();
    table.append(h("tfoot", null, h("tr", null, foot.map((v, i) => cellNode("td", v, columns[i] || {})))));
  }
  return body;
}

export function clearTable(table) {
  const caption = table.querySelector("caption");
  clear(table);
  if (caption) table.append(caption);
}

export function tag(text, kind) {
  return h("span", { class: kind ? `tag ${kind}` : "tag" }, text);
}

// The error line of a tab: shown with a message, hidden with none.
export function showError(panel, message) {
  const el = panel.querySelector(".tab-error");
  if (!el) return;
  el.textContent = message || "";
  el.hidden = !message;
}

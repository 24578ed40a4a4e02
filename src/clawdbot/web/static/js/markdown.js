// Markdown -> DOM. Builds nodes with createElement/createTextNode only: message text is never
// parsed as HTML, so "<script>" or "<img onerror>" in a reply is shown as the characters it is.
// Links keep only http, https and mailto URLs.
//
// `doc` is injectable so the renderer runs under node's test runner with a tiny fake DOM.

import { parseBlocks } from "./md-block.js";
import { parseInline } from "./md-inline.js";

export { parseBlocks, parseInline };

const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);

// The URL parser strips tabs, newlines and leading controls the way the browser does before
// it navigates, so "java\tscript:" is seen as the javascript: URL it would become.
export function safeUrl(raw) {
  if (typeof raw !== "string" || !raw.trim()) return null;
  let url;
  try {
    url = new URL(raw.trim());
  } catch {
    return null; // relative or malformed: there is no page of ours it should point at
  }
  return SAFE_PROTOCOLS.has(url.protocol) ? url.href : null;
}

export function renderMarkdown(text, doc = globalThis.document) {
  const frag = doc.createDocumentFragment();
  for (const block of parseBlocks(text)) frag.appendChild(renderBlock(block, doc));
  return frag;
}

export function renderBlock(block, doc) {
  const el = (tag, cls) => {
    const node = doc.createElement(tag);
    if (cls) node.className = cls;
    return node;
  };
  switch (block.type) {
    case "heading": {
      const node = el(`h${block.level}`);
      appendInline(node, parseInline(block.text), doc);
      return node;
    }
    case "paragraph": {
      const node = el("p");
      appendInline(node, parseInline(block.text), doc);
      return node;
    }
    case "hr":
      return el("hr");
    case "code":
      return renderCode(block, doc);
    case "quote": {
      const node = el("blockquote");
      for (const child of block.children) node.appendChild(renderBlock(child, doc));
      return node;
    }
    case "list":
      return renderList(block, doc);
    case "table":
      return renderTable(block, doc);
    default: {
      const node = el("p");
      node.textContent = block.text || "";
      return node;
    }
  }
}

function renderCode(block, doc) {
  const wrap = doc.createElement("div");
  wrap.className = "code-block";
  const head = doc.createElement("div");
  head.className = "code-head";
  const lang = doc.createElement("span");
  lang.className = "code-lang";
  lang.textContent = block.lang || "text";
  const copy = doc.createElement("button");
  copy.className = "code-copy";
  copy.setAttribute("type", "button");
  copy.setAttribute("aria-label", "Copy code");
  copy.textContent = "Copy";
  head.appendChild(lang);
  head.appendChild(copy);
  const pre = doc.createElement("pre");
  const code = doc.createElement("code");
  const langClass = (block.lang || "").replace(/[^\w+#.-]/g, "").slice(0, 40);
  if (langClass) code.className = `language-${langClass}`;
  code.textContent = block.text;
  pre.appendChild(code);
  wrap.appendChild(head);
  wrap.appendChild(pre);
  return wrap;
}

function renderList(block, doc) {
  const list = doc.createElement(block.ordered ? "ol" : "ul");
  list.className = block.loose ? "md-list loose" : "md-list tight";
  if (block.ordered && block.start !== 1) list.setAttribute("start", String(block.start));
  for (const item of block.items) {
    const li = doc.createElement("li");
    if (item.task !== null) {
      li.className = "task";
      const box = doc.createElement("input");
      box.setAttribute("type", "checkbox");
      box.setAttribute("disabled", "");
      if (item.task) box.setAttribute("checked", "");
      li.appendChild(box);
    }
    for (const child of item.children) li.appendChild(renderBlock(child, doc));
    list.appendChild(li);
  }
  return list;
}

function renderTable(block, doc) {
  const wrap = doc.createElement("div");
  wrap.className = "table-wrap";
  const table = doc.createElement("table");
  const row = (cells, tag) => {
    const tr = doc.createElement("tr");
    cells.forEach((cell, i) => {
      const td = doc.createElement(tag);
      if (block.align[i]) td.setAttribute("data-align", block.align[i]);
      appendInline(td, parseInline(cell), doc);
      tr.appendChild(td);
    });
    return tr;
  };
  const thead = doc.createElement("thead");
  thead.appendChild(row(block.header, "th"));
  table.appendChild(thead);
  if (block.rows.length) {
    const tbody = doc.createElement("tbody");
    for (const cells of block.rows) tbody.appendChild(row(cells, "td"));
    table.appendChild(tbody);
  }
  wrap.appendChild(table);
  return wrap;
}

export function appendInline(parent, nodes, doc) {
  for (const node of nodes) {
    switch (node.type) {
      case "text":
        parent.appendChild(doc.createTextNode(node.text));
        break;
      case "br":
        parent.appendChild(doc.createElement("br"));
        break;
      case "code": {
        const code = doc.createElement("code");
        code.textContent = node.text;
        parent.appendChild(code);
        break;
      }
      case "em":
      case "strong":
      case "del": {
        const el = doc.createElement(node.type);
        appendInline(el, node.children, doc);
        parent.appendChild(el);
        break;
      }
      case "link":
        parent.appendChild(renderLink(node, doc));
        break;
      case "image":
        parent.appendChild(renderImage(node, doc));
        break;
      default:
        break;
    }
  }
}

function renderLink(node, doc) {
  const href = safeUrl(node.href);
  if (!href) {
    // Unsafe or relative target: keep the words, drop the link.
    const span = doc.createElement("span");
    span.className = "link-blocked";
    span.setAttribute("title", "Link removed: only http, https and mailto links are allowed");
    appendInline(span, node.children, doc);
    return span;
  }
  const a = doc.createElement("a");
  a.setAttribute("href", href);
  a.setAttribute("target", "_blank");
  a.setAttribute("rel", "noopener noreferrer");
  if (node.title) a.setAttribute("title", node.title);
  appendInline(a, node.children, doc);
  return a;
}

// Images are never fetched (no network at runtime, no tracking pixels): shown as a link.
function renderImage(node, doc) {
  const label = `Image: ${node.alt || "untitled"}`;
  const href = safeUrl(node.href);
  if (!href) {
    const span = doc.createElement("span");
    span.className = "link-blocked";
    span.textContent = label;
    return span;
  }
  const a = doc.createElement("a");
  a.className = "image-link";
  a.setAttribute("href", href);
  a.setAttribute("target", "_blank");
  a.setAttribute("rel", "noopener noreferrer");
  a.textContent = label;
  return a;
}

// Renders a growing text into `container`. Top-level blocks before the last one are final
// (appending text can only change the last block), so each update re-parses and re-renders
// only the last block; an open code fence just gets the new characters appended.
export class MarkdownView {
  constructor(container, doc = globalThis.document) {
    this.container = container;
    this.doc = doc;
    this.committed = 0; // text offset where the uncommitted tail starts
    this.tailNode = null;
    this.tail = null; // {start, lang, text, code} when the tail is a code block
  }

  update(text) {
    const blocks = parseBlocks(text.slice(this.committed));
    if (!blocks.length) return;
    const last = blocks[blocks.length - 1];
    if (blocks.length > 1) {
      this.dropTail();
      for (const block of blocks.slice(0, -1)) this.container.appendChild(renderBlock(block, this.doc));
      this.committed += last.offset;
    }
    if (last.type === "code" && this.tail && this.tail.lang === last.lang && this.tailNode) {
      if (last.text.startsWith(this.tail.text)) {
        const extra = last.text.slice(this.tail.text.length);
        if (extra) this.tail.code.appendChild(this.doc.createTextNode(extra));
      } else {
        this.tail.code.textContent = last.text;
      }
      this.tail.text = last.text;
      return;
    }
    const node = renderBlock(last, this.doc);
    if (this.tailNode) this.container.replaceChild(node, this.tailNode);
    else this.container.appendChild(node);
    this.tailNode = node;
    this.tail = last.type === "code"
      ? { lang: last.lang, text: last.text, code: node.lastChild.firstChild }
      : null;
  }

  dropTail() {
    if (this.tailNode) this.container.removeChild(this.tailNode);
    this.tailNode = null;
    this.tail = null;
  }

  // Full re-render, e.g. when the final message content replaces the streamed text.
  reset(text) {
    while (this.container.firstChild) this.container.removeChild(this.container.firstChild);
    this.committed = 0;
    this.tailNode = null;
    this.tail = null;
    if (text) this.update(text);
  }
}

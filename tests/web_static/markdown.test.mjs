// Run: node --test tests/web_static/
// The renderer is given a tiny fake DOM that records exactly what it builds, so these tests see
// every element, attribute and text node the page would get.
import { test } from "node:test";
import assert from "node:assert/strict";
import { renderMarkdown, safeUrl, MarkdownView, parseBlocks, parseInline } from "../../src/clawdbot/web/static/js/markdown.js";

class FakeNode {
  constructor(tag) {
    this.tagName = tag;
    this.childNodes = [];
    this.attributes = {};
    this.parentNode = null;
  }
  appendChild(child) {
    if (child.tagName === "#fragment") {
      for (const c of [...child.childNodes]) this.appendChild(c);
      child.childNodes = [];
      return child;
    }
    if (child.parentNode) child.parentNode.removeChild(child);
    child.parentNode = this;
    this.childNodes.push(child);
    return child;
  }
  removeChild(child) {
    const i = this.childNodes.indexOf(child);
    if (i < 0) throw new Error("not a child");
    this.childNodes.splice(i, 1);
    child.parentNode = null;
    return child;
  }
  replaceChild(fresh, old) {
    const i = this.childNodes.indexOf(old);
    if (i < 0) throw new Error("not a child");
    if (fresh.parentNode) fresh.parentNode.removeChild(fresh);
    this.childNodes[i] = fresh;
    fresh.parentNode = this;
    old.parentNode = null;
    return old;
  }
  get firstChild() { return this.childNodes[0] || null; }
  get lastChild() { return this.childNodes[this.childNodes.length - 1] || null; }
  setAttribute(name, value) {
    if (/^on/i.test(name)) throw new Error(`event handler attribute set: ${name}`);
    this.attributes[name] = String(value);
  }
  getAttribute(name) { return this.attributes[name] ?? null; }
  set className(v) { this.attributes.class = v; }
  get className() { return this.attributes.class || ""; }
  set textContent(v) {
    this.childNodes = [];
    if (v !== "") this.appendChild(new FakeText(String(v)));
  }
  get textContent() { return this.childNodes.map((c) => c.textContent).join(""); }
  set innerHTML(_) { throw new Error("innerHTML used"); }
  insertAdjacentHTML() { throw new Error("insertAdjacentHTML used"); }
}

class FakeText {
  constructor(text) { this.tagName = "#text"; this.data = text; this.parentNode = null; }
  get textContent() { return this.data; }
}

const doc = {
  createElement: (tag) => new FakeNode(tag.toLowerCase()),
  createTextNode: (text) => new FakeText(text),
  createDocumentFragment: () => new FakeNode("#fragment"),
};

function render(md) {
  const root = new FakeNode("div");
  root.appendChild(renderMarkdown(md, doc));
  return root;
}

function* walk(node) {
  yield node;
  for (const child of node.childNodes || []) yield* walk(child);
}

const elements = (root, tag) => [...walk(root)].filter((n) => n.tagName === tag);

// Serialise to a readable skeleton for structural assertions.
function shape(node) {
  if (node.tagName === "#text") return node.data;
  const inner = node.childNodes.map(shape).join("");
  return node.tagName === "div" && !node.className ? inner : `<${node.tagName}>${inner}</${node.tagName}>`;
}

const ALLOWED_TAGS = new Set(["#text", "div", "p", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "del",
  "code", "pre", "a", "span", "ul", "ol", "li", "blockquote", "hr", "br", "table", "thead", "tbody", "tr",
  "th", "td", "button", "input"]);

function assertSafe(root) {
  for (const node of walk(root)) {
    assert.ok(ALLOWED_TAGS.has(node.tagName), `unexpected element <${node.tagName}>`);
    for (const [name, value] of Object.entries(node.attributes || {})) {
      assert.ok(!/^on/i.test(name), `event handler attribute ${name}`);
      if (name === "href") assert.match(value, /^(https?:|mailto:)/, `unsafe href ${value}`);
      assert.notEqual(name, "src");
      assert.notEqual(name, "style");
    }
    if (node.tagName === "a") {
      assert.equal(node.attributes.rel, "noopener noreferrer");
      assert.equal(node.attributes.target, "_blank");
    }
    if (node.tagName === "input") assert.equal(node.attributes.type, "checkbox");
  }
}

const PAYLOADS = [
  "<img src=x onerror=alert(1)>",
  "<script>alert(1)</script>",
  "[x](javascript:alert(1))",
  "[x](JaVaScRiPt:alert(1))",
  "[x](java\tscript:alert(1))",
  "[x]( javascript:alert(1))",
  "[x](&#106;avascript:alert(1))",
  "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
  "[x](vbscript:msgbox(1))",
  "[x](<javascript:alert(1)>)",
  "![x](javascript:alert(1))",
  "![x](data:image/svg+xml,<svg onload=alert(1)>)",
  "<javascript:alert(1)>",
  "<a href=\"javascript:alert(1)\">x</a>",
  "<svg><script>alert(1)</script></svg>",
  "```html\n<script>alert(1)</script>\n```",
  "| a | b |\n|---|---|\n| <img src=x onerror=alert(1)> | [x](javascript:alert(1)) |",
  "> <iframe src=javascript:alert(1)>",
  "- [x](javascript:alert(1))\n  - <b onmouseover=alert(1)>hi</b>",
  "**<img src=x onerror=alert(1)>**",
  "`<img src=x onerror=alert(1)>`",
  "[<img src=x onerror=alert(1)>](https://example.com)",
  "[x](https://example.com \"\\\" onmouseover=alert(1)\")",
  "\u0000<script>alert(1)</script>",
];

test("XSS payloads render as inert text", () => {
  for (const payload of PAYLOADS) {
    const root = render(payload);
    assertSafe(root);
  }
  const root = render("<img src=x onerror=alert(1)> and <script>alert(1)</script>");
  assert.equal(root.textContent, "<img src=x onerror=alert(1)> and <script>alert(1)</script>");
  assert.equal(elements(root, "img").length, 0);
  assert.equal(elements(root, "script").length, 0);
});

test("javascript: and data: links are dropped, their text kept", () => {
  for (const md of ["[click](javascript:alert(1))", "[click](data:text/html,hi)", "[click](JAVASCRIPT:x)"]) {
    const root = render(md);
    assert.equal(elements(root, "a").length, 0, md);
    assert.equal(root.textContent, "click");
  }
});

test("safeUrl", () => {
  assert.equal(safeUrl("https://example.com/a?b=1"), "https://example.com/a?b=1");
  assert.equal(safeUrl("mailto:x@example.com"), "mailto:x@example.com");
  for (const bad of ["javascript:alert(1)", " javascript:alert(1)", "java\nscript:alert(1)",
    "\u0001javascript:alert(1)", "data:text/html,x", "vbscript:x", "file:///etc/passwd", "/relative", "#x", ""]) {
    assert.equal(safeUrl(bad), null, JSON.stringify(bad));
  }
});

test("safe links get target and rel", () => {
  const root = render("see [docs](https://example.com/docs \"Docs\") and https://example.org/x.");
  const links = elements(root, "a");
  assert.equal(links.length, 2);
  assert.equal(links[0].attributes.href, "https://example.com/docs");
  assert.equal(links[0].attributes.title, "Docs");
  assert.equal(links[1].attributes.href, "https://example.org/x");
  assert.equal(links[1].textContent, "https://example.org/x");
  assertSafe(root);
});

test("headings, emphasis, inline code", () => {
  const root = render("# Title\n\nSome *em*, **strong**, ~~del~~ and `co*de*`.");
  assert.equal(shape(root), "<h1>Title</h1><p>Some <em>em</em>, <strong>strong</strong>, <del>del</del> and <code>co*de*</code>.</p>");
  assert.equal(shape(render("*a **b** c*")), "<p><em>a <strong>b</strong> c</em></p>");
  assert.equal(shape(render("snake_case_name and 2*3*4")), "<p>snake_case_name and 2<em>3</em>4</p>");
  assert.equal(shape(render("\\*not em\\*")), "<p>*not em*</p>");
});

test("fenced code keeps text verbatim and gets a copy button", () => {
  const root = render("```python\nif a < b:\n    print('<b>')\n```");
  const code = elements(root, "code")[0];
  assert.equal(code.textContent, "if a < b:\n    print('<b>')");
  assert.equal(code.className, "language-python");
  assert.equal(elements(root, "button")[0].className, "code-copy");
});

test("nested and ordered lists", () => {
  const md = "1. one\n2. two\n   - a\n   - b\n     1. deep\n3. three";
  const root = render(md);
  assert.equal(shape(root), "<ol><li><p>one</p></li><li><p>two</p><ul><li><p>a</p></li><li><p>b</p>" +
    "<ol><li><p>deep</p></li></ol></li></ul></li><li><p>three</p></li></ol>");
  const started = render("3. c\n4. d");
  assert.equal(elements(started, "ol")[0].attributes.start, "3");
  const tasks = render("- [x] done\n- [ ] todo");
  assert.equal(elements(tasks, "input").length, 2);
  assert.equal(elements(tasks, "input")[0].attributes.checked, "");
});

test("two-space nesting under an ordered item", () => {
  assert.equal(shape(render("1. one\n  - sub\n2. two")),
    "<ol><li><p>one</p><ul><li><p>sub</p></li></ul></li><li><p>two</p></li></ol>");
});

test("tables with alignment", () => {
  const root = render("| a | b |\n|:--|--:|\n| `x|y` | **2** |\n| 3 |");
  assert.equal(elements(root, "th").length, 2);
  assert.equal(elements(root, "td").length, 4);
  assert.equal(elements(root, "th")[1].attributes["data-align"], "right");
  assert.equal(elements(root, "td")[0].textContent, "x|y");
});

test("blockquotes and rules", () => {
  assert.equal(shape(render("> quoted\n> > nested\n\n---")),
    "<blockquote><p>quoted</p><blockquote><p>nested</p></blockquote></blockquote><hr></hr>");
});

test("streaming view matches a one-shot render, whatever the chunking", () => {
  const md = "# Plan\n\nIntro with **bold** text.\n\n1. first\n2. second\n   - nested\n\n" +
    "```js\nconst x = 1;\nconsole.log(x);\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n> done\n\nBye.";
  const expected = shape(render(md));
  for (const step of [1, 2, 3, 7, 13]) {
    const root = new FakeNode("div");
    const view = new MarkdownView(root, doc);
    for (let i = step; i < md.length + step; i += step) view.update(md.slice(0, i));
    assert.equal(shape(root), expected, `chunk ${step}`);
  }
});

test("pathological input stays fast", () => {
  const inputs = ["*".repeat(20000), "*a ".repeat(8000), "[".repeat(20000), "_a ".repeat(8000),
    "`".repeat(5000) + "x", "> ".repeat(2000) + "x", "- ".repeat(2000) + "x", "[a](".repeat(5000)];
  for (const input of inputs) {
    const t0 = performance.now();
    assertSafe(render(input));
    assert.ok(performance.now() - t0 < 1500, `slow on ${input.slice(0, 10)}…`);
  }
});

test("parsers are pure data", () => {
  assert.equal(parseBlocks("a\n\nb").length, 2);
  assert.deepEqual(parseInline("`x`"), [{ type: "code", text: "x" }]);
});

// Inline Markdown parser: text -> array of plain node objects (no DOM, no HTML).
//   {type: "text", text} | {type: "code", text} | {type: "br"}
//   {type: "em" | "strong" | "del", children} | {type: "link", href, title, children}
//   {type: "image", href, alt}
// Every scan is bounded (label length, nesting depth, "no closer after here" memo) so hostile
// input such as thousands of "*" or "[" stays roughly linear.

const PUNCT = /[!-/:-@[-`{-~]/;
const SPACE = /\s/;
const ALNUM = /[\p{L}\p{N}]/u;
const MAX_DEPTH = 12;
const MAX_LABEL = 2000;
const BARE_URL = /^(?:https?:\/\/|www\.)[^\s<]*[^\s<?!.,:;*_~'")\]]/i;
const AUTOLINK = /^<([a-zA-Z][a-zA-Z0-9+.-]{1,31}:[^\s<>]*)>/;
const AUTOMAIL = /^<([^\s@<>()]+@[^\s@<>()]+\.[^\s@<>()]+)>/;

// Characters scanned looking ahead (closers, brackets, destinations) per parseInline call;
// past it the rest of the text is plain, which only hostile input ever reaches.
const WORK_BUDGET = 400_000;

export function parseInline(src, opts = {}) {
  return new InlineParser(String(src), opts.links !== false, 0, { budget: WORK_BUDGET }).parse();
}

class InlineParser {
  constructor(s, links, depth, work) {
    this.s = s;
    this.links = links;
    this.depth = depth;
    this.work = work;
    this.out = [];
    this.buf = "";
    this.noCloser = new Set();
  }

  flush() {
    if (this.buf) this.out.push({ type: "text", text: this.buf });
    this.buf = "";
  }

  push(node) {
    this.flush();
    this.out.push(node);
  }

  child(text, links = this.links) {
    if (this.depth >= MAX_DEPTH) return [{ type: "text", text }];
    return new InlineParser(text, links, this.depth + 1, this.work).parse();
  }

  parse() {
    const s = this.s;
    let i = 0;
    while (i < s.length) {
      const c = s[i];
      const next = this.step(c, i);
      if (next > i) { i = next; continue; }
      this.buf += c;
      i++;
    }
    this.flush();
    return this.out;
  }

  // Try the construct starting at i; return the index after it, or i if none matched.
  step(c, i) {
    const s = this.s;
    if (c === "\\") {
      if (s[i + 1] === "\n") { this.push({ type: "br" }); return i + 2; }
      if (i + 1 < s.length && PUNCT.test(s[i + 1])) { this.buf += s[i + 1]; return i + 2; }
      return i;
    }
    if (c === "\n") {
      this.buf = this.buf.replace(/[ \t]+$/, "");
      this.push({ type: "br" });
      let j = i + 1;
      while (s[j] === " " || s[j] === "\t") j++;
      return j;
    }
    if (c === "`") return this.codeSpan(i);
    if (c === "!" && s[i + 1] === "[" && this.links) {
      const end = this.link(i + 1, true);
      return end === i + 1 ? i : end;
    }
    if (c === "[" && this.links) return this.link(i, false);
    if (c === "<" && this.links) return this.autolink(i);
    if (c === "*" || c === "_" || c === "~") return this.emphasis(c, i);
    if ((c === "h" || c === "H" || c === "w" || c === "W") && this.links) return this.bareUrl(i);
    return i;
  }

  codeSpan(i) {
    const s = this.s;
    const run = runLength(s, i, "`");
    const close = findRun(s, i + run, "`", run);
    if (close < 0) { this.buf += s.slice(i, i + run); return i + run; }
    let text = s.slice(i + run, close).replace(/\n/g, " ");
    if (text.length > 2 && text[0] === " " && text[text.length - 1] === " " && text.trim()) {
      text = text.slice(1, -1);
    }
    this.push({ type: "code", text });
    return close + run;
  }

  link(i, image) {
    const s = this.s;
    if (this.work.budget <= 0) return i;
    const end = matchBracket(s, i, this.work);
    if (end < 0 || s[end + 1] !== "(") return i;
    const dest = parseDestination(s, end + 2, this.work);
    if (!dest) return i;
    const label = s.slice(i + 1, end);
    if (image) {
      this.push({ type: "image", href: dest.href, alt: plainText(this.child(label, false)) });
    } else {
      this.push({ type: "link", href: dest.href, title: dest.title, children: this.child(label, false) });
    }
    return dest.end;
  }

  autolink(i) {
    const rest = this.s.slice(i, i + 2048);
    let m = AUTOLINK.exec(rest);
    if (m) {
      this.push({ type: "link", href: m[1], title: null, children: [{ type: "text", text: m[1] }] });
      return i + m[0].length;
    }
    m = AUTOMAIL.exec(rest);
    if (m) {
      this.push({ type: "link", href: `mailto:${m[1]}`, title: null, children: [{ type: "text", text: m[1] }] });
      return i + m[0].length;
    }
    return i;
  }

  bareUrl(i) {
    const prev = this.s[i - 1];
    if (prev && (ALNUM.test(prev) || prev === "/" || prev === ":")) return i;
    const m = BARE_URL.exec(this.s.slice(i, i + 4096));
    if (!m) return i;
    let url = m[0];
    // Drop a trailing ")" that closes a parenthesis opened before the URL.
    while (url.endsWith(")") && count(url, "(") < count(url, ")")) url = url.slice(0, -1);
    const href = /^www\./i.test(url) ? `https://${url}` : url;
    this.push({ type: "link", href, title: null, children: [{ type: "text", text: url }] });
    return i + url.length;
  }

  emphasis(c, i) {
    const s = this.s;
    const run = runLength(s, i, c);
    const after = s[i + run];
    const before = s[i - 1];
    const canOpen = after !== undefined && !SPACE.test(after) && !(c === "_" && before && ALNUM.test(before));
    if (c === "~" && run !== 2) { this.buf += s.slice(i, i + run); return i + run; }
    if (!canOpen || this.depth >= MAX_DEPTH || this.work.budget <= 0) { this.buf += s.slice(i, i + run); return i + run; }
    for (const len of c === "~" ? [2] : run >= 2 ? [2, 1] : [1]) {
      const key = c + len;
      if (this.noCloser.has(key)) continue;
      const close = findCloser(s, i + run, c, len, this.work);
      if (close < 0) {
        // With no nested opener seen, no later start can find a closer either.
        if (!this.work.nested) this.noCloser.add(key);
        continue;
      }
      const type = c === "~" ? "del" : len === 2 ? "strong" : "em";
      if (run > len) this.buf += s.slice(i, i + run - len);
      this.push({ type, children: this.child(s.slice(i + run, close)) });
      return close + len;
    }
    this.buf += s.slice(i, i + run);
    return i + run;
  }
}

function runLength(s, i, c) {
  let j = i;
  while (s[j] === c) j++;
  return j - i;
}

function count(s, c) {
  let n = 0;
  for (const ch of s) if (ch === c) n++;
  return n;
}

// Index of the next run of exactly `len` characters `c` at or after `from`, or -1.
function findRun(s, from, c, len) {
  let k = s.indexOf(c, from);
  while (k >= 0) {
    const run = runLength(s, k, c);
    if (run === len) return k;
    k = s.indexOf(c, k + run);
  }
  return -1;
}

// Where the emphasis opened before `from` closes: skips code spans, escapes and nested openers.
function findCloser(s, from, c, len, work) {
  let nested = 0;
  let k = from;
  work.nested = false;
  while (k < s.length) {
    if (--work.budget <= 0) return -1;
    const ch = s[k];
    if (ch === "\\") { k += 2; continue; }
    if (ch === "`") {
      const run = runLength(s, k, "`");
      const end = findRun(s, k + run, "`", run);
      k = end < 0 ? k + run : end + run;
      continue;
    }
    if (ch !== c) { k++; continue; }
    const run = runLength(s, k, c);
    const prev = s[k - 1];
    const next = s[k + run];
    const leftFlank = next !== undefined && !SPACE.test(next);
    const rightFlank = k > from && prev !== undefined && !SPACE.test(prev);
    const intraword = c === "_" && next !== undefined && ALNUM.test(next);
    if (rightFlank && !intraword && (!leftFlank || nested === 0)) {
      if (nested > 0) nested--;
      else if (run >= len && (c !== "~" || run === 2)) return k + run - len;
    } else if (leftFlank && !(c === "_" && prev && ALNUM.test(prev))) {
      nested++;
      work.nested = true;
    }
    k += run;
  }
  return -1;
}

function matchBracket(s, i, work) {
  let depth = 0;
  const limit = Math.min(s.length, i + MAX_LABEL);
  for (let k = i; k < limit; k++) {
    if (--work.budget <= 0) return -1;
    const ch = s[k];
    if (ch === "\\") { k++; continue; }
    if (ch === "`") {
      const run = runLength(s, k, "`");
      const end = findRun(s, k + run, "`", run);
      if (end >= limit) return -1;
      if (end >= 0) k = end + run - 1;
      else k += run - 1;
      continue;
    }
    if (ch === "[") depth++;
    else if (ch === "]" && --depth === 0) return k;
  }
  return -1;
}

function parseDestination(s, i, work) {
  let k = i;
  while (s[k] === " " || s[k] === "\n") k++;
  let href = "";
  if (s[k] === "<") {
    const end = s.indexOf(">", k);
    if (end < 0 || s.slice(k, end).includes("\n")) return null;
    href = s.slice(k + 1, end);
    k = end + 1;
  } else {
    let depth = 0;
    const from = k;
    while (k < s.length && k - from < 4096) {
      if (--work.budget <= 0) return null;
      const ch = s[k];
      if (ch === "\\" && PUNCT.test(s[k + 1] || "")) { k += 2; continue; }
      if (SPACE.test(ch)) break;
      if (ch === "(") depth++;
      if (ch === ")" && depth-- === 0) break;
      k++;
    }
    href = s.slice(from, k).replace(/\\([!-/:-@[-`{-~])/g, "$1");
  }
  while (s[k] === " " || s[k] === "\n") k++;
  let title = null;
  const q = s[k];
  if (q === '"' || q === "'" || q === "(") {
    const closeQ = q === "(" ? ")" : q;
    const end = s.indexOf(closeQ, k + 1);
    if (end < 0) return null;
    title = s.slice(k + 1, end);
    k = end + 1;
    while (s[k] === " " || s[k] === "\n") k++;
  }
  if (s[k] !== ")") return null;
  return { href, title, end: k + 1 };
}

export function plainText(nodes) {
  let out = "";
  for (const n of nodes) {
    if (n.type === "text" || n.type === "code") out += n.text;
    else if (n.type === "br") out += "\n";
    else if (n.type === "image") out += n.alt;
    else if (n.children) out += plainText(n.children);
  }
  return out;
}

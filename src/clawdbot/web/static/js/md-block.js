// Block-level Markdown parser: text -> plain objects (no DOM, no HTML).
// A CommonMark/GFM subset: ATX and setext headings, paragraphs, fenced and indented code,
// nested bullet/ordered/task lists, GFM tables, blockquotes, thematic breaks.
// Raw HTML is not a thing here: it stays literal text.
//
// Top-level blocks carry `offset`, the offset of their first line, so a streaming renderer can
// keep finished blocks and re-parse only from the last one (see markdown.js).

const FENCE = /^( {0,3})(`{3,}|~{3,})(.*)$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const HR = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?/;
const ITEM = /^( {0,3})([-+*]|(\d{1,9})([.)]))([ \t]+|$)(.*)$/;
// "-" needs three, so "intro\n- item" does not flash as a heading while it streams.
const SETEXT = /^ {0,3}(=+|-{3,})[ \t]*$/;
const TABLE_DELIM = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;
const TASK = /^\[([ xX])\](?:[ \t]+|$)/;

const isBlank = (line) => /^[ \t]*$/.test(line);
const indentOf = (line) => line.length - line.trimStart().length;

function expandTabs(line) {
  return line.replace(/^[ \t]+/, (ws) => ws.replace(/\t/g, "    "));
}

export function parseBlocks(src) {
  const raw = String(src).replace(/\r\n?/g, "\n").split("\n");
  const offsets = [];
  let pos = 0;
  for (const line of raw) {
    offsets.push(pos);
    pos += line.length + 1;
  }
  const blocks = parseLines(raw.map(expandTabs), 0);
  for (const block of blocks) block.offset = offsets[block.line];
  return blocks;
}

function matchItem(line) {
  const m = ITEM.exec(line);
  if (!m || HR.test(line)) return null;
  const ordered = m[3] !== undefined;
  const spaces = m[5].length;
  const empty = m[6].trim() === "";
  const pad = empty || spaces > 4 ? 1 : spaces;
  return {
    ordered,
    marker: ordered ? m[4] : m[2],
    start: ordered ? parseInt(m[3], 10) : 1,
    markerIndent: m[1].length,
    contentIndent: m[1].length + m[2].length + pad,
    first: empty ? "" : (spaces > 4 ? " ".repeat(spaces - 1) : "") + m[6],
    empty,
  };
}

function splitRow(line) {
  let s = line.trim();
  if (s.startsWith("|")) s = s.slice(1);
  if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
  const cells = [];
  let cell = "";
  let inCode = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "\\" && s[i + 1] === "|") { cell += "\\|"; i++; continue; }
    if (c === "`") {
      let run = 1;
      while (s[i + run] === "`") run++;
      inCode = inCode === run ? 0 : inCode || run;
      cell += s.slice(i, i + run);
      i += run - 1;
      continue;
    }
    if (c === "|" && !inCode) { cells.push(cell.trim()); cell = ""; continue; }
    cell += c;
  }
  cells.push(cell.trim());
  return cells;
}

function tableAt(lines, i) {
  const line = lines[i];
  const next = lines[i + 1];
  if (next === undefined || !line.includes("|") || !TABLE_DELIM.test(next) || !next.includes("-")) return null;
  if (!next.includes("|") && !line.trim().startsWith("|")) return null;
  const header = splitRow(line);
  const delims = splitRow(next);
  if (header.length !== delims.length) return null;
  const align = delims.map((d) => {
    const left = d.startsWith(":");
    const right = d.endsWith(":");
    return left && right ? "center" : right ? "right" : left ? "left" : null;
  });
  return { header, align };
}

// Can `line` start a block that interrupts a paragraph?
function interrupts(lines, i) {
  const line = lines[i];
  if (FENCE.test(line) || HEADING.test(line) || HR.test(line) || QUOTE.test(line)) return true;
  const item = matchItem(line);
  if (item && !item.empty && (!item.ordered || item.start === 1)) return true;
  return tableAt(lines, i) !== null;
}

function parseLines(lines, depth) {
  const blocks = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) { i++; continue; }
    const start = i;
    let block;
    let m;
    if ((m = FENCE.exec(line)) && !(m[2][0] === "`" && m[3].includes("`"))) {
      [block, i] = parseFence(lines, i, m);
    } else if ((m = HEADING.exec(line))) {
      block = { type: "heading", level: m[1].length, text: m[2] || "" };
      i++;
    } else if (HR.test(line)) {
      block = { type: "hr" };
      i++;
    } else if (QUOTE.test(line) && depth < 32) {
      [block, i] = parseQuote(lines, i, depth);
    } else if (matchItem(line) && depth < 32) {
      [block, i] = parseList(lines, i, depth);
    } else if (indentOf(line) >= 4) {
      [block, i] = parseIndentedCode(lines, i);
    } else if ((m = tableAt(lines, i))) {
      [block, i] = parseTable(lines, i, m);
    } else {
      [block, i] = parseParagraph(lines, i);
    }
    block.line = start;
    blocks.push(block);
  }
  return blocks;
}

function parseFence(lines, i, m) {
  const indent = m[1].length;
  const fence = m[2];
  const lang = m[3].trim().split(/\s+/)[0] || "";
  const body = [];
  i++;
  let closed = false;
  while (i < lines.length) {
    const line = lines[i];
    const close = /^ {0,3}(`{3,}|~{3,})[ \t]*$/.exec(line);
    if (close && close[1][0] === fence[0] && close[1].length >= fence.length) {
      closed = true;
      i++;
      break;
    }
    body.push(line.slice(Math.min(indent, indentOf(line))));
    i++;
  }
  return [{ type: "code", lang, text: body.join("\n"), closed }, i];
}

function parseIndentedCode(lines, i) {
  const body = [];
  while (i < lines.length && (isBlank(lines[i]) || indentOf(lines[i]) >= 4)) {
    body.push(lines[i].slice(4));
    i++;
  }
  while (body.length && isBlank(body[body.length - 1])) body.pop();
  return [{ type: "code", lang: "", text: body.join("\n"), closed: true }, i];
}

function parseQuote(lines, i, depth) {
  const inner = [];
  let lazyOk = false;
  while (i < lines.length) {
    const line = lines[i];
    if (QUOTE.test(line)) {
      const rest = line.replace(QUOTE, "");
      inner.push(rest);
      lazyOk = !isBlank(rest) && !FENCE.test(rest);
    } else if (lazyOk && !isBlank(line) && !interrupts(lines, i)) {
      inner.push(line);
    } else break;
    i++;
  }
  return [{ type: "quote", children: parseLines(inner, depth + 1) }, i];
}

function parseList(lines, i, depth) {
  const first = matchItem(lines[i]);
  const list = { type: "list", ordered: first.ordered, start: first.start, loose: false, items: [] };
  while (i < lines.length) {
    const item = matchItem(lines[i]);
    if (!item || item.ordered !== first.ordered || item.marker !== first.marker) break;
    if (item.markerIndent > first.markerIndent + 1 && list.items.length) break;
    const body = [item.first];
    const need = Math.min(item.contentIndent, item.markerIndent + 2);
    let sawBlank = item.empty;
    let inFence = FENCE.test(item.first);
    let internalBlank = false;
    i++;
    while (i < lines.length) {
      const line = lines[i];
      if (isBlank(line)) { body.push(""); sawBlank = true; i++; continue; }
      const ind = indentOf(line);
      if (ind >= need) {
        const text = line.slice(Math.min(ind, item.contentIndent));
        if (sawBlank && body.some((l) => l !== "") && !inFence) internalBlank = true;
        if (FENCE.test(text)) inFence = !inFence;
        body.push(text);
        sawBlank = false;
        i++;
        continue;
      }
      if (sawBlank || matchItem(line) || interrupts(lines, i)) break;
      body.push(line); // lazy paragraph continuation
      i++;
    }
    let trailing = 0;
    while (body.length > 1 && body[body.length - 1] === "") { body.pop(); trailing++; }
    let task = null;
    const t = TASK.exec(body[0]);
    if (t) {
      task = t[1] !== " ";
      body[0] = body[0].slice(t[0].length);
    }
    list.items.push({ task, children: parseLines(body, depth + 1) });
    if (internalBlank) list.loose = true;
    if (trailing && i < lines.length) {
      const next = matchItem(lines[i]);
      if (next && next.ordered === first.ordered && next.marker === first.marker) list.loose = true;
    }
  }
  return [list, i];
}

function parseTable(lines, i, { header, align }) {
  const rows = [];
  i += 2;
  while (i < lines.length && !isBlank(lines[i]) && !interruptsTable(lines, i)) {
    const cells = splitRow(lines[i]);
    while (cells.length < header.length) cells.push("");
    rows.push(cells.slice(0, header.length));
    i++;
  }
  return [{ type: "table", header, align, rows }, i];
}

function interruptsTable(lines, i) {
  const line = lines[i];
  return FENCE.test(line) || HEADING.test(line) || HR.test(line) || QUOTE.test(line);
}

function parseParagraph(lines, i) {
  const body = [lines[i].trim()];
  i++;
  while (i < lines.length && !isBlank(lines[i])) {
    const line = lines[i];
    const setext = SETEXT.exec(line);
    if (setext) {
      return [{ type: "heading", level: setext[1][0] === "=" ? 1 : 2, text: body.join("\n") }, i + 1];
    }
    if (interrupts(lines, i)) break;
    body.push(line.replace(/^[ \t]+/, ""));
    i++;
  }
  return [{ type: "paragraph", text: body.join("\n") }, i];
}

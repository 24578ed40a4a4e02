// Run: node --test tests/web_static/
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseCommand, unescapeSlash, suggestions } from "../../src/clawdbot/web/static/js/commands.js";
import { traceSummary, labelFor } from "../../src/clawdbot/web/static/js/trace.js";
import { fmtMs } from "../../src/clawdbot/web/static/js/format.js";

test("slash commands parse; // escapes; unknown commands are reported", () => {
  assert.equal(parseCommand("/help").command.name, "help");
  assert.deepEqual([parseCommand("/model  llama3.2:1b ").command.name, parseCommand("/model  llama3.2:1b ").arg], ["model", "llama3.2:1b"]);
  assert.equal(parseCommand("/DEBUG").command.name, "debug");
  assert.deepEqual(parseCommand("/nope x"), { unknown: "nope" });
  assert.equal(parseCommand("hello /help"), null);
  assert.equal(parseCommand("//help"), null);
  assert.equal(unescapeSlash("//etc/passwd is a file"), "/etc/passwd is a file");
  assert.equal(unescapeSlash("plain"), "plain");
  assert.deepEqual(suggestions("/st").map((c) => c.name), ["status"]);
  assert.deepEqual(suggestions("/model x"), []);
});

test("trace summary matches the documented shape", () => {
  const trace = { requestId: "req_0f", service: "local", upstreamModel: "gemma-3-270m", ttftMs: 41.2, totalMs: 180.4,
    promptTokens: 12, completionTokens: 2, tokensPerSecond: 14.1, attempts: [{ service: "local", ok: true }] };
  assert.equal(traceSummary(trace), "local · gemma-3-270m · 41 ms TTFT · 180 ms · 12→2 tok · 14.1 tok/s");
  assert.equal(traceSummary({ ...trace, attempts: [{}, {}] }).endsWith("· 2 attempts"), true);
  assert.equal(traceSummary({}, { promptTokens: 3, completionTokens: 4 }), "3→4 tok");
  assert.equal(traceSummary({}), "trace");
});

test("labels and durations", () => {
  assert.equal(labelFor("fallbackModel"), "Fallback model");
  assert.equal(labelFor("cache_hit"), "Cache hit");
  assert.equal(fmtMs(0.34), "0.3 ms");
  assert.equal(fmtMs(12345), "12.3 s");
});

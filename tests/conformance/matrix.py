"""The conformance matrix: every scenario for every inbound dialect (the client) and every upstream
dialect (the service type), streamed and whole where that means something, each cell with the
outcome it is declared to have. The tests (test_matrix.py) hold every cell to its outcome and
docs/conformance.md is rendered from this table (report.py), so the document says what the tests
check and nothing else."""

from __future__ import annotations

from dataclasses import dataclass

INBOUND = ("openai", "anthropic", "ollama", "responses")
UPSTREAM = ("openai", "ollama", "anthropic", "mock")
BOTH = (False, True)
STREAM_ONLY = (True,)


@dataclass(frozen=True)
class Outcome:
    kind: str  # pass | refused | n/a | xfail
    note: str = ""  # why (required but for a plain pass)


PASS = Outcome("pass")


@dataclass(frozen=True)
class Scenario:
    key: str  # also the name of its check in checks.py
    title: str
    group: str
    capture: str  # the upstream model name: which recorded answer the replay server sends
    modes: tuple[bool, ...] = BOTH  # stream values


SCENARIOS = (
    Scenario("text", "plain text", "conversation", "text"),
    Scenario("multi_turn", "multi-turn", "conversation", "text"),
    Scenario("system", "system prompt", "conversation", "text"),
    Scenario("image", "image input", "conversation", "text"),
    Scenario("stop", "stop sequences forwarded", "conversation", "text"),
    Scenario("length", "length stop", "conversation", "length"),
    Scenario("usage", "token usage reaches the client", "conversation", "text"),
    Scenario("tool_call", "one tool call (arguments in fragments)", "tools", "tool_call"),
    Scenario("tool_calls", "several tool calls", "tools", "tool_calls"),
    Scenario("tool_result", "tool results sent back", "tools", "text"),
    Scenario("json_mode", "JSON mode", "output modes", "json"),
    Scenario("reasoning", "reasoning text", "output modes", "reasoning"),
    Scenario("error_before", "upstream error before the first byte", "failures", "error_before"),
    Scenario("error_after", "upstream error after the first byte", "failures", "error_after", STREAM_ONLY),
    Scenario("abort", "client abort mid-stream", "failures", "abort", STREAM_ONLY),
)
GROUPS = ("conversation", "tools", "output modes", "failures")

MOCK_NA = Outcome("n/a", "the in-process mock provider has no such answer (no captures: it only echoes, "
                         "cuts at max_tokens and makes one tool call)")
# (scenario, inbound or "*", upstream or "*") -> outcome; anything not listed must pass
DECLARED: dict[tuple[str, str, str], Outcome] = {
    ("json_mode", "anthropic", "*"): Outcome("n/a", "the Messages API has no JSON mode (no `response_format` or "
                                                    "`format` field) to ask with"),
    ("stop", "responses", "*"): Outcome("n/a", "the Responses API has no stop sequences to ask with"),
    ("json_mode", "*", "anthropic"): Outcome("refused", "the Messages API has no JSON mode: a 400 naming "
                                                        "`response_format` (docs/dialects.md), never a silent drop"),
    **{(s, "*", "mock"): MOCK_NA for s in ("tool_calls", "json_mode", "reasoning", "error_before", "error_after")},
    ("abort", "*", "mock"): Outcome("n/a", "the mock provider answers in-process: there is no upstream connection "
                                           "to see closed"),
}
# Notes on cells that pass by a mapping rather than as they came (footnoted in the document).
MAPPED: dict[tuple[str, str, str], str] = {
    ("tool_call", "ollama", "*"): "Ollama's clients get each call whole, in one line: the gateway merges the "
                                  "argument fragments (Ollama never splits a call)",
    ("tool_calls", "ollama", "*"): "Ollama's clients get each call whole, in one line",
    ("tool_call", "*", "ollama"): "an Ollama upstream sends each call whole: one argument fragment reaches "
                                  "the client",
    ("tool_call", "*", "mock"): "the mock makes the call whole, with no arguments (`{}`), in one delta",
}


def outcome(scenario: str, inbound: str, upstream: str) -> Outcome:
    for key in ((scenario, inbound, upstream), (scenario, inbound, "*"), (scenario, "*", upstream)):
        if key in DECLARED:
            return DECLARED[key]
    return PASS


def notes(scenario: str, inbound: str, upstream: str) -> list[str]:
    keys = ((scenario, inbound, upstream), (scenario, inbound, "*"), (scenario, "*", upstream))
    return [MAPPED[k] for k in keys if k in MAPPED]


@dataclass(frozen=True)
class CellId:
    scenario: Scenario
    inbound: str
    upstream: str
    stream: bool

    @property
    def id(self) -> str:
        return f"{self.scenario.key}-{self.inbound}-to-{self.upstream}-{'stream' if self.stream else 'whole'}"


def cells() -> list[CellId]:
    return [CellId(s, i, u, m) for s in SCENARIOS for i in INBOUND for u in UPSTREAM for m in s.modes]

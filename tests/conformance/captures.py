"""The recorded upstream answers the replay servers serve, byte for byte: one per upstream dialect,
capture name (the upstream model name the gateway sends) and mode (whole or streamed). Most live in
tests/fixtures/conformance/<dialect>/; some are the older captures of tests/fixtures/ reused as they
are. Provenance: tests/fixtures/conformance/README.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HERE = FIXTURES / "conformance"

DIALECTS = ("openai", "ollama", "anthropic")
STREAM_EXT = {"openai": ".sse", "ollama": ".ndjson", "anthropic": ".sse"}
# Content types as each server sends them (OpenAI's API; Ollama's Go server; Anthropic's API).
JSON_TYPE = {"openai": "application/json", "ollama": "application/json; charset=utf-8",
             "anthropic": "application/json"}
STREAM_TYPE = {"openai": "text/event-stream; charset=utf-8", "ollama": "application/x-ndjson",
               "anthropic": "text/event-stream; charset=utf-8"}
# The status an `error_before` capture is answered with.
ERROR_STATUS = {"openai": 500, "ollama": 500, "anthropic": 529}
# (dialect, file name in the conformance folder) -> an older capture reused as it is
REUSED = {
    ("openai", "text.json"): FIXTURES / "openai" / "chat.json",
    ("openai", "text.sse"): FIXTURES / "openai" / "chat_stream_usage.sse",
    ("openai", "tool_call.sse"): FIXTURES / "openai" / "chat_tools_stream.sse",
    ("openai", "length.json"): FIXTURES / "llamacpp" / "chat.json",
    ("openai", "length.sse"): FIXTURES / "llamacpp" / "chat_stream.sse",
    ("ollama", "text.json"): FIXTURES / "ollama" / "chat.json",
    ("ollama", "text.ndjson"): FIXTURES / "ollama" / "chat_stream.ndjson",
    ("ollama", "tool_call.ndjson"): FIXTURES / "ollama" / "chat_tools_stream.ndjson",
    ("anthropic", "text.json"): FIXTURES / "anthropic" / "message.json",
    ("anthropic", "tool_call.sse"): FIXTURES / "anthropic" / "stream_tool_use.sse",
}


@dataclass(frozen=True)
class Capture:
    status: int
    content_type: str
    body: bytes
    stream: bool

    def events(self) -> list[bytes]:
        """The body cut where the server wrote it: per SSE event (blank line) or NDJSON line."""
        sep = b"\n\n" if self.body.startswith((b"data:", b"event:")) else b"\n"
        parts = self.body.split(sep)
        out = [p + sep for p in parts[:-1]]
        return [*out, parts[-1]] if parts[-1] else out


def path_of(dialect: str, name: str) -> Path:
    return REUSED.get((dialect, name), HERE / dialect / name)


def load(dialect: str, capture: str, stream: bool) -> Capture | None:
    """The capture, or None when there is none for that mode (an error before the first byte is
    the same body whether or not the request streamed)."""
    if capture == "error_before":
        body = path_of(dialect, "error_before.json").read_bytes()
        return Capture(ERROR_STATUS[dialect], JSON_TYPE[dialect], body, stream=False)
    name = capture + (STREAM_EXT[dialect] if stream else ".json")
    path = path_of(dialect, name)
    if not path.exists():
        return None
    ctype = STREAM_TYPE[dialect] if stream else JSON_TYPE[dialect]
    return Capture(200, ctype, path.read_bytes(), stream)

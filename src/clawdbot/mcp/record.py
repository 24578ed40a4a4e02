"""Every MCP call (tools/call, prompts/get, resources/read) as a record in the request log, like a
model request: its own request id, the caller's key, user and team, path `/mcp`, the operation as
the method, `server.name` as the model, the server as the service, the tool (prompt, URI) as the
upstream model, status, latency and result size. With body logging on for the caller's key, its
arguments and result too, each cut at `request_log.max_body_bytes` and first masked by the pii
plugin when the config has one (its own request hook, on a request of one `tool` message: the path
the agent loop's tool results take before they are logged)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec

from clawdbot.core.context import RequestContext
from clawdbot.core.types import ChatRequest, Message
from clawdbot.mcp import calls
from clawdbot.observability.request_log import RequestLog
from clawdbot.plugins.base import Plugin
from clawdbot.state.request_log_base import Detail, Row, encode_detail
from clawdbot.tenancy.principal import Principal

log = logging.getLogger("clawdbot.mcp")
PATH = "/mcp"
METHODS = {calls.CALL: "tools/call", calls.PROMPT: "prompts/get", calls.RESOURCE: "resources/read"}
# a call's status as the HTTP-like status of its record
STATUS = {calls.OK: 200, calls.TOOL_ERROR: 200, calls.UNKNOWN: 404, calls.RATE_LIMITED: 429,
          calls.TIMEOUT: 504, calls.TOO_LARGE: 502, calls.UNAVAILABLE: 503, calls.CANCELLED: 499,
          calls.FAILED: 502}
MAX_MASKING = 64  # records waiting for their bodies to be masked; past it a record is kept without them
_encode = msgspec.json.Encoder().encode


class Done(msgspec.Struct, frozen=True):
    """One finished call, as the hub saw it."""

    request_id: str
    principal: Principal
    event: str
    server: str
    name: str  # the tool's or prompt's name, or the resource's URI on its server
    status: str
    seconds: float
    result_bytes: int | None
    arguments: Any = None
    result: Any = None  # the answer (a pydantic model), only when bodies may be kept


class CallRecords:
    """Hands each finished call to the request log (observability/request_log.py). `plugins`
    gives the pii plugins of the current plugin chain (it may be reloaded)."""

    def __init__(self, request_log: RequestLog, plugins: Callable[[], list[Plugin]]) -> None:
        self.log = request_log
        self.plugins = plugins
        self._masking: set[asyncio.Task[None]] = set()

    @property
    def on(self) -> bool:
        return self.log.enabled or bool(self.log.hub.subscribers)

    def wants_bodies(self, p: Principal) -> bool:
        """The key's `log_bodies` metadata (a model's `log_bodies` names a model, and a tool is none)."""
        return self.log.enabled and p.metadata.get("log_bodies") is True

    def add(self, d: Done) -> None:
        if not self.on:
            return
        if d.arguments is None and d.result is None:
            self.log.add(row(d))
            return
        if len(self._masking) >= MAX_MASKING:
            self.log.add(row(d, notes=["mcp: bodies left out (too many waiting to be masked)"]))
            return
        task = asyncio.get_running_loop().create_task(self._with_bodies(d), name="mcp-record")
        self._masking.add(task)
        task.add_done_callback(self._masking.discard)

    async def _with_bodies(self, d: Done) -> None:
        cap = self.log.settings.max_body_bytes
        request = _encode(d.arguments).decode() if d.arguments is not None else None
        answer = d.result.model_dump_json(by_alias=True, exclude_none=True) if d.result is not None else None
        request, answer = _bound(request, cap), _bound(answer, cap)
        notes: list[str] = []
        try:
            request = await self._mask(request, notes)
            answer = await self._mask(answer, notes)
        except Exception as exc:  # blocked (pii mode block), or the plugin failed: no bodies at all
            notes.append(f"mcp: bodies left out ({type(exc).__name__})")
            request = answer = None
        request, cut1 = _cut(request, cap)
        answer, cut2 = _cut(answer, cap)
        self.log.add(row(d, notes, cut1 or cut2, request, answer))

    async def _mask(self, text: str | None, notes: list[str]) -> str | None:
        if text is None:
            return None
        for plugin in self.plugins():
            ctx = RequestContext("mcp-mask")
            masked = await plugin.pre(ChatRequest(model="", messages=[Message(role="tool", content=text)]), ctx)
            if isinstance(masked, ChatRequest):  # None: nothing found (an Answer is a cache's, not pii's)
                content = masked.messages[0].content
                text = content if isinstance(content, str) else text
            notes.extend(ctx.plugin_notes or ())
        return text

    async def close(self) -> None:
        """Records still being masked are finished first (before the request log closes)."""
        if self._masking:
            await asyncio.gather(*list(self._masking), return_exceptions=True)


def _bound(text: str | None, cap: int) -> str | None:
    """What is masked of a body: past 4x the cap plus 4 KiB (a result may be a MiB), the text up to
    the last blank or quote before that, so that no value is cut in two and half of it left
    unmasked where the final cut (at the cap, after masking) could still keep it."""
    limit = 4 * cap + 4096
    if text is None or len(text) <= limit:
        return text
    head = text[:limit]
    end = max(head.rfind(c) for c in ' "\n\t')
    return head[:end] if end > 0 else head


def _cut(text: str | None, cap: int) -> tuple[str | None, bool]:
    if text is None:
        return None, False
    raw = text.encode()
    if len(raw) <= cap:
        return text, False
    return raw[:cap].decode(errors="ignore"), True


def row(d: Done, notes: list[str] | None = None, cut: bool = False, request: str | None = None,
        answer: str | None = None) -> Row:
    p = d.principal
    ok = d.status in (calls.OK, calls.TOOL_ERROR)
    status = STATUS.get(d.status, 502)
    ms = d.seconds * 1000.0
    name = d.name[:200]
    # the one "attempt": the call on its server, with the result's size (the record has no column for it)
    attempts = [{"service": d.server, "model": name, "ok": ok, "error": None if ok else d.status,
                 "status": status, "ms": round(ms, 3), "result_bytes": d.result_bytes}] if d.server else None
    detail = Detail(
        METHODS.get(d.event, d.event), PATH, p.name, p.user_id, p.team_id, d.server or None, name or None,
        attempts=attempts, error=None if d.status == calls.OK else d.status, error_code=None if ok else d.status,
        plugins=notes or None, body_truncated=cut)
    model = f"{d.server}.{name}" if d.server else None
    at = int((time.time() - d.seconds) * 1000)
    return (d.request_id, at, p.key_id, model, status, ms, encode_detail(detail).decode(), request, answer)

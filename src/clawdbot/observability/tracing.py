"""Tracing's hook points, without OpenTelemetry: what the request path calls, the W3C trace context
a client sent passed through when tracing is off, and the switch (tracer_build.py builds the tracer).

Off (the default), nothing here imports opentelemetry: a request pays one None check at each hook
(`ctx.trace`) and, when the client sent a `traceparent`, one check of its shape, after which the
header goes upstream unchanged (the upstream joins the client's trace; the gateway adds no span).
On, `observability/otel.py` (the only module that imports the SDK) builds a `Tracer` whose
`RequestTrace` rides on `ctx.trace` from the request's start to `Pipeline.end`."""

from __future__ import annotations

import logging
import re
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from clawdbot.config.schema import Telemetry

if TYPE_CHECKING:
    from clawdbot.core.context import RequestContext
    from clawdbot.core.types import ChatRequest

log = logging.getLogger("clawdbot.tracing")
T = TypeVar("T")

# W3C Trace Context: version-traceid-parentid-flags; a version after 00 may append fields ("-...").
# Version ff and all-zero ids are invalid.
_TRACEPARENT = re.compile(
    rb"(?:00|(?!ff|00)(?P<v>[0-9a-f]{2}))-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}(?(v)(?:-[ -~]*)?)")
_TRACESTATE = re.compile(rb"[ -~]{1,512}")  # printable ASCII, bounded: 32 members as the spec caps them
EXTRA_HINT = "install the extra: pip install 'clawdbot[otel]' (from a checkout: uv sync --extra otel)"


def passthrough(headers: Mapping[bytes, bytes]) -> bytes | None:
    """The client's `traceparent` (and `tracestate`) as header lines for every upstream call, when
    tracing is off: unchanged, or None when it is not a valid W3C trace context."""
    tp = headers.get(b"traceparent")
    if tp is None or not _TRACEPARENT.fullmatch(tp):
        return None
    line = b"traceparent: " + tp + b"\r\n"
    ts = headers.get(b"tracestate")
    if ts is not None and _TRACESTATE.fullmatch(ts):
        line += b"tracestate: " + ts + b"\r\n"
    return line


class Route(Protocol):
    """What a span reads of a routing.router.Route (observability stays below routing)."""

    @property
    def name(self) -> str: ...
    @property
    def strategy(self) -> Any: ...
    @property
    def fallbacks(self) -> Any: ...


class Deployment(Protocol):
    """What a span reads of a routing.upstream.Deployment: its key, model and upstream (`name`,
    `svc` with the service's type and endpoint)."""

    @property
    def key(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def upstream(self) -> Any: ...


class RequestTrace(Protocol):
    """One request's spans (observability/otel.py). Every hook point holds `ctx.trace`, checked
    for None first."""

    def routed(self, started_ns: int, route: Route, order: tuple[Deployment, ...], req: ChatRequest | None) -> None:
        """The routing decision, from `started_ns` (now_ns()) to now."""

    def now_ns(self) -> int: ...

    def attempt(self, dep: Deployment, ctx: RequestContext) -> None:
        """An upstream attempt begins: its CLIENT span; sets `ctx.trace_headers` to its context."""

    def attempt_failed(self, exc: BaseException, ctx: RequestContext) -> None: ...

    def answered(self, result: T, ctx: RequestContext) -> T:
        """The attempt answered; its span stays open until `attempt_end` (a stream: its end).
        Returns `result` (wrapped to keep the answer's text when content is captured)."""

    def attempt_end(self, ctx: RequestContext) -> None: ...

    def stage(self, name: str, plugins: Any, coro: Coroutine[Any, Any, T]) -> Coroutine[Any, Any, T]:
        """A plugin stage (`pre`, `post`) as a span around `coro`."""

    def side_call(self, op: str, model: str, sub: RequestContext, started_ns: int, exc: BaseException | None) -> None:
        """A call a plugin made through the gateway for this request (the semantic cache's
        embedding): one CLIENT span from `started_ns` to now; `sub` is the call's own context."""

    def stream_hooks(self, plugins: list[str], chunks: int, hook_ns: int, first_ns: int, last_ns: int) -> None:
        """The chunk and stream-end hooks of a streamed answer: one span from the first chunk to
        the end (not one per chunk), with the time spent in the hooks and the chunks they saw."""

    def end(self, ctx: RequestContext, status: int) -> None:
        """The request is over: the SERVER span gets its GenAI attributes, first token and status."""


class Tracer(Protocol):
    def start(self, ctx: RequestContext, path: str, headers: Mapping[bytes, bytes] | None) -> RequestTrace | None:
        """The request's trace, parented to the client's `traceparent` when it sent one; None for a
        path that is not a model request (health, admin, /metrics)."""

    async def close(self) -> None:
        """Export what is buffered and stop (at shutdown)."""

    async def retire(self) -> None:
        """A reload replaced this tracer: close it once the requests it traces have ended (bounded)."""


class TelemetryUnavailable(ValueError):
    """`telemetry.enabled` without the `otel` extra: said at startup, in one line."""


def enabled(settings: Telemetry, env: Mapping[str, str]) -> bool:
    """`telemetry.enabled`, overridden by CLAWDBOT_TELEMETRY; OTEL_SDK_DISABLED=true wins over both."""
    on = settings.enabled
    flag = env.get("CLAWDBOT_TELEMETRY", "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        on = True
    elif flag in ("0", "false", "no", "off"):
        on = False
    if on and env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        log.info("tracing is off: OTEL_SDK_DISABLED=true")
        return False
    return on

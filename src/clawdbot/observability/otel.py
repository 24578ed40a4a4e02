"""Tracing with the OpenTelemetry SDK: the one module that imports it, loaded only when
`telemetry.enabled` (observability/tracing.py). Spans, named and attributed per the GenAI semantic
conventions:

    chat {model}            SERVER   the request, from its arrival to its end (Pipeline.end);
                                     event `gen_ai.first_token`
      route {model}         INTERNAL the routing decision: strategy, candidates in order
      plugins pre|post      INTERNAL the plugin stages
      chat {upstream model} CLIENT   each upstream attempt (retry / failover / fallback reason,
                                     service, server.address, status, error); its context is the
                                     `traceparent` that upstream receives

Spans are started with explicit parents and times (the request's perf_counter start converted
to the wall clock), never through the context-var "current span": nothing else in the process
is instrumented, and the request path stays free of context switches. Content (prompts,
completions) goes into spans only with `telemetry.capture_content`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import msgspec
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from clawdbot import __version__
from clawdbot.config.schema import Telemetry
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import GatewayError
from clawdbot.observability.requests import OPERATIONS

if TYPE_CHECKING:
    from clawdbot.core.types import ChatRequest
    from clawdbot.observability.tracing import Deployment, Route

log = logging.getLogger("clawdbot.tracing")
T = TypeVar("T")
SHUTDOWN_WAIT = 5.0  # seconds the shutdown waits for the last export
RETIRE_WAIT = 600.0  # seconds a tracer a reload replaced waits for its requests in flight
CONTENT_LIMIT = 64 * 1024  # bytes of prompt or completion kept in a span (capture_content)
SERVICE_NAMES = {"serve": "clawdbot", "proxy": "clawdbot-proxy", "gateway": "clawdbot-gateway"}
_INTERNAL, _CLIENT, _SERVER = SpanKind.INTERNAL, SpanKind.CLIENT, SpanKind.SERVER


def wall_ns(perf: float) -> int:
    """A time.perf_counter() reading as Unix nanoseconds (span times are wall-clock)."""
    return time.time_ns() - int((time.perf_counter() - perf) * 1e9)


def traces_url(endpoint: str) -> str:
    """`telemetry.endpoint` as the exporter's URL: a base URL gets OTLP/HTTP's /v1/traces."""
    url = endpoint.rstrip("/")
    return url if url.endswith("/v1/traces") else url + "/v1/traces"


def build_resource(settings: Telemetry, env: Mapping[str, str], role: str) -> Resource:
    """OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME as the SDK reads them; `service_name` wins,
    and without any of them the process is `clawdbot` (`clawdbot-proxy`, `clawdbot-gateway`)."""
    attrs: dict[str, Any] = {"service.version": __version__, "clawdbot.role": role}
    if settings.service_name:
        attrs[SERVICE_NAME] = settings.service_name
    res = Resource.create(attrs)
    if str(res.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        res = res.merge(Resource({SERVICE_NAME: SERVICE_NAMES.get(role, "clawdbot")}))
    return res


class OtelTracer:
    def __init__(self, settings: Telemetry, env: Mapping[str, str], role: str,
                 capture: Callable[[int], Any] | None = None) -> None:
        """`capture`: makes the object that keeps a request's answer as it passes (the request
        log's pipeline/capture.py BodyCapture), used only with `capture_content`."""
        sampler: Sampler | None = None
        if settings.sample_ratio is not None:
            sampler = ParentBased(TraceIdRatioBased(settings.sample_ratio))
        # shut down by close() (the lifespan's end), bounded in time; not again at exit
        self.provider = TracerProvider(resource=build_resource(settings, env, role), sampler=sampler,
                                       shutdown_on_exit=False)
        exporter = OTLPSpanExporter(endpoint=traces_url(settings.endpoint) if settings.endpoint else None,
                                    headers=settings.headers or None)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("clawdbot", __version__)
        self.propagator = TraceContextTextMapPropagator()
        self.capture = capture if settings.capture_content else None
        self._addresses: dict[str, tuple[str, int] | None] = {}
        self._closed = False
        self.open = 0  # requests traced and not ended
        self._idle: asyncio.Event | None = None  # set when `open` falls to 0 while retiring
        log.info("tracing on: OTLP/HTTP to %s (service %s)", getattr(exporter, "_endpoint", "?"),
                 self.provider.resource.attributes.get(SERVICE_NAME))

    def start(self, ctx: RequestContext, path: str, headers: Mapping[bytes, bytes] | None) -> Trace | None:
        op = OPERATIONS.get(path)
        if op is None:
            return None
        parent = Context()
        tp = headers.get(b"traceparent") if headers else None
        if tp is not None:
            carrier = {"traceparent": tp.decode("latin-1")}
            ts = headers.get(b"tracestate") if headers else None
            if ts is not None:
                carrier["tracestate"] = ts.decode("latin-1")
            parent = self.propagator.extract(carrier, context=parent)
        attrs: dict[str, Any] = {"gen_ai.operation.name": op, "clawdbot.request_id": ctx.request_id}
        if path.startswith("/"):
            attrs["url.path"] = path
        else:
            attrs["clawdbot.entry"] = path  # the chat page: chat.send over the WebSocket
        span = self.tracer.start_span(op if ctx.model is None else f"{op} {ctx.model}", context=parent,
                                      kind=_SERVER, attributes=attrs, start_time=wall_ns(ctx.started))
        self.open += 1
        return Trace(self, span, op)

    def ended(self) -> None:
        self.open -= 1
        if self.open <= 0 and self._idle is not None:
            self._idle.set()

    async def retire(self) -> None:
        """A reload replaced this tracer: its requests in flight end their spans here, then it closes
        (after RETIRE_WAIT at most: a request that never ended must not keep it for ever)."""
        if self.open > 0:
            self._idle = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), RETIRE_WAIT)
        await self.close()

    def address(self, endpoint: str | None) -> tuple[str, int] | None:
        if not endpoint:
            return None
        addr = self._addresses.get(endpoint, ())
        if addr == ():
            try:
                u = urlsplit(endpoint)
                port = u.port or (443 if u.scheme == "https" else 80)
                addr = (u.hostname, port) if u.hostname else None
            except ValueError:
                addr = None
            if len(self._addresses) < 1024:
                self._addresses[endpoint] = addr
        return addr  # type: ignore[return-value]  # () was replaced above

    async def close(self) -> None:
        """Export what is buffered: the exporter's last POST is blocking I/O, so it runs in a
        daemon thread, waited for at most SHUTDOWN_WAIT seconds (a collector that is down must
        not hold the process)."""
        if self._closed:
            return
        self._closed = True
        flush = threading.Thread(target=self.provider.shutdown, name="otel-shutdown", daemon=True)
        flush.start()
        await asyncio.to_thread(flush.join, SHUTDOWN_WAIT)
        if flush.is_alive():
            log.warning("tracing: the last spans were not exported within %.0f s (is the collector up?)",
                        SHUTDOWN_WAIT)


class Trace:
    """One request's spans: the SERVER span, and the attempt span open now (if any)."""

    __slots__ = ("attempt_span", "capture", "op", "parent", "provider", "req", "span", "tracer")

    def __init__(self, tracer: OtelTracer, span: Span, op: str) -> None:
        self.tracer = tracer
        self.span = span
        self.op = op
        self.parent = trace.set_span_in_context(span, Context())
        self.attempt_span: Span | None = None
        self.provider: str | None = None  # gen_ai.provider.name of the last attempt
        self.req: ChatRequest | None = None
        self.capture = tracer.capture(CONTENT_LIMIT) if tracer.capture is not None else None

    def now_ns(self) -> int:
        return time.time_ns()

    def _child(self, name: str, kind: SpanKind, attrs: dict[str, Any], start: int | None = None) -> Span:
        return self.tracer.tracer.start_span(name, context=self.parent, kind=kind, attributes=attrs, start_time=start)

    # -- routing -------------------------------------------------------------------------------

    def routed(self, started_ns: int, route: Route, order: tuple[Deployment, ...], req: ChatRequest | None) -> None:
        strategy = getattr(route.strategy, "__name__", "")
        self._child(f"route {route.name}", _INTERNAL, {
            "gen_ai.request.model": route.name, "clawdbot.route.strategy": strategy,
            "clawdbot.route.candidates": [d.key for d in order],
            "clawdbot.route.fallbacks": list(route.fallbacks)}, started_ns).end()
        if req is None:
            return
        self.req = req
        span = self.span
        if req.max_tokens is not None:
            span.set_attribute("gen_ai.request.max_tokens", req.max_tokens)
        if req.temperature is not None:
            span.set_attribute("gen_ai.request.temperature", req.temperature)
        if req.top_p is not None:
            span.set_attribute("gen_ai.request.top_p", req.top_p)
        if self.capture is not None:
            span.set_attribute("gen_ai.input.messages", input_messages(req))

    # -- attempts ------------------------------------------------------------------------------

    def attempt(self, dep: Deployment, ctx: RequestContext) -> None:
        if self.attempt_span is not None:  # never left open by a failure; an answer was abandoned
            self.attempt_span.end()
        up = dep.upstream
        self.provider = up.svc.type
        attempts = ctx.attempts
        n = len(attempts) + 1
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": self.op, "gen_ai.provider.name": up.svc.type,
            "gen_ai.request.model": dep.model, "clawdbot.service": up.name, "clawdbot.attempt": n,
            "clawdbot.request_id": ctx.request_id,
        }
        addr = self.tracer.address(up.svc.endpoint)
        if addr is not None:
            attrs["server.address"], attrs["server.port"] = addr
        if attempts:
            prev = attempts[-1]
            if ctx.fallback is not None:
                reason = "fallback"
                attrs["clawdbot.fallback_model"] = ctx.fallback
            elif any(a["service"] == up.name and a["model"] == dep.model for a in attempts):
                reason = "retry"
            else:
                reason = "failover"
            attrs["clawdbot.attempt.reason"] = reason
            attrs["clawdbot.attempt.after_error"] = str(prev["error"])
            attrs["clawdbot.attempt.after_service"] = prev["service"]
        span = self.attempt_span = self._child(f"{self.op} {dep.model}", _CLIENT, attrs)
        sc = span.get_span_context()
        line = f"traceparent: 00-{sc.trace_id:032x}-{sc.span_id:016x}-{sc.trace_flags:02x}\r\n"
        if sc.trace_state:
            line += f"tracestate: {sc.trace_state.to_header()}\r\n"
        ctx.trace_headers = line.encode("latin-1")

    def attempt_failed(self, exc: BaseException, ctx: RequestContext) -> None:
        span = self.attempt_span
        if span is None:
            return
        self.attempt_span = None
        if isinstance(exc, GatewayError):
            status = getattr(exc, "upstream_status", None)
            if status:
                span.set_attribute("http.response.status_code", status)
            kind = exc.code or exc.type
            span.set_attribute("clawdbot.attempt.retryable", exc.retryable)
        else:
            kind = type(exc).__name__
        span.set_attribute("error.type", kind)
        span.set_status(Status(StatusCode.ERROR, kind))
        span.end()

    def answered(self, result: T, ctx: RequestContext) -> T:
        span = self.attempt_span
        if span is not None:
            span.set_attribute("http.response.status_code", ctx.upstream_status or 200)
        if self.capture is not None:
            result = self.capture.took(result)
        return result

    def attempt_end(self, ctx: RequestContext) -> None:
        span = self.attempt_span
        if span is None:
            return
        self.attempt_span = None
        if ctx.upstream_model:
            span.set_attribute("gen_ai.response.model", ctx.response_model or ctx.upstream_model)
        _usage(span, ctx)
        if ctx.cancelled:
            span.set_attribute("clawdbot.cancelled", True)
        span.end()

    # -- plugins -------------------------------------------------------------------------------

    async def stage(self, name: str, run: Any, coro: Coroutine[Any, Any, T]) -> T:
        span = self._child(f"plugins {name}", _INTERNAL, {"clawdbot.plugin.stage": name})
        try:
            out = await coro
        except BaseException as exc:
            kind = (exc.code or exc.type) if isinstance(exc, GatewayError) else type(exc).__name__
            span.set_attribute("error.type", kind)
            span.set_status(Status(StatusCode.ERROR, kind))
            raise
        finally:
            ran = run.ran if name == "pre" else run.stream_plugins
            span.set_attribute("clawdbot.plugins", [p.id for p in ran])
            span.end()
        if name == "pre" and isinstance(out, tuple) and out[1] is not None and len(run.ran) < len(run.plugins):
            span.set_attribute("clawdbot.plugin.answered_by", run.plugins[len(run.ran)].id)
        return out

    def side_call(self, op: str, model: str, sub: RequestContext, started_ns: int, exc: BaseException | None) -> None:
        attrs: dict[str, Any] = {"gen_ai.operation.name": op, "gen_ai.request.model": model}
        if sub.service:
            attrs["clawdbot.service"] = sub.service
        if sub.upstream_model:
            attrs["gen_ai.response.model"] = sub.response_model or sub.upstream_model
        span = self._child(f"{op} {model}", _CLIENT, attrs, start=started_ns)
        _usage(span, sub)
        if exc is not None:
            kind = (exc.code or exc.type) if isinstance(exc, GatewayError) else type(exc).__name__
            span.set_attribute("error.type", kind)
            span.set_status(Status(StatusCode.ERROR, kind))
        span.end()

    def stream_hooks(self, plugins: list[str], chunks: int, hook_ns: int, first_ns: int, last_ns: int) -> None:
        span = self._child("plugins stream", _INTERNAL, {"clawdbot.plugin.stage": "stream", "clawdbot.plugins": plugins,
                                                         "clawdbot.plugin.chunks": chunks,
                                                         "clawdbot.plugin.hook_ms": round(hook_ns / 1e6, 3)},
                           start=first_ns)
        span.end(end_time=last_ns)

    # -- the end -------------------------------------------------------------------------------

    def end(self, ctx: RequestContext, status: int) -> None:
        self.attempt_end(ctx)
        span = self.span
        op = self.op
        attrs: dict[str, Any] = {"http.response.status_code": status, "clawdbot.attempts": len(ctx.attempts),
                                 "clawdbot.stream": ctx.stream}
        if ctx.model:
            span.update_name(f"{op} {ctx.model}")
            attrs["gen_ai.request.model"] = ctx.model
        if ctx.upstream_model:
            attrs["gen_ai.response.model"] = ctx.response_model or ctx.upstream_model
        if self.provider:
            attrs["gen_ai.provider.name"] = self.provider
        if ctx.service:
            attrs["clawdbot.service"] = ctx.service
        if ctx.plugin_notes:
            attrs["clawdbot.plugin.notes"] = list(ctx.plugin_notes)
        if status >= 400:
            attrs["error.type"] = str(status)
            if ctx.error_code:
                attrs["clawdbot.error.code"] = ctx.error_code
        span.set_attributes(attrs)
        _usage(span, ctx)
        first = ctx.first_token_at
        if first is not None:
            ttft = round((first - ctx.started) * 1000.0, 3)
            span.add_event("gen_ai.first_token", {"clawdbot.ttft_ms": ttft}, timestamp=wall_ns(first))
        if self.capture is not None:
            answer = self.capture.bodies()[1]
            if answer is not None:
                span.set_attribute("gen_ai.output.messages", output_messages(answer))
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR, str(status)))
        span.end()
        self.tracer.ended()


def _usage(span: Span, ctx: RequestContext) -> None:
    if ctx.prompt_tokens is not None:
        span.set_attribute("gen_ai.usage.input_tokens", ctx.prompt_tokens)
    if ctx.completion_tokens is not None:
        span.set_attribute("gen_ai.usage.output_tokens", ctx.completion_tokens)


# -- content (capture_content only) ----------------------------------------------------------------

_encode = msgspec.json.Encoder().encode


def _cut(text: str, room: int) -> str:
    return text if len(text) <= room else text[:max(room, 0)]


def input_messages(req: ChatRequest) -> str:
    """The request's messages as the conventions' `gen_ai.input.messages` JSON (text parts)."""
    out, room = [], CONTENT_LIMIT
    for m in req.messages:
        text = _cut(m.text(), room)
        room -= len(text)
        out.append({"role": m.role, "parts": [{"type": "text", "content": text}]})
    return _encode(out).decode()


def output_messages(answer: str) -> str:
    """The answer (an OpenAI chat response, or the upstream's own bytes on the fast path) as
    `gen_ai.output.messages` JSON: the text of an OpenAI body or stream, else the bytes as text."""
    text, finish = _openai_text(answer)
    msg: dict[str, Any] = {"role": "assistant", "parts": [{"type": "text", "content": _cut(text, CONTENT_LIMIT)}]}
    if finish:
        msg["finish_reason"] = finish
    return _encode([msg]).decode()


def _openai_text(answer: str) -> tuple[str, str | None]:
    body = answer.lstrip()
    try:
        if body.startswith("{"):
            choice = msgspec.json.decode(body)["choices"][0]
            return choice["message"].get("content") or "", choice.get("finish_reason")
        if body.startswith("data:"):
            parts, finish = [], None
            for line in body.splitlines():
                if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                    continue
                for choice in msgspec.json.decode(line[5:]).get("choices") or ():
                    parts.append((choice.get("delta") or {}).get("content") or "")
                    finish = choice.get("finish_reason") or finish
            return "".join(parts), finish
    except (msgspec.DecodeError, KeyError, IndexError, TypeError, AttributeError):
        pass
    return answer, None

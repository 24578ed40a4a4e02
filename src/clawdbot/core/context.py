"""Per-request state that travels with a request through the pipeline and into the access log."""

from __future__ import annotations

import random
import re
import time
from typing import Any

import msgspec

_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def new_request_id() -> str:
    """A random (version 4) UUID string: the one id format every common server accepts in
    X-Request-ID (llama.cpp's server answers an empty 400 to anything else). A request id must be
    unique, not secret: the Mersenne Twister's bits, one call, no system call per request (4x
    faster than str(uuid.uuid4()))."""
    n = random.getrandbits(128)
    return "%08x-%04x-4%03x-%04x-%012x" % (  # noqa: UP031 (one format call is the fast one here)
        n >> 96, (n >> 80) & 0xFFFF, (n >> 64) & 0xFFF, (n >> 48) & 0x3FFF | 0x8000, n & 0xFFFFFFFFFFFF)


class RequestContext(msgspec.Struct):
    # the client's X-Request-ID when it sent a sane one, else new_request_id(): response header, logs
    request_id: str
    started: float = msgspec.field(default_factory=time.perf_counter)
    model: str | None = None  # what the client asked for
    service: str | None = None  # which service answered
    upstream_model: str | None = None
    response_model: str | None = None  # the model the upstream's answer names (gen_ai.response.model), if it does
    upstream_status: int | None = None
    first_token_at: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    stream: bool = False
    # Set when the inbound caller was authenticated (master key now, virtual keys later).
    principal: str | None = None
    # The tenancy.principal.Principal behind `principal` (limits, budgets, owner); Any so that core
    # never imports tenancy.
    identity: Any = None
    # perf_counter() when the attempt on `service` that is answering began; closed by Gateway.finish
    attempt_started: float | None = None
    # the caller went away (client disconnect, chat.abort, shutdown): not the service's fault
    cancelled: bool = False
    # Routing inputs: from X-Clawdbot-Priority / X-Clawdbot-Tag, else the body's `metadata`. The
    # key layer (virtual keys, later) sets them after the headers were read, so a key's values win.
    priority: str | None = None
    tag: str | None = None
    # stream events with choices relayed: the completion's token count when an upstream sends no usage
    chunks: int = 0
    # tenancy.metering.Ticket while the request holds rate-limit, parallel and budget reservations
    meter: Any = None
    # milliseconds spent waiting for an upstream connection (the pool at its ceiling), every attempt
    pool_wait_ms: float = 0.0
    # milliseconds spent in a service's wait queue (limits.max_inflight reached everywhere)
    queue_wait_ms: float = 0.0
    # One dict per upstream attempt, in order: {service, model, ok, error, status, ms}
    attempts: list[dict[str, Any]] = msgspec.field(default_factory=list)
    # The X-Request-ID sent upstream (see upstream_id()); logged when it differs from request_id
    upstream_request_id: str | None = None
    # The most completion tokens a stream may relay: the client's limit, or what a budget reservation
    # counted (set by tenancy.metering, read by api/chat.py, which cuts the stream there)
    completion_cap: int | None = None
    # prompt/completion tokens were counted by the gateway (no usage from the upstream): limits.md
    tokens_estimated: bool = False
    # the request's headers (dict[bytes, bytes], lower-case names) when it came over HTTP
    headers: Any = None
    # Tracing (observability/tracing.py): the request's spans when tracing is on (None: off or not
    # traced), and the `traceparent`/`tracestate` header lines every upstream call carries (the
    # answering attempt's when tracing is on, else the client's own, passed through as they came)
    trace: Any = None
    trace_headers: bytes | None = None
    # Plugins (pipeline/plugins.py), set only when some plugin runs on the request: per-plugin
    # state by plugin name, what each did ("pii: masked 3 items"), response headers they add.
    plugin_state: dict[str, Any] | None = None
    plugin_notes: list[str] | None = None
    plugin_headers: dict[str, str] | None = None
    # the answer cost nothing (a cache hit): settle charges no spend
    cost_free: bool = False
    # what settle charged, in micro-dollars (None: the request was not metered)
    cost_micros: int | None = None
    # the `fallbacks:` model the gateway moved on to once the asked model's deployments failed
    fallback: str | None = None
    # the refusal's machine-readable code (GatewayError.code, e.g. rate_limit_exceeded) when it failed
    error_code: str | None = None
    # the request log's body capture (pipeline/capture.py), only when log_bodies applies to it
    capture: Any = None
    # the plugin chain the request holds (pipeline/plugins.py Chain) until it ends
    plugin_chain: Any = None
    # the end of the request (settle, the service's books, the access log) has run
    ended: bool = False
    # the request log id this request sends again (the control panel's Replay), for its record
    replay_of: str | None = None

    def upstream_id(self) -> str:
        """The request's own id when it is a UUID, else a fresh UUID (the same for every attempt): a
        client may send any sane id, but servers such as llama.cpp's refuse one that is not a UUID."""
        rid = self.upstream_request_id
        if rid is None:
            rid = self.request_id if _UUID.fullmatch(self.request_id) else new_request_id()
            self.upstream_request_id = rid
        return rid

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0

    def ttft_ms(self) -> float | None:
        if self.first_token_at is None:
            return None
        return (self.first_token_at - self.started) * 1000.0

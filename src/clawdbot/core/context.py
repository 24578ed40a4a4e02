"""Per-request state that travels with a request through the pipeline and into the access log."""

from __future__ import annotations

import time
from typing import Any

import msgspec


class RequestContext(msgspec.Struct):
    request_id: str
    started: float = msgspec.field(default_factory=time.perf_counter)
    model: str | None = None  # what the client asked for
    service: str | None = None  # which service answered
    upstream_model: str | None = None
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
    # One dict per upstream attempt, in order: {service, model, ok, error, status, ms}
    attempts: list[dict[str, Any]] = msgspec.field(default_factory=list)

    def mark_first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0

    def ttft_ms(self) -> float | None:
        if self.first_token_at is None:
            return None
        return (self.first_token_at - self.started) * 1000.0

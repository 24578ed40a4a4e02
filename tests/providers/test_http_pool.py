"""The upstream connection pool against a real OpenAI-compatible server over real sockets: a request
that finds the pool at its ceiling waits in a bounded line, the wait is counted and reaches the
request's access-log line, giving up is local overload (never the service's failure), and
connections beyond `max_pool` are closed once idle."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator

import msgspec
import pytest

from clawdbot.config.schema import Limits, Service
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import Overloaded
from clawdbot.observability.access import AccessLog
from clawdbot.pipeline.attempt import verdict
from clawdbot.providers.http import UpstreamHTTP
from clawdbot.providers.http_client import Response
from tests.upstreams.openai_server import OpenAIUpstream

HOLD = "a b c fault:hang_midstream"  # headers and two chunks, then silence until the client leaves


@pytest.fixture(scope="module")
def up() -> Iterator[OpenAIUpstream]:
    with OpenAIUpstream() as server:
        yield server


def service(up: OpenAIUpstream, **kw: object) -> Service:
    return msgspec.convert({"name": "svc", "type": "openai", "endpoint": up.base_url, **kw}, Service)


def body(text: str, stream: bool = True) -> bytes:
    return json.dumps({"model": "mock-a", "stream": stream, "messages": [{"role": "user", "content": text}]}).encode()


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def hold(http: UpstreamHTTP, n: int) -> list[Response]:
    return [await http.open("POST", "/chat/completions", RequestContext(f"hold-{i}"), body=body(HOLD))
            for i in range(n)]


def run(http: UpstreamHTTP, main: Callable[[], Awaitable[None]]) -> None:
    async def go() -> None:
        try:
            await main()
        finally:
            await http.close()

    asyncio.run(go())


def test_a_wait_for_a_connection_is_counted_and_reaches_the_access_log(up: OpenAIUpstream) -> None:
    # max_inflight 1: one connection for a request, one for the service's health check
    http = UpstreamHTTP(service(up, limits=Limits(max_inflight=1, max_queue=4, queue_timeout=10)))
    ctx = RequestContext("waits")

    async def main() -> None:
        held = await hold(http, 2)  # more than the limiter would admit: something holds connections
        assert http.connections()["open"] == 2 and http.connections()["max_open"] == 2
        waiting = asyncio.create_task(http.open("POST", "/chat/completions", ctx, body=body("hi", stream=False)))
        await until(lambda: http.connections()["waiting"] == 1)
        assert not waiting.done()
        held[0].close()  # a connection frees up: the one in line gets it
        resp = await waiting
        assert resp.status == 200 and b"echo: hi" in await http.read_body(resp, time.monotonic() + 10)
        for r in held[1:]:
            r.close()
        numbers = http.connections()
        assert numbers["waits"] == 1 and numbers["waiting"] == 0 and numbers["refused"] == 0

    run(http, main)
    assert ctx.pool_wait_ms > 0
    lines: list[str] = []
    access = logging.getLogger("clawdbot.access")
    level = access.level
    access.setLevel(logging.INFO)
    try:
        AccessLog("text", lines.append).emit(ctx, "POST", "/v1/chat/completions", 200)
        AccessLog("json", lines.append).emit(ctx, "POST", "/v1/chat/completions", 200)
        AccessLog("json", lines.append).emit(RequestContext("no-wait"), "POST", "/v1/chat/completions", 200)
    finally:
        access.setLevel(level)
    assert f"pool_wait_ms={round(ctx.pool_wait_ms, 2)}" in lines[0]
    assert json.loads(lines[1])["pool_wait_ms"] == round(ctx.pool_wait_ms, 2)
    assert "pool_wait_ms" not in json.loads(lines[2])  # said only when there was a wait


def test_a_full_line_or_a_wait_that_times_out_is_overload_not_a_service_failure(up: OpenAIUpstream) -> None:
    http = UpstreamHTTP(service(up, limits=Limits(max_inflight=1, max_queue=1, queue_timeout=0.3)))
    waited, refused = RequestContext("waited"), RequestContext("refused")

    async def main() -> None:
        held = await hold(http, 2)
        in_line = asyncio.create_task(http.open("POST", "/chat/completions", waited, body=body("hi")))
        await until(lambda: http.connections()["waiting"] == 1)
        with pytest.raises(Overloaded) as full:  # the line (max_queue: 1) is full: refused at once
            await http.open("POST", "/chat/completions", refused, body=body("hi"))
        with pytest.raises(Overloaded) as late:  # nothing freed up within queue_timeout
            await in_line
        for exc in (full.value, late.value):
            assert exc.status == 503 and exc.retryable and exc.headers["Retry-After"] == "1"
            assert verdict(exc) is None  # neither a failure nor a success of the service's breaker
            assert "service 'svc' is overloaded" in exc.message
        numbers = http.connections()
        assert numbers["refused"] == 2 and numbers["waiting"] == 0 and numbers["open"] == 2
        for r in held:
            r.close()

    run(http, main)
    assert waited.pool_wait_ms > 0 and refused.pool_wait_ms == 0


def test_connections_beyond_max_pool_are_closed_once_idle(up: OpenAIUpstream) -> None:
    http = UpstreamHTTP(service(up, max_pool=2))  # no max_inflight: no ceiling on open connections

    async def main() -> None:
        await asyncio.to_thread(lambda: up.wait_for(lambda: up.in_flight == 0))  # earlier tests' holds are over
        up.reset()
        resps = await asyncio.gather(*(http.open("POST", "/chat/completions", RequestContext(f"w{i}"),
                                                 body=body("fault:slow=200", stream=False)) for i in range(5)))
        assert up.peak_in_flight == 5
        for r in resps:
            await http.read_body(r, time.monotonic() + 10)
        numbers = http.connections()
        assert numbers["idle"] == 2 and numbers["open"] == 2 and numbers["opened"] == 5
        assert numbers["max_open"] is None and numbers["waits"] == 0
        await asyncio.to_thread(lambda: up.wait_for(lambda: up.open_connections() == 2))
        assert up.open_connections() == 2

    run(http, main)


def test_the_gateways_own_calls_never_wait_for_a_connection(up: OpenAIUpstream) -> None:
    """A health check (no request context) on a service busy with requests opens a connection beyond
    the ceiling rather than wait: a busy service is never reported down for being busy."""
    http = UpstreamHTTP(service(up, limits=Limits(max_inflight=1, max_queue=0, queue_timeout=10)))

    async def main() -> None:
        held = await hold(http, 2)
        assert http.connections()["open"] == http.connections()["max_open"] == 2
        models = await http.get_json("/models", 5)
        assert [m["id"] for m in models["data"]] == ["mock-a", "mock-b"]
        numbers = http.connections()
        assert numbers["waits"] == 0 and numbers["refused"] == 0 and numbers["opened"] == 3
        for r in held:
            r.close()

    run(http, main)

"""OpenTelemetry traces from real gateway processes to a real OTLP/HTTP receiver
(tests/upstreams/otlp_receiver.py decodes the protobuf export requests): the client's traceparent
is joined, the upstream receives the attempt's context, failovers show as attempt spans with a
reason, content stays out unless captured, the split topology is one trace, and with tracing off
the client's traceparent passes through unchanged."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

pytest.importorskip("opentelemetry.proto", reason="the otel extra (opentelemetry-proto) is not installed")

from tests.e2e.harness import GatewayProcess
from tests.upstreams.openai_server import OpenAIUpstream, RecordedRequest
from tests.upstreams.otlp_receiver import OtlpReceiver, Span
from tests.web.client import WsClient, run

SECRET = "zebra-prompt-7c1f"  # a prompt word that must never reach a span unless content is captured
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
TRACESTATE = "vendor=opaque-1"
_TP = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
# export every 50 ms: the test waits on the receiver, not on the batch schedule
OTEL_ENV = {"OTEL_BSP_SCHEDULE_DELAY": "50"}


def config(up: OpenAIUpstream, bad: OpenAIUpstream, rx: OtlpReceiver, *, capture: bool = False) -> str:
    return f"""
telemetry:
  enabled: true
  endpoint: {rx.url}
  service_name: clawdbot-test
  capture_content: {str(capture).lower()}
services:
  - name: oa
    type: openai
    endpoint: {up.base_url}
  - name: bad
    type: openai
    endpoint: {bad.base_url}
    breaker: {{enabled: false}}
models:
  chat-oa: [oa/mock-a]
  failover:
    strategy: ordered
    deployments: [{{service: bad, model: mock-bad, priority: 0}}, {{service: oa, model: mock-b, priority: 1}}]
  guarded:
    targets: [oa/mock-g]
  fellback:
    targets: [bad/mock-f]
    retries: 1
    fallbacks: [chat-oa]
  semantic: [oa/mock-s]
  embed: [oa/text-embedding-3-small]
plugins:
  - name: pii
    models: [guarded]
  - name: semantic_cache
    models: [semantic]
    with: {{embedding_model: embed, threshold: 0.999}}
"""


@pytest.fixture(scope="module")
def rx() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def bad() -> Iterator[OpenAIUpstream]:
    with OpenAIUpstream() as server:
        server.fail_status = 503
        yield server


def start(tmp: Path, text: str, name: str, env: dict[str, str] | None = None) -> GatewayProcess:
    path = tmp / f"{name}.yaml"
    path.write_text(text)
    return GatewayProcess(["serve", "--config", str(path)], tmp / f"{name}.log", {**OTEL_ENV, **(env or {})})


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, openai_upstream: OpenAIUpstream, bad: OpenAIUpstream,
       rx: OtlpReceiver) -> Iterator[GatewayProcess]:
    with start(tmp_path_factory.mktemp("tracing"), config(openai_upstream, bad, rx), "traced") as g:
        yield g


def client(gw: GatewayProcess, traceparent: str | None = TRACEPARENT) -> openai.OpenAI:
    headers = {"traceparent": traceparent, "tracestate": TRACESTATE} if traceparent else {}
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, default_headers=headers)


def new_traceparent() -> tuple[str, str]:
    trace_id = os.urandom(16).hex()
    return trace_id, f"00-{trace_id}-{os.urandom(8).hex()}-01"


def server_span_ended(trace_id: str) -> Callable[[list[Span]], bool]:
    """The request's SERVER span is the last to end: once it is here, the whole trace is."""
    return lambda spans: any(s.trace_id == trace_id and s.kind == "SERVER" for s in spans)


def trace_of(rx: OtlpReceiver, trace_id: str, servers: int = 1) -> list[Span]:
    rx.wait_for(lambda spans: sum(s.trace_id == trace_id and s.kind == "SERVER" for s in spans) >= servers)
    return rx.trace(trace_id)


def one(spans: list[Span], pred: Callable[[Span], bool]) -> Span:
    found = [s for s in spans if pred(s)]
    assert len(found) == 1, [(s.name, s.kind) for s in spans]
    return found[0]


def upstream_request(up: OpenAIUpstream, request_id: str) -> RecordedRequest:
    return next(r for r in up.requests if r.request_id == request_id)


def upstream_context(rec: RecordedRequest) -> tuple[str, str]:
    m = _TP.fullmatch(rec.headers.get("traceparent", ""))
    assert m is not None, dict(rec.headers)
    return m.group(1), m.group(2)


def everything(spans: list[Span]) -> str:
    """Every name, attribute and event value of `spans`, as one string to search."""
    parts: list[Any] = []
    for s in spans:
        parts += [s.name, s.status_message, *s.attributes.values()]
        for e in s.events:
            parts += [e.name, *e.attributes.values()]
    return repr(parts)


def test_request_spans_join_the_clients_trace(gw: GatewayProcess, rx: OtlpReceiver,
                                              openai_upstream: OpenAIUpstream) -> None:
    trace_id, tp = new_traceparent()
    raw = client(gw, tp).chat.completions.with_raw_response.create(
        model="chat-oa", messages=[{"role": "user", "content": f"hello {SECRET}"}], max_tokens=16, temperature=0.5)
    rid = raw.headers["x-request-id"]
    assert raw.parse().choices[0].message.content == f"echo: hello {SECRET}"
    spans = trace_of(rx, trace_id)

    server = one(spans, lambda s: s.kind == "SERVER")
    assert server.name == "chat chat-oa" and server.parent_span_id == tp.split("-")[2]
    assert server.service == "clawdbot-test" and server.scope == "clawdbot"
    a = server.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "chat-oa"
    assert a["gen_ai.response.model"] == "mock-a" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.max_tokens"] == 16 and a["gen_ai.request.temperature"] == 0.5
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
    assert a["clawdbot.request_id"] == rid and a["http.response.status_code"] == 200
    assert a["url.path"] == "/v1/chat/completions" and "error.type" not in a and server.status == "UNSET"
    assert [e.name for e in server.events] == ["gen_ai.first_token"]
    assert server.start_ns <= server.events[0].time_ns <= server.end_ns

    route = one(spans, lambda s: s.name == "route chat-oa")
    assert route.kind == "INTERNAL" and route.parent_span_id == server.span_id
    assert route.attributes["clawdbot.route.candidates"] == ["oa/mock-a"]
    assert route.attributes["clawdbot.route.strategy"] == "ordered"

    attempt = one(spans, lambda s: s.kind == "CLIENT")
    assert attempt.name == "chat mock-a" and attempt.parent_span_id == server.span_id
    b = attempt.attributes
    assert b["server.address"] == "127.0.0.1" and b["server.port"] == openai_upstream.port
    assert b["clawdbot.service"] == "oa" and b["clawdbot.attempt"] == 1 and "clawdbot.attempt.reason" not in b
    assert b["http.response.status_code"] == 200 and b["gen_ai.response.model"] == "mock-a"
    assert server.start_ns <= route.start_ns <= attempt.start_ns <= attempt.end_ns <= server.end_ns

    # the upstream joined the trace, as a child of the attempt span; the client's tracestate is kept
    rec = upstream_request(openai_upstream, rid)
    assert upstream_context(rec) == (trace_id, attempt.span_id)
    assert rec.headers.get("tracestate") == TRACESTATE
    assert SECRET not in everything(spans)  # no prompt or completion text without capture_content


def test_a_stream_gets_a_first_token_event_and_its_usage(gw: GatewayProcess, rx: OtlpReceiver) -> None:
    trace_id, tp = new_traceparent()
    stream = client(gw, tp).chat.completions.create(
        model="chat-oa", messages=[{"role": "user", "content": f"one two three {SECRET}"}], stream=True,
        stream_options={"include_usage": True})
    text = "".join((c.choices[0].delta.content or "") for c in stream if c.choices)
    assert text == f"echo: one two three {SECRET}"
    spans = trace_of(rx, trace_id)
    server = one(spans, lambda s: s.kind == "SERVER")
    assert server.attributes["clawdbot.stream"] is True
    assert server.attributes["gen_ai.usage.output_tokens"] > 0
    first = one(server.events, lambda e: e.name == "gen_ai.first_token")
    attempt = one(spans, lambda s: s.kind == "CLIENT")
    assert attempt.start_ns < first.time_ns < server.end_ns and first.attributes["clawdbot.ttft_ms"] > 0
    assert attempt.end_ns >= first.time_ns  # a stream's attempt lasts until its end
    assert SECRET not in everything(spans)


def test_a_failover_is_two_attempt_spans_with_the_reason(gw: GatewayProcess, rx: OtlpReceiver, bad: OpenAIUpstream,
                                                         openai_upstream: OpenAIUpstream) -> None:
    trace_id, tp = new_traceparent()
    raw = client(gw, tp).chat.completions.with_raw_response.create(
        model="failover", messages=[{"role": "user", "content": "fail over"}])
    assert raw.parse().choices[0].message.content == "echo: fail over"
    spans = trace_of(rx, trace_id)
    server = one(spans, lambda s: s.kind == "SERVER")
    attempts = sorted((s for s in spans if s.kind == "CLIENT"), key=lambda s: s.start_ns)
    assert [s.name for s in attempts] == ["chat mock-bad", "chat mock-b"]
    first, second = attempts
    assert all(s.parent_span_id == server.span_id for s in attempts)
    assert first.status == "ERROR" and first.attributes["clawdbot.service"] == "bad"
    assert first.attributes["http.response.status_code"] == 503 and first.attributes["error.type"]
    assert first.attributes["clawdbot.attempt.retryable"] is True
    assert second.status == "UNSET" and second.attributes["clawdbot.attempt"] == 2
    assert second.attributes["clawdbot.attempt.reason"] == "failover"
    assert second.attributes["clawdbot.attempt.after_service"] == "bad"
    assert second.attributes["clawdbot.attempt.after_error"] == first.attributes["error.type"]
    assert server.attributes["clawdbot.attempts"] == 2 and server.attributes["clawdbot.service"] == "oa"
    # each upstream saw its own attempt as the parent
    rid = raw.headers["x-request-id"]
    assert upstream_context(upstream_request(bad, rid)) == (trace_id, first.span_id)
    assert upstream_context(upstream_request(openai_upstream, rid)) == (trace_id, second.span_id)


def test_retry_and_fallback_reasons(gw: GatewayProcess, rx: OtlpReceiver) -> None:
    trace_id, tp = new_traceparent()
    out = client(gw, tp).chat.completions.create(model="fellback", messages=[{"role": "user", "content": "x"}])
    assert out.choices[0].message.content == "echo: x"
    spans = trace_of(rx, trace_id)
    attempts = sorted((s for s in spans if s.kind == "CLIENT"), key=lambda s: s.start_ns)
    assert [(s.attributes["clawdbot.service"], s.attributes.get("clawdbot.attempt.reason"), s.status)
            for s in attempts] == [("bad", None, "ERROR"), ("bad", "retry", "ERROR"), ("oa", "fallback", "UNSET")]
    assert attempts[2].attributes["clawdbot.fallback_model"] == "chat-oa"
    assert attempts[2].name == "chat mock-a"


def test_plugin_stages_are_spans(gw: GatewayProcess, rx: OtlpReceiver) -> None:
    trace_id, tp = new_traceparent()
    out = client(gw, tp).chat.completions.create(
        model="guarded", messages=[{"role": "user", "content": "mail ann@example.com please"}])
    assert "ann@example.com" in (out.choices[0].message.content or "")  # masked upstream, restored
    spans = trace_of(rx, trace_id)
    server = one(spans, lambda s: s.kind == "SERVER")
    pre = one(spans, lambda s: s.name == "plugins pre")
    post = one(spans, lambda s: s.name == "plugins post")
    assert pre.parent_span_id == post.parent_span_id == server.span_id
    assert pre.attributes["clawdbot.plugins"] == ["pii"] and post.attributes["clawdbot.plugins"] == ["pii"]
    attempt = one(spans, lambda s: s.kind == "CLIENT")
    assert pre.end_ns <= attempt.start_ns and attempt.end_ns <= post.end_ns
    assert any("pii" in n for n in server.attributes["clawdbot.plugin.notes"])
    assert "ann@example.com" not in everything(spans)


def test_a_request_without_traceparent_starts_a_trace(gw: GatewayProcess, rx: OtlpReceiver,
                                                      openai_upstream: OpenAIUpstream) -> None:
    raw = client(gw, None).chat.completions.with_raw_response.create(
        model="chat-oa", messages=[{"role": "user", "content": "root"}])
    rid = raw.headers["x-request-id"]
    spans = rx.wait_for(lambda ss: any(s.attributes.get("clawdbot.request_id") == rid and s.kind == "SERVER"
                                       for s in ss))
    server = one(spans, lambda s: s.attributes.get("clawdbot.request_id") == rid and s.kind == "SERVER")
    assert server.parent_span_id == ""
    trace_id, parent = upstream_context(upstream_request(openai_upstream, rid))
    attempt = one(rx.trace(trace_id), lambda s: s.kind == "CLIENT")
    assert trace_id == server.trace_id and parent == attempt.span_id


def test_an_unknown_model_is_a_traced_404(gw: GatewayProcess, rx: OtlpReceiver) -> None:
    trace_id, tp = new_traceparent()
    with pytest.raises(openai.NotFoundError):
        client(gw, tp).chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    server = one(trace_of(rx, trace_id), lambda s: s.kind == "SERVER")
    assert server.attributes["error.type"] == "404" and server.attributes["http.response.status_code"] == 404
    assert server.status == "UNSET"  # a client's error is not the server's (semantic conventions)
    assert not [s for s in rx.trace(trace_id) if s.kind == "CLIENT"]


def test_capture_content_puts_prompt_and_completion_in_spans(tmp_path: Path, openai_upstream: OpenAIUpstream,
                                                             bad: OpenAIUpstream, rx: OtlpReceiver) -> None:
    with start(tmp_path, config(openai_upstream, bad, rx, capture=True), "capture") as g:
        for stream in (False, True):
            trace_id, tp = new_traceparent()
            out = client(g, tp).chat.completions.create(
                model="chat-oa", messages=[{"role": "user", "content": f"say {SECRET}"}], stream=stream)
            if stream:
                assert "".join(c.choices[0].delta.content or "" for c in out if c.choices)
            server = one(trace_of(rx, trace_id), lambda s: s.kind == "SERVER")
            assert f'"content":"say {SECRET}"' in server.attributes["gen_ai.input.messages"]
            assert '"role":"user"' in server.attributes["gen_ai.input.messages"]
            assert f"echo: say {SECRET}" in server.attributes["gen_ai.output.messages"], stream


def test_spans_buffered_at_shutdown_are_exported(tmp_path: Path, openai_upstream: OpenAIUpstream,
                                                 bad: OpenAIUpstream, rx: OtlpReceiver) -> None:
    g = start(tmp_path, config(openai_upstream, bad, rx), "flush", {"OTEL_BSP_SCHEDULE_DELAY": "600000"})
    trace_id, tp = new_traceparent()
    with g:
        client(g, tp).chat.completions.create(model="chat-oa", messages=[{"role": "user", "content": "bye"}])
        assert not rx.trace(trace_id)  # still in the batch: exported only by the shutdown's flush
    assert trace_of(rx, trace_id)  # SIGTERM: uvicorn's shutdown, then the tracer's flush
    assert "Traceback" not in g.log()


def test_telemetry_without_the_extra_fails_at_startup(tmp_path: Path, openai_upstream: OpenAIUpstream,
                                                      bad: OpenAIUpstream, rx: OtlpReceiver) -> None:
    blocker = tmp_path / "blocker" / "opentelemetry"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("No module named \'opentelemetry\'")\n')
    g = start(tmp_path, config(openai_upstream, bad, rx), "noextra", {"PYTHONPATH": str(blocker.parent)})
    code, out = g.run_to_exit()
    assert code == 2, out
    assert "clawdbot[otel]" in out and "telemetry" in out and "Traceback" not in out


def test_tracing_off_passes_the_clients_traceparent_through(tmp_path: Path, openai_upstream: OpenAIUpstream,
                                                            rx: OtlpReceiver) -> None:
    text = f"services:\n  - {{name: oa, type: openai, endpoint: {openai_upstream.base_url}}}\n"
    with start(tmp_path, text, "off") as g:
        raw = client(g).chat.completions.with_raw_response.create(
            model="oa/mock-a", messages=[{"role": "user", "content": "pass"}])
        rec = upstream_request(openai_upstream, raw.headers["x-request-id"])
        assert rec.headers.get("traceparent") == TRACEPARENT and rec.headers.get("tracestate") == TRACESTATE
        raw = client(g, "00-" + "0" * 32 + "-00f067aa0ba902b7-01").chat.completions.with_raw_response.create(
            model="oa/mock-a", messages=[{"role": "user", "content": "invalid"}])
        rec = upstream_request(openai_upstream, raw.headers["x-request-id"])
        assert "traceparent" not in rec.headers and "tracestate" not in rec.headers  # invalid: not forwarded
        assert g.proc is not None
        assert rss_mib(g.proc.pid) <= 50  # the idle budget, without the otel extra loaded
    assert not rx.trace(TRACE_ID)


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return kib / 1024


def test_split_topology_is_one_trace(tmp_path: Path, openai_upstream: OpenAIUpstream, rx: OtlpReceiver) -> None:
    env = {**OTEL_ENV, "CLAWDBOT_TELEMETRY": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": rx.url}
    proxy = GatewayProcess(["proxy"], tmp_path / "proxy.log", {**env, "CLAWDBOT_MODEL_ENDPOINT": openai_upstream.url})
    with proxy:
        gateway = GatewayProcess(["gateway"], tmp_path / "gateway.log", {**env, "CLAWDBOT_MODEL_ENDPOINT": proxy.url})
        with gateway:
            async def body() -> str:
                async with await WsClient.connect(gateway.url) as c:
                    end, _ = await c.chat(f"split {SECRET}")
                    assert end["state"] == "final", end
                    rid: str = end["trace"]["requestId"]
                    return rid

            rid = run(body())
    spans = rx.wait_for(lambda ss: any(s.attributes.get("clawdbot.request_id") == rid and s.kind == "SERVER"
                                       and s.service == "clawdbot-gateway" for s in ss))
    root = one(spans, lambda s: s.attributes.get("clawdbot.request_id") == rid and s.service == "clawdbot-gateway"
               and s.kind == "SERVER")
    assert root.parent_span_id == "" and root.attributes["clawdbot.entry"] == "chat.send"
    trace = trace_of(rx, root.trace_id, servers=2)
    gw_attempt = one(trace, lambda s: s.kind == "CLIENT" and s.service == "clawdbot-gateway")
    proxy_server = one(trace, lambda s: s.kind == "SERVER" and s.service == "clawdbot-proxy")
    proxy_attempt = one(trace, lambda s: s.kind == "CLIENT" and s.service == "clawdbot-proxy")
    assert gw_attempt.parent_span_id == root.span_id
    assert proxy_server.parent_span_id == gw_attempt.span_id  # the proxy joined the gateway's trace
    assert proxy_attempt.parent_span_id == proxy_server.span_id
    assert proxy_server.attributes["url.path"] == "/v1/chat/completions"
    rec = upstream_request(openai_upstream, proxy_server.attributes["clawdbot.request_id"])
    assert upstream_context(rec) == (root.trace_id, proxy_attempt.span_id)
    assert SECRET not in everything(trace)


def test_a_reload_turns_tracing_on_and_moves_it(tmp_path: Path, openai_upstream: OpenAIUpstream) -> None:
    """`telemetry:` is reloaded like the rest of the config (SIGHUP here): off -> on (to one
    receiver) -> another receiver. A stream that began before a reload ends its spans with the
    tracer it began with, which closes (and exports) once that stream is over."""
    services = f"services:\n  - {{name: oa, type: openai, endpoint: {openai_upstream.base_url}}}\n"

    def traced(rx: OtlpReceiver) -> str:
        return f"telemetry: {{enabled: true, endpoint: {rx.url}}}\n" + services

    def reload(g: GatewayProcess, text: str) -> None:
        done = g.log().count("config reloaded (SIGHUP)")
        (tmp_path / "moving.yaml").write_text(text)
        assert g.proc is not None
        g.proc.send_signal(signal.SIGHUP)
        g.wait_until(lambda log: log.count("config reloaded (SIGHUP)") > done)

    def ask(g: GatewayProcess, tp: str) -> None:
        client(g, tp).chat.completions.create(model="oa/mock-a", messages=[{"role": "user", "content": "hi"}])

    with OtlpReceiver() as first, OtlpReceiver() as second, start(tmp_path, services, "moving") as g:
        off_id, off_tp = new_traceparent()
        ask(g, off_tp)
        reload(g, traced(first))
        on_id, on_tp = new_traceparent()
        ask(g, on_tp)
        assert trace_of(first, on_id)
        # a stream held open by the upstream across the next reload
        openai_upstream.set_gate(False)
        held_id, held_tp = new_traceparent()
        stream = client(g, held_tp).chat.completions.create(
            model="oa/mock-a", stream=True, messages=[{"role": "user", "content": "fault:gate hold"}])
        chunks = iter(stream)
        next(chunks)
        reload(g, traced(second))
        moved_id, moved_tp = new_traceparent()
        ask(g, moved_tp)
        assert trace_of(second, moved_id)
        openai_upstream.set_gate(True)
        assert list(chunks)  # the rest of the held stream
        held = trace_of(first, held_id)  # its tracer closed after it ended, exporting it
        assert any(s.kind == "CLIENT" for s in held)
        assert not first.trace(moved_id) and not second.trace(held_id)
        assert not first.trace(off_id) and not second.trace(off_id)
        assert "Traceback" not in g.log()


def test_a_streamed_answer_s_chunk_hooks_are_one_span(gw: GatewayProcess, rx: OtlpReceiver) -> None:
    trace_id, tp = new_traceparent()
    with client(gw, tp).chat.completions.create(
            model="guarded", stream=True, messages=[{"role": "user", "content": "mail ann@example.com please"}]) as s:
        text = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
    assert "ann@example.com" in text  # masked upstream, restored chunk by chunk
    spans = trace_of(rx, trace_id)
    server = one(spans, lambda s: s.kind == "SERVER")
    hooks = one(spans, lambda s: s.name == "plugins stream")
    assert hooks.parent_span_id == server.span_id
    assert hooks.attributes["clawdbot.plugins"] == ["pii"] and hooks.attributes["clawdbot.plugin.chunks"] >= 2
    assert hooks.attributes["clawdbot.plugin.hook_ms"] >= 0
    attempt = one(spans, lambda s: s.kind == "CLIENT")
    assert attempt.start_ns <= hooks.start_ns <= hooks.end_ns <= server.end_ns


def test_the_semantic_cache_s_embedding_is_a_span(gw: GatewayProcess, rx: OtlpReceiver) -> None:
    trace_id, tp = new_traceparent()
    question = os.urandom(8).hex()
    client(gw, tp).chat.completions.create(model="semantic", messages=[{"role": "user", "content": question}])
    spans = trace_of(rx, trace_id)
    server = one(spans, lambda s: s.kind == "SERVER")
    embedding = one(spans, lambda s: s.name == "embeddings embed")
    chat = one(spans, lambda s: s.kind == "CLIENT" and s.name != "embeddings embed")
    assert embedding.kind == "CLIENT" and embedding.parent_span_id == server.span_id
    assert embedding.attributes["gen_ai.operation.name"] == "embeddings"
    assert embedding.attributes["clawdbot.service"] == "oa"
    assert embedding.attributes["gen_ai.response.model"] == "text-embedding-3-small"
    assert embedding.attributes["gen_ai.usage.input_tokens"] > 0
    assert embedding.end_ns <= chat.start_ns  # looked up before the model was asked

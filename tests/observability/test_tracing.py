"""Tracing's switch, the traceparent pass-through when it is off, and the OpenTelemetry module's
pieces (spans through the SDK's in-memory exporter): tests/e2e/test_tracing.py runs processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest

from clawdbot.config.loader import ConfigError, load_config_text
from clawdbot.config.schema import Telemetry
from clawdbot.core.context import RequestContext
from clawdbot.observability.tracer_build import build_tracer
from clawdbot.observability.tracing import TelemetryUnavailable, enabled, passthrough
from tests.upstreams.otlp_receiver import OtlpReceiver

TP = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(("value", "ok"), [
    (TP, True),
    (TP[:-2] + b"00", True),  # not sampled: still passed on, the upstream decides nothing else
    (b"01" + TP[2:] + b"-future-field", True),  # a later version may append fields
    (TP + b"-x", False),  # version 00 may not
    (b"ff" + TP[2:], False),
    (TP.replace(b"4bf92f3577b34da6a3ce929d0e0e4736", b"0" * 32), False),
    (TP.replace(b"00f067aa0ba902b7", b"0" * 16), False),
    (TP.upper(), False),
    (TP[:-1], False),
    (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nx-evil: 1", False),
])
def test_passthrough_takes_only_a_valid_traceparent(value: bytes, ok: bool) -> None:
    got = passthrough({b"traceparent": value})
    assert (got == b"traceparent: " + value + b"\r\n") if ok else got is None


def test_passthrough_carries_a_sane_tracestate_along() -> None:
    assert passthrough({b"traceparent": TP, b"tracestate": b"a=1,b=2"}) == (
        b"traceparent: " + TP + b"\r\ntracestate: a=1,b=2\r\n")
    assert passthrough({b"traceparent": TP, b"tracestate": b"a=1\nb: 2"}) == b"traceparent: " + TP + b"\r\n"
    assert passthrough({b"traceparent": TP, b"tracestate": b"x" * 513}) == b"traceparent: " + TP + b"\r\n"
    assert passthrough({b"tracestate": b"a=1"}) is None


@pytest.mark.parametrize(("setting", "env", "on"), [
    (False, {}, False),
    (True, {}, True),
    (False, {"CLAWDBOT_TELEMETRY": "true"}, True),
    (True, {"CLAWDBOT_TELEMETRY": "0"}, False),
    (True, {"OTEL_SDK_DISABLED": "true"}, False),
    (False, {"CLAWDBOT_TELEMETRY": "on", "OTEL_SDK_DISABLED": "TRUE"}, False),
    (True, {"OTEL_SDK_DISABLED": "false"}, True),
])
def test_the_switch(setting: bool, env: dict[str, str], on: bool) -> None:
    assert enabled(Telemetry(enabled=setting), env) is on


def test_off_builds_no_tracer() -> None:
    assert build_tracer(Telemetry(), {}) is None


def test_on_without_the_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "clawdbot.observability.otel", None)  # as if the SDK were missing
    with pytest.raises(TelemetryUnavailable, match=r"clawdbot\[otel\]"):
        build_tracer(Telemetry(enabled=True), {})


def test_the_sample_ratio_is_checked_at_its_line() -> None:
    with pytest.raises(ConfigError, match=r"c\.yaml:3.*sample_ratio"):
        load_config_text("telemetry:\n  enabled: true\n  sample_ratio: 1.5\n", "c.yaml", {})
    assert load_config_text("telemetry: {sample_ratio: 0.25}\n", "c.yaml", {}).telemetry.sample_ratio == 0.25


def test_tracing_off_imports_no_opentelemetry(tmp_path: Any) -> None:
    """The whole app, built and serving a request in process, with tracing off: the SDK never loads."""
    code = f"""
import asyncio, json, sys
from clawdbot.cli.serve import build_app
from clawdbot.config.loader import load_config_text
from clawdbot.observability.access import AccessLog
config = load_config_text("services:\\n  - {{name: m, type: mock}}\\n", "c.yaml", {{}})
app = build_app(config, AccessLog("text"), "serve", {{"CLAWDBOT_DATA_DIR": {str(tmp_path)!r}}})
print(json.dumps([m for m in sys.modules if m.startswith("opentelemetry") or m == "clawdbot.observability.otel"]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


# -- the OpenTelemetry module ------------------------------------------------------------------------

otel = pytest.importorskip("clawdbot.observability.otel", reason="the otel extra is not installed")


def test_output_messages_read_openai_bodies_and_streams() -> None:
    body = '{"choices":[{"message":{"role":"assistant","content":"hi there"},"finish_reason":"stop"}]}'
    assert json.loads(otel.output_messages(body)) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "hi there"}], "finish_reason": "stop"}]
    sse = ('data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'
           'data: {"choices":[{"delta":{"content":" there"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
    assert json.loads(otel.output_messages(sse))[0]["parts"][0]["content"] == "hi there"
    other = '{"message":{"role":"assistant","content":"ollama"}}'  # another dialect's bytes: as they are
    assert json.loads(otel.output_messages(other))[0]["parts"][0]["content"] == other


def test_traces_url_and_the_default_service_name() -> None:
    assert otel.traces_url("http://c:4318") == "http://c:4318/v1/traces"
    assert otel.traces_url("http://c:4318/v1/traces/") == "http://c:4318/v1/traces"
    res = otel.build_resource(Telemetry(), {}, "proxy")
    assert res.attributes["clawdbot.role"] == "proxy"


def test_a_request_span_through_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    # a receiver that takes the export: a dead endpoint left the exporter's thread retrying after
    # the test, its warnings landing in later tests' caplog
    with OtlpReceiver() as rx:
        tracer = otel.OtelTracer(Telemetry(enabled=True, endpoint=rx.url), {}, "gateway")
        mem = InMemorySpanExporter()
        tracer.provider.add_span_processor(SimpleSpanProcessor(mem))
        ctx = RequestContext("rid-1", model="m", stream=True)
        assert tracer.start(ctx, "/healthz", {}) is None  # not a model request
        tr = tracer.start(ctx, "/v1/chat/completions", {b"traceparent": TP})
        assert tr is not None
        ctx.trace = tr
        ctx.first_token_at = ctx.started + 0.01
        ctx.prompt_tokens, ctx.completion_tokens = 3, 5
        tr.end(ctx, 503)
        (span,) = [s for s in mem.get_finished_spans() if s.name == "chat m"]
        assert span.parent is not None and format(span.parent.span_id, "016x") == "00f067aa0ba902b7"
        assert format(span.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert span.resource.attributes["service.name"] == "clawdbot-gateway"
        attrs = span.attributes or {}
        assert attrs["error.type"] == "503" and attrs["gen_ai.usage.output_tokens"] == 5
        assert span.status.status_code.name == "ERROR"
        assert [e.name for e in span.events] == ["gen_ai.first_token"]
        asyncio.run(tracer.close())  # bounded, whatever the collector does
        assert rx.wait_for(lambda spans: any(s.name == "chat m" for s in spans))  # the batch exported

"""An OTLP/HTTP trace receiver for the tests: what an OpenTelemetry Collector's `otlp` receiver does
on `POST /v1/traces` (protobuf, optionally gzip), decoding the real payload with the
`opentelemetry-proto` package's ExportTraceServiceRequest and keeping every span. Neither Debian nor
PyPI ships a Collector binary installable here, so the tests speak the protocol to this instead.

    with OtlpReceiver() as rx:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.url}
        ...
        spans = rx.wait_for(lambda spans: any(s.name == "chat m" for s in spans), timeout=10)

Waiting is on a condition with a deadline, never a sleep."""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from .runner import ServerThread

KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


def value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return attributes(v.kvlist_value.values)
    return getattr(v, which)


def attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kv: KeyValue
    for kv in kvs:
        out[kv.key] = value(kv.value)
    return out


@dataclass(frozen=True)
class Event:
    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Span:
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str  # "" for a root span
    name: str
    kind: str  # SERVER, CLIENT, INTERNAL, ...
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[Event]
    status: str  # UNSET, OK, ERROR
    status_message: str
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str = ""

    @property
    def service(self) -> str:
        return str(self.resource.get("service.name", ""))


class OtlpReceiver(ServerThread):
    def __init__(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._traces)
        super().__init__(app, name="otlp-receiver")
        self._spans: list[Span] = []
        self._changed = threading.Condition()
        self.exports = 0  # export requests received
        self.content_types: set[str] = set()

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        encoding = request.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        ctype = request.headers.get("Content-Type", "")
        if ctype != "application/x-protobuf":
            return web.Response(status=415, text=f"protobuf only, not {ctype}")
        msg = ExportTraceServiceRequest()
        msg.ParseFromString(body)
        spans = []
        for rs in msg.resource_spans:
            resource = attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    spans.append(Span(
                        trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent_span_id=s.parent_span_id.hex(),
                        name=s.name, kind=KINDS.get(s.kind, str(s.kind)), start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano, attributes=attributes(s.attributes),
                        events=[Event(e.name, e.time_unix_nano, attributes(e.attributes)) for e in s.events],
                        status=STATUS.get(s.status.code, str(s.status.code)), status_message=s.status.message,
                        resource=resource, scope=ss.scope.name))
        with self._changed:
            self._spans.extend(spans)
            self.exports += 1
            self.content_types.add(ctype)
            self._changed.notify_all()
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    @property
    def spans(self) -> list[Span]:
        with self._changed:
            return list(self._spans)

    def trace(self, trace_id: str) -> list[Span]:
        return [s for s in self.spans if s.trace_id == trace_id]

    def wait_for(self, done: Callable[[list[Span]], bool], timeout: float = 15.0) -> list[Span]:
        """Every span received, once `done(spans)` holds; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done(list(self._spans)):
                left = deadline - time.monotonic()
                if left <= 0:
                    names = [(s.name, s.trace_id[:8]) for s in self._spans]
                    raise AssertionError(f"spans not complete after {timeout}s; got {names}")
                self._changed.wait(left)
            return list(self._spans)

    def clear(self) -> None:
        with self._changed:
            self._spans.clear()

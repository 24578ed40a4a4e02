"""`type: grpc`: a model behind an Open Inference Protocol (KServe v2) gRPC server such as Triton or
MLServer. The chat is rendered to one prompt (config/prompt_templates.py) and sent as a BYTES tensor
with the request's settings (presets.py says where each goes); a stream is one ModelStreamInfer call
(one request written, the client's side closed, responses read until the server ends the call or
marks its final response), a non-streamed answer one ModelInfer. Timeouts: the service's `total` is
the call's deadline; `first_byte` bounds the wait for the first response (the whole answer when not
streaming); `idle` the silence between two. gRPC statuses become the gateway's typed errors
(status.py). docs/grpc.md."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from clawdbot.codecs.text_turns import refuse_unsupported, text_turns
from clawdbot.config.grpc_schema import GrpcSettings, grpc_target
from clawdbot.config.prompt_templates import TemplateError
from clawdbot.config.schema import Service
from clawdbot.config.service_types import TYPES
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import BadRequest, UpstreamError, UpstreamTimeout
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, Message, Usage
from clawdbot.providers.base import Probe
from clawdbot.providers.oip import open_inference_pb2 as pb
from clawdbot.providers.oip.channels import Channels
from clawdbot.providers.oip.presets import Shape, resolve
from clawdbot.providers.oip.status import rpc_error
from clawdbot.providers.oip.stops import StopScanner
from clawdbot.providers.oip.tensors import infer_request, output_text, parameter, top_level_fields

SERVICE = "/inference.GRPCInferenceService/"
STREAM_INFER = SERVICE + "ModelStreamInfer"
PROBE_TIMEOUT_S = 5.0


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


class Watchdog:
    """Cancels a call that has been silent too long: one timer for the whole call, moved on by each
    response with a float assignment (asyncio.wait_for around every read costs a task each: ~20 us
    a streamed token, docs/benchmarks.md). `fired` tells the read's CancelledError from a caller's."""

    def __init__(self, call: Any, wait: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.call = call
        self.wait = wait
        self.deadline = self.loop.time() + wait
        self.moved = False  # a response came: the wait is now the idle gap
        self.fired = False
        self._timer = self.loop.call_at(self.deadline, self._check)

    def move(self, wait: float) -> None:
        self.wait, self.moved = wait, True
        self.deadline = self.loop.time() + wait

    def _check(self) -> None:
        if self.loop.time() < self.deadline:
            self._timer = self.loop.call_at(self.deadline, self._check)
            return
        self.fired = True
        self.call.cancel()

    def stop(self) -> None:
        self._timer.cancel()


@dataclass
class _Call:
    request: pb.ModelInferRequest
    stops: StopScanner
    max_tokens: int | None


class _Answer:
    """What a call's responses said besides text."""

    def __init__(self) -> None:
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.finish_reason: str | None = None
        self.final = False

    def read(self, params: Any) -> None:
        if not params:
            return
        if (n := parameter(params, "prompt_tokens")) is not None:
            self.prompt_tokens = int(n)
        if (n := parameter(params, "completion_tokens")) is not None:
            self.completion_tokens = int(n)
        if (f := parameter(params, "finish_reason")) is not None:
            self.finish_reason = str(f)
        if parameter(params, "triton_final_response") is True:
            self.final = True

    def finish(self, stopped: bool, max_tokens: int | None) -> str:
        if stopped:
            return "stop"
        if self.finish_reason in ("stop", "length"):
            return self.finish_reason
        done = self.completion_tokens
        return "length" if max_tokens is not None and done is not None and done >= max_tokens else "stop"

    def usage(self, ctx: RequestContext) -> Usage | None:
        """Both counts when the server sent both; one alone goes on the context and the gateway
        estimates the other (core/accounting.py)."""
        if self.prompt_tokens is not None and self.completion_tokens is not None:
            return Usage(self.prompt_tokens, self.completion_tokens)
        if self.completion_tokens is not None:
            ctx.completion_tokens = self.completion_tokens
        return None


class GrpcProvider:
    kind = "grpc"

    def __init__(self, svc: Service) -> None:
        self.name = svc.name
        self.svc = svc
        g = svc.grpc or GrpcSettings()
        self.shape: Shape = resolve(g)
        self.target = grpc_target(svc.endpoint or "")
        self.channels = Channels(svc, self.target, g)
        self.timeouts = svc.timeouts
        self.default_model = svc.model_id or ""
        self.metadata = self._static_metadata(svc)

    @staticmethod
    def _static_metadata(svc: Service) -> tuple[tuple[str, str], ...]:
        md = [(k.lower(), v) for k, v in svc.headers.items()]
        a = svc.auth
        if a is not None and a.type != "none" and a.key:
            md += [(k.lower(), v) for k, v in TYPES["grpc"].auth_headers(a.key, a.header, a.type).items()]
        return tuple(md)

    def _call_metadata(self, ctx: RequestContext) -> tuple[tuple[str, str], ...]:
        md = [*self.metadata, ("x-request-id", ctx.upstream_id())]
        if ctx.trace_headers is not None:  # b"traceparent: ...\r\ntracestate: ...\r\n"
            for line in ctx.trace_headers.decode("latin-1").split("\r\n"):
                name, sep, value = line.partition(":")
                if sep:
                    md.append((name.strip().lower(), value.strip()))
        return tuple(md)

    def _prepare(self, req: ChatRequest, ctx: RequestContext, stream: bool) -> _Call:
        refuse_unsupported(req, "gRPC inference services")
        shape = self.shape
        try:
            prompt = shape.template.render(text_turns(req.messages), shape.bos_token, shape.eos_token)
        except TemplateError as exc:
            raise BadRequest(f"service {self.name!r}: {exc}") from None
        max_tokens = req.max_tokens
        cap = ctx.completion_cap
        if cap is not None and (max_tokens is None or cap < max_tokens):
            max_tokens = max(cap, 1)
        settings: dict[str, Any] = {
            "max_tokens": max_tokens, "temperature": req.temperature, "top_p": req.top_p, "seed": req.seed,
            "stop": req.stop or None, "presence_penalty": req.presence_penalty,
            "frequency_penalty": req.frequency_penalty, "top_k": (req.extra or {}).get("top_k"),
        }
        model = req.model or self.default_model
        ctx.upstream_model = model
        request = infer_request(model, shape, prompt, settings, stream, ctx.upstream_id(),
                                final_marker=stream and shape.stream_shape == "wrapped")
        return _Call(request, StopScanner([*(req.stop or []), *shape.template.stop]), max_tokens)

    # -- streaming -------------------------------------------------------------------------------

    def _response(self, data: bytes) -> pb.ModelInferResponse:
        """One ModelStreamInfer message as a ModelInferResponse, unwrapping Triton's shape."""
        shape = self.shape.stream_shape
        if shape == "auto":
            fields = top_level_fields(data)
            shape = "wrapped" if fields and fields <= {1, 2} else "bare"
        try:
            if shape == "bare":
                return pb.ModelInferResponse.FromString(data)
            wrapped = pb.ModelStreamInferResponse.FromString(data)
        except Exception as exc:  # protobuf's DecodeError
            raise UpstreamError(f"service {self.name!r} sent a stream response that is not the Open Inference "
                                f"Protocol's ({type(exc).__name__})") from None
        if wrapped.error_message:
            raise UpstreamError(f"service {self.name!r} failed the request: {wrapped.error_message[:500]}")
        return wrapped.infer_response

    async def stream(self, req: ChatRequest, ctx: RequestContext) -> AsyncGenerator[ChatChunk, None]:
        prepared = self._prepare(req, ctx, stream=True)
        request, stops = prepared.request, prepared.stops
        model = request.model_name
        answer = _Answer()
        sent = ""  # cumulative servers: the text so far
        started = False
        t = self.timeouts
        async with self.channels.stream() as slot:
            call: grpc.aio.StreamStreamCall[pb.ModelInferRequest, bytes] = slot.stream_stream(
                STREAM_INFER, _serialize)(metadata=self._call_metadata(ctx), timeout=t.total)
            idle = t.idle if t.idle is not None else t.total
            watchdog = Watchdog(call, t.first_byte)
            try:
                await call.write(request)
                await call.done_writing()
                while True:
                    try:
                        data = await call.read()
                    except asyncio.CancelledError:
                        if not watchdog.fired:
                            raise
                        what = "idle for {:g} s mid-stream (timeouts.idle)" if watchdog.moved else \
                            "no first response within {:g} s (timeouts.first_byte)"
                        raise UpstreamTimeout(f"service {self.name!r}: " + what.format(watchdog.wait)) from None
                    if not isinstance(data, bytes):  # grpc.aio.EOF: the server ended the call
                        break
                    watchdog.move(idle)
                    resp = self._response(data)
                    answer.read(resp.parameters)
                    text = output_text(resp, self.shape.output, self.name) or ""
                    if self.shape.stream_text == "cumulative":
                        text, sent = (text[len(sent):], text) if text.startswith(sent) else (text, sent + text)
                    out = stops.feed(text)
                    if out:
                        yield ChatChunk(content=out, role=None if started else "assistant",
                                        model=None if started else model)
                        started = True
                    if stops.stopped or answer.final:
                        break
            except grpc.aio.AioRpcError as exc:
                raise rpc_error(self.name, exc) from None
            finally:
                watchdog.stop()
                if not call.done():
                    call.cancel()
        tail = stops.flush()
        if tail:
            yield ChatChunk(content=tail, role=None if started else "assistant", model=None if started else model)
        yield ChatChunk(finish_reason=answer.finish(stops.stopped, prepared.max_tokens), usage=answer.usage(ctx))

    # -- one answer ------------------------------------------------------------------------------

    async def chat(self, req: ChatRequest, ctx: RequestContext) -> ChatResponse:
        prepared = self._prepare(req, ctx, stream=False)
        request, stops = prepared.request, prepared.stops
        answer = _Answer()
        t = self.timeouts
        async with self.channels.stream() as slot:
            call = slot.unary_unary(SERVICE + "ModelInfer", _serialize, pb.ModelInferResponse.FromString)
            try:
                resp = await call(request, metadata=self._call_metadata(ctx), timeout=min(t.total, t.first_byte))
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise UpstreamTimeout(f"service {self.name!r}: no answer within "
                                          f"{min(t.total, t.first_byte):g} s") from None
                raise rpc_error(self.name, exc) from None
        answer.read(resp.parameters)
        text = output_text(resp, self.shape.output, self.name)
        if text is None:
            raise UpstreamError(f"service {self.name!r} answered without the output tensor {self.shape.output!r}")
        text, stopped = stops.cut(text)
        message = Message(role="assistant", content=text)
        return ChatResponse(f"chatcmpl-{ctx.request_id}", request.model_name, int(time.time()), message,
                            answer.finish(stopped, prepared.max_tokens), answer.usage(ctx))

    # -- health and discovery --------------------------------------------------------------------

    async def _unary(self, method: str, request: Any, response: Any, limit: float) -> Any:
        async with self.channels.stream() as slot:
            call = slot.unary_unary(SERVICE + method, _serialize, response.FromString)
            return await call(request, metadata=self.metadata, timeout=limit)

    async def probe(self) -> Probe:
        """ServerLive; then the model's ModelReady (and its metadata: does it have the configured
        tensors?), or ServerReady for a service without a model_id (MLServer's ServerReady is false
        while any of its models is not, so the model's own readiness decides when there is one);
        and the ready models of its repository when `discover` is on."""
        started = time.perf_counter()
        limit = min(self.timeouts.connect + 1.0, PROBE_TIMEOUT_S)
        try:
            live = await self._unary("ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse, limit)
            ms = (time.perf_counter() - started) * 1000.0
            if not live.live:
                return Probe(ok=False, latency_ms=ms, detail="the server is not live")
            models = await self._models(limit)
            model = self.default_model
            if not model:
                ready = await self._unary("ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse, limit)
                detail = "ready" if ready.ready else "the server is not ready"
                return Probe(ok=ready.ready, latency_ms=ms, detail=detail, models=models)
            req = pb.ModelReadyRequest(name=model, version=self.shape.model_version)
            if not (await self._unary("ModelReady", req, pb.ModelReadyResponse, limit)).ready:
                return Probe(ok=False, latency_ms=ms, detail=f"model {model!r} is not ready", models=models)
            detail = await self._check_tensors(model, limit)
            return Probe(ok=True, latency_ms=ms, detail=detail, models=models or [model])
        except grpc.aio.AioRpcError as exc:
            ms = (time.perf_counter() - started) * 1000.0
            err = rpc_error(self.name, exc)
            return Probe(ok=False, latency_ms=ms, detail=err.message, status=getattr(err, "upstream_status", None))

    async def _models(self, limit: float) -> list[str] | None:
        if not self.svc.discover:
            return None
        try:
            index = await self._unary("RepositoryIndex", pb.RepositoryIndexRequest(ready=True),
                                      pb.RepositoryIndexResponse, limit)
        except grpc.aio.AioRpcError:  # no repository extension: the configured model only
            return None
        names = [m.name for m in index.models if not m.state or m.state.upper() == "READY"]
        return sorted(set(names)) or None

    async def _check_tensors(self, model: str, limit: float) -> str:
        req = pb.ModelMetadataRequest(name=model, version=self.shape.model_version)
        try:
            meta = await self._unary("ModelMetadata", req, pb.ModelMetadataResponse, limit)
        except grpc.aio.AioRpcError:
            return f"model {model!r} ready"
        inputs = {t.name for t in meta.inputs}
        outputs = {t.name for t in meta.outputs}
        missing = [n for n in (self.shape.input.name,) if inputs and n not in inputs]
        missing += [n for n in (self.shape.output,) if outputs and n not in outputs]
        if missing:
            return f"model {model!r} ready, but its metadata names no tensor {', '.join(map(repr, missing))}"
        return f"model {model!r} ready"

    def connections(self) -> dict[str, Any]:
        return self.channels.stats()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.channels.close()


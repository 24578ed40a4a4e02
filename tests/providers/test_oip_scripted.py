"""The gRPC provider against scripted in-process gRPC servers, for what the real peers
(tests/e2e/test_grpc_*.py) cannot be made to do: cumulative stream text, both stream shapes told
apart without being told, a server that sends something else, metadata as it arrives, the bound on
streams per channel, and probes of a server whose model is not ready or lacks the configured tensors.
The servers speak the same protocol messages (providers/oip/open_inference.proto) through grpc.aio."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio
import pytest

from clawdbot.config.loader import load_config_text
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import BadRequest, Overloaded, UpstreamError
from clawdbot.core.types import ChatChunk, ChatRequest, ImagePart, Message, TextPart, Tool
from clawdbot.providers.oip import open_inference_pb2 as pb
from clawdbot.providers.oip.provider import GrpcProvider

SAY = ChatRequest(model="m", messages=[Message("user", "one two three")])
Handler = Callable[[pb.ModelInferRequest, Any], AsyncIterator[bytes]]


def response(text: str | None = None, **params: Any) -> pb.ModelInferResponse:
    r = pb.ModelInferResponse(model_name="m", id="x")
    if text is not None:
        r.outputs.add(name="output", datatype="BYTES", shape=[1]).contents.bytes_contents.append(text.encode())
    for k, v in params.items():
        if isinstance(v, bool):
            r.parameters[k].bool_param = v
        elif isinstance(v, int):
            r.parameters[k].int64_param = v
        else:
            r.parameters[k].string_param = v
    return r


class Server:
    """A grpc.aio server on 127.0.0.1 with a scripted ModelStreamInfer (each request's responses
    from `handler`, as raw bytes) and the health methods."""

    def __init__(self, handler: Handler, ready: bool = True, inputs: tuple[str, ...] = ("prompt",)) -> None:
        self.handler = handler
        self.ready = ready
        self.inputs = inputs
        self.metadata: list[dict[str, str]] = []
        self.server = grpc.aio.server()

    async def _stream(self, requests: AsyncIterator[pb.ModelInferRequest], context: Any) -> AsyncIterator[bytes]:
        self.metadata.append(dict(context.invocation_metadata()))
        async for req in requests:
            async for data in self.handler(req, context):
                yield data

    async def _model_ready(self, req: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self.ready)

    async def _metadata(self, req: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        resp = pb.ModelMetadataResponse(name=req.name)
        for name in self.inputs:
            resp.inputs.add(name=name, datatype="BYTES", shape=[1])
        resp.outputs.add(name="output", datatype="BYTES", shape=[1])
        return resp

    async def _index(self, req: pb.RepositoryIndexRequest, context: Any) -> pb.RepositoryIndexResponse:
        resp = pb.RepositoryIndexResponse()
        resp.models.add(name="m", state="READY")
        resp.models.add(name="other", state="READY")
        resp.models.add(name="loading", state="LOADING")
        return resp

    async def start(self) -> int:
        def unary(fn: Any, req: Any, resp: Any) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(fn, request_deserializer=req.FromString,
                                                       response_serializer=resp.SerializeToString)

        async def live(req: Any, context: Any) -> pb.ServerLiveResponse:
            return pb.ServerLiveResponse(live=True)

        handlers = {
            "ModelStreamInfer": grpc.stream_stream_rpc_method_handler(
                self._stream, request_deserializer=pb.ModelInferRequest.FromString),
            "ServerLive": unary(live, pb.ServerLiveRequest, pb.ServerLiveResponse),
            "ModelReady": unary(self._model_ready, pb.ModelReadyRequest, pb.ModelReadyResponse),
            "ModelMetadata": unary(self._metadata, pb.ModelMetadataRequest, pb.ModelMetadataResponse),
            "RepositoryIndex": unary(self._index, pb.RepositoryIndexRequest, pb.RepositoryIndexResponse),
        }
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "inference.GRPCInferenceService", handlers),))
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return port

    async def stop(self) -> None:
        await self.server.stop(None)


def provider(port: int, grpc_settings: str = "{preset: mlserver, chat_template: raw}", extra: str = "") -> GrpcProvider:
    cfg = load_config_text(f"services:\n  - name: g\n    type: grpc\n    endpoint: 127.0.0.1:{port}\n"
                           f"    metadata: {{model_id: m}}\n    grpc: {grpc_settings}\n{extra}", "t.yaml")
    return GrpcProvider(cfg.services[0])


def scenario(handler: Handler, body: Callable[[Server, GrpcProvider], Any], grpc_settings: str = "",
             extra: str = "", **server_kw: Any) -> Any:
    async def main() -> Any:
        server = Server(handler, **server_kw)
        port = await server.start()
        p = provider(port, grpc_settings or "{preset: mlserver, chat_template: raw}", extra)
        try:
            return await body(server, p)
        finally:
            await p.close()
            await server.stop()

    return asyncio.run(main())


async def collect(p: GrpcProvider, req: ChatRequest = SAY, ctx: RequestContext | None = None) -> list[ChatChunk]:
    return [c async for c in p.stream(req, ctx or RequestContext("r"))]


def test_cumulative_text_is_relayed_as_deltas() -> None:
    async def handler(req: pb.ModelInferRequest, context: Any) -> AsyncIterator[bytes]:
        for text in ("one", "one two", "one two three"):
            yield response(text).SerializeToString()

    settings = "{preset: mlserver, chat_template: raw, stream_text: cumulative}"
    chunks = scenario(handler, lambda s, p: collect(p), settings)
    assert [c.content for c in chunks if c.content] == ["one", " two", " three"]


@pytest.mark.parametrize("wrapped", [False, True])
def test_auto_tells_the_stream_shapes_apart(wrapped: bool) -> None:
    async def handler(req: pb.ModelInferRequest, context: Any) -> AsyncIterator[bytes]:
        for text in ("a", " b"):
            r = response(text)
            yield (pb.ModelStreamInferResponse(infer_response=r) if wrapped else r).SerializeToString()

    chunks = scenario(handler, lambda s, p: collect(p), "{preset: mlserver, chat_template: raw, stream_shape: auto}")
    assert "".join(c.content or "" for c in chunks) == "a b"


def test_something_else_on_the_stream_is_a_502() -> None:
    async def handler(req: pb.ModelInferRequest, context: Any) -> AsyncIterator[bytes]:
        yield b"\x0a\xff\xff\xff"  # a length that runs past the message

    with pytest.raises(UpstreamError, match="not the Open Inference Protocol's"):
        scenario(handler, lambda s, p: collect(p))


def test_a_status_after_some_text_ends_the_stream_with_the_mapped_error() -> None:
    async def handler(req: pb.ModelInferRequest, context: Any) -> AsyncIterator[bytes]:
        yield response("a").SerializeToString()
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "KV cache full")

    got: list[ChatChunk] = []

    async def body(s: Server, p: GrpcProvider) -> None:
        async for c in p.stream(SAY, RequestContext("r")):
            got.append(c)

    with pytest.raises(UpstreamError, match="RESOURCE_EXHAUSTED: KV cache full") as info:
        scenario(handler, body)
    assert info.value.upstream_status == 429 and info.value.retryable
    assert [c.content for c in got] == ["a"]


def test_metadata_carries_the_key_the_request_id_and_the_trace() -> None:
    async def handler(req: pb.ModelInferRequest, context: Any) -> AsyncIterator[bytes]:
        yield response("ok", completion_tokens=1, prompt_tokens=3).SerializeToString()

    ctx = RequestContext("3f1c2a9e-9b7d-4c41-8a55-2a8f6c0d1e7b")
    ctx.trace_headers = b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"

    async def body(s: Server, p: GrpcProvider) -> tuple[list[ChatChunk], dict[str, str]]:
        return await collect(p, ctx=ctx), s.metadata[0]

    chunks, md = scenario(handler, body, extra="    auth: {type: api_key, key: k-123}\n    headers: {X-Team: search}\n")
    assert md["authorization"] == "Bearer k-123" and md["x-team"] == "search"
    assert md["x-request-id"] == "3f1c2a9e-9b7d-4c41-8a55-2a8f6c0d1e7b"
    assert md["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 1


def test_streams_per_channel_are_bounded_and_overflow_is_local_overload() -> None:
    release = asyncio.Event()

    async def handler(req: pb.ModelInferRequest, context: Any) -> AsyncIterator[bytes]:
        yield response("first").SerializeToString()
        await release.wait()
        yield response(" done").SerializeToString()

    async def body(s: Server, p: GrpcProvider) -> None:
        streams = [p.stream(SAY, RequestContext(f"r{i}")) for i in range(2)]
        for st in streams:  # each holds a stream once its first response came
            assert (await anext(st)).content == "first"
        assert p.connections()["channels"] == 2 and p.connections()["streams"] == [1, 1]
        with pytest.raises(Overloaded, match="all 2 gRPC streams"):
            await collect(p)  # nothing frees up within queue_timeout (0.2 s)
        assert p.connections()["waits"] == 1
        waiting = asyncio.ensure_future(collect(p))  # this one waits for a stream ...
        release.set()
        for st in streams:
            assert "".join([c.content or "" async for c in st]) == " done"
        got = await waiting  # ... and gets one when they end
        assert "".join(c.content or "" for c in got) == "first done"

    scenario(handler, body, "{preset: mlserver, chat_template: raw, max_streams: 1, max_channels: 2}",
             extra="    limits: {queue_timeout: 0.2}\n")


def test_probe_reports_a_model_that_is_not_ready() -> None:
    async def handler(req: pb.ModelInferRequest, context: Any) -> AsyncIterator[bytes]:
        yield b""

    probe = scenario(handler, lambda s, p: p.probe(), ready=False)
    assert not probe.ok and probe.detail == "model 'm' is not ready"


def test_probe_names_a_configured_tensor_the_model_lacks_and_lists_ready_models() -> None:
    async def handler(req: pb.ModelInferRequest, context: Any) -> AsyncIterator[bytes]:
        yield b""

    probe = scenario(handler, lambda s, p: p.probe(), inputs=("text",))
    assert probe.ok and "names no tensor 'prompt'" in (probe.detail or "")
    assert probe.models == ["m", "other"]  # the repository's ready models, not the one loading


def test_text_only_requests() -> None:
    async def handler(req: pb.ModelInferRequest, context: Any) -> AsyncIterator[bytes]:
        yield b""

    async def body(s: Server, p: GrpcProvider) -> list[str]:
        refused = []
        image = [Message("user", [TextPart("what is it?"), ImagePart("data:image/png;base64,iVBORw0KGgo=")])]
        for kw in ({"tools": [Tool("f")]}, {"response_format": {"type": "json_object"}},
                   {"extra": {"logprobs": True}}, {"messages": image}, {"extra": {"logit_bias": {"1": 5}}},
                   {"tools": [Tool("f")], "tool_choice": "none"}):
            req = ChatRequest(**{"model": "m", "messages": [Message("user", "x")], **kw})  # type: ignore[arg-type]
            try:
                await collect(p, req)
                refused.append("")  # answered (the handler's empty answer)
            except BadRequest as exc:
                assert exc.code == "unsupported_parameter"
                refused.append(exc.param or "")
        return refused

    # tools with tool_choice "none" need not be offered: nothing to refuse
    assert scenario(handler, body) == ["tools", "response_format", "logprobs", "messages", "logit_bias", ""]

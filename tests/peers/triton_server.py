"""A Triton-shaped gRPC test peer: Triton Inference Server serving a TensorRT-LLM ensemble, as far as a
gateway can see it, on tritonclient's generated Triton protocol (grpc_service.proto), with grpc.aio.
It runs in the peer venv (.peers/grpc/bin/python tests/peers/triton_server.py --port N) and prints
`READY <port>` once it listens.

Models: `ensemble` (inputs text_input BYTES [1,1], max_tokens INT32 [1,1], stream BOOL [1,1], optional
temperature/top_p FP32, top_k INT32, random_seed UINT64, stop_words BYTES [1,N]; output text_output
BYTES) and `notready` (listed, never ready: infer on it answers UNAVAILABLE).

The answer is deterministic: the prompt's whitespace-split words, the first as is and every later one
with a leading space, at most max_tokens (16 unless sent), each after `--delay` seconds; with stream
true (over ModelStreamInfer) one word a response, otherwise the whole text in one. The parameters of
the last response with text carry prompt_tokens, completion_tokens (int64) and finish_reason
("length" when cut, else "stop"). Like Triton it answers:
- outputs in raw_output_contents (each BYTES element a 4-byte little-endian length, then the bytes),
  the tensor's name, datatype and shape in `outputs`, no `contents`;
- ModelStreamInfer as ModelStreamInferResponse{error_message, infer_response}; a prompt with the word
  FAIL gets one response with error_message set after its first word, and the stream goes on (and
  ends OK once the client half-closes);
- with the request parameter triton_enable_empty_final_response true, an empty last response with
  triton_final_response true (false on the others);
- every request of a stream in turn; the RPC ends once the client has half-closed and all is sent.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

MODEL = "ensemble"
ALIASES: set[str] = set()  # --alias: more names the ensemble answers to (set once, at start)
NOT_READY = "notready"
VERSION = "1"
DEFAULT_MAX_TOKENS = 16
FAIL = "FAIL"
EMPTY_FINAL = "triton_enable_empty_final_response"
FINAL = "triton_final_response"

INPUTS = [  # (name, datatype, shape as ModelMetadata reports it: -1 is the batch or a free dimension)
    ("text_input", "BYTES", [-1, 1]),
    ("max_tokens", "INT32", [-1, 1]),
    ("stream", "BOOL", [-1, 1]),
    ("temperature", "FP32", [-1, 1]),
    ("top_p", "FP32", [-1, 1]),
    ("top_k", "INT32", [-1, 1]),
    ("random_seed", "UINT64", [-1, 1]),
    ("stop_words", "BYTES", [-1, -1]),
]
OUTPUT = ("text_output", "BYTES", [-1, -1])
CONTENTS = {"BYTES": "bytes_contents", "BOOL": "bool_contents", "INT32": "int_contents", "FP32": "fp32_contents",
            "UINT64": "uint64_contents", "INT64": "int64_contents", "FP64": "fp64_contents"}
RAW = {"BOOL": "?", "INT32": "i", "FP32": "f", "UINT64": "Q", "INT64": "q", "FP64": "d"}


class RequestError(Exception):
    """A request Triton refuses: ModelInfer fails with `code`; ModelStreamInfer answers error_message and goes on."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code or self.code


def unpack_bytes(raw: bytes) -> list[bytes]:
    out, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise RequestError("malformed BYTES tensor: truncated length prefix")
        (size,) = struct.unpack_from("<I", raw, offset)
        if offset + 4 + size > len(raw):
            raise RequestError("malformed BYTES tensor: element longer than the tensor")
        out.append(raw[offset + 4:offset + 4 + size])
        offset += 4 + size
    return out


def tensors(request: pb.ModelInferRequest) -> dict[str, list[Any]]:
    """Each input's elements, from raw_input_contents (as tritonclient sends them) or from contents."""
    if request.raw_input_contents and len(request.raw_input_contents) != len(request.inputs):
        raise RequestError(f"expected {len(request.inputs)} raw input contents, got {len(request.raw_input_contents)}")
    known = {name: datatype for name, datatype, _ in INPUTS}
    out: dict[str, list[Any]] = {}
    for i, tensor in enumerate(request.inputs):
        if tensor.name not in known:
            raise RequestError(f"unexpected inference input '{tensor.name}' for model '{request.model_name}'")
        if tensor.datatype != known[tensor.name]:
            raise RequestError(f"input '{tensor.name}' has datatype {tensor.datatype}, expected {known[tensor.name]}")
        if request.raw_input_contents:
            raw = request.raw_input_contents[i]
            if tensor.datatype == "BYTES":
                out[tensor.name] = unpack_bytes(raw)
            else:
                fmt = RAW[tensor.datatype]
                count, rest = divmod(len(raw), struct.calcsize(fmt))
                if rest:
                    raise RequestError(f"raw input '{tensor.name}' is not a whole number of {tensor.datatype}")
                out[tensor.name] = list(struct.unpack(f"<{count}{fmt}", raw))
        else:
            out[tensor.name] = list(getattr(tensor.contents, CONTENTS[tensor.datatype]))
    return out


def first(values: dict[str, list[Any]], name: str) -> Any:
    items = values.get(name)
    return items[0] if items else None


def pack_bytes(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


def infer_response(request: pb.ModelInferRequest, text: str | None, usage: dict[str, Any] | None,
                   final: bool | None) -> pb.ModelInferResponse:
    """A response as Triton sends one: text_output in raw_output_contents (none in an empty final response)."""
    resp = pb.ModelInferResponse(model_name=request.model_name, model_version=VERSION, id=request.id)
    if text is not None:
        resp.outputs.add(name=OUTPUT[0], datatype=OUTPUT[1], shape=[1, 1])
        resp.raw_output_contents.append(pack_bytes(text.encode("utf-8")))
    for key, value in (usage or {}).items():
        if isinstance(value, str):
            resp.parameters[key].string_param = value
        else:
            resp.parameters[key].int64_param = value
    if final is not None:
        resp.parameters[FINAL].bool_param = final
    return resp


def check_model(name: str) -> None:
    if name == NOT_READY:
        message = f"Request for unknown model: '{name}' has no available versions"
        raise RequestError(message, grpc.StatusCode.UNAVAILABLE)
    if name != MODEL and name not in ALIASES:
        raise RequestError(f"Request for unknown model: '{name}' is not found", grpc.StatusCode.NOT_FOUND)


class Answer:
    """The deterministic answer to one request."""

    def __init__(self, request: pb.ModelInferRequest) -> None:
        check_model(request.model_name)
        values = tensors(request)
        text = first(values, "text_input")
        if text is None:
            raise RequestError(f"input 'text_input' is required for model '{request.model_name}'")
        words = text.decode("utf-8").split()
        limit = first(values, "max_tokens")
        limit = DEFAULT_MAX_TOKENS if limit is None else max(0, int(limit))
        self.stream = bool(first(values, "stream"))
        self.fail = FAIL in words
        self.pieces = [w if i == 0 else " " + w for i, w in enumerate(words[:limit])]
        self.usage = {"prompt_tokens": len(words), "completion_tokens": len(self.pieces),
                      "finish_reason": "length" if len(words) > limit else "stop"}


class TritonShaped(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=True)  # as Triton with --strict-readiness=false

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Any) -> pb.ServerMetadataResponse:
        extensions = ["classification", "sequence", "model_repository", "parameters", "statistics", "logging"]
        return pb.ServerMetadataResponse(name="triton", version="2.59.0", extensions=extensions)

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        ready = (request.name == MODEL or request.name in ALIASES) and request.version in ("", VERSION)
        return pb.ModelReadyResponse(ready=ready)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        try:
            check_model(request.name)
        except RequestError as exc:
            await context.abort(exc.code, str(exc))
        resp = pb.ModelMetadataResponse(name=MODEL, versions=[VERSION], platform="ensemble")
        for name, datatype, shape in INPUTS:
            resp.inputs.add(name=name, datatype=datatype, shape=shape)
        resp.outputs.add(name=OUTPUT[0], datatype=OUTPUT[1], shape=OUTPUT[2])
        return resp

    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: Any) -> pb.RepositoryIndexResponse:
        resp = pb.RepositoryIndexResponse()
        for name in (MODEL, *sorted(ALIASES)):
            resp.models.add(name=name, version=VERSION, state="READY")
        if not request.ready:
            resp.models.add(name=NOT_READY, version=VERSION, state="UNAVAILABLE", reason="never loads (a test peer)")
        return resp

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        try:
            answer = Answer(request)
        except RequestError as exc:
            await context.abort(exc.code, str(exc))
        if answer.fail:
            await context.abort(grpc.StatusCode.INTERNAL, f"in ensemble '{MODEL}', the prompt asked for a failure")
        await asyncio.sleep(self.delay * len(answer.pieces))
        return infer_response(request, "".join(answer.pieces), answer.usage, None)

    async def ModelStreamInfer(self, request_iterator: AsyncIterator[pb.ModelInferRequest],
                               context: Any) -> AsyncIterator[pb.ModelStreamInferResponse]:
        async for request in request_iterator:  # ends when the client half-closes
            async for resp in self._stream_one(request):
                yield resp

    async def _stream_one(self, request: pb.ModelInferRequest) -> AsyncIterator[pb.ModelStreamInferResponse]:
        try:
            answer = Answer(request)
        except RequestError as exc:
            yield pb.ModelStreamInferResponse(error_message=str(exc))
            return
        param = request.parameters.get(EMPTY_FINAL)
        empty_final = param is not None and param.WhichOneof("parameter_choice") == "bool_param" and param.bool_param
        error = pb.ModelStreamInferResponse(error_message=f"in ensemble '{MODEL}', the prompt asked for a failure")
        if answer.fail and not answer.stream:
            yield error
            return
        chunks = (answer.pieces if answer.stream else ["".join(answer.pieces)]) or [""]  # "": still one response
        for i, chunk in enumerate(chunks):
            await asyncio.sleep(self.delay * (1 if answer.stream else len(answer.pieces)))
            usage = answer.usage if i == len(chunks) - 1 else None
            yield pb.ModelStreamInferResponse(
                infer_response=infer_response(request, chunk, usage, False if empty_final else None))
            if answer.fail:  # after the first word
                yield error
                return
        if empty_final:
            yield pb.ModelStreamInferResponse(infer_response=infer_response(request, None, None, True))


class BearerAuth(grpc.aio.ServerInterceptor):
    """Every RPC must carry `authorization: Bearer KEY`, else UNAUTHENTICATED (a gateway in front of Triton)."""

    def __init__(self, key: str) -> None:
        self.expected = f"Bearer {key}"

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]],
                                handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        if metadata.get("authorization") == self.expected or handler is None:
            return handler

        async def deny(request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")

        async def deny_stream(request_iterator: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
            yield  # not reached: makes this an async generator, as a streaming handler must be

        kwargs = {"request_deserializer": handler.request_deserializer,
                  "response_serializer": handler.response_serializer}
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(deny_stream, **kwargs)
        return grpc.unary_unary_rpc_method_handler(deny, **kwargs)


async def serve(args: argparse.Namespace, tls: tuple[bytes, bytes] | None, client_ca: bytes | None) -> None:
    interceptors = [BearerAuth(args.require_key)] if args.require_key else []
    server = grpc.aio.server(interceptors=interceptors)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(TritonShaped(args.delay), server)
    address = f"127.0.0.1:{args.port}"
    if tls is not None:
        credentials = grpc.ssl_server_credentials([tls], root_certificates=client_ca,
                                                  require_client_auth=client_ca is not None)
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    await server.start()
    print(f"READY {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=1)


def main() -> None:
    parser = argparse.ArgumentParser(description="A Triton-shaped gRPC test peer (TensorRT-LLM ensemble).")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed on the READY line)")
    parser.add_argument("--tls-cert", help="PEM certificate chain: serve TLS (with --tls-key)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--tls-client-ca", help="PEM CA: clients must show a certificate it issued (mutual TLS)")
    parser.add_argument("--require-key", help="every RPC must carry `authorization: Bearer KEY`")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each streamed word")
    parser.add_argument("--alias", action="append", default=[], help="another name the ensemble answers to")
    args = parser.parse_args()
    ALIASES.update(args.alias)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    tls = None
    if args.tls_cert:
        with open(args.tls_key, "rb") as key, open(args.tls_cert, "rb") as cert:
            tls = (key.read(), cert.read())
    client_ca = Path(args.tls_client_ca).read_bytes() if args.tls_client_ca else None
    asyncio.run(serve(args, tls, client_ca))


if __name__ == "__main__":
    main()

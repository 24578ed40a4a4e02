"""One Open Inference Protocol call against a test peer, from the peer venv (.peers/grpc/bin/python), for
tests in the main venv that cannot import the generated `inference` protos. It uses tritonclient's
generated Triton messages (a superset of MLServer's, wire-compatible) over a plain grpc channel.

    echo '{"rpc": "ModelStreamInfer", "model": "echo", "inputs": [...], "parameters": {...}}' |
        .peers/grpc/bin/python tests/peers/oip_call.py --target 127.0.0.1:PORT [--ca CA] [--key KEY]

The spec on stdin:
- rpc: ServerLive, ServerReady, ModelReady, ModelMetadata, RepositoryIndex, ModelInfer, ModelStreamInfer
- model, id: the request's model_name and id
- inputs: [{name, datatype, shape, data}]: BYTES data are strings (UTF-8), others numbers or booleans
- raw: put the inputs in raw_input_contents (as Triton's client does) rather than in contents
- parameters: {name: {"int64_param"|"string_param"|"bool_param"|"double_param"|"uint64_param": value}}
- wrapped: read ModelStreamInfer answers as Triton's ModelStreamInferResponse (default: bare
  ModelInferResponse, as MLServer sends them)
- requests: how many copies of the request to send on the stream before half-closing (default 1)
- half_close: false keeps the request side open until the answer ends (or the deadline)
- timeout: the call's deadline in seconds (default 30)
On stdout, one JSON object: code (a grpc.StatusCode name), details, responses (each as protobuf JSON plus
`texts`: the decoded BYTES outputs) and, for the health calls, the answer.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import threading
from collections.abc import Iterator
from typing import Any

import grpc
from google.protobuf import json_format
from tritonclient.grpc import service_pb2 as pb

SERVICE = "/inference.GRPCInferenceService/"
UNARY: dict[str, tuple[Any, Any]] = {
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "RepositoryIndex": (pb.RepositoryIndexRequest, pb.RepositoryIndexResponse),
}
CONTENTS = {"BYTES": "bytes_contents", "BOOL": "bool_contents", "INT32": "int_contents",
            "INT64": "int64_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
            "FP64": "fp64_contents"}
PACK = {"BOOL": "?", "INT32": "i", "INT64": "q", "UINT64": "Q", "FP32": "f", "FP64": "d"}


def infer_request(spec: dict[str, Any]) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name=spec["model"], id=spec.get("id", ""))
    for key, value in spec.get("parameters", {}).items():
        json_format.ParseDict(value, req.parameters[key])
    for tensor in spec.get("inputs", []):
        datatype, data = tensor["datatype"], tensor["data"]
        t = req.inputs.add(name=tensor["name"], datatype=datatype, shape=tensor["shape"])
        values = [d.encode("utf-8") for d in data] if datatype == "BYTES" else data
        if spec.get("raw"):
            if datatype == "BYTES":
                req.raw_input_contents.append(b"".join(struct.pack("<I", len(v)) + v for v in values))
            else:
                req.raw_input_contents.append(struct.pack(f"<{len(values)}{PACK[datatype]}", *values))
        else:
            getattr(t.contents, CONTENTS[datatype]).extend(values)
    return req


def texts(resp: pb.ModelInferResponse) -> list[str]:
    """Every BYTES element of every output, from contents or (as Triton sends them) raw_output_contents."""
    out: list[str] = []
    for i, tensor in enumerate(resp.outputs):
        if tensor.datatype != "BYTES":
            continue
        if resp.raw_output_contents:
            raw, offset = resp.raw_output_contents[i], 0
            while offset < len(raw):
                (size,) = struct.unpack_from("<I", raw, offset)
                out.append(raw[offset + 4:offset + 4 + size].decode("utf-8"))
                offset += 4 + size
        else:
            out.extend(b.decode("utf-8") for b in tensor.contents.bytes_contents)
    return out


def as_json(resp: Any) -> dict[str, Any]:
    inner = resp.infer_response if isinstance(resp, pb.ModelStreamInferResponse) else resp
    body: dict[str, Any] = json_format.MessageToDict(resp, preserving_proto_field_name=True)
    if isinstance(inner, pb.ModelInferResponse):
        body["texts"] = texts(inner)
    return body


def call(channel: grpc.Channel, spec: dict[str, Any], metadata: list[tuple[str, str]]) -> dict[str, Any]:
    rpc, timeout = spec["rpc"], float(spec.get("timeout", 30))
    result: dict[str, Any] = {"code": "OK", "details": "", "responses": []}
    try:
        if rpc in UNARY:
            req_type, resp_type = UNARY[rpc]
            fields = {"name": spec["model"]} if rpc in ("ModelReady", "ModelMetadata") else {}
            method = channel.unary_unary(SERVICE + rpc, request_serializer=req_type.SerializeToString,
                                         response_deserializer=resp_type.FromString)
            result["responses"].append(as_json(method(req_type(**fields), timeout=timeout, metadata=metadata)))
        elif rpc == "ModelInfer":
            method = channel.unary_unary(SERVICE + rpc, request_serializer=pb.ModelInferRequest.SerializeToString,
                                         response_deserializer=pb.ModelInferResponse.FromString)
            result["responses"].append(as_json(method(infer_request(spec), timeout=timeout, metadata=metadata)))
        elif rpc == "ModelStreamInfer":
            resp_type = pb.ModelStreamInferResponse if spec.get("wrapped") else pb.ModelInferResponse
            stream = channel.stream_stream(SERVICE + rpc, request_serializer=pb.ModelInferRequest.SerializeToString,
                                           response_deserializer=resp_type.FromString)
            req, answered = infer_request(spec), threading.Event()

            def requests() -> Iterator[pb.ModelInferRequest]:
                yield from [req] * int(spec.get("requests", 1))
                if spec.get("half_close") is False:
                    answered.wait(timeout)

            try:
                for resp in stream(requests(), timeout=timeout, metadata=metadata):
                    result["responses"].append(as_json(resp))
            finally:
                answered.set()
        else:
            raise SystemExit(f"unknown rpc {rpc!r}")
    except grpc.RpcError as err:
        result["code"], result["details"] = err.code().name, err.details()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--ca", help="a PEM CA bundle: connect over TLS")
    parser.add_argument("--server-name", default="localhost", help="the TLS name to check (with --ca)")
    parser.add_argument("--key", help="send `authorization: Bearer KEY`")
    args = parser.parse_args()
    spec = json.load(sys.stdin)
    metadata = [("authorization", f"Bearer {args.key}")] if args.key else []
    if args.ca:
        with open(args.ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        channel = grpc.secure_channel(args.target, creds, options=[("grpc.ssl_target_name_override",
                                                                     args.server_name)])
    else:
        channel = grpc.insecure_channel(args.target)
    with channel:
        print(json.dumps(call(channel, spec, metadata)))


if __name__ == "__main__":
    main()

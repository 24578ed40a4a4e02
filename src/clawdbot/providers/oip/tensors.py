"""Chat settings to Open Inference Protocol tensors and parameters, and text back out of responses.

BYTES tensors travel either in `contents.bytes_contents` (what clawdbot sends, and MLServer answers)
or in the response's `raw_output_contents` (what Triton answers): there each element is a 4-byte
little-endian length followed by that many bytes."""

from __future__ import annotations

import json
import struct
from typing import Any

from clawdbot.config.grpc_schema import Tensor
from clawdbot.core.errors import UpstreamError
from clawdbot.providers.oip import open_inference_pb2 as pb
from clawdbot.providers.oip.presets import Shape

_INT = {"INT32": "int_contents", "INT64": "int64_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents"}
_FLOAT = {"FP32": "fp32_contents", "FP64": "fp64_contents"}
_LEN = struct.Struct("<I")


def _fill(tensor: Any, spec: Tensor, value: Any, rank: int) -> None:
    """One setting's value as an input tensor of `spec`'s datatype."""
    values = value if isinstance(value, list) else [value]
    tensor.name = spec.name
    tensor.datatype = "BYTES" if spec.datatype == "STRING" else spec.datatype
    tensor.shape.extend(spec.shape if spec.shape is not None else ([1, len(values)] if rank == 2 else [len(values)]))
    c = tensor.contents
    dt = spec.datatype
    if dt in ("BYTES", "STRING"):
        c.bytes_contents.extend(str(v).encode() for v in values)
    elif dt == "BOOL":
        c.bool_contents.extend(bool(v) for v in values)
    elif dt in _INT:
        getattr(c, _INT[dt]).extend(int(v) for v in values)
    else:
        getattr(c, _FLOAT[dt]).extend(float(v) for v in values)


def _param(p: Any, spec: Tensor, value: Any) -> None:
    """One setting's value as a request parameter: MLServer's parameters know bool, int64 and string
    only, so a float is sent as STRING when the preset says so, and a list always as a JSON string."""
    dt = spec.datatype
    if isinstance(value, list):
        p.string_param = json.dumps(value)
    elif dt == "BOOL":
        p.bool_param = bool(value)
    elif dt in ("INT32", "INT64"):
        p.int64_param = int(value)
    elif dt in ("UINT32", "UINT64"):
        p.uint64_param = int(value)
    elif dt in ("FP32", "FP64"):
        p.double_param = float(value)
    else:
        p.string_param = repr(value) if isinstance(value, float) else str(value)


def infer_request(model: str, shape: Shape, prompt: str, settings: dict[str, Any], stream: bool,
                  request_id: str, final_marker: bool = False) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name=model, model_version=shape.model_version, id=request_id)
    inp = req.inputs.add()
    inp.name = shape.input.name
    inp.datatype = "BYTES"
    rank = len(shape.input.shape or [1])
    inp.shape.extend(shape.input.shape or [1])
    inp.contents.bytes_contents.append(prompt.encode())
    for name, value in settings.items():
        spec = shape.settings.get(name)
        if spec is None or value is None:
            continue
        if shape.settings_as == "parameters":
            _param(req.parameters[spec.name], spec, value)
        else:
            _fill(req.inputs.add(), spec, value, rank)
    if shape.stream_flag:
        _fill(req.inputs.add(), Tensor(shape.stream_flag, "BOOL"), stream, rank)
    if final_marker:  # Triton: end a decoupled model's responses with an empty one that says so
        req.parameters["triton_enable_empty_final_response"].bool_param = True
    req.outputs.add().name = shape.output
    return req


def _raw_strings(raw: bytes, service: str) -> list[bytes]:
    out, at, end = [], 0, len(raw)
    while at < end:
        if at + 4 > end:
            raise UpstreamError(f"service {service!r}: a BYTES output ends inside an element's length")
        (n,) = _LEN.unpack_from(raw, at)
        at += 4
        if at + n > end:
            raise UpstreamError(f"service {service!r}: a BYTES output's element runs past its end")
        out.append(raw[at:at + n])
        at += n
    return out


def output_text(resp: pb.ModelInferResponse, name: str, service: str) -> str | None:
    """The text of output `name` (its elements joined), None when the response does not hold it."""
    for i, out in enumerate(resp.outputs):
        if out.name != name:
            continue
        if out.datatype not in ("BYTES", ""):
            raise UpstreamError(f"service {service!r}: output {name!r} is {out.datatype}, not BYTES (text)")
        if out.HasField("contents"):
            parts = list(out.contents.bytes_contents)
        elif i < len(resp.raw_output_contents):
            parts = _raw_strings(resp.raw_output_contents[i], service)
        else:
            parts = []
        return b"".join(parts).decode("utf-8", "replace")
    return None


def parameter(params: Any, name: str) -> Any:
    """A response parameter's value (None when absent)."""
    if name not in params:
        return None
    p = params[name]
    kind = p.WhichOneof("parameter_choice")
    return getattr(p, kind) if kind else None


def top_level_fields(data: bytes) -> set[int]:
    """The field numbers at the top level of an encoded message (to tell Triton's wrapped stream
    responses, fields 1-2, from bare ModelInferResponses, which carry outputs in 5 or 6). Stops at
    the first malformed tag."""
    fields: set[int] = set()
    at, end = 0, len(data)
    while at < end:
        tag, at = _varint(data, at)
        if at < 0:
            break
        number, wire = tag >> 3, tag & 7
        fields.add(number)
        if wire == 0:
            _, at = _varint(data, at)
        elif wire == 1:
            at += 8
        elif wire == 2:
            n, at = _varint(data, at)
            at = at + n if at >= 0 else -1
        elif wire == 5:
            at += 4
        else:
            break
        if at < 0:
            break
    return fields


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    for _ in range(10):
        if at >= len(data):
            return 0, -1
        b = data[at]
        at += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, at
        shift += 7
    return 0, -1

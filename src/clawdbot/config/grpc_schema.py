"""A `type: grpc` service's own settings (the `grpc:` section) and its endpoint's form. The provider
(providers/oip/) lays these over its preset; docs/grpc.md explains each."""

from __future__ import annotations

from typing import Literal, NamedTuple

from clawdbot.config.strict import Strict

# The Open Inference Protocol's tensor datatypes (those a setting or the prompt can be sent as);
# a setting sent as a request parameter takes INT64, UINT64, FP64 (a double), BOOL or BYTES (a
# string), and STRING for a number the server wants as a decimal string (MLServer's parameters
# have no floating-point kind).
Datatype = Literal["BOOL", "INT32", "INT64", "UINT32", "UINT64", "FP32", "FP64", "BYTES", "STRING"]
Preset = Literal["triton", "mlserver"]
# the request settings a gRPC model can be sent
SETTINGS = ("max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "presence_penalty",
            "frequency_penalty")
SettingName = Literal["max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "presence_penalty",
                      "frequency_penalty"]


class Tensor(Strict):
    name: str
    datatype: Datatype = "BYTES"
    shape: list[int] | None = None  # None: the preset's ([1, 1] for Triton, [1] for MLServer)


class GrpcSettings(Strict):
    # the server family whose conventions fill in everything not set here
    preset: Preset = "triton"
    # the model's version (empty: the server's choice)
    model_version: str = ""
    # the tensor the rendered prompt goes in (BYTES), and the one the answer comes back in
    input: Tensor | None = None
    output: str | None = None
    # request settings as input tensors or as request parameters
    settings_as: Literal["tensors", "parameters"] | None = None
    # per request setting: the tensor or parameter it goes in (null: never sent), over the preset's
    settings: dict[SettingName, Tensor | None] = {}
    # a BOOL tensor set true on streamed requests and false on the others (Triton's `stream`); "": none
    stream_flag: str | None = None
    # ModelStreamInfer's responses: wrapped in {error_message, infer_response} (Triton), bare (MLServer),
    # or auto (told apart by their fields)
    stream_shape: Literal["wrapped", "bare", "auto"] | None = None
    # each streamed response holds the new text (delta) or all of it so far (cumulative)
    stream_text: Literal["delta", "cumulative"] | None = None
    # how a chat becomes the prompt: chatml (the default), llama3, gemma, mistral, transcript, raw
    # (the last user message alone), or a Jinja chat template (as in a model's tokenizer_config.json)
    chat_template: str | None = None
    bos_token: str = ""  # what the template's bos_token and eos_token stand for
    eos_token: str = ""
    # streams open at once on one channel (HTTP/2 connection); more open another channel, up to
    # max_channels; beyond that a request waits for a stream (the service's limits bound the wait)
    max_streams: int = 100
    max_channels: int = 4
    # seconds between HTTP/2 keep-alive pings on an idle channel (0: none)
    keepalive: float = 30.0


class GrpcTarget(NamedTuple):
    host: str
    port: int
    tls: bool

    @property
    def address(self) -> str:
        """host:port as grpc wants it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def grpc_target(endpoint: str) -> GrpcTarget:
    """`host:port`, `grpc://host:port` (plaintext) or `grpcs://host:port` (TLS); ValueError says
    what is wrong."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        scheme, rest = "grpc", endpoint
    if scheme not in ("grpc", "grpcs"):
        raise ValueError(f"`{endpoint}` is not a gRPC address (host:port, grpc://host:port or grpcs://host:port)")
    rest = rest.rstrip("/")
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = rest.rpartition(":")
    if not host or not port_text.isdigit() or "/" in host or "@" in host:
        raise ValueError(f"`{endpoint}` is not a gRPC address (host:port, grpc://host:port or grpcs://host:port)")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"`{endpoint}`: the port must be in 1..65535")
    return GrpcTarget(host, port, scheme == "grpcs")

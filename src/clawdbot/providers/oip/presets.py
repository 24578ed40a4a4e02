"""What a gRPC inference server expects, by family, and a service's `grpc:` settings laid over it.

- triton: Triton serving a TensorRT-LLM ensemble. The prompt goes in `text_input` (BYTES [1, 1]),
  the answer comes back in `text_output`; settings are [1, 1] tensors under TensorRT-LLM's names
  (`random_seed` for the seed, `stop_words` for stop strings); a BOOL `stream` tensor says whether
  to stream; ModelStreamInfer wraps each response ({error_message, infer_response}); each streamed
  response holds the new text.
- mlserver: Seldon MLServer with a custom text runtime. The prompt goes in `prompt` (BYTES [1]), the
  answer comes back in `output`; settings are request parameters (MLServer's parameters are bool,
  int64 or string, so floats go as decimal strings and stop strings as a JSON list); no stream flag
  (the RPC says it); ModelStreamInfer's responses are bare; each holds the new text."""

from __future__ import annotations

from dataclasses import dataclass, field

from clawdbot.config.grpc_schema import Datatype, GrpcSettings, Tensor
from clawdbot.config.prompt_templates import Template, compile_template


@dataclass(frozen=True)
class Shape:
    """Everything the provider needs to turn a chat into a request and responses into text."""

    input: Tensor
    output: str
    settings_as: str  # "tensors" | "parameters"
    settings: dict[str, Tensor] = field(default_factory=dict)  # request setting -> where it goes
    stream_flag: str | None = None
    stream_shape: str = "auto"  # wrapped | bare | auto
    stream_text: str = "delta"  # delta | cumulative
    template: Template = field(default_factory=lambda: compile_template(None))
    bos_token: str = ""
    eos_token: str = ""
    model_version: str = ""


def _t(name: str, datatype: Datatype, shape: list[int] | None = None) -> Tensor:
    return Tensor(name, datatype, shape)


TRITON = Shape(
    input=_t("text_input", "BYTES", [1, 1]),
    output="text_output",
    settings_as="tensors",
    settings={
        "max_tokens": _t("max_tokens", "INT32"),
        "temperature": _t("temperature", "FP32"),
        "top_p": _t("top_p", "FP32"),
        "top_k": _t("top_k", "INT32"),
        "seed": _t("random_seed", "UINT64"),
        "stop": _t("stop_words", "BYTES"),
        "presence_penalty": _t("presence_penalty", "FP32"),
        "frequency_penalty": _t("frequency_penalty", "FP32"),
    },
    stream_flag="stream",
    stream_shape="wrapped",
)

MLSERVER = Shape(
    input=_t("prompt", "BYTES", [1]),
    output="output",
    settings_as="parameters",
    settings={
        "max_tokens": _t("max_tokens", "INT64"),
        "temperature": _t("temperature", "STRING"),
        "top_p": _t("top_p", "STRING"),
        "top_k": _t("top_k", "INT64"),
        "seed": _t("seed", "INT64"),
        "stop": _t("stop", "STRING"),
        "presence_penalty": _t("presence_penalty", "STRING"),
        "frequency_penalty": _t("frequency_penalty", "STRING"),
    },
    stream_flag=None,
    stream_shape="bare",
)

PRESETS = {"triton": TRITON, "mlserver": MLSERVER}


def resolve(g: GrpcSettings | None) -> Shape:
    """The preset (triton unless named) with the service's own settings over it."""
    g = g or GrpcSettings()
    base = PRESETS[g.preset]
    settings = dict(base.settings)
    for name, override in g.settings.items():
        if override is None:
            settings.pop(name, None)
        else:
            settings[name] = override
    given = g.input
    shape = given.shape if given is not None and given.shape is not None else base.input.shape
    inp = Tensor(given.name, given.datatype, shape) if given is not None else base.input
    stream_flag = base.stream_flag if g.stream_flag is None else (g.stream_flag or None)
    return Shape(
        input=inp,
        output=g.output or base.output,
        settings_as=g.settings_as or base.settings_as,
        settings=settings,
        stream_flag=stream_flag,
        stream_shape=g.stream_shape or base.stream_shape,
        stream_text=g.stream_text or base.stream_text,
        template=compile_template(g.chat_template),
        bos_token=g.bos_token,
        eos_token=g.eos_token,
        model_version=g.model_version,
    )

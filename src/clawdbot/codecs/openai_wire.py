"""OpenAI chat wire types, used to decode (and validate) what clients send. Decoding into these
Structs is the one validation pass a request gets; msgspec names the failing field."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class WireTextPart(msgspec.Struct, tag="text", tag_field="type"):
    text: str


class WireImageURL(msgspec.Struct):
    url: str
    detail: str | None = None


class WireImagePart(msgspec.Struct, tag="image_url", tag_field="type"):
    image_url: WireImageURL


class WireFunctionCall(msgspec.Struct):
    name: str
    arguments: str


class WireToolCall(msgspec.Struct):
    id: str
    function: WireFunctionCall
    type: Literal["function"] = "function"


Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class WireMessage(msgspec.Struct):
    role: Role
    content: str | list[WireTextPart | WireImagePart] | None = None
    name: str | None = None
    tool_calls: list[WireToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None
    refusal: str | None = None
    function_call: WireFunctionCall | None = None  # the legacy form of one tool call (role assistant)


class WireFunction(msgspec.Struct):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class WireTool(msgspec.Struct):
    function: WireFunction
    type: Literal["function"] = "function"


class WireStreamOptions(msgspec.Struct):
    include_usage: bool = False


class WireChatRequest(msgspec.Struct):
    model: str
    messages: list[WireMessage]
    stream: bool | None = None
    tools: list[WireTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    stream_options: WireStreamOptions | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    user: str | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    metadata: dict[str, str] | None = None
    functions: list[WireFunction] | None = None  # the legacy form of `tools` (codecs/openai_legacy.py)
    function_call: str | dict[str, Any] | None = None  # ... and of `tool_choice`


class WireEmbeddingRequest(msgspec.Struct):
    model: str
    input: str | list[str | int | list[int]]
    dimensions: int | None = None
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None


# What the gateway reads from an upstream's answer on the fast path: usage only.
class PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None


class CompletionDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class WireUsage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: PromptDetails | None = None
    completion_tokens_details: CompletionDetails | None = None


class UsageOnly(msgspec.Struct):
    usage: WireUsage | None = None
    model: str | None = None


# Upstream responses, decoded when the gateway needs canonical objects.
class WireRespMessage(msgspec.Struct):
    role: str = "assistant"
    content: str | None = None
    tool_calls: list[WireToolCall] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None  # some servers (vLLM, llama.cpp) name it so


class WireChoice(msgspec.Struct):
    message: WireRespMessage
    finish_reason: str | None = None
    index: int = 0


class WireChatResponse(msgspec.Struct):
    choices: list[WireChoice]
    id: str = ""
    model: str = ""
    created: int = 0
    usage: WireUsage | None = None


# The same answer read strictly: every field of the choice and its message that could carry text
# is one the canonical ChatResponse holds, and the rest is empty. A body that decodes so is wholly
# seen by a plugin that reads the canonical answer, and may be relayed as it came when no plugin
# changed it (api/chat.py). Anything else (a refusal, logprobs, audio, fields of a newer API)
# fails here and goes the canonical way.
class ExactRespMessage(msgspec.Struct, forbid_unknown_fields=True):
    role: str = "assistant"
    content: str | None = None
    tool_calls: list[WireToolCall] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    refusal: None = None
    function_call: None = None
    audio: None = None
    annotations: tuple[()] | None = None


class ExactChoice(msgspec.Struct, forbid_unknown_fields=True):
    message: ExactRespMessage
    finish_reason: str | None = None
    index: int = 0
    logprobs: None = None
    stop_reason: int | str | None = None  # vLLM: the stop string or token that ended it


class ExactChatResponse(msgspec.Struct):
    choices: tuple[ExactChoice]  # one choice (n > 1 is relayed canonically: the plugins see choice 0)
    id: str = ""
    model: str = ""
    created: int = 0
    usage: WireUsage | None = None


class WireDeltaFunction(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class WireDeltaToolCall(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: WireDeltaFunction | None = None


class WireDelta(msgspec.Struct):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[WireDeltaToolCall] | None = None


class WireChunkChoice(msgspec.Struct):
    delta: WireDelta | None = None
    finish_reason: str | None = None
    index: int = 0


class WireErrorBody(msgspec.Struct):
    message: str | None = None


class WireChunk(msgspec.Struct):
    choices: list[WireChunkChoice] = []
    model: str | None = None
    usage: WireUsage | None = None
    error: WireErrorBody | str | None = None


class WireEmbeddingItem(msgspec.Struct):
    embedding: list[float]
    index: int = 0


class WireEmbeddingResponse(msgspec.Struct):
    data: list[WireEmbeddingItem]
    model: str = ""
    usage: WireUsage | None = None


class WireModel(msgspec.Struct):
    id: str


class WireModelList(msgspec.Struct):
    data: list[WireModel]


_NULL = msgspec.Raw(b"null")


class ProbeDelta(msgspec.Struct, gc=False):
    # raw: the text is never decoded; a value says something unless it is null, "", [] or {}
    content: msgspec.Raw = _NULL
    tool_calls: msgspec.Raw = _NULL
    reasoning_content: msgspec.Raw = _NULL
    reasoning: msgspec.Raw = _NULL


class ProbeChoice(msgspec.Struct, gc=False):
    delta: ProbeDelta | None = None


class ChunkProbe(msgspec.Struct, gc=False):
    """What the fast path reads from each passed-through stream event. Decoding into it checks the
    event is JSON and finds whether it carries output, leaving the rest unparsed."""

    choices: list[ProbeChoice] = []
    usage: WireUsage | None = None

    def output(self) -> bool:
        """Content, a tool call or reasoning: one token, as docs/limits.md counts a stream without
        usage (a role-only first event or an empty finish event is none). Inlined: it runs per event."""
        ch = self.choices
        if not ch:
            return False
        d = ch[0].delta
        if d is None:
            return False
        v = d.content
        if len(v) > 2 and v != _NULL:
            return True
        v = d.tool_calls
        if len(v) > 2 and v != _NULL:
            return True
        v = d.reasoning_content
        if len(v) > 2 and v != _NULL:
            return True
        v = d.reasoning
        return len(v) > 2 and v != _NULL


class ModelProbe(ChunkProbe, gc=False):
    """ChunkProbe that also reads the event's `model`: only until a request has one (relay.py), so
    the other events of a stream do not decode the string."""

    model: str | None = None

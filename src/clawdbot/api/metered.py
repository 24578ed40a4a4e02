"""The head of a metered request body as tenancy needs it before dispatch: the model (allowed
models), the prompt's size and max_tokens (rate limits and budgets). Decoded only for callers with
something to check; the handler still parses and validates the whole body itself.

A body whose head cannot be read is refused (400) here, never passed on unmetered: each route has
its own head type that reads only the fields that route's handler reads, so a field another route
uses (`"messages": 1` on /v1/embeddings) cannot make the check fail while the handler serves it."""

from __future__ import annotations

from typing import Any

import msgspec

from clawdbot.api.integral import integral_floats
from clawdbot.codecs.openai import decode_error
from clawdbot.core.errors import BadRequest
from clawdbot.tenancy.costs import estimate_prompt_tokens, estimate_text_tokens

CHAT = frozenset({"/v1/chat/completions", "/chat/completions"})
EMBEDDINGS = frozenset({"/v1/embeddings", "/embeddings"})
MESSAGES = frozenset({"/v1/messages"})  # Anthropic's dialect
COMPLETIONS = frozenset({"/v1/completions", "/completions"})  # OpenAI's legacy text completions
OLLAMA_CHAT = frozenset({"/api/chat"})
OLLAMA_GENERATE = frozenset({"/api/generate"})
OLLAMA_EMBED = frozenset({"/api/embed", "/api/embeddings"})
RESPONSES = frozenset({"/v1/responses", "/responses"})  # OpenAI's Responses API
METERED = CHAT | EMBEDDINGS | MESSAGES | COMPLETIONS | OLLAMA_CHAT | OLLAMA_GENERATE | OLLAMA_EMBED | RESPONSES


class Head(msgspec.Struct):
    model: str

    def prompt_estimate(self) -> int:
        return 0

    def completion_cap(self) -> int | None:
        return None


class ChatHead(Head):
    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None

    def prompt_estimate(self) -> int:
        return estimate_prompt_tokens(self.messages)

    def completion_cap(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class MessagesHead(Head):
    """Anthropic's /v1/messages: `max_tokens` is required, the system prompt sits beside the turns."""

    messages: list[dict[str, Any]]
    max_tokens: int
    system: str | list[dict[str, Any]] | None = None

    def prompt_estimate(self) -> int:
        turns = self.messages if self.system is None else [{"role": "system", "content": self.system}, *self.messages]
        return estimate_prompt_tokens(turns)

    def completion_cap(self) -> int | None:
        return self.max_tokens


class CompletionHead(Head):
    prompt: str | list[Any] = ""
    max_tokens: int | None = None

    def prompt_estimate(self) -> int:
        values = [self.prompt] if isinstance(self.prompt, str) else self.prompt
        return sum(estimate_text_tokens(v) if isinstance(v, str) else 1 for v in values)

    def completion_cap(self) -> int | None:
        return self.max_tokens if self.max_tokens is not None else 16  # the dialect's default


def _num_predict(options: dict[str, Any] | None) -> int | None:
    n = options.get("num_predict") if options else None
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


class OllamaChatHead(Head):
    messages: list[dict[str, Any]] = []
    options: dict[str, Any] | None = None

    def prompt_estimate(self) -> int:
        return estimate_prompt_tokens(self.messages)

    def completion_cap(self) -> int | None:
        return _num_predict(self.options)


class OllamaGenerateHead(Head):
    prompt: str = ""
    system: str | None = None
    options: dict[str, Any] | None = None

    def prompt_estimate(self) -> int:
        return estimate_prompt_tokens([{"role": "system", "content": self.system or ""},
                                       {"role": "user", "content": self.prompt}])

    def completion_cap(self) -> int | None:
        return _num_predict(self.options)


class OllamaEmbedHead(Head):
    """/api/embed: `input`, a text or a list (its `prompt`, if any, is not read: not typed here)."""

    input: str | list[Any] = ""

    def prompt_estimate(self) -> int:
        values = [self.input] if isinstance(self.input, str) else self.input
        return sum(estimate_text_tokens(v) for v in values if isinstance(v, str))


class OllamaEmbeddingsHead(Head):
    """/api/embeddings (the older route): one `prompt`."""

    prompt: str = ""

    def prompt_estimate(self) -> int:
        return estimate_text_tokens(self.prompt)


class ResponsesHead(Head):
    """OpenAI's Responses API: this turn's input (text or items) and the instructions. A conversation
    continued with previous_response_id adds what is stored: counted when the usage comes."""

    input: str | list[dict[str, Any]] = []
    instructions: str | None = None
    max_output_tokens: int | None = None

    def prompt_estimate(self) -> int:
        turns: list[dict[str, Any]] = [{"role": "user", "content": self.input}] if isinstance(self.input, str) \
            else self.input
        if self.instructions:
            turns = [{"role": "system", "content": self.instructions}, *turns]
        return estimate_prompt_tokens(turns)

    def completion_cap(self) -> int | None:
        return self.max_output_tokens


class EmbeddingHead(Head):
    input: str | list[Any]

    def prompt_estimate(self) -> int:
        if isinstance(self.input, str):
            return estimate_text_tokens(self.input)
        return sum(estimate_text_tokens(v) if isinstance(v, str) else (len(v) if isinstance(v, list) else 1)
                   for v in self.input)


_CHAT = msgspec.json.Decoder(ChatHead)
_EMBEDDINGS = msgspec.json.Decoder(EmbeddingHead)
_MESSAGES = msgspec.json.Decoder(MessagesHead)
_HEADS: dict[str, msgspec.json.Decoder[Any]] = {
    **dict.fromkeys(CHAT, _CHAT), **dict.fromkeys(MESSAGES, _MESSAGES),
    **dict.fromkeys(COMPLETIONS, msgspec.json.Decoder(CompletionHead)),
    **dict.fromkeys(OLLAMA_CHAT, msgspec.json.Decoder(OllamaChatHead)),
    **dict.fromkeys(OLLAMA_GENERATE, msgspec.json.Decoder(OllamaGenerateHead)),
    "/api/embed": msgspec.json.Decoder(OllamaEmbedHead),
    "/api/embeddings": msgspec.json.Decoder(OllamaEmbeddingsHead),
    **dict.fromkeys(RESPONSES, msgspec.json.Decoder(ResponsesHead)),
}


def prompt_estimate(body: bytes, path: str) -> int:
    """The prompt's token estimate metering reserved with, for a body `path`'s handler parsed (0 if
    its head cannot be read, which cannot happen then): what an answer without usage is counted at."""
    try:
        return read_head(body, path).prompt_estimate()
    except BadRequest:
        return 0


def read_head(body: bytes, path: str) -> Head:
    """The head of `body` as `path`'s handler (one of METERED) will read it; BadRequest (naming the field) if it
    cannot be read: such a request would be served without its limits."""
    decoder = _HEADS.get(path, _EMBEDDINGS)
    try:
        head: Head = decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        fixed = integral_floats(body)  # 5.0 for max_tokens: an integer, as the handler will read it
        if fixed is None:
            raise decode_error(exc) from None
        try:
            head = decoder.decode(fixed)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as again:
            raise decode_error(again) from None
    if not head.model:
        raise BadRequest("'model' must not be empty.", param="model", code="invalid_value")
    return head

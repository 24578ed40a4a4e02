"""A body as the API reads it before any handler runs (api/app.py: the shape bounds, then for a
metered caller api/metered.py's head: model, prompt estimate, completion cap), then the route's
parser: every step passes or raises the typed client error (a 400), never anything else; and a
body the handler serves is one the metering can read (api/metered.py's promise; the two examples
below are the bodies of Ollama's embeddings routes that once broke it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from clawdbot.api.metered import prompt_estimate, read_head
from clawdbot.codecs import anthropic as an
from clawdbot.codecs import ollama_inbound as oi
from clawdbot.codecs import openai as oa
from clawdbot.codecs import openai_completions as oc
from clawdbot.codecs import openai_responses as ro
from clawdbot.codecs.bounds import check_json_shape
from clawdbot.config.schema import Server
from clawdbot.core.errors import GatewayError
from tests.property import wire
from tests.property.strategies import bodies

LIMITS = Server()
# path -> (the handler's parser, valid bodies, the field names of its dialect)
ROUTES: dict[str, tuple[Callable[[bytes], Any], st.SearchStrategy[Any], list[str]]] = {
    "/v1/chat/completions": (oa.parse_chat_request, wire.openai_request, wire.OPENAI_KEYS),
    "/v1/embeddings": (oa.parse_embedding_request, wire.embedding_request, wire.OPENAI_KEYS),
    "/v1/messages": (an.parse_messages_request, wire.anthropic_request, wire.ANTHROPIC_KEYS),
    "/v1/completions": (oc.parse, wire.completion_request, wire.COMPLETION_KEYS),
    "/v1/responses": (ro.parse, wire.responses_request, wire.RESPONSES_KEYS),
    "/api/chat": (oi.parse_chat, wire.ollama_chat, wire.OLLAMA_KEYS),
    "/api/generate": (oi.parse_generate, wire.ollama_generate, wire.OLLAMA_KEYS),
    "/api/embed": (oi.parse_embed, wire.ollama_embed, wire.OLLAMA_KEYS),
    "/api/embeddings": (oi.parse_embeddings, wire.ollama_embeddings, wire.OLLAMA_KEYS),
}


def client_error(exc: GatewayError) -> None:
    assert 400 <= exc.status < 500 and exc.message, (type(exc), exc.status, exc.message)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes]:
    path = draw(st.sampled_from(sorted(ROUTES)))
    _, seeds, keys = ROUTES[path]
    return path, draw(bodies(seeds, keys))


@given(requests())
@example(("/v1/chat/completions", b'{"model":"m","messages":[' + b"[" * 70 + b"]" * 70 + b"]}"))
def test_a_body_is_read_or_refused_with_a_400(request: tuple[str, bytes]) -> None:
    path, body = request
    parse = ROUTES[path][0]
    try:
        check_json_shape(body, LIMITS.max_json_depth, LIMITS.max_json_items)
    except GatewayError as exc:
        return client_error(exc)
    try:
        head = read_head(body, path)
    except GatewayError as exc:
        client_error(exc)
    else:
        assert head.model and head.prompt_estimate() >= 0
        cap = head.completion_cap()
        assert cap is None or isinstance(cap, int)
    assert prompt_estimate(body, path) >= 0
    try:
        parse(body)
    except GatewayError as exc:
        client_error(exc)


@given(requests())
@example(("/api/embed", b'{"model":"m","input":"x","prompt":1}'))
@example(("/api/embeddings", b'{"model":"m","prompt":"x","input":{}}'))
@example(("/v1/embeddings", b'{"model":"","input":""}'))  # the nightly profile's find, 2026-12-06
def test_a_body_the_handler_serves_can_be_metered(request: tuple[str, bytes]) -> None:
    path, body = request
    try:
        check_json_shape(body, LIMITS.max_json_depth, LIMITS.max_json_items)
        ROUTES[path][0](body)
    except GatewayError:
        return
    read_head(body, path)  # a BadRequest here: metered callers are refused what others are served

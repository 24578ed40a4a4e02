"""OllamaProvider against the stand-in Ollama server over a real socket (no mocks of project code)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from clawdbot.config.schema import Auth, Service, Timeouts
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import UpstreamError, UpstreamTimeout
from clawdbot.core.types import (
    ChatChunk,
    ChatRequest,
    EmbeddingRequest,
    ImagePart,
    Message,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)
from clawdbot.providers.base import Embedder, Prober, Provider
from clawdbot.providers.http import auth_headers
from clawdbot.providers.ollama import OllamaProvider, api_root
from tests.upstreams.ollama_server import OllamaTestServer

T = TypeVar("T")
MODEL = "llama3.2"
WEATHER = Tool(
    name="get_weather",
    description="Get the weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CLOCK = Tool(name="get_time", parameters={"type": "object", "properties": {"zone": {"type": "string"}}})


@pytest.fixture(scope="module")
def server() -> Iterator[OllamaTestServer]:
    with OllamaTestServer() as srv:
        yield srv


def service(server: OllamaTestServer, **kw: Any) -> Service:
    fields: dict[str, Any] = {
        "name": "local-ollama",
        "type": "ollama",
        "endpoint": server.url,
        "metadata": {"num_ctx": 4096},
        "timeouts": Timeouts(connect=2.0, first_byte=5.0, total=10.0),
    }
    fields.update(kw)
    return Service(**fields)


def run(svc: Service, use: Callable[[OllamaProvider], Awaitable[T]]) -> T:
    """Run `use(provider)` on a fresh loop and close the provider's pool on that same loop."""

    async def main() -> T:
        provider = OllamaProvider(svc)
        try:
            return await use(provider)
        finally:
            await provider.close()

    return asyncio.run(main())


def ask(prompt: str, **kw: Any) -> ChatRequest:
    return ChatRequest(model=MODEL, messages=[Message(role="user", content=prompt)], **kw)


async def collect(
    provider: OllamaProvider, req: ChatRequest, ctx: RequestContext | None = None
) -> list[ChatChunk]:
    return [c async for c in provider.stream(req, ctx or RequestContext(request_id="t"))]


def test_implements_the_contracts(server: OllamaTestServer) -> None:
    provider = OllamaProvider(service(server))
    assert (provider.name, provider.kind) == ("local-ollama", "ollama")
    assert isinstance(provider, Provider)
    assert isinstance(provider, Embedder)
    assert isinstance(provider, Prober)


def test_chat(server: OllamaTestServer) -> None:
    ctx = RequestContext(request_id="req-1")
    resp = run(service(server), lambda p: p.chat(ask("hello there"), ctx))
    assert resp.message.content == "echo: hello there"
    assert resp.finish_reason == "stop"
    assert resp.model == MODEL
    assert resp.usage == Usage(prompt_tokens=2, completion_tokens=3)
    assert (ctx.upstream_model, ctx.upstream_status) == (MODEL, 200)
    assert (ctx.prompt_tokens, ctx.completion_tokens) == (2, 3)
    assert server.last_request["stream"] is False
    # "req-1" is no UUID: the upstream gets a fresh one, kept for the access log
    assert server.last_headers["X-Request-ID"] == ctx.upstream_request_id != "req-1"


def test_stream(server: OllamaTestServer) -> None:
    ctx = RequestContext(request_id="req-2")
    chunks = run(service(server), lambda p: collect(p, ask("stream me please"), ctx))
    assert "".join(c.content or "" for c in chunks) == "echo: stream me please"
    assert len(chunks) == 5  # four tokens and the final line
    assert chunks[0].role == "assistant"
    assert all(c.finish_reason is None and c.usage is None for c in chunks[:-1])
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage == Usage(prompt_tokens=3, completion_tokens=4)
    assert ctx.upstream_model == MODEL
    # the first token is the first output that reaches the client: the relays mark it
    # (core/accounting.py), not the provider
    assert ctx.first_token_at is None and (ctx.prompt_tokens, ctx.completion_tokens) == (3, 4)
    assert server.last_request["stream"] is True


def test_stream_tool_calls(server: OllamaTestServer) -> None:
    req = ask("call get_weather city=Tokyo and get_time zone=JST", tools=[WEATHER, CLOCK])
    chunks = run(service(server), lambda p: collect(p, req))
    deltas = [d for c in chunks for d in c.tool_calls or ()]
    assert [(d.index, d.name) for d in deltas] == [(0, "get_weather"), (1, "get_time")]
    assert [json.loads(d.arguments or "") for d in deltas] == [{"city": "Tokyo"}, {"zone": "JST"}]
    assert all(d.id and d.id.startswith("call_") for d in deltas)
    assert len({d.id for d in deltas}) == 2
    assert chunks[-1].finish_reason == "tool_calls"


def test_chat_tool_calls(server: OllamaTestServer) -> None:
    resp = run(
        service(server),
        lambda p: p.chat(
            ask("please call get_weather city=Oslo", tools=[WEATHER]), RequestContext(request_id="t")
        ),
    )
    assert resp.finish_reason == "tool_calls"
    assert resp.message.content is None
    assert resp.message.tool_calls is not None
    (call,) = resp.message.tool_calls
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Oslo"})


def test_tool_result_turn(server: OllamaTestServer) -> None:
    messages = [
        Message(role="user", content="call get_weather city=Tokyo"),
        Message(
            role="assistant",
            tool_calls=[ToolCall(id="call_a", name="get_weather", arguments='{"city":"Tokyo"}')],
        ),
        Message(role="tool", tool_call_id="call_a", content="11 degrees"),
    ]
    req = ChatRequest(model=MODEL, messages=messages, tools=[WEATHER])
    resp = run(service(server), lambda p: p.chat(req, RequestContext(request_id="t")))
    assert resp.message.content == "The tool get_weather returned: 11 degrees"
    assert server.last_request["messages"][1:] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}],
        },
        {"role": "tool", "content": "11 degrees", "tool_name": "get_weather"},
    ]


def test_thinking(server: OllamaTestServer) -> None:
    chunks = run(service(server), lambda p: collect(p, ask("why?", extra={"think": True})))
    reasoning = "".join(c.reasoning or "" for c in chunks)
    assert reasoning == "The user wrote: why?. I will echo it."
    assert "".join(c.content or "" for c in chunks) == "echo: why?"
    assert server.last_request["think"] is True


def test_option_mapping(server: OllamaTestServer) -> None:
    svc = service(server, auth=Auth(key="sk-test"))
    image = "data:image/png;base64,iVBORw0KGgo="
    req = ChatRequest(
        model=MODEL,
        messages=[
            Message(role="system", content="be brief"),
            Message(role="user", content=[TextPart(text="look"), ImagePart(url=image)]),
        ],
        temperature=0.3,
        top_p=0.8,
        max_tokens=100,
        stop=["END"],
        seed=42,
        frequency_penalty=0.1,
        presence_penalty=0.2,
        response_format={"type": "json_object"},
        tools=[WEATHER],
        extra={"reasoning_effort": "low"},
    )
    resp = run(svc, lambda p: p.chat(req, RequestContext(request_id="t")))
    assert server.last_request == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "look", "images": ["iVBORw0KGgo="]},
        ],
        "stream": False,
        "format": "json",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Get the weather for a city",
                    "parameters": WEATHER.parameters,
                },
            }
        ],
        "think": True,
        "options": {
            "temperature": 0.3,
            "top_p": 0.8,
            "num_predict": 100,
            "num_ctx": 4096,
            "stop": ["END"],
            "seed": 42,
            "frequency_penalty": 0.1,
            "presence_penalty": 0.2,
        },
    }
    assert server.last_headers["Authorization"] == "Bearer sk-test"
    assert json.loads(resp.message.text()) == {"echo": "look"}


def test_auth_header_named() -> None:
    def svc(auth: Auth | None, type_: str = "ollama") -> Service:
        return Service(name="s", type=type_, endpoint="http://h:1", auth=auth)

    assert auth_headers(svc(Auth(key="k", header="X-Api-Key"))) == {"X-Api-Key": "k"}
    assert auth_headers(svc(Auth(type="none", key="k"))) == {}
    assert auth_headers(svc(None)) == {}
    assert auth_headers(svc(Auth(key="k"))) == {"Authorization": "Bearer k"}
    assert auth_headers(svc(Auth(key="k"), "anthropic")) == {"x-api-key": "k"}  # each type's own header


def test_endpoint_root() -> None:
    assert api_root("http://h:11434") == "http://h:11434"
    assert api_root("http://h:11434/v1") == "http://h:11434"
    assert api_root("http://h:11434/api") == "http://h:11434"


def test_endpoint_with_v1_still_works(server: OllamaTestServer) -> None:
    resp = run(
        service(server, endpoint=server.url + "/v1/"),
        lambda p: p.chat(ask("hi"), RequestContext(request_id="t")),
    )
    assert resp.message.content == "echo: hi"


def test_length_finish(server: OllamaTestServer) -> None:
    chunks = run(service(server), lambda p: collect(p, ask("one two three four five", max_tokens=2)))
    assert "".join(c.content or "" for c in chunks) == "echo: one"
    assert chunks[-1].finish_reason == "length"


def test_midstream_drop_raises(server: OllamaTestServer) -> None:
    got: list[ChatChunk] = []

    async def use(p: OllamaProvider) -> None:
        async for c in p.stream(ask("fault:midstream a b c d"), RequestContext(request_id="t")):
            got.append(c)

    with pytest.raises(UpstreamError, match="closed the connection"):
        run(service(server), use)
    assert len(got) == 2


def test_malformed_line_raises(server: OllamaTestServer) -> None:
    with pytest.raises(UpstreamError, match=r"local-ollama.*not valid JSON"):
        run(service(server), lambda p: collect(p, ask("fault:malformed a b c")))


def test_error_line_raises(server: OllamaTestServer) -> None:
    with pytest.raises(UpstreamError, match="error was encountered while running the model"):
        run(service(server), lambda p: collect(p, ask("fault:errorline a b c")))


def test_stream_without_done_raises(server: OllamaTestServer) -> None:
    with pytest.raises(UpstreamError, match="stream ended early"):
        run(service(server), lambda p: collect(p, ask("fault:nodone a b")))


def test_upstream_500(server: OllamaTestServer) -> None:
    with pytest.raises(UpstreamError) as info:
        run(service(server), lambda p: p.chat(ask("fault:500"), RequestContext(request_id="t")))
    assert info.value.upstream_status == 500
    assert info.value.retryable
    assert "fault injected" in info.value.message


def test_unknown_model_is_not_retryable(server: OllamaTestServer) -> None:
    req = ChatRequest(model="nope:1b", messages=[Message(role="user", content="hi")])
    with pytest.raises(UpstreamError) as info:
        run(service(server), lambda p: collect(p, req))
    assert info.value.upstream_status == 404
    assert not info.value.retryable
    assert 'model "nope:1b" not found' in info.value.message


def test_hang_times_out(server: OllamaTestServer) -> None:
    svc = service(server, timeouts=Timeouts(connect=1.0, first_byte=0.3, total=2.0))
    with pytest.raises(UpstreamTimeout):
        run(svc, lambda p: p.chat(ask("fault:hang"), RequestContext(request_id="t")))


def test_slow_stream_still_completes(server: OllamaTestServer) -> None:
    chunks = run(service(server), lambda p: collect(p, ask("fault:slow=20 x")))
    assert chunks[-1].finish_reason == "stop"


def test_replayed_capture(server: OllamaTestServer) -> None:
    chunks = run(service(server), lambda p: collect(p, ask("replay:chat_tools_stream")))
    assert chunks[0].tool_calls is not None and chunks[0].tool_calls[0].name == "get_weather"
    assert chunks[-1].finish_reason == "tool_calls"


def test_early_close_cancels_the_upstream_call(server: OllamaTestServer) -> None:
    async def use(p: OllamaProvider) -> str | None:
        stream = p.stream(ask("fault:slow=50 a b c d e f g h"), RequestContext(request_id="t"))
        first = await anext(stream)
        await stream.aclose()  # type: ignore[attr-defined]
        return first.content

    assert run(service(server), use) == "echo:"


def test_embed(server: OllamaTestServer) -> None:
    ctx = RequestContext(request_id="t")
    req = EmbeddingRequest(model="all-minilm", input=["hello world", "bye"])
    resp = run(service(server), lambda p: p.embed(req, ctx))
    assert resp.model == "all-minilm"
    assert [len(v) for v in resp.vectors] == [8, 8]
    assert resp.vectors[0] != resp.vectors[1]
    assert resp.usage == Usage(prompt_tokens=3)
    assert server.last_request == {"model": "all-minilm", "input": ["hello world", "bye"]}
    assert ctx.upstream_model == "all-minilm"


def test_probe(server: OllamaTestServer) -> None:
    probe = run(service(server), lambda p: p.probe())
    assert probe.ok
    assert probe.models is not None and "llama3.2:latest" in probe.models
    assert probe.latency_ms is not None and probe.latency_ms > 0


def test_probe_unreachable() -> None:
    svc = Service(name="gone", type="ollama", endpoint="http://127.0.0.1:9", timeouts=Timeouts(connect=1.0))
    probe = run(svc, lambda p: p.probe())
    assert not probe.ok
    assert probe.detail is not None and "unreachable" in probe.detail

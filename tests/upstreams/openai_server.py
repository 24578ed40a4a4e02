"""A stand-in OpenAI-compatible upstream for the test suite: a real aiohttp server on a real socket
that writes OpenAI's wire format (captures in tests/fixtures/openai/, see tests/fixtures/README.md).

    with OpenAIUpstream(api_key="sk-test") as up:      # api_key=None (default): no auth check
        client = openai.OpenAI(base_url=up.base_url, api_key="sk-test")
        ...
        up.last_request.headers["X-Request-ID"]; up.last_request.body; up.request_count
        assert up.wait_for_disconnect("rid-1")          # the client (gateway) hung up on request rid-1

Replies are deterministic: "echo: <last user text>" in word chunks. `call:<tool>` in the last user
message (with `tools` in the request) makes a tool call with arguments '{"x": 1}', or with the JSON
object written right after the name (`call:time__get_current_time{"timezone":"UTC"}`); several
`call:` make parallel calls. After tool results the reply is "tool result: <each result, ' | '>";
with `tools:loop` in the last user message the model calls its tools again after every result
(until the request says `tool_choice: "none"`, which always stops calls). `reasoning:` adds
DeepSeek/vLLM-style `reasoning_content` before the content. max_tokens truncates ("length").

Fault markers in the last user message (several may be combined):
  fault:500 / fault:429 / fault:400 / fault:<any status>  an OpenAI-shaped error (429: Retry-After: 3)
  fault:midstream       stream two content chunks, then close the socket (no [DONE], truncated body)
  fault:malformed       a `data:` line that is not JSON mid-stream; non-stream: a 200 non-JSON body
  fault:hang            never send headers; wait until the client goes away
  fault:hang_midstream  stream two content chunks, then stall until the client goes away
  fault:slow=MS         wait MS milliseconds before every chunk after the first (non-stream: once)
  fault:chunks=N        exactly N content chunks (the echo words, cut or padded with " w<i>")
  fault:prefill=MS      send the headers at once, the first body bytes MS milliseconds later (a model
                        server's prefill)
  fault:stall=MS        after the first event (non-stream: half the body), go silent for MS milliseconds
                        or until the client goes away, then go on
  fault:throttle=MS     the first time a request id is seen: 429 with `Retry-After: <MS/1000>`; the
                        same request id again (the gateway's retry) gets the normal answer
  fault:linger          stream: after `data: [DONE]`, hold the response open (no terminating chunk)
                        until the client goes away
  fault:linger=MS       stream: end the response only MS milliseconds after `data: [DONE]`
  fault:gate            stream: after the first content chunk, wait until the test opens the gate
                        (`up.set_gate(True)`; closed at start): streams proven to be open at once
  fault:gate_first      stream: the headers at once, then no event until the test opens the gate

Switchable modes for every chat request, set from the test thread while it runs:
  up.fail_status = 503   answer every chat completion with that status (None: off)
  up.delay_ms = 200      wait that long before answering every chat completion (0: off)
  up.answer_model = "m-2026-01-01"   the `model` answers name (None: the model asked for, as now)
  up.models_delay_ms = 500   wait that long (or until the client goes away) before answering
                         /v1/models; `models_in_flight` counts those waiting, `models_peak`
                         the most that waited at once

Counters: `in_flight` / `peak_in_flight` (chat completions answered at once; `reset()` sets the peak
back) and `open_connections()` (connections that carried a request and are still open).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import random
import re
import string
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from .runner import ServerThread

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "openai"
FINGERPRINT = "fp_7c3e2a91d4"
FIXED_CREATED = 1731000000
JSON_TYPE = "application/json"
ERROR_TYPE = "application/json; charset=utf-8"
SSE_TYPE = "text/event-stream; charset=utf-8"
TOOL_ARGUMENTS = '{"x": 1}'
TOOL_FRAGMENTS = ('{"', 'x":', " 1}")
_FAULT = re.compile(r"fault:(\d{3}|[a-z_]+)(?:=(\d+))?")
_CALL = re.compile(r"call:([A-Za-z0-9_.\-]+)")
_WORD = re.compile(r"\s*\S+|\s+$")
_ALNUM = string.ascii_letters + string.digits
# fault:<status> -> (message, type, param, code), as OpenAI words them.
STATUS_ERRORS: dict[int, tuple[str, str, str | None, str | None]] = {
    400: ("Invalid value for 'messages': fault:{status} was injected by the test upstream.",
          "invalid_request_error", "messages", "invalid_value"),
    401: ("Incorrect API key provided.", "invalid_request_error", None, "invalid_api_key"),
    404: ("The model does not exist or you do not have access to it.",
          "invalid_request_error", None, "model_not_found"),
    429: ("Rate limit reached for requests in organization org-mock on requests per min (RPM): Limit 3, "
          "Used 3, Requested 1. Please try again in 3s.", "requests", None, "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!",
          "server_error", None, None),
}
RATE_LIMIT_HEADERS = {"Retry-After": "3", "x-ratelimit-limit-requests": "3",
                      "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "3s"}


def compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def pretty(value: Any, indent: int = 2) -> bytes:
    # Bodies come indented (2 spaces; error bodies 4) and end with a newline.
    return (json.dumps(value, ensure_ascii=False, indent=indent) + "\n").encode()


def text_of(content: Any) -> str:
    if isinstance(content, list):  # [{"type": "text", "text": ...}, {"type": "image_url", ...}]
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def last_user_text(messages: Sequence[Any]) -> str:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            return text_of(m.get("content"))
    return ""


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def f32(value: float) -> float:
    """The float32 nearest `value`, as the shortest decimal that maps back to it (as OpenAI prints)."""
    exact: float = struct.unpack("<f", struct.pack("<f", value))[0]
    for digits in range(1, 10):
        short = float(f"{exact:.{digits}g}")
        if struct.unpack("<f", struct.pack("<f", short))[0] == exact:
            return short
    return exact


def embedding(text: str, dims: int = 8) -> list[float]:
    """A deterministic unit-length vector."""
    raw = b"".join(hashlib.sha256(f"{text}:{i}".encode()).digest() for i in range(dims // 32 + 1))
    values = [(b - 127.5) / 127.5 for b in raw[:dims]]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [f32(v / norm) for v in values]


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> bytes:
    return pretty({"error": {"message": message, "type": type_, "param": param, "code": code}}, indent=4)


@dataclass
class Faults:
    status: int | None = None
    midstream: bool = False
    malformed: bool = False
    hang: bool = False
    hang_midstream: bool = False
    slow_ms: int = 0
    chunks: int | None = None
    prefill_ms: int = 0
    stall_ms: int = 0
    throttle_ms: int = 0
    linger_ms: int | None = None  # 0: until the client goes away
    gate: bool = False
    gate_first: bool = False

    @classmethod
    def parse(cls, text: str) -> Faults:
        faults = cls()
        for name, arg in _FAULT.findall(text):
            if name.isdigit():
                faults.status = int(name)
            elif name in ("slow", "chunks", "prefill", "stall", "throttle", "linger"):
                setattr(faults, "chunks" if name == "chunks" else f"{name}_ms", int(arg or 0))
            elif name in ("midstream", "malformed", "hang", "hang_midstream", "gate", "gate_first"):
                setattr(faults, name, True)
        return faults


@dataclass(frozen=True)
class RecordedRequest:
    seq: int
    method: str
    path: str
    headers: CIMultiDictProxy[str]
    body: Any  # the parsed JSON body, or None
    request_id: str  # the client's X-Request-ID if it sent one, else server_id
    server_id: str  # the req_... id the server answers with in its own x-request-id header


@dataclass
class Plan:
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (call id, function name, arguments)
    finish: str = "stop"
    prompt_tokens: int = 0

    def usage(self) -> dict[str, Any]:
        p = self.prompt_tokens
        c = len(self.content) + len(self.reasoning) + len(self.calls) * (len(TOOL_FRAGMENTS) + 1)
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": len(self.reasoning), "audio_tokens": 0,
                    "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def plan_reply(body: dict[str, Any], faults: Faults, rng: random.Random) -> Plan:
    messages = body.get("messages") or []
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    text = last_user_text(messages)
    plan = Plan(prompt_tokens=sum(len(text_of(m.get("content")).split()) for m in messages if "content" in m))
    calling = last.get("role") == "user" or (last.get("role") == "tool" and "tools:loop" in text)
    if body.get("tools") and calling and body.get("tool_choice") != "none":
        plan.calls = [("call_" + "".join(rng.choices(_ALNUM, k=24)), n, a) for n, a in tool_calls(text)]
        if plan.calls:
            plan.finish = "tool_calls"
            return plan
    if last.get("role") == "tool":
        results = []
        for m in reversed(messages):
            if not isinstance(m, dict) or m.get("role") != "tool":
                break
            results.insert(0, text_of(m.get("content")))
        plan.content = words(f"tool result: {' | '.join(results)}")
    else:
        plan.content = words(f"echo: {text}")
    if "reasoning:" in text:
        plan.reasoning = words(f"thinking about: {text}")
    if faults.chunks is not None:
        n = faults.chunks
        plan.content = plan.content[:n] + [f" w{i}" for i in range(len(plan.content[:n]), n)]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and 0 < limit < len(plan.content):
        plan.content, plan.finish = plan.content[:limit], "length"
    return plan


def tool_calls(text: str) -> list[tuple[str, str]]:
    """(name, arguments) of each `call:<name>` in `text`; a JSON object right after the name is the
    arguments, else TOOL_ARGUMENTS."""
    out = []
    for m in _CALL.finditer(text):
        args = TOOL_ARGUMENTS
        if text[m.end():m.end() + 1] == "{":
            try:
                value, _ = json.JSONDecoder().raw_decode(text, m.end())
                args = json.dumps(value)
            except ValueError:
                pass
        out.append((m.group(1), args))
    return out


def fragments(arguments: str) -> list[str]:
    """A call's arguments as the stream sends them: TOOL_FRAGMENTS, or three pieces of others."""
    if arguments == TOOL_ARGUMENTS:
        return list(TOOL_FRAGMENTS)
    third = max(1, len(arguments) // 3)
    return [arguments[:third], arguments[third:2 * third], arguments[2 * third:]]


class OpenAIUpstream(ServerThread):
    """The server: `start()`/`stop()` or a `with` block; `.url` (no /v1) and `.base_url` (with /v1).

    `requests`, `last_request`, `request_count`, `in_flight` and `disconnected` may be read from the
    test thread while the server runs in its own."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Sequence[str] = ("mock-a", "mock-b"),
        history: int = 256,
        obfuscation: bool = True,
        deterministic: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key  # None: no check; may be changed while running
        self.models = list(models)
        self.obfuscation = obfuscation  # OpenAI's default; a request can opt out (include_obfuscation)
        self.deterministic = deterministic  # fixed `created`, ids seeded by the request body
        self.request_count = 0
        self.in_flight = 0  # chat completions being answered right now
        self.peak_in_flight = 0
        self.fail_status: int | None = None  # switchable: every chat completion fails with this status
        self.delay_ms = 0  # switchable: every chat completion waits this long first
        self.answer_model: str | None = None  # switchable: the model answers name (OpenAI names a snapshot)
        self.models_delay_ms = 0  # switchable: /v1/models waits this long first
        self.models_in_flight = 0
        self.models_peak = 0
        self._lock = threading.Lock()
        self._gate_event: asyncio.Event | None = None
        self._requests: deque[RecordedRequest] = deque(maxlen=history)
        self._disconnected: list[str] = []
        self._stopping = False
        self._throttled: dict[str, None] = {}  # request ids answered 429 once (fault:throttle), bounded
        self._transports: dict[int, asyncio.BaseTransport] = {}  # connections that carried a request
        app = web.Application()
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/embeddings", self.embeddings)
        super().__init__(app, host, port, name="openai-test-upstream")

    def start(self) -> Self:
        self._stopping = False
        return super().start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True  # handlers cancelled by the shutdown are not client disconnects
        super().stop(timeout)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> RecordedRequest | None:
        with self._lock:
            return self._requests[-1] if self._requests else None

    @property
    def disconnected(self) -> list[str]:
        """Request ids whose client went away before the reply was complete."""
        with self._lock:
            return list(self._disconnected)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._disconnected.clear()
            self.request_count = 0
            self.peak_in_flight = self.in_flight

    def open_connections(self) -> int:
        """Connections that carried a request and are still open (counted on the server's loop)."""

        async def count() -> int:
            return sum(not t.is_closing() for t in self._transports.values())

        return self.call(count())

    def _gate(self) -> asyncio.Event:
        """`fault:gate`'s gate, on the server's loop."""
        if self._gate_event is None:
            self._gate_event = asyncio.Event()
        return self._gate_event

    def set_gate(self, opened: bool) -> None:
        async def flip() -> None:
            gate = self._gate()
            if opened:
                gate.set()
            else:
                gate.clear()

        self.call(flip())

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def wait_for_disconnect(self, request_id: str | None = None, timeout: float = 5.0) -> bool:
        """Wait until `request_id` (or, if None, any request) is in `disconnected`."""

        def seen() -> bool:
            gone = self.disconnected
            return bool(gone) if request_id is None else request_id in gone

        return self.wait_for(seen, timeout)

    # handlers

    async def list_models(self, request: web.Request) -> web.Response:
        rec, denied = await self._begin(request)
        if self.models_delay_ms:
            self.models_in_flight += 1
            self.models_peak = max(self.models_peak, self.models_in_flight)
            try:
                await self._pause(request, self.models_delay_ms)
            finally:
                self.models_in_flight -= 1
        data = [{"id": m, "object": "model", "created": 1686935002, "owned_by": "system"}
                for m in self.models]
        return denied or self._json(rec, {"object": "list", "data": data})

    async def embeddings(self, request: web.Request) -> web.Response:
        rec, denied = await self._begin(request)
        if denied:
            return denied
        body = rec.body if isinstance(rec.body, dict) else {}
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts:
            return self._error(rec, 400, "'input' is a required property", "invalid_request_error", "input")
        dims: int = body["dimensions"] if isinstance(body.get("dimensions"), int) else 8
        data: list[dict[str, Any]] = []
        for i, item in enumerate(texts):
            vector: Any = embedding(item if isinstance(item, str) else json.dumps(item), dims)
            if body.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        tokens = sum(len(t.split()) if isinstance(t, str) else len(t) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return self._json(rec, {"object": "list", "data": data, "model": body.get("model"), "usage": usage})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        rec, denied = await self._begin(request)
        if denied:
            return denied
        body = rec.body
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            msg = "Missing required parameter: 'messages'."
            code = "missing_required_parameter"
            return self._error(rec, 400, msg, "invalid_request_error", "messages", code)
        faults = Faults.parse(last_user_text(body["messages"]))
        if self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000)
        if self.fail_status is not None:
            return self._fault_status(rec, self.fail_status)
        if faults.status is not None:
            return self._fault_status(rec, faults.status)
        if faults.throttle_ms and self._first_sight(rec.request_id):
            return self._fault_status(rec, 429, retry_after=f"{faults.throttle_ms / 1000:g}")
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if faults.hang:
                return await self._until_gone(request, rec)
            rng = self._rng(rec)
            chat_id = "chatcmpl-" + "".join(rng.choices(_ALNUM, k=29))
            plan = plan_reply(body, faults, rng)
            if body.get("stream"):
                return await self._stream(request, rec, chat_id, body, plan, faults)
            return await self._complete(request, rec, chat_id, body, plan, faults)
        finally:
            self.in_flight -= 1

    # chat replies

    async def _complete(self, request: web.Request, rec: RecordedRequest, chat_id: str,
                        body: dict[str, Any], plan: Plan, faults: Faults) -> web.StreamResponse:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(plan.content) or None}
        if plan.reasoning:
            message["reasoning_content"] = "".join(plan.reasoning)
        if plan.calls:
            message["tool_calls"] = [{"id": cid, "type": "function", "function": {
                "name": name, "arguments": args}} for cid, name, args in plan.calls]
        message.update(refusal=None, annotations=[])
        logprobs = None
        if body.get("logprobs"):  # each content token with its log probability, as OpenAI sends them
            logprobs = {"content": [{"token": t, "logprob": -0.5, "bytes": list(t.encode()), "top_logprobs": []}
                                    for t in plan.content], "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": logprobs, "finish_reason": plan.finish}
        reply = {"id": chat_id, "object": "chat.completion", "created": self._created(),
                 "model": self.answer_model or body.get("model"), "choices": [choice], "usage": plan.usage(),
                 "service_tier": "default", "system_fingerprint": FINGERPRINT}
        if faults.slow_ms:
            await asyncio.sleep(faults.slow_ms / 1000)
        data = b'{"id":"chatcmpl-broken","object":"chat.completion",' if faults.malformed else pretty(reply)
        if not (faults.midstream or faults.hang_midstream or faults.prefill_ms or faults.stall_ms):
            return self._json(rec, data)
        resp = web.StreamResponse(headers=self._headers(rec, JSON_TYPE))
        resp.content_length = len(data)
        try:
            await resp.prepare(request)  # a StreamResponse sends its headers at once
            await self._pause(request, faults.prefill_ms)
            await resp.write(data[: len(data) // 2])
            if faults.hang_midstream:
                return await self._until_gone(request, rec, resp)
            if faults.midstream:
                return self._drop(request, resp)
            await self._pause(request, faults.stall_ms)
            await resp.write(data[len(data) // 2 :])
            await resp.write_eof()
        except ConnectionResetError:
            self._gone(rec)
        except asyncio.CancelledError:
            self._gone(rec)
            raise
        return resp

    def _events(self, chat_id: str, body: dict[str, Any], plan: Plan) -> list[bytes]:
        options = body.get("stream_options") or {}
        usage = bool(options.get("include_usage"))
        obfuscate = options.get("include_obfuscation", self.obfuscation)
        head = {"id": chat_id, "object": "chat.completion.chunk", "created": self._created(),
                "model": self.answer_model or body.get("model"), "service_tier": "default",
                "system_fingerprint": FINGERPRINT}

        def event(delta: dict[str, Any] | None, finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            chunk: dict[str, Any] = {**head, "choices": [] if delta is None else [choice]}
            if usage:
                chunk["usage"] = plan.usage() if delta is None else None
            if obfuscate:
                pad = random.Random(zlib.crc32(compact(chunk)))
                chunk["obfuscation"] = "".join(pad.choices(_ALNUM, k=pad.randint(1, 15)))
            return b"data: " + compact(chunk) + b"\n\n"

        out: list[bytes] = []
        for i, (cid, name, args) in enumerate(plan.calls):
            start = {"index": i, "id": cid, "type": "function", "function": {"name": name, "arguments": ""}}
            first = {"role": "assistant", "content": None, "tool_calls": [start], "refusal": None}
            out.append(event(first if i == 0 else {"tool_calls": [start]}))
            out += [event({"tool_calls": [{"index": i, "function": {"arguments": part}}]})
                    for part in fragments(args)]
        if not plan.calls:
            out.append(event({"role": "assistant", "content": "", "refusal": None}))
        out += [event({"content": None, "reasoning_content": w}) for w in plan.reasoning]
        out += [event({"content": w}) for w in plan.content]
        out.append(event({}, plan.finish))
        if usage:
            out.append(event(None))
        return out

    async def _stream(self, request: web.Request, rec: RecordedRequest, chat_id: str,
                      body: dict[str, Any], plan: Plan, faults: Faults) -> web.StreamResponse:
        events = self._events(chat_id, body, plan)
        resp = web.StreamResponse(headers=self._headers(rec, SSE_TYPE))
        try:
            await resp.prepare(request)  # a StreamResponse sends its headers at once
            await self._pause(request, faults.prefill_ms)
            if faults.gate_first:
                await self._gate().wait()
            for i, data in enumerate(events):
                if faults.slow_ms and i:
                    await asyncio.sleep(faults.slow_ms / 1000)
                if i == 1 and faults.stall_ms:
                    await self._pause(request, faults.stall_ms)
                if i == 2 and faults.gate:  # the role chunk and one content chunk are out
                    await self._gate().wait()
                if i == 3 and faults.midstream:  # the role chunk and two content chunks are out
                    return self._drop(request, resp)
                if i == 3 and faults.hang_midstream:
                    return await self._until_gone(request, rec, resp)
                if i == 2 and faults.malformed:
                    await resp.write(b'data: {"id":"chatcmpl-broken","choices":[{"delta":\n\n')
                await resp.write(data)
            await resp.write(b"data: [DONE]\n\n")
            if faults.linger_ms == 0:
                return await self._until_gone(request, rec, resp)
            if faults.linger_ms:
                await asyncio.sleep(faults.linger_ms / 1000)
            await resp.write_eof()
        except ConnectionResetError:  # aiohttp's ClientConnectionResetError: the client went away
            self._gone(rec)
        except asyncio.CancelledError:
            self._gone(rec)
            raise
        return resp

    # faults

    def _fault_status(self, rec: RecordedRequest, status: int, retry_after: str | None = None) -> web.Response:
        message, type_, param, code = STATUS_ERRORS.get(status, STATUS_ERRORS[500 if status >= 500 else 400])
        headers = RATE_LIMIT_HEADERS if status == 429 else None
        if headers is not None and retry_after is not None:
            headers = {**headers, "Retry-After": retry_after}
        return self._error(rec, status, message.format(status=status), type_, param, code, headers)

    def _drop(self, request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
        # Close the socket without the terminating chunk: the client sees a truncated body.
        if request.transport is not None:
            request.transport.close()
        return resp

    async def _until_gone(self, request: web.Request, rec: RecordedRequest,
                          resp: web.StreamResponse | None = None) -> web.StreamResponse:
        try:
            while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            self._gone(rec)
            raise
        self._gone(rec)
        return resp or web.Response(status=499)

    async def _pause(self, request: web.Request, ms: int) -> None:
        """Wait `ms` milliseconds, or less if the client goes away (aiohttp cancels the handler too)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + ms / 1000
        while request.transport is not None and not request.transport.is_closing():
            left = until - loop.time()
            if left <= 0:
                return
            await asyncio.sleep(min(0.02, left))

    def _first_sight(self, request_id: str) -> bool:
        with self._lock:
            if request_id in self._throttled:
                return False
            if len(self._throttled) >= 4096:
                del self._throttled[next(iter(self._throttled))]
            self._throttled[request_id] = None
            return True

    def _gone(self, rec: RecordedRequest) -> None:
        with self._lock:
            if not self._stopping and rec.request_id not in self._disconnected:
                self._disconnected.append(rec.request_id)

    # plumbing

    async def _begin(self, request: web.Request) -> tuple[RecordedRequest, web.Response | None]:
        raw = await request.read()
        transport = request.transport
        if transport is not None and id(transport) not in self._transports:
            if len(self._transports) >= 1024:  # bounded: forget the closed ones
                self._transports = {k: t for k, t in self._transports.items() if not t.is_closing()}
            self._transports[id(transport)] = transport
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self.request_count += 1
            server_id = f"req_{os.urandom(16).hex()}"  # not `random`: a hypothesis draw would see it move
            rid = request.headers.get("X-Request-ID") or server_id
            headers = CIMultiDictProxy(CIMultiDict(request.headers))
            rec = RecordedRequest(self.request_count, request.method, request.path, headers, body, rid,
                                  server_id)
            self._requests.append(rec)
        key = self.api_key
        if key is not None and request.headers.get("Authorization") != f"Bearer {key}":
            given = request.headers.get("Authorization", "").removeprefix("Bearer ")
            shown = given[:3] + "*" * max(0, len(given) - 7) + given[-4:] if len(given) > 7 else given
            msg = (f"Incorrect API key provided: {shown}. You can find your API key at "
                   "https://platform.openai.com/account/api-keys.")
            return rec, self._error(rec, 401, msg, "invalid_request_error", None, "invalid_api_key")
        return rec, None

    def _rng(self, rec: RecordedRequest) -> random.Random:
        if self.deterministic:
            return random.Random(zlib.crc32(compact(rec.body)))
        return random.Random()

    def _created(self) -> int:
        return FIXED_CREATED if self.deterministic else int(time.time())

    def _headers(self, rec: RecordedRequest, content_type: str) -> dict[str, str]:
        return {"Content-Type": content_type, "openai-version": "2020-10-01", "openai-processing-ms": "42",
                "openai-organization": "user-mock", "x-request-id": rec.server_id}

    def _json(self, rec: RecordedRequest, value: Any, status: int = 200) -> web.Response:
        data = value if isinstance(value, bytes) else pretty(value)
        return web.Response(status=status, body=data, headers=self._headers(rec, JSON_TYPE))

    def _error(self, rec: RecordedRequest, status: int, message: str, type_: str, param: str | None = None,
               code: str | None = None, headers: dict[str, str] | None = None) -> web.Response:
        all_headers = {**self._headers(rec, ERROR_TYPE), **(headers or {})}
        return web.Response(status=status, body=error_body(message, type_, param, code), headers=all_headers)


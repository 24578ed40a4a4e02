"""What the cache plugin tests share: real RequestContexts and requests, a small real Host, an
injectable clock, a deterministic embedder, and an OpenAI-wire embeddings server on a real socket."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from aiohttp import web

from clawdbot.core.context import RequestContext
from clawdbot.core.types import ChatResponse, Message, Usage
from clawdbot.tenancy.principal import Principal
from tests.e2e.harness import closed_port as closed_port  # a port held closed for the session
from tests.upstreams.runner import ServerThread

Embed = Callable[[str], list[float]]


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ctx(key: str | None = "k1", user: str | None = None, team: str | None = None,
        headers: dict[str, str] | None = None, request_id: str = "r-1") -> RequestContext:
    identity = Principal(kind="key", key_id=key, user_id=user, team_id=team) if key else None
    raw = {k.lower().encode("latin-1"): v.encode("latin-1") for k, v in (headers or {}).items()}
    return RequestContext(request_id=request_id, identity=identity, principal=key,
                          headers=raw if headers is not None else None)


def answer(text: str, finish: str | None = "stop", model: str = "m") -> ChatResponse:
    return ChatResponse("chatcmpl-1", model, 1, Message("assistant", text), finish, Usage(5, 3))


_WORD = re.compile(r"[a-z0-9]+")
_CJK = re.compile(r"[\u3400-\u9fff]")


def tokens(text: str) -> list[str]:
    """Lower-case words, and for CJK runs the characters and their bigrams."""
    low = text.lower()
    out = _WORD.findall(low)
    han = _CJK.findall(low)
    out += han + [a + b for a, b in itertools.pairwise(han)]
    return out


def toy_embed(text: str, dims: int = 384) -> list[float]:
    """A deterministic bag-of-tokens embedding: texts sharing words are similar ("capital of
    France" and "capital of Germany" are close, as with a real model); the same words in another
    case or punctuation give the same vector."""
    v = [0.0] * dims
    for t in tokens(text) or [text]:
        h = hashlib.blake2b(t.encode(), digest_size=8).digest()
        i = int.from_bytes(h[:4], "little") % dims
        v[i] += 1.0 if h[4] & 1 else -1.0
    return v


def angle_vector(degrees: float, dims: int = 8) -> list[float]:
    """A unit vector in the first two dimensions: cos(a - b) is the similarity of two of them."""
    r = math.radians(degrees)
    return [math.cos(r), math.sin(r)] + [0.0] * (dims - 2)


class Host:
    """A real Host: embeddings from a deterministic function (or `fail`: an exception, `hang`:
    never answers), calls counted."""

    def __init__(self, embed: Embed = toy_embed, redis_url: str | None = None,
                 redis_prefix: str = "clawdbot:") -> None:
        self._embed = embed
        self._redis_url = redis_url
        self._redis_prefix = redis_prefix
        self.calls: list[tuple[str, list[str]]] = []
        self.fail: Exception | None = None
        self.hang = False

    @property
    def redis_url(self) -> str | None:
        return self._redis_url

    @property
    def redis_prefix(self) -> str:
        return self._redis_prefix

    @property
    def data_dir(self) -> str:
        return "."

    @property
    def config_dir(self) -> str:
        return "."

    async def embed(self, model: str, inputs: list[str], ctx: RequestContext) -> list[list[float]]:
        self.calls.append((model, inputs))
        if self.hang:
            await asyncio.Event().wait()
        if self.fail is not None:
            raise self.fail
        return [self._embed(t) for t in inputs]


class HttpHost(Host):
    """Embeddings from an OpenAI-compatible server over HTTP (what the gateway's Host does, without
    routing)."""

    def __init__(self, base_url: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.base_url = base_url

    async def embed(self, model: str, inputs: list[str], ctx: RequestContext) -> list[list[float]]:
        self.calls.append((model, inputs))
        async with aiohttp.ClientSession() as s, s.post(f"{self.base_url}/v1/embeddings",
                                                         json={"model": model, "input": inputs}) as r:
            r.raise_for_status()
            body = await r.json()
        return [d["embedding"] for d in sorted(body["data"], key=lambda d: d["index"])]


class EmbeddingServer(ServerThread):
    """POST /v1/embeddings in OpenAI's wire format on a real socket, vectors from `embed`;
    `api_key` (when set) is checked like OpenAI does."""

    def __init__(self, embed: Embed = toy_embed, api_key: str | None = None) -> None:
        self.embed = embed
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        app = web.Application()
        app.router.add_post("/v1/embeddings", self.handle)
        super().__init__(app, name="embeddings-test-server")

    async def handle(self, request: web.Request) -> web.Response:
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": {"message": "Incorrect API key provided.", "type":
                                                "invalid_request_error", "code": "invalid_api_key"}}, status=401)
        body = await request.json()
        self.requests.append(body)
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        data = [{"object": "embedding", "index": i, "embedding": self.embed(t)} for i, t in enumerate(texts)]
        n = sum(len(t.split()) for t in texts)
        return web.json_response({"object": "list", "data": data, "model": body["model"],
                                  "usage": {"prompt_tokens": n, "total_tokens": n}})


@contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers: a hung Redis."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    try:
        yield s.getsockname()[1]
    finally:
        s.close()

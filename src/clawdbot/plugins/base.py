"""The plugin contract. A plugin is a class with a `name`, the settings it was configured `with:`,
and up to five hooks; the pipeline (pipeline/plugins.py) calls them and core never imports a plugin.

    pre(request, ctx)       before routing, in config order. Return None (go on), a changed
                            ChatRequest (go on with it), or an `Answer` (short-circuit: a cache hit,
                            a canned reply); raise a GatewayError to refuse (403, 400, ...).
    post(response, ctx)     on a whole answer, in reverse order, only for plugins whose pre ran.
                            Return None or a changed ChatResponse.
    on_chunk(chunk, ctx)    on each streamed event, in reverse order (sync: it is on the hot path).
                            Return the chunk (changed or not), or None to hold it back; raise a
                            GatewayError to stop the stream cleanly with an error event.
    on_stream_end(ctx)      the stream is over: return a chunk with text held back, or None.
    on_error(error, ctx)    the request failed (after pre ran); observe only.

What a plugin needs is declared, so the fast path stays fast: `needs` is "none" (pre looks at
the request's model, caller, headers), "request" (pre reads or changes the messages), or
"response" (post, on_chunk and on_stream_end see the answer: the answer then goes through
canonical chunks instead of passing bytes through). post, on_chunk and on_stream_end run only for
plugins that declare "response" and, asked after pre, say they `reads_answer(ctx)` for this
request (default True); on_error runs for every plugin whose pre ran. `guard` says what a
failure of the plugin means: True (the request fails closed, 503), False (an observer: logged,
the request goes on). `timeout` bounds each async hook (seconds).

Per-request state lives on the context (`self.state(ctx)`, `self.set_state(ctx, v)`). What a
plugin did goes to `self.note(ctx, "masked 3 items")`: the chat page's trace line and the access
log show it. `add_header(ctx, name, value)` adds a response header."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Protocol

import msgspec

from clawdbot.core.context import RequestContext
from clawdbot.core.errors import GatewayError
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse

Needs = Literal["none", "request", "response"]


class Answer(msgspec.Struct):
    """A short-circuit answer from a pre hook. The client receives it in its own dialect, as a
    stream if it asked for one. `cost_free`: nothing is charged (a cache hit says so)."""

    response: ChatResponse
    headers: dict[str, str] = {}
    cost_free: bool = True


class PluginConfigError(ValueError):
    """A plugin's `with:` settings are wrong; the message names the setting."""


class Host(Protocol):
    """What the gateway lends a plugin (built once at start, passed to the factory)."""

    @property
    def redis_url(self) -> str | None:
        """The process's Redis (`redis_url`), for state shared by replicas; open it with
        clawdbot.state.redis.redis_client and prefix every key with `redis_prefix`."""
        ...

    @property
    def redis_prefix(self) -> str: ...

    @property
    def data_dir(self) -> str: ...

    @property
    def config_dir(self) -> str:
        """The directory of the config file (relative file settings are read from there)."""
        ...

    async def embed(self, model: str, inputs: list[str], ctx: RequestContext) -> list[list[float]]:
        """Embeddings from a model the gateway serves (routing, retries and breakers apply)."""
        ...


class Plugin:
    """Base class with do-nothing hooks: a plugin overrides the ones it uses."""

    name: ClassVar[str] = ""
    needs: ClassVar[Needs] = "none"
    guard: ClassVar[bool] = True
    timeout: ClassVar[float] = 1.0
    # A msgspec Struct type the `with:` mapping is decoded into (unknown settings are an error).
    Settings: ClassVar[type[msgspec.Struct] | None] = None

    def __init__(self, settings: Any, host: Host) -> None:
        self.settings = settings
        self.host = host
        # the instance's name in the pipeline (`id:` in the config, else `name`): state and notes
        self.id = self.name

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def pre(self, request: ChatRequest, ctx: RequestContext) -> ChatRequest | Answer | None:
        return None

    async def post(self, response: ChatResponse, ctx: RequestContext) -> ChatResponse | None:
        return None

    def on_chunk(self, chunk: ChatChunk, ctx: RequestContext) -> ChatChunk | None:
        return chunk

    def on_stream_end(self, ctx: RequestContext) -> ChatChunk | None:
        return None

    def reads_answer(self, ctx: RequestContext) -> bool:
        """Asked after pre, of a plugin that declares "response": does it want this request's
        answer? (A masker that found nothing to restore does not; then post, on_chunk and
        on_stream_end are skipped for it, and with no reader left the answer passes as bytes.)"""
        return True

    async def on_error(self, error: GatewayError, ctx: RequestContext) -> None:
        return None

    # -- helpers -----------------------------------------------------------------------------

    def state(self, ctx: RequestContext) -> Any:
        return ctx.plugin_state.get(self.id) if ctx.plugin_state is not None else None

    def set_state(self, ctx: RequestContext, value: Any) -> None:
        if ctx.plugin_state is None:
            ctx.plugin_state = {}
        ctx.plugin_state[self.id] = value

    def note(self, ctx: RequestContext, text: str) -> None:
        note(ctx, self.id, text)


def doc(text: str) -> msgspec.Meta:
    """A setting's description, for `Annotated[type, doc("...")]`: the control panel shows it as the
    field's help text (msgspec.json.schema carries it)."""
    return msgspec.Meta(description=text)


def note(ctx: RequestContext, plugin: str, text: str) -> None:
    """Say what a plugin did to this request (the trace line and the access log show it)."""
    if ctx.plugin_notes is None:
        ctx.plugin_notes = []
    ctx.plugin_notes.append(f"{plugin}: {text}")


def add_header(ctx: RequestContext, name: str, value: str) -> None:
    """A response header (`X-Clawdbot-Cache: hit`), sent when the response starts."""
    if ctx.plugin_headers is None:
        ctx.plugin_headers = {}
    ctx.plugin_headers[name] = value


def header(ctx: RequestContext, name: str) -> str | None:
    """A request header (lower-case name), when the request came over HTTP."""
    headers: Mapping[bytes, bytes] | None = ctx.headers
    if headers is None:
        return None
    v = headers.get(name.encode("latin-1"))
    return v.decode("latin-1") if v is not None else None

"""The plugin chain: which plugins run on a request (scope, per-key overrides), and the hooks run in
order with each plugin's failure policy and time budget.

Pre hooks run in config order; post, chunk and stream-end hooks in reverse, only for plugins whose
pre ran (`Run.ran`). A plugin that raises a GatewayError refuses the request (that is its answer);
one that raises anything else, or overruns its `timeout`, has failed: a guard fails the request
closed (503 plugin_failed), an observer is logged with the request id and the request goes on."""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import msgspec

from clawdbot.config.schema import PluginEntry
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import GatewayError
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, ToolCallDelta
from clawdbot.plugins.base import Answer, Host, Plugin, PluginConfigError
from clawdbot.plugins.registry import SettingsError, build, instantiate

if TYPE_CHECKING:
    from clawdbot.observability.tracing import RequestTrace

log = logging.getLogger("clawdbot.plugins")
T = TypeVar("T")
MAX_OVERRIDES = 256  # per-key settings overrides built and kept per chain


class PluginFailed(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "plugin_failed"


class EntryError(PluginConfigError):
    """A plugin entry cannot be served; `path` is its key path in the config file."""

    def __init__(self, message: str, path: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.path = path


class Slot:
    """One configured plugin instance and its scope."""

    __slots__ = ("entry", "index", "keys", "models", "patterns", "plugin", "tags")

    def __init__(self, plugin: Plugin, entry: PluginEntry, index: int) -> None:
        self.plugin = plugin
        self.entry = entry
        self.index = index
        self.models = frozenset(m for m in entry.models if not any(c in m for c in "*?["))
        self.patterns = tuple(m for m in entry.models if any(c in m for c in "*?["))
        self.keys = frozenset(entry.keys)
        self.tags = frozenset(entry.tags)

    def applies(self, ctx: RequestContext, model: str) -> bool:
        if (self.models or self.patterns) and model not in self.models and \
                not any(fnmatch.fnmatchcase(model, p) for p in self.patterns):
            return False
        if self.keys and getattr(ctx.identity, "key_id", None) not in self.keys:
            return False
        return not self.tags or ctx.tag in self.tags


class Chain:
    """The plugins of one config generation (rebuilt on reload; requests keep theirs)."""

    def __init__(self, slots: Sequence[Slot], host: Host | None = None) -> None:
        self.slots = tuple(slots)
        self.host = host
        # No plugin scoped to models, keys or tags: every request without a key override gets all
        # of them (one list, shared: a Run never changes it).
        unscoped = all(not (s.models or s.patterns or s.keys or s.tags) for s in self.slots)
        self._everyone: list[Plugin] | None = [s.plugin for s in self.slots] if unscoped else None
        self.active = 0  # requests using this chain (the old one closes when it reaches 0 after a reload)
        self._retired: Callable[[Coroutine[Any, Any, None]], None] | None = None
        self._overrides: dict[tuple[str, str], Plugin | None] = {}

    def __bool__(self) -> bool:
        return bool(self.slots)

    def select(self, ctx: RequestContext, model: str) -> list[Plugin]:
        """The plugins that run on this request, in order. A key may turn a plugin off or change
        its settings (key metadata `plugins: {name: false | {settings}}`, via the admin API)."""
        meta = getattr(ctx.identity, "metadata", None)
        overrides = meta.get("plugins") if meta else None
        if overrides is None and self._everyone is not None:
            return self._everyone
        chosen: list[Plugin] = []
        for slot in self.slots:
            if not slot.applies(ctx, model):
                continue
            plugin: Plugin | None = slot.plugin
            if isinstance(overrides, dict) and slot.plugin.id in overrides:
                plugin = self._override(slot, overrides[slot.plugin.id])
            if plugin is not None:
                chosen.append(plugin)
        return chosen

    def _override(self, slot: Slot, value: Any) -> Plugin | None:
        if value is False or value is None:
            return None
        if value is True or not isinstance(value, dict):
            return slot.plugin
        key = (slot.plugin.id, msgspec.json.encode(value, order="sorted").decode())
        if key in self._overrides:
            return self._overrides[key]
        merged = {**slot.entry.with_, **value}
        try:
            assert self.host is not None
            plugin: Plugin | None = instantiate(type(slot.plugin), merged, self.host, slot.plugin.id)
        except PluginConfigError as exc:
            # Checked when the key is saved (admin API); a key written otherwise keeps the default.
            log.error("plugin %s: a key's settings override is invalid (%s); using the configured settings",
                      slot.plugin.id, exc)
            plugin = slot.plugin
        if len(self._overrides) < MAX_OVERRIDES:
            self._overrides[key] = plugin
        return plugin

    async def start(self) -> None:
        for slot in self.slots:
            await slot.plugin.start()

    def enter(self) -> None:
        self.active += 1

    def leave(self) -> None:
        self.active -= 1
        if self._retired is not None and self.active == 0:
            self._retired(self.close())

    def retire(self, spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        """No new requests will come: close the plugins (through `spawn`, Gateway.spawn, which
        shutdown waits for) once the last request holding this chain has ended."""
        self._retired = spawn
        if self.active == 0:
            spawn(self.close())

    async def close(self) -> None:
        plugins = [s.plugin for s in self.slots] + [p for p in self._overrides.values() if p is not None]
        for p in plugins:
            try:
                await p.close()
            except Exception:
                log.exception("closing plugin %s failed", p.id)


def build_chain(entries: Sequence[PluginEntry], host: Host) -> Chain:
    """Raises EntryError with the failing entry's key path (for file:line)."""
    slots: list[Slot] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if not entry.enabled:
            continue
        ident = entry.id or entry.name
        if ident in seen:
            raise EntryError(f"plugin {ident!r} is listed twice: give the second one its own `id:`", ("plugins", i))
        seen.add(ident)
        try:
            plugin = build(entry.name, entry.with_, host, ident)
        except SettingsError as exc:
            raise EntryError(str(exc), ("plugins", i, "with", *exc.path)) from None
        except PluginConfigError as exc:
            raise EntryError(str(exc), ("plugins", i, "name")) from None
        slots.append(Slot(plugin, entry, i))
    return Chain(slots, host)


def replay(resp: ChatResponse) -> list[ChatChunk]:
    """A whole answer as the chunks of a stream (a short-circuit answer to a client that asked for
    one): the text, the tool calls, then the finish reason with the usage."""
    m = resp.message
    chunks: list[ChatChunk] = []
    if m.reasoning:
        chunks.append(ChatChunk(reasoning=m.reasoning, role="assistant"))
    text = m.text()
    if text:
        chunks.append(ChatChunk(content=text, role="assistant"))
    if m.tool_calls:
        chunks.append(ChatChunk(tool_calls=[ToolCallDelta(i, c.id, c.name, c.arguments)
                                            for i, c in enumerate(m.tool_calls)]))
    chunks.append(ChatChunk(finish_reason=resp.finish_reason or "stop", usage=resp.usage))
    return chunks


async def replayed(resp: ChatResponse) -> AsyncGenerator[ChatChunk, None]:
    for chunk in replay(resp):
        yield chunk


# -- running the hooks ---------------------------------------------------------------------------

class _Resume:
    """Awaits the rest of a coroutine that was stepped once already (and is waiting on `pending`)."""

    __slots__ = ("coro", "pending")

    def __init__(self, coro: Coroutine[Any, Any, T], pending: Any) -> None:
        self.coro = coro
        self.pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self.coro, self.pending
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # a cancellation (the timeout's) goes into the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as done:
                    return done.value


async def bounded(coro: Coroutine[Any, Any, T], budget: float) -> T:
    """`await coro` within `budget` seconds. Most hooks finish without ever waiting (a regex, a
    dict lookup): those are run to the end at once, without a timer (asyncio.timeout costs a
    timer handle, its cancellation and a task lookup: ~12% of a request with four plugins). Only
    a hook that waits gets the deadline, from its first wait on. Run's hot hooks do the same
    inline (`_step`), without this coroutine's own frame."""
    try:
        pending = coro.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    return await _rest(coro, pending, budget)


async def _rest(coro: Coroutine[Any, Any, T], pending: Any, budget: float) -> T:
    """The rest of a hook that waited: under its deadline."""
    async with asyncio.timeout(budget):
        return cast(T, await _Resume(coro, pending))


def _failed(plugin: Plugin, ctx: RequestContext, hook: str, exc: BaseException) -> GatewayError | None:
    """A plugin's own failure: the error a guard fails the request with, None for an observer."""
    what = "timed out" if isinstance(exc, TimeoutError) else f"failed ({type(exc).__name__})"
    if plugin.guard:
        log.error("plugin %s %s in %s; the request fails closed", plugin.id, what, hook,
                  exc_info=not isinstance(exc, TimeoutError))
        return PluginFailed(f"The request could not be checked (plugin {plugin.id} {what}); "
                            f"request id {ctx.request_id}.")
    log.warning("plugin %s %s in %s; the request goes on without it", plugin.id, what, hook,
                exc_info=not isinstance(exc, TimeoutError))
    return None


class Run:
    """The chain's hooks for one request: `ran` holds the plugins whose pre ran, in order."""

    __slots__ = ("ctx", "plugins", "ran", "stream_plugins")

    def __init__(self, plugins: list[Plugin], ctx: RequestContext) -> None:
        self.plugins = plugins
        self.ctx = ctx
        self.ran: list[Plugin] = []
        self.stream_plugins: list[Plugin] = []

    @property
    def reads_answer(self) -> bool:
        """After pre: does a plugin that ran read this request's answer? (Otherwise the answer
        takes the fast path: bytes through, as without plugins.)"""
        return bool(self.stream_plugins)

    def pre(self, req: ChatRequest) -> Coroutine[Any, Any, tuple[ChatRequest, Answer | None]]:
        """The pre hooks in order: the request as they changed it, or a plugin's answer. (Not
        async itself: untraced, the caller awaits `_pre` with no frame in between.)"""
        trace: RequestTrace | None = self.ctx.trace
        if trace is None:
            return self._pre(req)
        return trace.stage("pre", self, self._pre(req))

    async def _pre(self, req: ChatRequest) -> tuple[ChatRequest, Answer | None]:
        ctx = self.ctx
        ran = self.ran
        for p in self.plugins:
            ran.append(p)
            coro = p.pre(req, ctx)
            try:
                try:  # a hook that does not wait ends here, without a timer (see `bounded`)
                    out = coro.send(None)
                except StopIteration as done:
                    out = done.value
                else:
                    out = await _rest(coro, out, p.timeout)
            except GatewayError:
                raise
            except Exception as exc:
                err = _failed(p, ctx, "pre", exc)
                if err is not None:
                    raise err from None
                continue
            if out is None:
                continue
            if isinstance(out, Answer):
                # The plugins before it see the answer on its way back (a cached answer is
                # restored by the masking that ran first); the one that answered does not.
                ran.pop()
                self.stream_plugins = self._readers()
                return req, out
            req = out
        self.stream_plugins = self._readers()
        return req, None

    def _readers(self) -> list[Plugin]:
        """The plugins that ran and read this request's answer, in answer order (reversed)."""
        ctx = self.ctx
        return [p for p in reversed(self.ran) if p.needs == "response" and p.reads_answer(ctx)]

    def post(self, resp: ChatResponse) -> Coroutine[Any, Any, ChatResponse]:
        trace: RequestTrace | None = self.ctx.trace
        if trace is None:
            return self._post(resp)
        return trace.stage("post", self, self._post(resp))

    async def _post(self, resp: ChatResponse) -> ChatResponse:
        ctx = self.ctx
        for p in self.stream_plugins:  # those that read answers, in reverse order
            coro = p.post(resp, ctx)
            try:
                try:
                    resp_out = coro.send(None)
                except StopIteration as done:
                    resp_out = done.value
                else:
                    resp_out = await _rest(coro, resp_out, p.timeout)
            except GatewayError:
                raise
            except Exception as exc:
                err = _failed(p, ctx, "post", exc)
                if err is not None:
                    raise err from None
                continue
            if resp_out is not None:
                resp = resp_out
        return resp

    def chunk(self, chunk: ChatChunk) -> ChatChunk | None:
        ctx = self.ctx
        out: ChatChunk | None = chunk
        for p in self.stream_plugins:
            if out is None:
                return None
            try:
                out = p.on_chunk(out, ctx)
            except GatewayError:
                raise
            except Exception as exc:
                err = _failed(p, ctx, "on_chunk", exc)
                if err is not None:
                    raise err from None
                continue
        return out

    def stream_end(self) -> list[ChatChunk]:
        """Whatever the plugins held back, passed on through the plugins after them."""
        ctx = self.ctx
        tail: list[ChatChunk] = []
        plugins = self.stream_plugins
        for i, p in enumerate(plugins):
            try:
                held = p.on_stream_end(ctx)
            except GatewayError:
                raise
            except Exception as exc:
                err = _failed(p, ctx, "on_stream_end", exc)
                if err is not None:
                    raise err from None
                continue
            if held is None:
                continue
            for q in plugins[i + 1:]:  # the later plugins (in stream order) see it too
                if held is None:
                    break
                held = q.on_chunk(held, ctx)
            if held is not None:
                tail.append(held)
        return tail

    async def error(self, exc: GatewayError) -> None:
        ctx = self.ctx
        for p in reversed(self.ran):
            try:
                await bounded(p.on_error(exc, ctx), p.timeout)
            except Exception:
                log.warning("plugin %s failed in on_error", p.id, exc_info=True)

    async def stream(self, it: AsyncGenerator[ChatChunk, None]) -> AsyncGenerator[ChatChunk, None]:
        """`it` through the chunk hooks, then what plugins held back. The stream-end hooks run only
        when the stream ended normally: a stream cut, failed or abandoned skips them (a cache does
        not store it)."""
        if self.ctx.trace is not None:
            async for traced in self._traced_stream(it, self.ctx.trace):
                yield traced
            return
        try:
            async for chunk in it:
                out = self.chunk(chunk)
                if out is not None:
                    yield out
            for held in self.stream_end():
                yield held
        finally:
            await it.aclose()

    async def _traced_stream(self, it: AsyncGenerator[ChatChunk, None],
                             trace: RequestTrace) -> AsyncGenerator[ChatChunk, None]:
        """`stream`, timing the hooks for one span (RequestTrace.stream_hooks), ended or not."""
        clock = time.perf_counter_ns
        chunks = spent = 0
        first = 0
        try:
            async for chunk in it:
                if not chunks:
                    first = trace.now_ns()
                chunks += 1
                t = clock()
                out = self.chunk(chunk)
                spent += clock() - t
                if out is not None:
                    yield out
            t = clock()
            tail = self.stream_end()
            spent += clock() - t
            for held in tail:
                yield held
        finally:
            await it.aclose()
            if chunks:
                trace.stream_hooks([p.id for p in self.stream_plugins], chunks, spent, first, trace.now_ns())

"""Gateway orchestration: resolve the model to a route, try its deployments in the order its
strategy gives (healthy ones first, open circuits and full services skipped), fail over on
retryable errors to the next deployment and then the entry's fallbacks, within a retry budget,
never once a stream has delivered its first chunk.

Callers: `chat`, `stream`, `forward` (a dialect's bytes), `embed`; then `finish(ctx)` when the request ends
(metrics). Every attempt is recorded in `ctx.attempts`; `attempts_header(ctx)` renders them.
The config can be swapped at run time (`reload`): see pipeline/runtime.py."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import msgspec

from clawdbot.config.loader import error_at
from clawdbot.config.schema import Config
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import (
    CircuitOpen,
    GatewayError,
    NotImplementedByService,
    Overloaded,
    UpstreamError,
    UpstreamUnavailable,
)
from clawdbot.core.types import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from clawdbot.observability.metrics import Metrics
from clawdbot.observability.tracing import RequestTrace
from clawdbot.pipeline.attempt import Attempt, Relay, verdict
from clawdbot.pipeline.reload import Reloader, ReloadError
from clawdbot.pipeline.runtime import Runtime, build_runtime
from clawdbot.providers.base import Embedder, Passthrough, Provider, RawResponse
from clawdbot.routing.breaker_redis import build_breakers
from clawdbot.routing.credentials import scrub
from clawdbot.routing.health import HealthMonitor, Probed
from clawdbot.routing.hook import HookError
from clawdbot.routing.notes import Notes
from clawdbot.routing.resolver import Resolver
from clawdbot.routing.retry import RetryBudget, backoff, retry_after_seconds
from clawdbot.routing.router import Route
from clawdbot.routing.upstream import Deployment, Upstream

log = logging.getLogger("clawdbot.gateway")
T = TypeVar("T")
Call = Callable[[Deployment], Awaitable[T]]
Candidates = Iterator[tuple[Deployment, int]]
# The request's bytes for one upstream of its dialect: the inbound API's edits (the upstream model name
# when it differs from the client's, and whatever else the dialect needs), made by its codec.
Rewrite = Callable[[Upstream, str | None], bytes]


class Gateway:
    def __init__(self, config: Config, providers: dict[str, Provider] | None = None,
                 reload_config: Callable[[], Config] | None = None, watch_path: str | None = None) -> None:
        self.metrics = Metrics()
        # in process, or shared by the replicas through Redis (`redis_url`): routing/breaker_redis.py
        self.breakers, self.shared = build_breakers(config, os.environ, self._breaker_moved)
        self.metrics.breakers = self.breakers.snapshot
        self.metrics.queues = self._queues
        self.monitor = HealthMonitor({}, config.server.discovery_interval, set())
        r = config.routing
        self.budget = RetryBudget(r.retry_budget, r.retry_min_per_second)
        self.notes = Notes(log)
        self.reloader = Reloader(self.reload, reload_config, watch_path, config.server.watch_interval)
        self._reloading = asyncio.Lock()
        # Run on a reload before the swap, with the new config: each may refuse it (ReloadError)
        # or return what to do once the new runtime serves (pipeline/policy.py: the plugin chain).
        self.reload_checks: list[Callable[[Config], Callable[[], None] | None]] = []
        self._probing: set[asyncio.Task[Any]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._draining: list[Runtime] = []
        self.runtime = build_runtime(config, None, self.breakers, self.metrics, self.monitor, providers)
        self.adopt(self.runtime)

    @classmethod
    def from_config(cls, config: Config, reload_config: Callable[[], Config] | None = None,
                    watch_path: str | None = None) -> Gateway:
        return cls(config, None, reload_config, watch_path)

    # -- what the rest of the process reads (always the current runtime) ---------------------

    @property
    def config(self) -> Config:
        return self.runtime.config

    @property
    def providers(self) -> dict[str, Provider]:
        return {name: u.provider for name, u in self.runtime.upstreams.items()}

    @property
    def resolver(self) -> Resolver:
        return self.runtime.router.resolver

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.monitor.probe_all()
        self.monitor.start()
        self.metrics.start()
        self.reloader.start()
        await self.shared.start()

    async def close(self) -> None:
        self.reloader.stop()
        await self.shared.close()
        await self.monitor.stop()
        await self.metrics.stop()
        for task in list(self._tasks):
            await task
        closing = list(self.runtime.upstreams.values())
        for rt in self._draining:
            closing += [u for u in rt.upstreams.values() if u not in closing]
        for u in closing:
            await u.provider.close()

    def adopt(self, rt: Runtime) -> list[str]:
        """Point health checks, breakers and metrics at `rt`'s services. Returns the new ones."""
        interval = rt.config.server.discovery_interval
        targets = {n: Probed(u.provider, u.svc.health_interval or interval, u.svc.discover, u.secrets)
                   for n, u in rt.upstreams.items()}
        new = self.monitor.update(targets, [u.health for u in rt.upstreams.values()])
        self.breakers.retain(rt.upstreams)
        for name in [n for n in self.metrics.services if n not in rt.upstreams]:
            del self.metrics.services[name]
        for name, u in rt.upstreams.items():
            self.monitor.states[name].breaker = u.breaker.state
        r = rt.config.routing
        self.budget.configure(r.retry_budget, r.retry_min_per_second)
        return new

    def swap(self, rt: Runtime) -> None:
        """Serve new requests from `rt`; the old runtime closes what `rt` did not take over once
        its last request is done."""
        old, self.runtime = self.runtime, rt
        keep = {id(u) for u in rt.upstreams.values()}
        self._draining.append(old)
        old.retire([u for u in old.upstreams.values() if id(u) not in keep], lambda ups: self._closed(old, ups))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` in the background; close() waits for it."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _closed(self, rt: Runtime, ups: list[Any]) -> None:
        if rt in self._draining:
            self._draining.remove(rt)
        if ups:
            task = asyncio.get_running_loop().create_task(self._close_providers(ups))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _close_providers(self, ups: list[Any]) -> None:
        for u in ups:
            try:
                await u.provider.close()
            except Exception:
                log.exception("closing the old provider of service %s failed", u.name)
        log.info("closed %d provider(s) of the previous config", len(ups))

    def _queues(self) -> dict[str, dict[str, Any]]:
        return {name: u.queues() for name, u in self.runtime.upstreams.items()}

    def _breaker_moved(self, service: str, state: str) -> None:
        st = self.monitor.states.get(service)
        if st is not None:
            st.breaker = state

    async def reload(self, config: Config) -> dict[str, Any]:
        """Build a runtime for `config` and swap it in (the reloader's callback, and the admin API's).
        Raises ReloadError when it cannot be served: the running config keeps serving."""
        async with self._reloading:
            old = self.runtime
            if config.server != old.config.server:
                log.warning("server settings changed in the config file; they take effect at the next restart")
                config = msgspec.structs.replace(config, server=old.config.server)
            try:
                rt = build_runtime(config, old, self.breakers, self.metrics, self.monitor, None, old.generation + 1)
            except HookError as exc:
                path = self.reloader.path
                where = error_at(path, ("models", exc.model, "hook"), str(exc)) if path and exc.model else exc
                raise ReloadError(f"the new config cannot be served: {where}") from exc
            except Exception as exc:
                raise ReloadError(f"the new config cannot be served: {exc}") from exc
            commits = [c for c in (check(config) for check in self.reload_checks) if c is not None]
            new = self.adopt(rt)
            self.swap(rt)
            for commit in commits:
                commit()
            if new:  # probe what is new now, in the background: routing treats "not probed yet" as up
                task = asyncio.get_running_loop().create_task(self._probe(new))
                self._probing.add(task)
                task.add_done_callback(self._probing.discard)
            return {"generation": rt.generation, "services": sorted(rt.upstreams), "models": sorted(config.models),
                    "new_services": sorted(new)}

    async def _probe(self, names: list[str]) -> None:
        monitor = self.monitor
        await asyncio.gather(*(monitor.probe(n) for n in names if n in monitor.states), return_exceptions=True)

    def caps_trusted(self, model: str) -> bool:
        """Has every service that may answer `model` honoured the output limit it was sent so far?"""
        try:
            route = self.runtime.router.route(model)
        except GatewayError:
            return True  # the call itself answers 404
        return not any(d.upstream.ignores_cap for d in route.deps)

    def forwards(self, model: str, dialect: str) -> bool:
        """May some service of `model`'s route take `dialect`'s bytes as they are (the fast path)?"""
        try:
            route = self.runtime.router.route(model)
        except GatewayError:
            return False  # the call itself answers 404
        return any(d.upstream.forwards == dialect for d in route.deps)

    def cap_ignored(self, service: str, cap: int, got: int) -> None:
        up = self.runtime.upstreams.get(service)
        if up is not None and not up.ignores_cap:
            up.ignores_cap = True
            log.warning("service %s answered %d completion tokens with a limit of %d: budgeted requests to it are "
                        "now collected from streams the gateway cuts at the limit", service, got, cap)

    # -- the attempt loop ----------------------------------------------------------------------

    def finish(self, ctx: RequestContext) -> None:
        """Close the answering attempt's books when the request ends (a stream ends long after
        the call that opened it returned)."""
        if ctx.trace is not None:  # the answering attempt's span (observability/otel.py)
            ctx.trace.attempt_end(ctx)
        if ctx.attempt_started is None or ctx.service is None:
            return
        stats = self.metrics.services.get(ctx.service) or self.metrics.service(ctx.service)
        if ctx.cancelled:  # the caller left: neither a latency sample nor the service's error
            stats.in_flight -= 1
            ctx.attempt_started = None
            return
        upstream_ms = stats.end(ctx.attempt_started, ctx.ttft_ms(), ctx.error)
        ctx.attempt_started = None
        if ctx.error is None:
            self.metrics.overhead.add(max(0.0, ctx.elapsed_ms() - upstream_ms))

    async def _run(self, rt: Runtime, model: str, ctx: RequestContext, call: Call[T], stream: bool,
                   req: ChatRequest | None = None) -> tuple[T, Attempt]:
        """Try deployments until one answers. Returns its result and its hold on the service,
        which the caller closes when the answer is complete (a stream: at its end)."""
        if ctx.capture is not None:  # log_bodies (pipeline/capture.py): the request as it goes on
            ctx.capture.sent(req)
        trace: RequestTrace | None = ctx.trace
        t0 = trace.now_ns() if trace is not None else 0
        route = rt.router.route(model)
        self.budget.deposit()
        order = route.order(ctx, stream, req)
        if trace is not None:  # the routing decision's span
            trace.routed(t0, route, order, req)
        now = time.monotonic()
        # The common case first: the strategy's pick is healthy, closed and has room.
        dep = order[0]
        up = dep.upstream
        if up.health.reachable is not False:
            permit = up.breaker.allow(now)
            if permit:
                if _take_slot(dep):
                    try:
                        return await self._attempt(rt, dep, permit, ctx, call)
                    except GatewayError as exc:
                        if not exc.retryable:
                            raise _traced(exc, ctx) from None
                        return await self._failover(rt, route, model, ctx, call, stream, req, order, exc)
                up.breaker.record(permit, None, now)
        return await self._failover(rt, route, model, ctx, call, stream, req, order, None)

    async def _failover(self, rt: Runtime, route: Route, model: str, ctx: RequestContext, call: Call[T],
                        stream: bool, req: ChatRequest | None, order: tuple[Deployment, ...],
                        last: GatewayError | None) -> tuple[T, Attempt]:
        tried = len(ctx.attempts)
        blocked: float | None = None  # shortest wait among deployments skipped for an open circuit
        full: Deployment | None = None  # first deployment skipped because its service was full
        settings = rt.config.routing
        for dep, rnd in self._candidates(rt, route, order, ctx, stream, req):
            if tried >= route.max_attempts:
                break
            up = dep.upstream
            if any(a["service"] == up.name and a["model"] == dep.model for a in ctx.attempts) and not rnd:
                continue  # already tried in this round (the fast path's pick, or a fallback repeating it)
            now = time.monotonic()
            permit = up.breaker.allow(now)
            if not permit and rnd:
                wait = up.breaker.retry_after(now)
                if 0 < wait <= settings.backoff_max:  # honour a short Retry-After: wait, then retry
                    await asyncio.sleep(wait)
                    now = time.monotonic()
                    permit = up.breaker.allow(now)
            if not permit:
                wait = up.breaker.retry_after(now)
                blocked = wait if blocked is None else min(blocked, wait)
                continue
            if tried:
                if not self.budget.spend(now):
                    up.breaker.record(permit, None, now)
                    self.notes.warn("budget", "retry budget exhausted: model %s fails without trying %s",
                                    model, up.name)
                    break
                if rnd:
                    await asyncio.sleep(backoff(rnd, settings.backoff, settings.backoff_max))
            if not _take_slot(dep):
                up.breaker.record(permit, None, now)
                full = full or dep
                continue
            tried += 1
            try:
                return await self._attempt(rt, dep, permit, ctx, call)
            except GatewayError as exc:
                if not exc.retryable:
                    raise _traced(exc, ctx) from None
                last = exc
        if last is None and full is not None and tried < route.max_attempts:
            return await self._queue(rt, full, ctx, call)
        if last is not None:
            try:
                raise _traced(last, ctx)
            finally:  # this frame, in the error's traceback, must not hold the error: a reference cycle
                last = None
        if blocked is not None:
            secs = max(1, math.ceil(blocked))
            raise _traced(CircuitOpen(
                f"every deployment of model {model!r} is unavailable (circuit open or rate limited); "
                f"retry in {secs}s", headers={"Retry-After": str(secs)}), ctx)
        raise _traced(UpstreamUnavailable(f"no service can take model {model!r}"), ctx)

    async def _queue(self, rt: Runtime, dep: Deployment, ctx: RequestContext, call: Call[T]) -> tuple[T, Attempt]:
        """Every candidate is at its limit: wait in the first one's queue (bounded in length and time)."""
        up = dep.upstream
        permit = up.breaker.allow(time.monotonic())
        if not permit:
            raise _traced(CircuitOpen(f"service {up.name!r} is unavailable"), ctx)
        if dep.cap is not None and not dep.cap.try_acquire():
            up.breaker.record(permit, None, time.monotonic())
            raise _traced(dep.cap.overloaded("cannot queue"), ctx)
        lim = up.limiter
        began = time.perf_counter()
        try:
            await lim.acquire(lim.fair.tenant(ctx))  # its turn among the tenants waiting (routing/fair.py)
        except BaseException:
            _waited(up, ctx, began)
            if dep.cap is not None:
                dep.cap.release()
            up.breaker.record(permit, None, time.monotonic())
            raise
        _waited(up, ctx, began)
        try:
            return await self._attempt(rt, dep, permit, ctx, call)
        except GatewayError as exc:
            raise _traced(exc, ctx) from None

    def _candidates(self, rt: Runtime, route: Route, order: tuple[Deployment, ...], ctx: RequestContext,
                    stream: bool, req: ChatRequest | None) -> Candidates:
        yield from _healthy_first(order, 0)
        for rnd in range(1, route.retries + 1):
            yield from _healthy_first(route.order(ctx, stream, req), rnd)
        for name in route.fallbacks:
            try:
                fallback = rt.router.route(name)
            except GatewayError:
                continue
            ctx.fallback = name  # lazily: set as the first of its deployments is about to be tried
            yield from _healthy_first(fallback.order(ctx, stream, req), 0)

    async def _attempt(self, rt: Runtime, dep: Deployment, permit: int, ctx: RequestContext,
                       call: Call[T]) -> tuple[T, Attempt]:
        """One upstream call; the slot and permit are held. Raises the call's GatewayError after
        recording it; on success the returned Attempt holds them (and a runtime lease)."""
        up = dep.upstream
        ctx.service, ctx.upstream_model = up.name, dep.model
        ctx.upstream_status = None
        stats = up.stats
        started = ctx.attempt_started = stats.begin()
        trace: RequestTrace | None = ctx.trace
        if trace is not None:  # the attempt's CLIENT span; its traceparent goes upstream
            trace.attempt(dep, ctx)
        try:
            result = await call(dep)
        except BaseException as exc:
            if isinstance(exc, GatewayError):  # before its message is logged, counted or answered
                scrub(exc, up.secrets)
            ms = (time.perf_counter() - started) * 1000.0
            if trace is not None:
                trace.attempt_failed(exc, ctx)
            ok = verdict(exc)
            if isinstance(exc, Overloaded):  # no upstream connection to be had: our overload, not its error
                stats.in_flight -= 1
            else:
                stats.end(started, None, getattr(exc, "message", None) or type(exc).__name__)
            ctx.attempt_started = None
            up.limiter.release()
            if dep.cap is not None:
                dep.cap.release()
            now = time.monotonic()
            up.breaker.record(permit, ok, now)
            if not isinstance(exc, GatewayError):
                raise
            if isinstance(exc, UpstreamError) and exc.upstream_status == 429:
                wait = retry_after_seconds(exc.headers.get("Retry-After"))
                if wait:
                    up.breaker.throttle(now + min(wait, 3600.0))
            ctx.attempts.append({"service": up.name, "model": dep.model, "where": dep.header_key, "ok": False,
                                 "fallback": ctx.fallback, "error": exc.code or exc.type,
                                 "status": getattr(exc, "upstream_status", None) or exc.status, "ms": round(ms, 2)})
            if exc.retryable:
                self.notes.warn(up.name, "service %s failed (%s); trying the next deployment", up.name, exc.message)
            raise
        rt.enter()  # the Attempt's own lease: released by Attempt.close
        ctx.attempts.append({"service": up.name, "model": dep.model, "where": dep.header_key, "ok": True,
                             "fallback": ctx.fallback, "error": None,
                             "status": ctx.upstream_status or 200,
                             "ms": round((time.perf_counter() - started) * 1000.0, 2)})
        if ctx.capture is not None:  # log_bodies: the answer, kept as it passes
            result = ctx.capture.took(result)
        if trace is not None:
            result = trace.answered(result, ctx)
        return result, Attempt(dep, permit, rt)

    # -- the calls -------------------------------------------------------------------------------

    async def chat(self, req: ChatRequest, ctx: RequestContext) -> ChatResponse:
        async def call(d: Deployment) -> ChatResponse:
            return await d.upstream.provider.chat(msgspec.structs.replace(req, model=d.model, stream=False), ctx)

        return await self._whole(req.model, ctx, call, req)

    async def embed(self, req: EmbeddingRequest, ctx: RequestContext) -> EmbeddingResponse:
        async def call(d: Deployment) -> EmbeddingResponse:
            p = d.upstream.provider
            if not d.upstream.embedder:
                raise NotImplementedByService(f"service {d.service!r} does not serve embeddings")
            assert isinstance(p, Embedder)
            return await p.embed(msgspec.structs.replace(req, model=d.model), ctx)

        return await self._whole(req.model, ctx, call, None)

    async def _whole(self, model: str, ctx: RequestContext, call: Call[T], req: ChatRequest | None) -> T:
        rt = self.runtime
        rt.enter()
        try:
            result, att = await self._run(rt, model, ctx, call, False, req)
        finally:
            rt.leave()
        att.close(True)
        self.finish(ctx)  # a whole answer: the upstream's part is over
        return result

    async def stream(self, req: ChatRequest, ctx: RequestContext) -> AsyncGenerator[ChatChunk, None]:
        """Fails over while opening the stream (until its first chunk); after that, errors reach
        the caller."""
        relay = await self.open_stream(req, ctx)
        try:
            async for chunk in relay:
                yield chunk
        finally:
            await relay.aclose()

    async def open_stream(self, req: ChatRequest, ctx: RequestContext) -> Relay[ChatChunk]:
        """The stream opened (failed over until its first chunk): errors so far raise here."""
        rt = self.runtime
        rt.enter()
        try:
            (it, first), att = await self._run(rt, req.model, ctx, self._stream_call(req, ctx), True, req)
        finally:
            rt.leave()
        return Relay(first, it, att)

    def _stream_call(self, req: ChatRequest, ctx: RequestContext) -> Call[tuple[AsyncGenerator[ChatChunk, None],
                                                                                 ChatChunk | None]]:
        async def open_stream(d: Deployment) -> tuple[AsyncGenerator[ChatChunk, None], ChatChunk | None]:
            it = d.upstream.provider.stream(msgspec.structs.replace(req, model=d.model, stream=True), ctx)
            try:
                first = await anext(it)
            except StopAsyncIteration:
                return it, None
            except BaseException:
                await it.aclose()
                raise
            return it, first

        return open_stream

    async def forward(
        self, dialect: str, path: str, rewrite: Rewrite, req: ChatRequest, ctx: RequestContext,
        untranslatable: GatewayError | None = None,
    ) -> RawResponse | ChatResponse | AsyncGenerator[ChatChunk, None]:
        """A request in `dialect`, as bytes: passed through (`rewrite` makes the few edits) when the
        deployment takes that dialect, otherwise translated through the canonical `req` (decided per
        attempt). `untranslatable`: why `req` cannot stand for the request (it holds what the
        canonical types cannot): raised for a deployment of another dialect."""
        open_canonical = self._stream_call(req, ctx)

        async def call(d: Deployment) -> RawResponse | ChatResponse | tuple[Any, Any]:
            up = d.upstream
            if up.forwards != dialect:
                if untranslatable is not None:
                    raise untranslatable
                if req.stream:
                    return await open_canonical(d)
                return await up.provider.chat(msgspec.structs.replace(req, model=d.model), ctx)
            out = rewrite(up, d.model if d.model != req.model else None)
            fwd: Passthrough = up.provider  # type: ignore[assignment]  # up.forwards said so
            raw = await fwd.forward(path, out, req.stream, ctx)
            if raw.chunks is not None:  # read the first bytes inside the attempt: a failure now fails over
                try:
                    first = await anext(raw.chunks)
                except StopAsyncIteration:
                    first = b""
                except BaseException:
                    await raw.chunks.aclose()
                    raise
                return raw, first
            return raw

        rt = self.runtime
        rt.enter()
        try:
            result, att = await self._run(rt, req.model, ctx, call, req.stream, req)
        finally:
            rt.leave()
        if isinstance(result, tuple):
            head, first = result
            if isinstance(head, RawResponse):
                assert head.chunks is not None
                head.chunks = Relay(first or None, head.chunks, att)
                return head
            return Relay(first, head, att)
        att.close(True)
        self.finish(ctx)
        return result


def _take_slot(dep: Deployment) -> bool:
    cap = dep.cap
    if cap is not None and not cap.try_acquire():
        return False
    if not dep.upstream.limiter.try_acquire():
        if cap is not None:
            cap.release()
        return False
    return True


def _waited(up: Upstream, ctx: RequestContext, began: float) -> None:
    seconds = time.perf_counter() - began
    ctx.queue_wait_ms += seconds * 1000.0
    up.stats.queue_wait.observe(seconds)


def _healthy_first(order: tuple[Deployment, ...], rnd: int) -> Candidates:
    """`order`, with deployments whose last health check failed moved to the end."""
    later = None
    for d in order:
        if d.upstream.health.reachable is False:
            later = [d] if later is None else [*later, d]
            continue
        yield d, rnd
    for d in later or ():
        yield d, rnd


def _traced(exc: GatewayError, ctx: RequestContext) -> GatewayError:
    if ctx.attempts:
        exc.headers = {**exc.headers, "X-Clawdbot-Attempts": attempts_header(ctx)}
    return exc


def attempts_header(ctx: RequestContext) -> str:
    """`service/model;status=200;ms=3.1, ...`: one item per attempt, in order (RFC 8941 list style)."""
    attempts = ctx.attempts
    if len(attempts) == 1 and attempts[0]["ok"]:  # the common case, kept cheap
        a = attempts[0]
        return f"{a['where']};status={a['status']};ms={a['ms']:.1f}"
    parts = []
    for a in attempts:
        error = f";error={a['error']}" if a["error"] else ""
        parts.append(f"{a['where']};status={a['status']}{error};ms={a['ms']:.1f}")
    return ", ".join(parts)

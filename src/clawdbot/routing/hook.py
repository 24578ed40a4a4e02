"""The user's routing hook, in the seed's shape:

    def route_request(request, context):
        if context.time_of_day == "peak" and request.priority == "low":
            return "text_generator_v2"  # the low-cost model
        return "text_generator_v1"

configured per `models:` entry as `hook: "module:function"` (or `"path/to/file.py:function"`, relative
to the working directory). It returns a service name (or None: no opinion); that service goes first,
the entry's strategy orders the rest as failover. A hook that raises or names an unknown service is
ignored for that request (the strategy decides) and the reason is logged, at most every 10 s. It
runs on the event loop: keep it fast and never block in it."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import importlib.util
import inspect
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from clawdbot.config.loader import file_signature
from clawdbot.core.context import RequestContext
from clawdbot.core.types import ChatRequest
from clawdbot.routing.notes import Notes
from clawdbot.routing.upstream import Deployment, Upstream
from clawdbot.routing.windows import TimeWindows

log = logging.getLogger("clawdbot.routing")
HookFn = Callable[[Any, Any], Any]


class HookError(ValueError):
    def __init__(self, message: str, model: str | None = None) -> None:
        super().__init__(message)
        self.model = model  # the `models:` entry whose hook failed (its config line is reported)


class LoadedHook(NamedTuple):
    spec: str
    fn: HookFn
    signature: tuple[int, int, int] | None  # the file's (mtime, size, inode) for `file.py:function`


def load_hook(spec: str, previous: LoadedHook | None = None) -> LoadedHook:
    """`module:function` or `path/file.py:function` -> the function. A hook file is executed again
    only when it changed since `previous` loaded it (a reload does not re-run an unchanged
    module's top level); a module is imported once, as Python does."""
    where, _, name = spec.rpartition(":")
    signature = None
    try:
        if where.endswith(".py") or os.sep in where:
            path = os.path.abspath(where)
            signature = file_signature(path)
            if previous is not None and previous.spec == spec and signature is not None \
                    and previous.signature == signature:
                return previous
            mod_name = "clawdbot_hook_" + hashlib.sha1(path.encode()).hexdigest()[:12]
            loader_spec = importlib.util.spec_from_file_location(mod_name, path)
            if loader_spec is None or loader_spec.loader is None:
                raise HookError(f"cannot load hook file {where!r}")
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except HookError:
        raise
    except Exception as exc:  # the user's module failed to import: the config is rejected
        raise HookError(f"cannot import hook {spec!r}: {type(exc).__name__}: {exc}") from exc
    fn = getattr(module, name, None)
    if not callable(fn):
        raise HookError(f"hook {spec!r}: {where} has no function {name!r}")
    if inspect.iscoroutinefunction(fn):
        raise HookError(f"hook {spec!r} must be a plain function (it runs on the event loop), not async")
    return LoadedHook(spec, fn, signature)


class RouteRequest:
    """The request as a hook sees it (the seed's `request`)."""

    __slots__ = ("messages", "model", "principal", "priority", "request_id", "stream", "tag")

    def __init__(self, model: str, ctx: RequestContext, stream: bool, req: ChatRequest | None) -> None:
        self.model = model
        self.priority = ctx.priority
        self.tag = ctx.tag
        self.stream = stream
        self.principal = ctx.principal
        self.request_id = ctx.request_id
        self.messages = req.messages if req is not None else []


class ServiceView:
    """Live numbers of one service: `in_flight`, `queued`, `latency_ms` / `ttft_ms` (moving
    averages), `error_rate` (last minute), `cost` ((input, output) per million tokens in this
    model's entry, or None), `healthy`, `breaker` ("closed" | "open" | "half_open")."""

    __slots__ = ("_dep", "_up")

    def __init__(self, up: Upstream, dep: Deployment | None) -> None:
        self._up, self._dep = up, dep

    name = property(lambda self: self._up.name)
    in_flight = property(lambda self: self._up.stats.in_flight)
    queued = property(lambda self: self._up.limiter.waiting)
    latency_ms = property(lambda self: self._up.stats.ewma_ms)
    ttft_ms = property(lambda self: self._up.stats.ewma_ttft_ms)
    error_rate = property(lambda self: self._up.stats.error_rate())
    cost = property(lambda self: self._dep.cost if self._dep is not None else None)
    breaker = property(lambda self: self._up.breaker.state)

    @property
    def healthy(self) -> bool:
        return self._up.healthy and self._up.breaker.state != "open"


class _Services(Mapping[str, ServiceView]):
    def __init__(self, upstreams: Mapping[str, Upstream], deps: Mapping[str, Deployment]) -> None:
        self._ups, self._deps = upstreams, deps

    def __getitem__(self, name: str) -> ServiceView:
        return ServiceView(self._ups[name], self._deps.get(name))

    def __iter__(self) -> Iterator[str]:
        return iter(self._ups)

    def __len__(self) -> int:
        return len(self._ups)


class RouteContext:
    """The seed's `context`: `time_of_day` (the first `routing.windows` entry now falls in, else
    "off_peak"), `windows` (all it falls in), `now` (aware datetime in `routing.timezone`), `model`,
    `deployments` (this entry's service names, in priority order) and `services[name]`."""

    __slots__ = ("_windows", "deployments", "model", "services")

    def __init__(self, model: str, windows: TimeWindows, upstreams: Mapping[str, Upstream],
                 deps: tuple[Deployment, ...]) -> None:
        self.model = model
        self._windows = windows
        self.deployments = [d.service for d in deps]
        self.services: Mapping[str, ServiceView] = _Services(upstreams, {d.service: d for d in deps})

    @property
    def time_of_day(self) -> str:
        return self._windows.label()

    @property
    def windows(self) -> frozenset[str]:
        return self._windows.active()

    @property
    def now(self) -> dt.datetime:
        return self._windows.now()

    @property
    def hour(self) -> int:
        return self._windows.now(time.time()).hour


class Hook:
    def __init__(self, spec: str, entry: str, fn: HookFn, context: RouteContext) -> None:
        self.spec = spec
        self.entry = entry
        self.fn = fn
        self.context = context  # one per entry: its properties read live numbers
        self.notes = Notes(log)

    def choose(self, request: RouteRequest, known: Mapping[str, Upstream]) -> str | None:
        try:
            name = self.fn(request, self.context)
        except Exception as exc:
            self.notes.warn(self.entry, "routing hook %s of model %s raised %s: %s; using its strategy",
                            self.spec, self.entry, type(exc).__name__, exc)
            return None
        if name is None:
            return None
        if not isinstance(name, str) or name not in known:
            self.notes.warn(self.entry, "routing hook %s of model %s returned %r, which is not a service; "
                            "using its strategy", self.spec, self.entry, name)
            return None
        return name

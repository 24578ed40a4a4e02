"""The policy stages every client goes through, whichever dialect or page it came from:

    admit (allowed models, rate limits, parallel limits, budgets)  ->  plugins' pre hooks
    ->  the gateway (routing, attempts)  ->  plugins' post / chunk hooks (in reverse)
    ->  end: settle (spend, limits), the service's books, the access log: once per request

/v1 (api/), the chat page's runs (web/runs.py) and every later dialect call these; none of them
meters, counts or logs a request on its own."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from clawdbot.config.loader import error_at
from clawdbot.config.schema import Config, Telemetry
from clawdbot.config.schema import RequestLog as RequestLogSettings
from clawdbot.core import accounting
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import BadRequest, GatewayError
from clawdbot.core.types import EmbeddingRequest
from clawdbot.observability.access import AccessLog
from clawdbot.observability.request_log import RequestLog, body_models
from clawdbot.observability.tracing import TelemetryUnavailable, Tracer
from clawdbot.pipeline.capture import BodyCapture
from clawdbot.pipeline.gateway import Gateway
from clawdbot.pipeline.plugins import Chain, EntryError, Run, build_chain
from clawdbot.pipeline.reload import ReloadError
from clawdbot.plugins.base import PluginConfigError
from clawdbot.plugins.registry import SettingsError, decode_settings
from clawdbot.state.responses_base import ResponseStore
from clawdbot.tenancy.errors import ModelNotAllowed
from clawdbot.tenancy.metering import Metering
from clawdbot.tenancy.principal import Principal

log = logging.getLogger("clawdbot.pipeline")


class PluginHost:
    """What plugins may use of the gateway (plugins/base.py Host)."""

    def __init__(self, gateway: Gateway, data_dir: str, config_dir: str, redis_url: str | None,
                 redis_prefix: str) -> None:
        self._gateway = gateway
        self.data_dir = data_dir
        self.config_dir = config_dir
        self.redis_url = redis_url
        self.redis_prefix = redis_prefix

    async def embed(self, model: str, inputs: list[str], ctx: RequestContext) -> list[list[float]]:
        # its own context: the embedding call must not overwrite the chat request's service and counts
        sub = RequestContext(ctx.request_id, upstream_request_id=ctx.upstream_request_id, principal=ctx.principal,
                             identity=ctx.identity)
        trace = ctx.trace
        if trace is None:
            return (await self._gateway.embed(EmbeddingRequest(model=model, input=inputs), sub)).vectors
        started = trace.now_ns()
        try:
            resp = await self._gateway.embed(EmbeddingRequest(model=model, input=inputs), sub)
        except BaseException as exc:
            trace.side_call("embeddings", model, sub, started, exc)
            raise
        sub.prompt_tokens = resp.usage.prompt_tokens
        accounting.answered_by(sub, resp.model)
        trace.side_call("embeddings", model, sub, started, None)
        return resp.vectors


def label_names(config: Config) -> tuple[set[str], dict[str, str]]:
    """What /metrics may name (observability/requests.py): the models a client may ask for by a
    configured name (model entries, service names, their model ids, the entries' service/model
    targets), and each service's type."""
    models = set(config.models) | {s.name for s in config.services}
    models |= {s.model_id for s in config.services if s.model_id}
    for name in config.models:
        models.update(t for t in config.model_targets(name) or () if "/" in t)
    return models, {s.name: s.type for s in config.services}


def entry_error(exc: EntryError, path: str | None) -> Exception:
    """A plugin entry that cannot be served, at its file:line when the config came from a file."""
    if path:
        return error_at(path, exc.path, str(exc))
    where = ".".join(str(p) for p in exc.path)
    return ValueError(f"configuration error at {where}: {exc}")


class Pipeline:
    def __init__(self, gateway: Gateway, metering: Metering, access: AccessLog, host: PluginHost,
                 config_path: str | None = None, responses: ResponseStore | None = None,
                 request_log: RequestLog | None = None, tracer: Tracer | None = None,
                 tracer_factory: Callable[[Telemetry], Tracer | None] | None = None) -> None:
        """Raises ConfigError (a plugin entry that cannot be served, at its file:line)."""
        self.gateway = gateway
        self.responses = responses  # stored responses (api/responses.py); None: none are kept
        self.metering = metering
        self.access = access
        self.host = host
        self.config_path = config_path
        try:
            self.chain: Chain = build_chain(gateway.config.plugins, host)
        except EntryError as exc:
            raise entry_error(exc, config_path) from None
        self._plugins_config = gateway.config.plugins
        gateway.reload_checks.append(self._prepare)
        self.requests = gateway.metrics.requests
        self._relabel(gateway.config)()
        gateway.reload_checks.append(self._relabel)
        # every request's record (observability/request_log.py); None: a log that stores nothing
        # (the live stream still works)
        self.request_log = request_log or RequestLog(RequestLogSettings())
        self.request_log.body_models = body_models(gateway.config)
        gateway.metrics.request_log = self.request_log.counts
        # OpenTelemetry spans (observability/tracing.py); None: tracing is off. A reload that
        # changes `telemetry:` builds a new tracer with `tracer_factory` and retires the old one.
        self.tracer = tracer
        self._tracer_factory = tracer_factory
        self._telemetry = gateway.config.telemetry
        gateway.reload_checks.append(self._retrace)
        gateway.reload_checks.append(self._log_bodies)
        # the MCP tool loop (mcp/agent.py), set by mcp/build.py when `mcp:` lists servers: /v1's
        # `X-Clawdbot-Tools` and the chat page's `tools: true` run it; None: neither does anything
        self.agent: Any = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.gateway.start()
        await self.metering.start()
        await self.chain.start()
        self.request_log.start()

    async def close(self) -> None:
        await self.metering.close()  # spend still queued reaches the database (or the journal)
        await self.request_log.close()  # records still queued are written
        if self.responses is not None:
            await self.responses.close()
        await self.chain.close()
        await self.gateway.close()
        if self.tracer is not None:
            await self.tracer.close()  # the spans still buffered are exported

    def _prepare(self, config: Config) -> Callable[[], None] | None:
        """A reload: the new plugin chain is built (and refused, with file:line, if it cannot be
        served) before the runtime swaps; requests in flight finish with the chain they started with."""
        if config.plugins == self._plugins_config:
            return None
        try:
            chain = build_chain(config.plugins, self.host)
        except EntryError as exc:
            raise ReloadError(f"the new config cannot be served: {entry_error(exc, self.config_path)}") from None

        def commit() -> None:
            old, self.chain = self.chain, chain
            self._plugins_config = config.plugins
            self.gateway.spawn(chain.start())
            old.retire(self.gateway.spawn)

        return commit

    def _retrace(self, config: Config) -> Callable[[], None] | None:
        """A reload that changes `telemetry:`: the new tracer (refused when the extra is missing)
        serves the requests that start after it; the old one closes once its own have ended."""
        if config.telemetry == self._telemetry or self._tracer_factory is None:
            return None
        try:
            tracer = self._tracer_factory(config.telemetry)
        except TelemetryUnavailable as exc:
            raise ReloadError(f"the new config cannot be served: {exc}") from None

        def commit() -> None:
            old, self.tracer = self.tracer, tracer
            self._telemetry = config.telemetry
            if old is not None:
                self.gateway.spawn(old.retire())

        return commit

    def _relabel(self, config: Config) -> Callable[[], None]:
        m = config.metrics
        return lambda: self.requests.configure(*label_names(config), m.key_labels, m.max_key_series)

    def _log_bodies(self, config: Config) -> Callable[[], None]:
        models = body_models(config)
        return lambda: setattr(self.request_log, "body_models", models)

    def check_key_metadata(self, metadata: Any) -> None:
        """A key's `metadata.plugins` overrides, checked before the key is saved: each names a
        configured plugin instance and is `false`, `true` or settings that plugin accepts."""
        if isinstance(metadata, dict) and not isinstance(metadata.get("log_bodies", False), bool):
            raise BadRequest("metadata.log_bodies must be true or false.", param="metadata.log_bodies",
                             code="invalid_value")
        plugins = metadata.get("plugins") if isinstance(metadata, dict) else None
        if plugins is None:
            return
        if not isinstance(plugins, dict):
            raise BadRequest("metadata.plugins must be an object: {<plugin id>: false | {settings}}.",
                             param="metadata.plugins", code="invalid_value")
        slots = {s.plugin.id: s for s in self.chain.slots}
        for pid, value in plugins.items():
            slot = slots.get(pid)
            where = f"metadata.plugins.{pid}"
            if slot is None:
                raise BadRequest(f"{where}: no plugin {pid!r} is configured (configured: "
                                 f"{', '.join(sorted(slots)) or 'none'}).", param=where, code="invalid_value")
            if isinstance(value, bool):
                continue
            if not isinstance(value, dict):
                raise BadRequest(f"{where} must be false, true or an object of settings.", param=where,
                                 code="invalid_value")
            try:
                decode_settings(type(slot.plugin), {**slot.entry.with_, **value})
            except SettingsError as exc:  # names the setting: metadata.plugins.cache.ttl
                field = ".".join([where, *(str(p) for p in exc.path)])
                raise BadRequest(f"{field}: {exc}", param=field, code="invalid_value") from None
            except PluginConfigError as exc:
                raise BadRequest(f"{where}: {exc}", param=where, code="invalid_value") from None

    # -- the stages ------------------------------------------------------------------------------

    async def admit(self, ctx: RequestContext, principal: Principal, model: str, prompt_estimate: Callable[[], int],
                    completion_cap: int | None) -> list[tuple[bytes, bytes]]:
        """Allowed models, then rate limits, parallel limits and budgets (tenancy/metering.py).
        Returns the rate-limit headers for the response; raises when the request may not run."""
        ctx.model = model  # a refusal is logged and counted under the model asked for
        if not principal.may_use(model):
            raise ModelNotAllowed(model, principal.allowed_models or frozenset())
        metering = self.metering
        if not metering.applies(principal, model):
            return []
        return await metering.admit(ctx, principal, self.gateway.runtime.router, model, prompt_estimate(),
                                    completion_cap)

    def meters(self, principal: Principal) -> bool:
        """Is there anything to admit for this caller (a virtual key, or models with limits)?"""
        return principal.key_id is not None or self.metering.limits_models(self.gateway.config)

    def plugins(self, ctx: RequestContext, model: str) -> Run | None:
        """The plugins that run on this request (None: none, the common case). The chain is held
        until `end`. The request log's body capture starts here too, when the key or the model
        has `log_bodies` on."""
        rl = self.request_log
        if rl.store is not None and rl.wants_bodies(ctx, model):
            ctx.capture = BodyCapture(rl.settings.max_body_bytes)
        chain = self.chain
        if not chain:
            return None
        chosen = chain.select(ctx, model)
        if not chosen:
            return None
        chain.enter()
        ctx.plugin_chain = chain
        return Run(chosen, ctx)

    async def failed(self, run: Run | None, exc: GatewayError) -> None:
        if run is not None and run.ran:
            await run.error(exc)

    async def end(self, ctx: RequestContext, method: str, path: str, status: int) -> None:
        """The request is over, however it ended: charge it, close the service's books, log it. Once."""
        if ctx.ended:
            return
        ctx.ended = True
        if ctx.meter is not None:
            await self.metering.settle(ctx)
        self.gateway.finish(ctx)
        self.requests.record(ctx, path, status)
        self.request_log.record(ctx, method, path, status)
        chain: Any = ctx.plugin_chain
        if chain is not None:
            ctx.plugin_chain = None
            chain.leave()
        self.access.emit(ctx, method, path, status)
        if ctx.trace is not None:
            ctx.trace.end(ctx, status)

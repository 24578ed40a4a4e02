"""Rate limits, parallel limits, budgets and spend on the request path.

`admit` runs after authentication, before dispatch: it checks the caller's key, user and team (the
tightest level decides) and the model's own limits, reserves the worst-case cost in every budget
that applies, and leaves a `Ticket` on the request. `settle` runs when the request is over (the
stream ended, failed or the client left): it charges the real usage, frees the parallel slots and
queues one spend record. Requests with nothing to check (the master key, no model limits) cost one
attribute test (docs/limits.md)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, NamedTuple, cast

from clawdbot.config.schema import Config, ModelEntry
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import GatewayError, Overloaded
from clawdbot.routing.router import Route, Router
from clawdbot.state.spend_base import SpendRecord
from clawdbot.tenancy.budgets import Budgets, BudgetSubject, Refusal, Reservation, bucket_name
from clawdbot.tenancy.costs import MICROS, Price, to_micros
from clawdbot.tenancy.errors import BudgetExceeded, NotPriced, RateLimited, StateUnavailable, TooManyParallel
from clawdbot.tenancy.limits import Decision, Limiter, Subject
from clawdbot.tenancy.pricing import Pricing
from clawdbot.tenancy.principal import Principal
from clawdbot.tenancy.spend import SpendWriter, new_record_id, now_ms

if TYPE_CHECKING:
    from clawdbot.tenancy.metering_redis import RedisMetering

log = logging.getLogger("clawdbot.metering")

Scope = Literal["key", "user", "team"]
Seed = Callable[[Scope, str, int], Awaitable[int]]  # (scope, id, since_ms) -> micro-dollars spent


class Ticket:
    """What `admit` reserved for one request; `settle` gives it back."""

    __slots__ = ("charged", "decision", "model", "owner", "parallel", "principal", "prompt", "reservation", "route")

    def __init__(self, owner: Metering, principal: Principal, model: str, route: Route | None, prompt: int) -> None:
        self.owner = owner
        self.principal = principal
        self.model = model
        self.route = route
        self.prompt = prompt  # estimated prompt tokens
        self.decision: Decision | None = None
        self.reservation: Reservation | None = None
        self.parallel: tuple[str, ...] = ()
        self.charged: Charge | None = None

    def answered(self, ctx: RequestContext) -> None:
        """The answer's last bytes are about to go to the client (api/exchange.py): its spend is
        journaled first, so a process killed right after the client has its answer has it on disk."""
        self.owner.charge(ctx, self)


class Charge(NamedTuple):
    answered: bool  # an answer came (a first token, or usage: embeddings have no tokens to stream)
    prompt: int
    completion: int
    cost: int  # micro-dollars


class Parallel:
    """Requests in flight per key, user and team in this process."""

    def __init__(self) -> None:
        self._inflight: dict[str, int] = {}

    def take(self, limits: Sequence[tuple[str, int]]) -> str | None:
        """All or nothing: returns the name of the level that is full, or None when every level
        took one more request."""
        for name, limit in limits:
            if self._inflight.get(name, 0) >= limit:
                return name
        for name, _ in limits:
            self._inflight[name] = self._inflight.get(name, 0) + 1
        return None

    def give(self, names: Sequence[str]) -> None:
        for name in names:
            left = self._inflight.get(name, 0) - 1
            if left > 0:
                self._inflight[name] = left
            else:
                self._inflight.pop(name, None)


def _requests_full(decision: Decision) -> bool:
    """Did the request count (not the tokens) of the refusing subject run out?"""
    for subject, usage in zip(decision.subjects, decision.usage, strict=True):
        if subject == decision.limited_by:
            return usage.rpm > 0 and usage.requests >= usage.rpm
    return True


def period_start_ms(period: str, now_s: float) -> int:
    if period == "total":
        return 0
    t = datetime.fromtimestamp(now_s, UTC)
    start = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        start = start.replace(day=1)
    return int(start.timestamp() * 1000)


def _usd(micros: int) -> str:
    return f"${micros / MICROS:.4f}"


class Metering:
    def __init__(self, config: Config, limiter: Limiter, budgets: Budgets, writer: SpendWriter | None = None,
                 seed: Seed | None = None, clock: Callable[[], float] | None = None,
                 closing: Callable[[], Awaitable[None]] | None = None, joint: RedisMetering | None = None) -> None:
        self.limiter = limiter
        self.budgets = budgets
        self.writer = writer
        self._seed = seed
        self._seeded: set[str] = set()
        self._seeding: dict[str, asyncio.Lock] = {}
        self._parallel = Parallel()
        self._closing = closing  # the Redis client's close, when limits and budgets live there
        self.joint = joint  # Redis: limits and budgets in one round trip each way
        self._clock = clock or (lambda: datetime.now(UTC).timestamp())
        self.configure(config)

    def limits_models(self, config: Config) -> bool:
        """Does the current config limit any model? (Re-reads a reloaded config first.)"""
        if config is not self._config:
            self.configure(config)
        return bool(self.model_limits)

    def configure(self, config: Config) -> None:
        """(Re)read the parts of the config metering uses: model limits, prices, defaults."""
        self._config = config
        self.pricing = Pricing(config)
        self.default_max_tokens = config.metering.default_max_tokens
        self.model_limits: dict[str, Subject] = {
            name: ("model", name, entry.rpm or 0, entry.tpm or 0)
            for name, entry in config.models.items()
            if isinstance(entry, ModelEntry) and (entry.rpm or entry.tpm)
        }

    def applies(self, principal: Principal, model: str | None) -> bool:
        """Anything to check or record? The hot path's only cost for the master key."""
        return bool(principal.key_id) or (model is not None and model in self.model_limits)

    # -- before dispatch -------------------------------------------------------------------------

    async def admit(self, ctx: RequestContext, principal: Principal, router: Router, model: str,
                    prompt: int, max_tokens: int | None) -> list[tuple[bytes, bytes]]:
        """Raises RateLimited, TooManyParallel, BudgetExceeded or NotPriced; leaves a Ticket on
        `ctx.meter` and returns the rate-limit headers for the response."""
        if principal.key_id and self.writer is not None and self.writer.backlog >= self.writer.max_queue:
            raise Overloaded("Spend records are not being written fast enough; try again shortly.",
                             headers={"Retry-After": "1"})
        if router.config is not self._config:
            self.configure(router.config)
        try:
            route = router.route(model)
        except GatewayError:
            return []  # unknown model: the handler answers 404 with close matches, nothing to hold
        ticket = Ticket(self, principal, model, route, prompt)
        names = tuple(f"{q.scope}:{q.id}" for q in principal.quotas if q.max_parallel is not None)
        if names:
            full = self._parallel.take([(f"{q.scope}:{q.id}", q.max_parallel) for q in principal.quotas
                                        if q.max_parallel is not None])
            if full is not None:
                raise TooManyParallel(f"Too many requests in flight for {full.replace(':', ' ', 1)}; "
                                      "wait for one to finish.", headers={"Retry-After": "1"})
            ticket.parallel = names
        try:
            await self._check(ticket, principal, router, model, prompt, max_tokens)
        except GatewayError:
            self._parallel.give(ticket.parallel)
            raise
        except Exception as exc:  # Redis (or the spend table behind a seed) unreachable: fail closed
            self._parallel.give(ticket.parallel)
            self.reseed()  # Redis may come back without its data
            log.error("limits and budgets unavailable (%s: %s)", type(exc).__name__, str(exc)[:200])
            raise StateUnavailable("Rate limits and budgets cannot be checked right now; try again shortly.",
                                   headers={"Retry-After": "1"}) from None
        except BaseException:
            self._parallel.give(ticket.parallel)
            raise
        ctx.meter = ticket
        if ticket.reservation is not None:  # the bound holds only if no more is answered: api/chat.py cuts there
            ctx.completion_cap = max_tokens if max_tokens is not None else self.default_max_tokens
        if ticket.decision is None:
            return []
        return [(k.encode(), v.encode()) for k, v in ticket.decision.headers.items()]

    async def _check(self, ticket: Ticket, principal: Principal, router: Router, model: str, prompt: int,
                     max_tokens: int | None) -> None:
        """Budgets and rate limits, all or nothing: whatever one of them held is given back when
        the other refuses. With Redis both go in one round trip (tenancy/metering_redis.py)."""
        subjects: list[Subject] = [(q.scope, q.id, q.rpm or 0, q.tpm or 0) for q in principal.quotas if q.rpm or q.tpm]
        limit = self.model_limits.get(model)
        if limit is not None:
            subjects.append(limit)
        budget_subjects, worst = await self._budget_plan(ticket, principal, router, prompt, max_tokens)
        tokens = prompt + (max_tokens or 0)
        decision: Decision | None = None
        held: Reservation | Refusal | None = None
        if self.joint is not None and subjects and budget_subjects:
            decision, held = await self.joint.admit(subjects, tokens, budget_subjects, worst)
        else:
            if budget_subjects:
                held = await self.budgets.reserve(budget_subjects, worst)
            if subjects and not isinstance(held, Refusal):
                try:
                    decision = await self.limiter.acquire(subjects, tokens)
                except BaseException:
                    if isinstance(held, Reservation):
                        await self.budgets.release(held)
                    raise
                if not decision.allowed and isinstance(held, Reservation):
                    await self.budgets.release(held)
        if isinstance(held, Refusal):
            scope, sid, period, cap = held.subject
            raise BudgetExceeded(
                f"Budget exceeded for {scope} {sid}: {_usd(held.spent + held.reserved)} of {_usd(cap)} "
                f"({period}) is spent or held, and this request may cost up to {_usd(held.amount)}.",
                headers={"x-should-retry": "false"})
        if decision is not None and not decision.allowed:
            self._refuse(decision, subjects, tokens)
        ticket.reservation = held
        ticket.decision = decision

    @staticmethod
    def _refuse(decision: Decision, subjects: Sequence[Subject], tokens: int) -> None:
        headers = dict(decision.headers)
        scope, sid, rpm, tpm = decision.limited_by or subjects[0]
        which = f"{scope} {sid}" if scope != "model" else f"model {sid!r}"
        if math.isinf(decision.retry_after_s):
            raise RateLimited(f"This request ({tokens} tokens) is larger than the {which} may use per minute "
                              f"(TPM {tpm}); send a smaller one.", "tokens", headers)
        retry = max(1, math.ceil(decision.retry_after_s))
        headers["Retry-After"] = str(retry)
        kind = "requests" if rpm and _requests_full(decision) else "tokens"
        label = f"requests per min (RPM): limit {rpm}" if kind == "requests" else f"tokens per min (TPM): limit {tpm}"
        raise RateLimited(f"Rate limit reached for {which} on {label}. Please try again in {retry}s.", kind, headers)

    async def _budget_plan(self, ticket: Ticket, principal: Principal, router: Router, prompt: int,
                           max_tokens: int | None) -> tuple[list[BudgetSubject], int]:
        """The budgets that apply and the request's worst-case cost (their periods seeded)."""
        subjects: list[BudgetSubject] = [
            (q.scope, q.id, q.budget_period or "total", to_micros(q.budget_usd))
            for q in principal.quotas if q.budget_usd is not None
        ]
        if not subjects:
            return subjects, 0
        price = self._worst_price(ticket.route, router)
        if price is None:
            raise NotPriced(f"The model {ticket.model!r} has no price in `costs:` (or a deployment's `cost`), "
                            "so a budget cannot be enforced on it.", param="model")
        completion = max_tokens if max_tokens is not None else self.default_max_tokens
        worst = to_micros((prompt * price.input_per_m + completion * price.output_per_m) / 1_000_000)
        await self._seed_buckets(subjects)
        return subjects, worst

    def _worst_price(self, route: Route | None, router: Router) -> Price | None:
        routes: list[Route] = []
        todo = [route] if route is not None else []
        while todo and len(routes) < 16:  # the entry and its fallbacks, each once
            r = todo.pop()
            if r in routes:
                continue
            routes.append(r)
            for name in r.fallbacks:
                try:
                    todo.append(router.route(name))
                except GatewayError:
                    continue
        return self.pricing.worst(routes)

    def reseed(self) -> None:
        """Redis may have restarted without its data: seed each budget period from the spend table
        again when it is next met (seeding only fills a bucket Redis does not have)."""
        self._seeded.clear()

    async def _seed_buckets(self, subjects: Sequence[BudgetSubject]) -> None:
        """The first time this process meets a budget period, start it from what the database says
        was spent in it (a restart, or spend made before this process existed)."""
        if self._seed is None:
            return
        now = self._clock()
        for subject in subjects:
            name = bucket_name(subject, now)
            if name in self._seeded:
                continue
            lock = self._seeding.setdefault(name, asyncio.Lock())
            async with lock:
                if name in self._seeded:
                    continue
                scope, sid, period, _ = subject
                try:
                    spent = await self._seed(cast(Scope, scope), sid, period_start_ms(period, now))
                except Exception as exc:  # the database is down: a budget cannot start from nothing
                    log.error("budget seed for %s %s failed (%s)", scope, sid, type(exc).__name__)
                    raise StateUnavailable("Budget state is unreachable; try again shortly.",
                                           headers={"Retry-After": "1"}) from None
                await self.budgets.seed(subject, spent)
                self._seeded.add(name)
                self._seeding.pop(name, None)

    # -- after the answer ------------------------------------------------------------------------

    async def settle(self, ctx: RequestContext) -> None:
        ticket = ctx.meter
        if not isinstance(ticket, Ticket):
            return
        ctx.meter = None
        self._parallel.give(ticket.parallel)
        answered, prompt, completion, cost = self.charge(ctx, ticket)
        tokens = 0 if ctx.cost_free else prompt + completion  # no model spent them
        charge = cost if answered else 0  # nothing answered: the hold is only released
        try:
            if self.joint is not None and ticket.decision is not None and ticket.reservation is not None:
                await self.joint.settle(ticket.decision, tokens, ticket.reservation, charge)
            else:
                if ticket.decision is not None:
                    await self.limiter.settle(ticket.decision, tokens)
                if ticket.reservation is not None:
                    await self.budgets.settle(ticket.reservation, charge)
        except Exception as exc:  # Redis went away mid-request: the window keeps the estimate, the hold expires
            log.error("settling request %s failed (%s: %s); its budget hold expires on its own",
                      ctx.request_id, type(exc).__name__, str(exc)[:200])

    def charge(self, ctx: RequestContext, ticket: Ticket) -> Charge:
        """What the request cost, its spend record journaled: once, at the answer's end or at settle."""
        if ticket.charged is not None:
            return ticket.charged
        answered = ctx.first_token_at is not None or ctx.completion_tokens is not None or ctx.prompt_tokens is not None
        prompt = ctx.prompt_tokens if ctx.prompt_tokens is not None else (ticket.prompt if answered else 0)
        completion = ctx.completion_tokens if ctx.completion_tokens is not None else ctx.chunks
        cost = 0
        if answered and ctx.service is not None and not ctx.cost_free:  # a cache hit costs nothing
            price = self.pricing.served(ticket.model, ticket.route, ctx.service, ctx.upstream_model)
            if price is not None:
                cost = to_micros((prompt * price.input_per_m + completion * price.output_per_m) / 1_000_000)
        ctx.cost_micros = cost if answered else 0
        p = ticket.principal
        ticket.charged = charged = Charge(answered, prompt, completion, cost)
        if self.writer is not None and p.key_id is not None and answered:  # first: it must not be lost
            self.writer.record(SpendRecord(
                new_record_id(), now_ms(), ticket.model, prompt, completion, cost, key_id=p.key_id,
                user_id=p.user_id, team_id=p.team_id, request_id=ctx.request_id, service=ctx.service), force=True)
        return charged

    async def start(self) -> None:
        if self.writer is not None:
            self.writer.start()

    async def close(self) -> None:
        if self.writer is not None:
            await self.writer.close()
        if self._closing is not None:
            await self._closing()

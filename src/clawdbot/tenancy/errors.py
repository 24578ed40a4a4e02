"""Tenancy's errors, in the typed tree (core/errors.py); api/errors.py renders them."""

from __future__ import annotations

from clawdbot.core.errors import Forbidden, GatewayError


class ModelNotAllowed(Forbidden):
    code = "model_not_allowed"

    def __init__(self, model: str | None, allowed: frozenset[str]) -> None:
        names = ", ".join(sorted(allowed)) or "none"
        super().__init__(f"This API key may not use the model {model!r}. Allowed models: {names}.", param="model")


class AdminRequired(Forbidden):
    code = "admin_required"


class RateLimited(GatewayError):
    """A key's, user's, team's or model's requests or tokens per minute are used up (429; the
    `openai` package raises RateLimitError). `type` is OpenAI's: "requests" or "tokens"."""

    status = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, kind: str, headers: dict[str, str]) -> None:
        super().__init__(message, headers=headers)
        self.type = kind


class TooManyParallel(GatewayError):
    status = 429
    type = "requests"
    code = "parallel_limit_exceeded"


class BudgetExceeded(GatewayError):
    """The budget of a key, user or team cannot cover the request's worst case (429, OpenAI's
    insufficient_quota type: RateLimitError in the `openai` package, which does not retry it)."""

    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"


class NotPriced(Forbidden):
    """A caller with a budget asked for a model without a price: the budget could not hold."""

    code = "model_not_priced"


class StateUnavailable(GatewayError):
    """The database behind keys or budgets cannot be reached, and nothing cached can stand in."""

    status = 503
    type = "service_unavailable"
    code = "state_unavailable"


class TooManyFailedAttempts(GatewayError):
    """This address sent too many wrong keys lately (tenancy/throttle.py): try again after Retry-After."""

    status = 429
    type = "rate_limit_error"
    code = "too_many_failed_attempts"

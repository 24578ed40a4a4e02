"""Tenancy's errors, in the typed tree (core/errors.py); api/errors.py renders them."""

from __future__ import annotations

from clawdbot.core.errors import Forbidden


class ModelNotAllowed(Forbidden):
    code = "model_not_allowed"

    def __init__(self, model: str | None, allowed: frozenset[str]) -> None:
        names = ", ".join(sorted(allowed)) or "none"
        super().__init__(f"This API key may not use the model {model!r}. Allowed models: {names}.", param="model")


class AdminRequired(Forbidden):
    code = "admin_required"

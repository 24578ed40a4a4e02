"""The process's tracer, chosen at startup: None when tracing is off (then opentelemetry is never
imported), else observability/otel.py's. Apart from tracing.py, which otel.py reads its types from."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from clawdbot.config.schema import Telemetry
from clawdbot.observability.tracing import EXTRA_HINT, TelemetryUnavailable, Tracer, enabled


def build_tracer(settings: Telemetry, env: Mapping[str, str], role: str = "serve",
                 capture: Callable[[int], Any] | None = None) -> Tracer | None:
    """The process's tracer, or None when tracing is off (then opentelemetry is never imported).
    `capture(limit)`: what keeps a request's answer as it passes (pipeline/capture.py), for
    `capture_content`. Raises TelemetryUnavailable when tracing is on and the SDK is not installed."""
    if not enabled(settings, env):
        return None
    try:
        from clawdbot.observability.otel import OtelTracer
    except ImportError as exc:
        raise TelemetryUnavailable(
            f"telemetry is enabled but the OpenTelemetry SDK cannot be imported ({exc}): {EXTRA_HINT}") from None
    return OtelTracer(settings, env, role, capture)

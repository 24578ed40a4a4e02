"""Link health for `/debug` (the socket's `debug` method) and `GET /debug/stats`.

One process reports itself as one `processes` entry. In the split topology (`clawdbot gateway`
whose upstream is a `clawdbot proxy`) the gateway also asks its upstream for its entry, with the
credentials it uses for that service, so one `/debug` shows the whole chain."""

from __future__ import annotations

import asyncio
import os
from typing import Any
from urllib.parse import urlsplit

from clawdbot.config.schema import Config, Service
from clawdbot.config.service_types import TYPES
from clawdbot.core.errors import GatewayError
from clawdbot.pipeline.gateway import Gateway
from clawdbot.providers.http import UpstreamHTTP, auth_headers

UPSTREAM_TIMEOUT_S = 2.0


def process_entry(gateway: Gateway, role: str, url: str) -> dict[str, Any]:
    m = gateway.metrics.snapshot()
    stats: dict[str, dict[str, Any]] = m["services"]
    services: dict[str, Any] = {}
    for name, st in gateway.monitor.states.items():
        s = stats.get(name, {})
        services[name] = {
            "type": st.kind, "reachable": st.reachable, "probeLatencyMs": _r(st.latency_ms),
            "inFlight": s.get("in_flight", 0), "requests": s.get("requests", 0),
            "latencyP50Ms": s.get("latency_p50_ms"), "latencyP95Ms": s.get("latency_p95_ms"),
            "ttftP50Ms": s.get("ttft_p50_ms"), "errors": s.get("errors", 0),
            "errorRate1m": s.get("error_rate_1m"), "lastError": s.get("last_error") or st.detail,
            "circuit": (s.get("breaker") or {}).get("state"),
            "queued": s.get("queued", 0), "pool": _pool(s.get("pool")),
        }
    return {
        "role": role, "url": url, "pid": os.getpid(), "uptimeS": m["uptime_s"],
        "load": {"wsConnections": m["ws_connections"], "chatsInFlight": m["chats_in_flight"],
                 "httpInFlight": m["http_in_flight"], "loopLagP50Ms": m["loop_lag_p50_ms"],
                 "loopLagMaxMs": m["loop_lag_max_ms"]},
        "overheadP50Ms": m["overhead_p50_ms"], "overheadP95Ms": m["overhead_p95_ms"],
        "services": services,
    }


def _pool(p: dict[str, Any] | None) -> dict[str, Any] | None:
    """The connection pool's numbers (HTTP services): open, idle, waiting, waits, refused, opened,
    maxIdle, maxOpen (null: no ceiling), via (the outbound proxy, null: direct)."""
    if p is None:
        return None
    return {"open": p["open"], "idle": p["idle"], "waiting": p["waiting"], "waits": p["waits"],
            "refused": p["refused"], "opened": p["opened"], "maxIdle": p["max_idle"], "maxOpen": p["max_open"],
            "via": p.get("via")}


def _r(v: float | None) -> float | None:
    return round(v, 2) if v is not None else None


def _origin(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


async def upstream_entry(svc: Service) -> dict[str, Any]:
    """The upstream clawdbot's own entry, or a stub saying why it could not be had."""
    origin = _origin(svc.endpoint or "")
    client = UpstreamHTTP(svc, auth_headers(svc))
    client.base = origin
    try:
        data = await client.get_json("/debug/stats", min(UPSTREAM_TIMEOUT_S, svc.timeouts.first_byte))
    except GatewayError as exc:
        return {"role": "upstream", "url": origin, "service": svc.name, "reachable": False, "error": exc.message}
    except (ValueError, TypeError) as exc:  # not JSON
        return {"role": "upstream", "url": origin, "service": svc.name, "reachable": False, "error": str(exc)}
    finally:
        await client.close()
    if not isinstance(data, dict) or "role" not in data:
        return {"role": "upstream", "url": origin, "service": svc.name, "reachable": True,
                "error": "the upstream's /debug/stats is not a clawdbot process entry"}
    return {**data, "url": origin, "service": svc.name}


class Debug:
    def __init__(self, config: Config, gateway: Gateway, role: str) -> None:
        self.gateway = gateway
        self.role = role
        # Only in the split topology is the upstream another clawdbot that can report itself.
        self.upstreams = [s for s in config.services if role == "gateway" and TYPES[s.type].dialect == "openai"
                          and s.endpoint]

    def own(self, url: str) -> dict[str, Any]:
        return process_entry(self.gateway, self.role, url)

    async def processes(self, url: str) -> list[dict[str, Any]]:
        others = await asyncio.gather(*(upstream_entry(s) for s in self.upstreams))
        return [self.own(url), *others]

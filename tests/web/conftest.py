"""Real gateway processes (tests/e2e/harness.py) over the test upstreams, for the chat socket."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import GatewayProcess
from tests.upstreams.openai_server import OpenAIUpstream

MASTER_KEY = "sk-web-master-0123456789abcdef"
UNLIMITED = "rate_limits: {per_user_per_minute: 0, per_session_per_minute: 0}"


def config_text(upstream_url: str, web: str = UNLIMITED, server: str = "") -> str:
    web_lines = "\n".join("  " + line for line in web.strip().splitlines())
    server_lines = "\n".join("  " + line for line in server.strip().splitlines()) or "  log_format: text"
    return f"""
server:
{server_lines}
services:
  - name: oa
    type: openai
    endpoint: {upstream_url}/v1
    max_pool: 256
    timeouts: {{connect: 2, first_byte: 5, total: 30}}
models:
  chat: [oa/mock-a]
web:
  max_frame_bytes: 65536
  default_model: chat
{web_lines}
"""


@pytest.fixture(scope="session")
def upstream() -> Iterator[OpenAIUpstream]:
    with OpenAIUpstream() as server:
        yield server


StartGateway = Callable[..., GatewayProcess]


@pytest.fixture(scope="module")
def start_gateway(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> Iterator[StartGateway]:
    """start_gateway(web=..., server=..., env=..., data_dir=..., role=...): a started process,
    stopped when the module's tests are done (or earlier with .stop())."""
    started: list[GatewayProcess] = []

    def start(web: str = UNLIMITED, server: str = "", env: dict[str, str] | None = None,
              data_dir: Path | None = None, role: str = "serve", port: int | None = None) -> GatewayProcess:
        d = tmp_path_factory.mktemp("web")
        cfg = d / "clawdbot.yaml"
        cfg.write_text(config_text(upstream.url, web, server))
        full_env = {"CLAWDBOT_DATA_DIR": str(data_dir or d), **(env or {})}
        gw = GatewayProcess([role, "--config", str(cfg)], d / "gateway.log", full_env, port=port)
        started.append(gw)
        return gw.start()

    yield start
    for gw in started:
        gw.stop()


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway) -> GatewayProcess:
    """No master key, limits off, small frames (64 KiB), SQLite in a temp dir."""
    return start_gateway()

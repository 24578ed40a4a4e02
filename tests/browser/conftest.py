"""Chromium (Debian's, through Playwright) against a real gateway process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from tests.browser.axe_support import AXE
from tests.e2e.harness import GatewayProcess
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
MASTER_KEY = "sk-browser-master-0123456789"

DESKTOP: ViewportSize = {"width": 1280, "height": 800}


def config(openai_url: str, ollama_url: str, master_key: bool) -> str:
    key = f"  master_key: {MASTER_KEY}\n" if master_key else ""
    return f"""
server:
  log_format: json
{key}services:
  - name: oa
    type: openai
    endpoint: {openai_url}/v1
  - name: ol
    type: ollama
    endpoint: {ollama_url}
models:
  chat-oa: [oa/mock-a]
  chat-ol: [ol/llama3.2:latest]
web:
  default_model: chat-oa
  rate_limits: {{per_user_per_minute: 0, per_session_per_minute: 0}}
"""


@pytest.fixture(scope="session")
def upstreams() -> Iterator[tuple[OpenAIUpstream, OllamaTestServer]]:
    with OpenAIUpstream() as oa, OllamaTestServer() as ol:
        yield oa, ol


def serve(tmp: Path, config_text: str, env: dict[str, str] | None = None) -> Iterator[GatewayProcess]:
    """A gateway running `config_text` (written to tmp/clawdbot.yaml, its data in tmp) until the
    fixture that yields from this ends."""
    cfg = tmp / "clawdbot.yaml"
    cfg.write_text(config_text)
    gw = GatewayProcess(["serve", "--config", str(cfg)], tmp / "gateway.log",
                        {"CLAWDBOT_DATA_DIR": str(tmp), **(env or {})}).start()
    try:
        yield gw
    finally:
        gw.stop()


def config_path(gw: GatewayProcess) -> Path:
    """The config file a gateway from serve() runs."""
    return Path(gw.args[gw.args.index("--config") + 1])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory,
            upstreams: tuple[OpenAIUpstream, OllamaTestServer]) -> Iterator[GatewayProcess]:
    ups = upstreams
    yield from serve(tmp_path_factory.mktemp("browser"), config(ups[0].url, ups[1].url, master_key=False))


@pytest.fixture(scope="module")
def keyed_gateway(tmp_path_factory: pytest.TempPathFactory,
                  upstreams: tuple[OpenAIUpstream, OllamaTestServer]) -> Iterator[GatewayProcess]:
    ups = upstreams
    yield from serve(tmp_path_factory.mktemp("browser-key"), config(ups[0].url, ups[1].url, master_key=True))


# Module scope, not session: Playwright's sync API keeps an event loop running on this thread while
# it is open, and later tests that call asyncio.run() must not find it.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-services.sh (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    ctx.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture()
def axe_page(browser: Browser) -> Iterator[Page]:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run scripts/ensure-services.sh (npm ci --prefix tests/browser/axe)")
    ctx = browser.new_context(viewport=DESKTOP, bypass_csp=True)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    ctx.close()
    assert not errors, f"JavaScript errors on the page: {errors}"

"""The Overview refreshed over the chat WebSocket (docs/panel.md, docs/websocket.md: panel.watch) in
Chromium against a real gateway: the status line says live, a request made with the `openai`
package shows in the requests chart without a reload and without a single HTTP poll, the page
unwatches when another tab opens and watches again when the Overview comes back; a socket that
cannot open makes the page poll GET /panel/api/overview (status "polling") until it opens again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, WebSocket, WebSocketRoute, expect

from tests.browser.conftest import MASTER_KEY, serve
from tests.browser.panel_support import DESKTOP, TIMEOUT, ask, keyed_config, login, open_tab
from tests.e2e.harness import GatewayProcess
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream

OVERVIEW = "/panel/api/overview"


@pytest.fixture()
def live_gw(tmp_path_factory: pytest.TempPathFactory,
            upstreams: tuple[OpenAIUpstream, OllamaTestServer]) -> Iterator[GatewayProcess]:
    """A fresh gateway for each test: its requests chart starts empty."""
    yield from serve(tmp_path_factory.mktemp("browser-live"), keyed_config(upstreams[0].url, """\
models:
  chat-oa: [oa/mock-a]
"""))


def has(method: str) -> Any:
    return lambda payload: f'"method":"{method}"' in str(payload).replace(" ", "")


def test_the_overview_is_live_over_the_socket(page: Page, live_gw: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    sockets: list[WebSocket] = []
    events: list[str] = []

    def opened(ws: WebSocket) -> None:
        sockets.append(ws)
        ws.on("framereceived", lambda p: events.append(str(p)) if '"panel.overview"' in str(p) else None)

    page.on("websocket", opened)
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if r.url.endswith(OVERVIEW) else None)
    login(page, live_gw, MASTER_KEY)
    mode = page.locator("#overview-mode")
    expect(mode).to_have_attribute("data-mode", "live", timeout=TIMEOUT)
    expect(mode).to_have_text("live")
    expect(page.locator('#service-cards .service-card[data-service="oa"]')).to_be_visible(timeout=TIMEOUT)
    assert [ws.url for ws in sockets] == [live_gw.url.replace("http", "ws") + "/ws"]
    requests = page.locator('#charts .chart[data-chart="requests"]')
    expect(requests).to_have_attribute("data-max", "0")  # a fresh gateway: nothing answered yet
    assert not polls  # the socket's first event came at once: nothing was fetched over HTTP

    assert ask(live_gw, MASTER_KEY, "live over the socket") == "echo: live over the socket"
    expect(requests).not_to_have_attribute("data-max", "0", timeout=TIMEOUT)
    expect(mode).to_have_attribute("data-mode", "live")
    assert not polls, "the overview was polled while the socket was live"
    assert events, "no panel.overview event arrived"

    # another tab: unwatched; the Overview again: watched again
    ws = sockets[0]
    with ws.expect_event("framesent", predicate=has("panel.unwatch"), timeout=TIMEOUT):
        open_tab(page, "models")
    with ws.expect_event("framesent", predicate=has("panel.watch"), timeout=TIMEOUT):
        open_tab(page, "overview")
    expect(mode).to_have_attribute("data-mode", "live", timeout=TIMEOUT)
    assert len(sockets) == 1  # the same socket all along
    assert len(polls) == 1  # the Models tab's own load; the Overview polled nothing


def test_without_the_socket_the_overview_polls_until_it_opens(page: Page, live_gw: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    refuse = [True]

    def route(ws: WebSocketRoute) -> None:
        if refuse[0]:
            ws.close(code=1011, reason="refused by the test")
        else:
            ws.connect_to_server()

    page.route_web_socket("**/ws", route)
    login(page, live_gw, MASTER_KEY)
    mode = page.locator("#overview-mode")
    expect(mode).to_have_attribute("data-mode", "polling", timeout=TIMEOUT)
    expect(mode).to_have_text("polling")
    requests = page.locator('#charts .chart[data-chart="requests"]')
    with page.expect_response(lambda r: r.url.endswith(OVERVIEW) and r.ok, timeout=TIMEOUT):
        pass  # polled every 2 s
    assert ask(live_gw, MASTER_KEY, "while polling") == "echo: while polling"
    expect(requests).not_to_have_attribute("data-max", "0", timeout=TIMEOUT)

    refuse[0] = False  # the next attempt (1, 2, 4 ... s apart) gets through
    expect(mode).to_have_attribute("data-mode", "live", timeout=TIMEOUT)

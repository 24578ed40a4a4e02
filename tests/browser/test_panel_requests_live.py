"""The Requests tab's Live toggle and the Models tab's counts (docs/panel.md, Live refresh) in
Chromium against a real gateway: with Live on, requests made with the `openai` package appear on top
of the table as they end (the request log's stream, GET /panel/api/admin/requests/stream, with the
search form's filters), with no search sent; the page keeps at most 200 rows; hiding the page
closes the stream and showing it again searches and follows again. The Models tab's requests per
deployment follow the overview feed on the page's one socket. axe on the live table, both themes.
Screenshot: test-artifacts/browser/panel-requests-live.png."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from playwright.sync_api import Page, Request, WebSocket, expect

from tests.browser.axe_support import run_axe
from tests.browser.conftest import MASTER_KEY, serve
from tests.browser.panel_support import TIMEOUT, ask, keyed_config, login, open_tab, shot, wait_in_page
from tests.e2e.harness import GatewayProcess
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream

STREAM = "/panel/api/admin/requests/stream"
SEARCH = "/panel/api/admin/requests?"
LIVE_ROWS = 200  # panel-requests.js


@pytest.fixture(scope="module")
def live_gw(tmp_path_factory: pytest.TempPathFactory,
            upstreams: tuple[OpenAIUpstream, OllamaTestServer]) -> Iterator[GatewayProcess]:
    yield from serve(tmp_path_factory.mktemp("browser-requests-live"), keyed_config(upstreams[0].url, """\
request_log: {enabled: true, flush_interval: 0.05}
models:
  chat-oa: [oa/mock-a]
  other: [oa/mock-b]
"""))


def set_visible(page: Page, visible: bool) -> None:
    """The page hidden or shown again, as a switch of browser tab would (visibilitychange)."""
    page.evaluate("""(v) => {
        Object.defineProperty(document, 'visibilityState', {value: v ? 'visible' : 'hidden', configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""", visible)


def test_live_follows_new_requests_with_the_filters(axe_page: Page, live_gw: GatewayProcess) -> None:
    page = axe_page
    searches: list[str] = []
    streams: list[str] = []

    def seen(r: Request) -> None:
        if SEARCH in r.url:
            searches.append(r.url)
        elif STREAM in r.url:
            streams.append(r.url)

    page.on("request", seen)
    ask(live_gw, MASTER_KEY, "before the tab")
    login(page, live_gw, MASTER_KEY)
    wait_in_page(page, "requests", "j.data.length > 0", None)  # written a moment after the answer
    open_tab(page, "requests")
    rows = page.locator("#requests-table tbody tr.request-row")
    expect(rows).to_have_count(1, timeout=TIMEOUT)
    toggle = page.locator("#requests-live")
    expect(toggle).not_to_be_checked()
    assert not streams  # off: no stream

    toggle.check()
    live = page.locator(".requests-live")
    expect(live).to_have_attribute("data-state", "live", timeout=TIMEOUT)
    expect(page.locator("#requests-live-status")).to_have_text("following new requests")
    searched = len(searches)
    assert ask(live_gw, MASTER_KEY, "live one") == "echo: live one"
    assert ask(live_gw, MASTER_KEY, "live two", model="other") == "echo: live two"
    expect(rows).to_have_count(3, timeout=TIMEOUT)
    expect(rows.nth(0)).to_contain_text("other")  # the newest on top
    expect(rows.nth(0)).to_have_class("request-row fresh")
    expect(page.locator("#requests-live-count")).to_have_text("2 new")
    assert len(searches) == searched, "a search was sent while following"

    # a row that came live opens like any other
    rows.nth(1).click()
    expect(page.locator("#request-detail")).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("#request-detail")).to_contain_text("chat-oa")
    page.keyboard.press("Escape")

    # the filters: a search for one model follows that model only
    page.locator("#req-model").fill("other")
    with page.expect_request(lambda r: STREAM in r.url and "model=other" in r.url, timeout=TIMEOUT):
        page.locator("#requests-form button[type=submit]").click()
    expect(rows).to_have_count(1, timeout=TIMEOUT)
    expect(live).to_have_attribute("data-state", "live", timeout=TIMEOUT)
    ask(live_gw, MASTER_KEY, "not for this filter")
    ask(live_gw, MASTER_KEY, "for this filter", model="other")
    expect(rows).to_have_count(2, timeout=TIMEOUT)
    expect(rows.nth(0)).to_contain_text("other")

    for theme in ("dark", "light"):
        if theme == "light":
            page.locator("#theme-toggle").click()
            expect(page.locator("html")).to_have_attribute("data-theme", "light")
        found = run_axe(page, f"requests live ({theme})")
        assert not found, json.dumps(found, indent=2)
    page.locator("#theme-toggle").click()
    shot(page, "requests-live")

    # hidden: the stream closes; shown again: a search (what ended meanwhile), then the stream again
    set_visible(page, False)
    expect(live).to_have_attribute("data-state", "paused")
    ask(live_gw, MASTER_KEY, "while hidden", model="other")
    wait_in_page(page, "requests?model=other", "j.data.length >= arg", 3)  # the log writes in batches
    with page.expect_request(lambda r: SEARCH in r.url and "model=other" in r.url, timeout=TIMEOUT):
        set_visible(page, True)
    expect(rows).to_have_count(3, timeout=TIMEOUT)
    expect(live).to_have_attribute("data-state", "live", timeout=TIMEOUT)

    # another tab: the stream closes; off: it stays closed
    open_tab(page, "audit")
    expect(live).to_have_attribute("data-state", "off")
    open_tab(page, "requests")
    expect(live).to_have_attribute("data-state", "live", timeout=TIMEOUT)
    toggle.uncheck()
    expect(live).to_have_attribute("data-state", "off")


def test_live_keeps_at_most_200_rows(page: Page, live_gw: GatewayProcess) -> None:
    login(page, live_gw, MASTER_KEY)
    open_tab(page, "requests")
    page.locator("#req-model").fill("chat-oa")
    page.locator("#requests-form button[type=submit]").click()
    page.locator("#requests-live").check()
    expect(page.locator(".requests-live")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
    client = openai.OpenAI(base_url=live_gw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)

    def one(i: int) -> None:
        client.chat.completions.create(model="chat-oa", messages=[{"role": "user", "content": f"bulk {i}"}])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(LIVE_ROWS + 20)))
    expect(page.locator("#requests-live-count")).to_have_text(f"{LIVE_ROWS + 20} new", timeout=30_000)
    expect(page.locator("#requests-table tbody tr.request-row")).to_have_count(LIVE_ROWS)
    expect(page.locator("#requests-more")).to_be_hidden()


def test_the_models_tab_counts_follow_the_feed(page: Page, live_gw: GatewayProcess) -> None:
    sockets: list[WebSocket] = []
    page.on("websocket", lambda ws: sockets.append(ws))
    login(page, live_gw, MASTER_KEY)
    open_tab(page, "models")
    status = page.locator("#models-feed-status")
    expect(status).to_have_attribute("data-mode", "live", timeout=TIMEOUT)
    cell = page.locator('.model-card[data-model="other"] tbody tr[data-service="oa"] td').nth(4)
    before = int(cell.inner_text().replace(",", "") or "0")
    ask(live_gw, MASTER_KEY, "counted", model="other")
    expect(cell).to_have_text(str(before + 1), timeout=TIMEOUT)
    open_tab(page, "overview")
    expect(page.locator("#overview-mode")).to_have_attribute("data-mode", "live", timeout=TIMEOUT)
    assert len(sockets) == 1  # the Overview and the Models tab share the page's socket

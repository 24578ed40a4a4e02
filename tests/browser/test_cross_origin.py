"""Chromium on pages of other origins calling a gateway on loopback (api/origins.py): a foreign
page's fetch() without a preflight (text/plain, as a cross-site request forgery sends it) reaches
the gateway and is refused there before any upstream call; a configured origin's app calls
/v1/chat/completions with JSON and a key, through the browser's preflight, and reads the answer.
The pages are served by Playwright's routing at their own origins; the gateway is the real one."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.conftest import MASTER_KEY, config, serve
from tests.e2e.harness import GatewayProcess
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream

APP = "http://app.test"  # listed in server.cors_origins
EVIL = "http://evil.test"  # not listed
# Chromium's Local Network Access checks would hold a public page's request to loopback for a
# permission prompt no headless run answers; users' browsers differ (Firefox, Safari and older
# Chromium send it), and the gateway must refuse it itself, which is what is tested here.
LNA_OFF = "--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessRespectPreflightResults," \
          "PrivateNetworkAccessSendPreflights,BlockInsecurePrivateNetworkRequests"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory,
       upstreams: tuple[OpenAIUpstream, OllamaTestServer]) -> Iterator[GatewayProcess]:
    cfg = config(upstreams[0].url, upstreams[1].url, master_key=True)  # the browser tests' own, and:
    cfg = cfg.replace("server:\n", f'server:\n  cors_origins: ["{APP}"]\n', 1)
    yield from serve(tmp_path_factory.mktemp("cors"), cfg)


@pytest.fixture(scope="module")
def lna_off_browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, FLAGS
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, LNA_OFF])
        yield b
        b.close()


@contextlib.contextmanager
def page_at(browser: Browser, origin: str) -> Iterator[Page]:
    ctx = browser.new_context()
    pg = ctx.new_page()
    pg.route(f"{origin}/**", lambda route: route.fulfill(status=200, content_type="text/html",
                                                          body="<!doctype html><title>elsewhere</title><p>hi"))
    pg.goto(f"{origin}/")
    yield pg
    ctx.close()


def chats(up: OpenAIUpstream) -> int:
    return sum(r.path == "/v1/chat/completions" for r in up.requests)


def test_a_foreign_pages_forged_request_is_refused_before_the_upstream(
        lna_off_browser: Browser, gw: GatewayProcess, upstreams: tuple[OpenAIUpstream, OllamaTestServer]) -> None:
    upstream = upstreams[0]
    before = chats(upstream)
    with page_at(lna_off_browser, EVIL) as pg:
        sent = pg.evaluate("""async (url) => {
            // no-cors: the page cannot read the answer, but the request is sent, cookies and all
            const body = {model: 'chat-oa', stream: false, messages: [{role: 'user', content: 'forged'}]};
            await fetch(url + '/api/chat', {method: 'POST', mode: 'no-cors',
                headers: {'Content-Type': 'text/plain'}, body: JSON.stringify(body)});
            return true;
        }""", gw.url)
        assert sent is True
    gw.wait_for_log('"path":"/api/chat","status":403')  # it arrived, with the page's Origin, and was refused
    assert chats(upstream) == before


def test_a_listed_origins_app_reads_answers_and_errors(
        lna_off_browser: Browser, gw: GatewayProcess, upstreams: tuple[OpenAIUpstream, OllamaTestServer]) -> None:
    with page_at(lna_off_browser, APP) as pg:
        got = pg.evaluate("""async ([url, key]) => {
            const body = {model: 'chat-oa', max_tokens: 8, messages: [{role: 'user', content: 'from the app'}]};
            const ask = (k) => fetch(url + '/v1/chat/completions', {method: 'POST', body: JSON.stringify(body),
                headers: {'Content-Type': 'application/json', 'Authorization': 'Bearer ' + k,
                          'X-Stainless-Lang': 'js'}});
            const ok = await ask(key), bad = await ask('sk-wrong');
            return {status: ok.status, body: await ok.json(), rid: ok.headers.get('x-request-id'),
                    badStatus: bad.status, badBody: await bad.json()};
        }""", [gw.url, MASTER_KEY])
        assert got["status"] == 200 and got["body"]["choices"][0]["message"]["content"] == "echo: from the app"
        assert got["rid"]  # exposed to the page (Access-Control-Expose-Headers)
        assert got["badStatus"] == 401 and got["badBody"]["error"]["code"] == "invalid_api_key", json.dumps(got)
    with page_at(lna_off_browser, EVIL) as pg:  # the same call from an unlisted origin: the browser sees a failure
        err = pg.evaluate("""async (url) => {
            try {
                const body = {model: 'chat-oa', messages: [{role: 'user', content: 'x'}]};
                await fetch(url + '/v1/chat/completions', {method: 'POST',
                    headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
                return 'read';
            } catch (e) { return String(e); }
        }""", gw.url)
        assert "Failed to fetch" in err

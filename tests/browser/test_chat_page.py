"""What a person does on the chat page, in Chromium, against a real gateway."""

from __future__ import annotations

import json

from playwright.sync_api import Page, expect

from tests.e2e.harness import GatewayProcess
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream

TIMEOUT = 15_000


def send(page: Page, text: str) -> None:
    page.locator("#input").fill(text)
    page.locator("#input").press("Enter")


def last_assistant(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("#messages .message.assistant").last


def new_session(page: Page) -> None:
    """Click "New chat" and wait until the new session is the open one (as a person would)."""
    before = page.evaluate("location.hash")
    page.locator("#new-session").click()
    page.wait_for_function("h => location.hash.length > 1 && location.hash !== h", arg=before, timeout=TIMEOUT)
    sid = page.evaluate("decodeURIComponent(location.hash.slice(1))")
    expect(page.locator(f'#session-list .session-item.current[data-session-id="{sid}"]')).to_have_count(1)


def open_page(page: Page, gw: GatewayProcess) -> None:
    page.goto(gw.url + "/")
    expect(page.locator("#model-picker option").first).to_be_attached(timeout=TIMEOUT)
    expect(page.locator("#banner")).to_be_hidden(timeout=TIMEOUT)


def test_send_stream_and_reload_history(page: Page, gateway: GatewayProcess) -> None:
    open_page(page, gateway)
    new_session(page)
    words = " ".join(f"w{i}" for i in range(12))
    send(page, f"{words} fault:slow=120")
    reply = last_assistant(page)
    # the reply grows: first some words are there and the last is not, later all are
    expect(reply.locator(".message-body")).to_contain_text("w1", timeout=TIMEOUT)
    assert "w11" not in reply.locator(".message-body").inner_text()
    expect(reply).to_have_attribute("data-status", "complete", timeout=TIMEOUT)
    expect(reply.locator(".message-body")).to_contain_text("w11")
    expect(page.locator("#chat-title")).to_contain_text("w0 w1")  # the first message names the chat
    assert page.locator("#session-list .session-item").count() >= 1
    page.reload()
    page.locator("#session-list .session-item .session-open").first.click()
    expect(page.locator("#messages .message.user").last).to_contain_text("w11", timeout=TIMEOUT)
    expect(last_assistant(page)).to_contain_text("w11")


def test_stop_mid_stream(
    page: Page, gateway: GatewayProcess, upstreams: tuple[OpenAIUpstream, OllamaTestServer]
) -> None:
    open_page(page, gateway)
    new_session(page)
    send(page, "stop me please " + " ".join(f"x{i}" for i in range(40)) + " fault:slow=150")
    reply = last_assistant(page)
    expect(reply.locator(".message-body")).to_contain_text("stop", timeout=TIMEOUT)
    page.locator("#stop").click()
    expect(reply).to_have_attribute("data-status", "aborted", timeout=TIMEOUT)
    assert "x39" not in reply.inner_text()
    oa = upstreams[0]
    rid = oa.last_request.request_id if oa.last_request else None
    assert rid and oa.wait_for_disconnect(rid, timeout=10), "the upstream call was not cancelled"


def test_switch_model_and_trace_request_id_is_logged(page: Page, gateway: GatewayProcess) -> None:
    open_page(page, gateway)
    new_session(page)
    page.locator("#model-picker").select_option("chat-ol")
    send(page, "through ollama")
    reply = last_assistant(page)
    expect(reply).to_have_attribute("data-status", "complete", timeout=TIMEOUT)
    expect(reply).to_contain_text("through ollama")
    trace = reply.locator(".trace")
    trace.locator("summary").click()
    expect(trace).to_contain_text("ol")
    rid = trace.locator(".trace-request-id").inner_text().strip()
    assert rid
    log = gateway.wait_for_log(rid)
    lines = [json.loads(x) for x in log.splitlines() if rid in x and x.startswith("{")]
    assert lines, "the trace's request id is not in the gateway's log"


def test_debug_command_shows_services(page: Page, gateway: GatewayProcess) -> None:
    open_page(page, gateway)
    send(page, "/debug")
    table = page.locator(".debug-table").last
    expect(table).to_be_visible(timeout=TIMEOUT)
    expect(table).to_contain_text("oa")
    expect(table).to_contain_text("ol")
    expect(table).to_contain_text("closed")  # circuit-breaker state per service


def test_xss_in_user_and_model_text_is_inert(page: Page, gateway: GatewayProcess) -> None:
    open_page(page, gateway)
    new_session(page)
    payload = ('<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> '
               '[click](javascript:window.__xss=3) **bold**')
    send(page, payload)  # the upstream echoes it: the same payload comes back as model text
    reply = last_assistant(page)
    expect(reply).to_have_attribute("data-status", "complete", timeout=TIMEOUT)
    expect(reply).to_contain_text("onerror")
    assert page.evaluate("window.__xss") is None
    assert page.locator("#messages img").count() == 0
    assert page.locator("#messages script").count() == 0
    hrefs = page.eval_on_selector_all("#messages a", "els => els.map(e => e.getAttribute('href'))")
    assert all(not (h or "").lower().startswith("javascript:") for h in hrefs)
    expect(page.locator("#messages .message.user").last).to_contain_text("<script>")
    expect(reply.locator("strong")).to_contain_text("bold")  # markdown still renders


def test_login_with_master_key(page: Page, keyed_gateway: GatewayProcess) -> None:
    page.goto(keyed_gateway.url + "/")
    expect(page.locator("#login-form")).to_be_visible(timeout=TIMEOUT)
    page.locator("#login-key").fill("wrong-key")
    page.locator("#login-key").press("Enter")
    expect(page.locator("#login-form")).to_contain_text("not accepted", timeout=TIMEOUT)  # the answer came
    page.locator("#login-key").fill("sk-browser-master-0123456789")
    page.locator("#login-key").press("Enter")
    expect(page.locator("#login-form")).to_be_hidden(timeout=TIMEOUT)
    cookies = page.context.cookies()
    session = [c for c in cookies if c["name"] == "clawdbot_session"]
    assert session and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict"
    new_session(page)
    send(page, "logged in")
    expect(last_assistant(page)).to_have_attribute("data-status", "complete", timeout=TIMEOUT)


def test_phone_width_and_dark_mode(page: Page, gateway: GatewayProcess) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.emulate_media(color_scheme="dark")
    open_page(page, gateway)
    send(page, "small screen")
    expect(last_assistant(page)).to_have_attribute("data-status", "complete", timeout=TIMEOUT)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at phone width ({width}px)"
    page.locator("#drawer-toggle").click()
    expect(page.locator("#session-list")).to_be_visible()

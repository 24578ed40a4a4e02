"""Replay and Open in chat in Chromium against a real gateway (docs/panel.md, "Replay and open in
chat"): a request made with the `openai` package to a model with `log_bodies` is found in the
Requests tab; Replay (from the keyboard) shows the new answer beside the old one and the replay is
in the log marked as one; Open in chat lands on the chat page with the conversation, and a
follow-up sent there is answered; a viewer, and a request without its body, get no button; and an
accessibility check of the detail with a replay in it (axe-core, both themes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.axe_support import run_axe  # axe_page (bypass_csp): tests/browser/conftest.py
from tests.browser.conftest import MASTER_KEY, serve
from tests.browser.panel_support import TIMEOUT, admin, ask, keyed_config, login, open_tab, shot, wait_in_page
from tests.e2e.harness import GatewayProcess
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream

REST = """\
request_log: {enabled: true, flush_interval: 0.05}
costs:
  chat-oa: {input: 1.0, output: 2.0}
models:
  chat-oa: {targets: [oa/mock-a], log_bodies: true}
  chat-plain: [oa/mock-b]
web:
  default_model: chat-oa
  rate_limits: {per_user_per_minute: 0, per_session_per_minute: 0}
"""


@pytest.fixture(scope="module")
def replay_gw(tmp_path_factory: pytest.TempPathFactory,
              upstreams: tuple[OpenAIUpstream, OllamaTestServer]) -> Iterator[GatewayProcess]:
    yield from serve(tmp_path_factory.mktemp("browser-replay"), keyed_config(upstreams[0].url, rest=REST))


def user_request(gw: GatewayProcess, text: str, model: str = "chat-oa") -> str:
    """A key of a user's, and a request it makes with the `openai` package: the key's id."""
    made = admin(gw, "POST", "keys", {"name": "user-" + text.replace(" ", "-")[:40], "allowed_models": [model]})
    assert ask(gw, made["key"], text, model=model) == f"echo: {text}"
    return str(made["id"])


def open_request(page: Page, gw: GatewayProcess, key_id: str):  # type: ignore[no-untyped-def]
    """The Requests tab searched for the key's one request, its detail opened from the keyboard."""
    open_tab(page, "requests")
    wait_in_page(page, f"requests?key_id={key_id}", "j.data.length > 0", None)
    page.locator("#req-key").fill(key_id)
    page.locator("#req-key").press("Enter")
    # this search's answer, not the tab's first (unfiltered) one: the table is aria-busy until it comes
    expect(page.locator("#requests-table")).not_to_have_attribute("aria-busy", "true", timeout=TIMEOUT)
    row = page.locator("#requests-table tbody tr.request-row")
    expect(row).to_have_count(1, timeout=TIMEOUT)
    row.press("Enter")
    detail = page.locator("#request-detail")
    expect(detail).to_be_visible(timeout=TIMEOUT)
    expect(detail).to_contain_text(key_id)
    return detail


def original_id(page: Page) -> str:
    """The id of the first request the table lists."""
    return str(page.locator("#requests-table tbody tr.request-row").first.get_attribute("data-request-id"))


def replay_in_page(page: Page, detail) -> None:  # type: ignore[no-untyped-def]
    button = detail.locator(".replay-button")
    expect(button).to_be_visible()
    button.focus()
    page.keyboard.press("Enter")
    expect(detail.locator(".replay-status")).to_contain_text("Replayed as request", timeout=TIMEOUT)


def test_replay_shows_the_new_answer_beside_the_original(page: Page, replay_gw: GatewayProcess) -> None:
    gw, text = replay_gw, "what does a replay show"
    key_id = user_request(gw, text)
    ops = admin(gw, "POST", "keys", {"name": "ops-replayer", "metadata": {"role": "admin"}})
    login(page, gw, ops["key"])  # an admin key: the replay is charged to it
    detail = open_request(page, gw, key_id)
    replay_in_page(page, detail)

    sides = detail.locator(".replay-compare .replay-side")
    expect(sides).to_have_count(2)
    original, again = sides.nth(0), sides.nth(1)
    expect(original.locator("h4")).to_have_text("Original")
    expect(again.locator("h4")).to_have_text("Replay")
    for side in (original, again):
        expect(side.locator(".replay-answer")).to_have_text(f"echo: {text}")
        expect(side).to_contain_text("chat-oa")
        expect(side).to_contain_text("oa/mock-a")
        expect(side).to_contain_text("200")
        expect(side).to_contain_text("$")  # a priced model: what each cost
    expect(original).to_contain_text(key_id)  # the user's key paid for the original ...
    expect(again).to_contain_text(ops["id"])  # ... and the signed-in admin's key for the replay
    expect(again).not_to_contain_text(key_id)
    replay_id = detail.locator(".replay-id").inner_text()
    page.set_viewport_size({"width": 1280, "height": 1160})  # room for the whole comparison in the detail
    page.evaluate("window.scrollTo(0, 0)")
    path = shot(page, "replay")
    page.set_viewport_size({"width": 1280, "height": 860})
    assert path.exists()

    # the replay is a request of its own in the log, marked as a replay of this one
    wait_in_page(page, f"requests/{replay_id}", "j.replay_of === arg", original_id(page))
    page.locator("#req-key").fill("")
    page.locator("#requests-form button[type=submit]").click()
    mine = page.locator(f'#requests-table tbody tr.request-row[data-request-id="{replay_id}"]')
    expect(mine).to_contain_text("(replay)", timeout=TIMEOUT)
    mine.click()
    expect(detail).to_contain_text("Replay of")


def test_open_in_chat_continues_the_conversation_on_the_chat_page(page: Page, replay_gw: GatewayProcess) -> None:
    gw, text = replay_gw, "carry this conversation on"
    key_id = user_request(gw, text)
    login(page, gw, MASTER_KEY)
    detail = open_request(page, gw, key_id)
    button = detail.locator(".open-chat-button")
    expect(button).to_be_visible()
    button.focus()
    page.keyboard.press("Enter")

    page.wait_for_url(f"{gw.url}/#*", timeout=TIMEOUT)
    sid = page.evaluate("decodeURIComponent(location.hash.slice(1))")
    expect(page.locator("#chat-title")).to_contain_text("From request", timeout=TIMEOUT)
    expect(page.locator(f'#session-list .session-item.current[data-session-id="{sid}"]')).to_have_count(1)
    expect(page.locator("#messages .message.user").first).to_contain_text(text)
    assistant = page.locator("#messages .message.assistant")
    expect(assistant.first).to_contain_text(f"echo: {text}")

    page.locator("#input").fill("and now a follow-up")
    page.locator("#input").press("Enter")
    expect(assistant).to_have_count(2, timeout=TIMEOUT)
    expect(assistant.last).to_have_attribute("data-status", "complete", timeout=TIMEOUT)
    expect(assistant.last).to_contain_text("echo: and now a follow-up")
    shot(page, "replay-chat")


def test_no_buttons_for_a_viewer_or_without_a_logged_body(page: Page, replay_gw: GatewayProcess) -> None:
    gw = replay_gw
    plain = user_request(gw, "nothing kept here", model="chat-plain")
    kept = user_request(gw, "kept but only for admins")
    login(page, gw, MASTER_KEY)
    detail = open_request(page, gw, plain)
    expect(detail).to_contain_text("chat-plain")
    expect(detail.locator(".replay-button, .open-chat-button")).to_have_count(0)

    page.locator("#logout").click()
    viewer = admin(gw, "POST", "keys", {"name": "replay-viewer", "metadata": {"panel_role": "viewer"}})
    login(page, gw, viewer["key"], role="viewer")
    detail = open_request(page, gw, kept)
    expect(detail).to_contain_text("Request body")  # the body is there to read ...
    expect(detail.locator(".replay-button, .open-chat-button")).to_have_count(0)  # ... and no action on it


def test_the_detail_with_a_replay_has_no_serious_accessibility_violation(axe_page: Page,
                                                                         replay_gw: GatewayProcess) -> None:
    page, gw = axe_page, replay_gw
    key_id = user_request(gw, "check me for accessibility")
    login(page, gw, MASTER_KEY)
    detail = open_request(page, gw, key_id)
    replay_in_page(page, detail)
    expect(detail.locator(".replay-compare .replay-side")).to_have_count(2)
    found = {"dark": run_axe(page, "request replay (dark)")}
    page.locator("#theme-toggle").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    found["light"] = run_axe(page, "request replay (light)")
    assert found == {"dark": [], "light": []}, found

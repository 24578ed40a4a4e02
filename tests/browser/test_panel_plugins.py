"""The panel's Plugins tab (docs/panel.md) in Chromium against a real gateway whose config is a file:
an admin adds `pii` (mode mask) for one model, moves it to the front of the chain, previews the
change to the file and applies it; the chat page (/) in the same browser then sends an e-mail
address and the answer's trace line says what pii did. A secret-named setting typed as it is never
leaves the page; a viewer reads the chain without a control. Screenshot:
test-artifacts/browser/panel-plugins.png."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, Request, Route, expect

from tests.browser.conftest import MASTER_KEY, config_path, serve
from tests.browser.panel_support import DESKTOP, PHONE, TIMEOUT, admin, keyed_config, login, open_tab, shot
from tests.browser.test_chat_page import last_assistant, new_session, open_page, send
from tests.e2e.harness import GatewayProcess
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream

EMAIL = "li.si@example.net"
COMMENT = "# refuses a made-up word (the panel keeps this comment)"


@pytest.fixture(scope="module")
def plugins_gw(tmp_path_factory: pytest.TempPathFactory,
               upstreams: tuple[OpenAIUpstream, OllamaTestServer]) -> Iterator[GatewayProcess]:
    yield from serve(tmp_path_factory.mktemp("browser-plugins-tab"), keyed_config(upstreams[0].url, f"""\
models:
  chat-oa: [oa/mock-a]
  other: [oa/mock-b]
web:
  default_model: chat-oa
  rate_limits: {{per_user_per_minute: 0, per_session_per_minute: 0}}
plugins:
  {COMMENT}
  - name: content_filter
    with: {{input: {{keywords: [launch-codes]}}}}
"""))


def test_pii_enabled_in_the_panel_masks_in_the_chat_page(page: Page, plugins_gw: GatewayProcess,
                                                         upstreams: tuple[OpenAIUpstream, OllamaTestServer]) -> None:
    page.set_viewport_size(DESKTOP)
    login(page, plugins_gw, MASTER_KEY)
    open_tab(page, "plugins")
    cards = page.locator("#plugin-list li.plugin-card")
    expect(cards).to_have_count(1, timeout=TIMEOUT)
    cf = page.locator('#plugin-list li.plugin-card[data-plugin="content_filter"]')
    expect(cf.locator('.setting[data-setting="input"] textarea')).to_have_value(
        json.dumps({"keywords": ["launch-codes"]}, indent=2))  # a nested setting: JSON
    expect(cf.locator('.setting[data-setting="action"] select')).to_have_value("")  # not set: the default
    expect(page.locator("#plugins-apply")).to_be_disabled()

    page.locator("#plugin-add-name").select_option("pii")
    page.locator("#plugin-add").click()
    expect(cards).to_have_count(2)
    pii = page.locator('#plugin-list li.plugin-card[data-plugin="pii"]')
    expect(pii).to_have_attribute("data-index", "1")
    expect(pii.locator(".plugin-enabled")).to_be_focused()
    pii.locator('.setting[data-setting="mode"] select').select_option(label="mask")
    pii.locator(".plugin-models").fill("chat-oa")
    pii.locator(".plugin-up").click()  # before the content filter: it runs first
    expect(pii).to_have_attribute("data-index", "0")
    expect(pii.locator(".plugin-down")).to_be_focused()  # the first cannot move up

    page.locator("#plugins-preview").click()
    diff = page.locator("#plugins-diff")
    expect(diff.locator(".diff-add")).to_contain_text(["- name: pii"], timeout=TIMEOUT)
    expect(diff).to_contain_text("mode: mask")
    expect(diff).to_contain_text("chat-oa")
    expect(page.locator("#plugins-error")).to_be_hidden()
    apply = page.locator("#plugins-apply")
    expect(apply).to_be_enabled()
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "plugins")

    apply.click()
    notice = page.locator("#plugins-notice")
    expect(notice).to_contain_text("Applied the plugins", timeout=TIMEOUT)
    expect(page.locator('#plugin-list li.plugin-card[data-plugin="pii"]')).to_have_attribute("data-index", "0")
    expect(page.locator("#plugins-apply")).to_be_disabled()
    text = config_path(plugins_gw).read_text()
    assert COMMENT in text
    assert text.index("name: pii") < text.index("name: content_filter")

    # the chat page, same browser and session: the plugin acts on the model it is scoped to
    open_page(page, plugins_gw)
    new_session(page)
    send(page, f"mail {EMAIL} please")
    reply = last_assistant(page)
    expect(reply).to_have_attribute("data-status", "complete", timeout=TIMEOUT)
    expect(reply).to_contain_text(f"echo: mail {EMAIL} please")  # restored for the user
    expect(reply.locator(".trace summary")).to_contain_text("pii: masked 1 item")
    assert upstreams[0].last_request is not None
    assert EMAIL not in str(upstreams[0].last_request.body)


def test_a_secret_setting_typed_as_it_is_never_leaves_the_page(page: Page, plugins_gw: GatewayProcess) -> None:
    """A setting whose name says secret takes a ${VAR} reference only. No built-in plugin has one, so
    the catalogue the page is given gets one (tests/web has the server's own refusal)."""
    page.set_viewport_size(DESKTOP)
    literal = "tok-typed-literal-93e1c7"
    posts: list[Request] = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" and "/panel/api/plugins" in r.url else None)

    def catalogue(route: Route) -> None:
        if route.request.method != "GET":
            route.fallback()
            return
        data = route.fetch().json()
        data["installed"].append({"name": "webhook", "source": "tests:Webhook", "schema": {
            "$ref": "#/$defs/S", "$defs": {"S": {"type": "object", "properties": {
                "url": {"type": "string"}, "api_token": {"type": "string"}}}}}})
        data["configured"].append({"name": "webhook", "with": {"url": "https://hooks.example"}})
        route.fulfill(status=200, content_type="application/json", body=json.dumps(data))

    page.route("**/panel/api/plugins", catalogue)
    login(page, plugins_gw, MASTER_KEY)
    open_tab(page, "plugins")
    hook = page.locator('#plugin-list li.plugin-card[data-plugin="webhook"]')
    token = hook.locator('.setting[data-setting="api_token"] input')
    token.fill(literal)
    page.locator("#plugins-preview").click()
    expect(page.locator("#plugins-form-error")).to_contain_text("environment variable reference like ${MY_SECRET}")
    expect(token).to_have_value("")
    assert not posts
    token.fill("${HOOK_TOKEN}")
    expect(page.locator("#plugins-preview")).to_be_enabled()


def test_a_viewer_reads_the_chain_without_a_control(page: Page, plugins_gw: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    viewer = admin(plugins_gw, "POST", "keys", {"name": "plugins-viewer", "metadata": {"panel_role": "viewer"}})["key"]
    login(page, plugins_gw, viewer, role="viewer")
    open_tab(page, "plugins")
    card = page.locator('#plugin-list li.plugin-card[data-plugin="content_filter"]')
    expect(card).to_be_visible(timeout=TIMEOUT)
    expect(card.locator(".plugin-enabled")).to_be_disabled()
    expect(card.locator('.setting[data-setting="input"] textarea')).to_be_disabled()
    expect(page.locator(".plugin-up, .plugin-down, .plugin-remove")).to_have_count(0)
    expect(page.locator("#plugin-add-row")).to_be_hidden()
    expect(page.locator("#plugins-preview")).to_be_hidden()


def test_the_chain_fits_a_phone(page: Page, plugins_gw: GatewayProcess) -> None:
    page.set_viewport_size(PHONE)
    login(page, plugins_gw, MASTER_KEY)
    open_tab(page, "plugins")
    expect(page.locator('#plugin-list li.plugin-card[data-plugin="content_filter"]')).to_be_visible(timeout=TIMEOUT)
    page.locator('#plugin-list li.plugin-card[data-plugin="pii"] .plugin-enabled').set_checked(False)
    page.locator("#plugins-preview").click()
    expect(page.locator("#plugins-diff .diff-add").first).to_be_visible(timeout=TIMEOUT)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the Plugins tab scrolls sideways at phone width ({width}px)"

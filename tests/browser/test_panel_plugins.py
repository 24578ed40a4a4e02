"""The panel's Plugins tab (docs/panel.md) in Chromium against a real gateway whose config is a file:
an admin adds `pii` (mode mask) for one model, moves it to the front of the chain, previews the
change to the file and applies it; the chat page (/) in the same browser then sends an e-mail
address and the answer's trace line says what pii did. A secret-named setting typed as it is never
leaves the page; a viewer reads the chain without a control. Nested settings are forms of their own
(a struct a fieldset, a list of structs fieldsets with Add and Remove, a list of strings one a line),
each field with its schema description as help text; what was not touched goes back to the file as
it was; each plugin's card sums up what it did in the last hour. Screenshots:
test-artifacts/browser/panel-plugins.png, panel-plugins-forms.png."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
import yaml
from playwright.sync_api import Page, Request, Route, expect

from tests.browser.axe_support import run_axe
from tests.browser.conftest import MASTER_KEY, config_path, serve
from tests.browser.panel_support import DESKTOP, PHONE, TIMEOUT, admin, ask, keyed_config, login, open_tab, shot
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
    nested = cf.locator('fieldset.setting[data-setting="input"]')  # a nested setting: a form of its own
    expect(nested.locator('.setting[data-setting="keywords"] textarea')).to_have_value("launch-codes")
    action = cf.locator('.plugin-body > .settings-fields > .setting[data-setting="action"] select')
    expect(action).to_have_value("")  # not set: the default
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

    # back in the panel: pii's card sums up what it did in the last hour
    page.goto(plugins_gw.url + "/panel#plugins")
    pii = page.locator('#plugin-list li.plugin-card[data-plugin="pii"]')
    expect(pii.locator('.plugin-actions li[data-action="masked"]')).to_contain_text("masked 1", timeout=TIMEOUT)
    expect(page.locator('#plugin-list li.plugin-card[data-plugin="content_filter"] .plugin-actions')).to_contain_text(
        "Did nothing")


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
    expect(card.locator('.setting[data-setting="input"] .setting[data-setting="keywords"] textarea')).to_be_disabled()
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


FORMS_CONFIG = """\
models:
  chat-oa: [oa/mock-a]
  other: [oa/mock-b]
plugins:
  - name: content_filter
    with:
      input: {keywords: [launch-codes], regex: ['code-[0-9]{2,4}']}
      status: 403
  - name: access
    with:
      rules:
        - name: interns
          match: {tags: [intern]}
          deny_models: [chat-oa]
"""


@pytest.fixture(scope="module")
def forms_gw(tmp_path_factory: pytest.TempPathFactory,
             upstreams: tuple[OpenAIUpstream, OllamaTestServer]) -> Iterator[GatewayProcess]:
    yield from serve(tmp_path_factory.mktemp("browser-plugin-forms"), keyed_config(upstreams[0].url, FORMS_CONFIG))


def refused(gw: GatewayProcess, text: str, model: str) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        ask(gw, MASTER_KEY, text, model=model)
    return caught.value


def test_nested_settings_are_forms_that_round_trip(axe_page: Page, forms_gw: GatewayProcess) -> None:
    """content_filter's `input` (a struct) and access's `rules` (a list of structs) as fieldsets:
    a keyword added one a line, a rule added with Add, previewed and applied; the untouched regex
    (a comma in it) and the first rule stay as the file had them; the `openai` package is then
    refused by both, and each card says so in its summary. axe on the forms, both themes."""
    page = axe_page
    login(page, forms_gw, MASTER_KEY)
    open_tab(page, "plugins")
    cf = page.locator('#plugin-list li.plugin-card[data-plugin="content_filter"]')
    rules = page.locator('#plugin-list li.plugin-card[data-plugin="access"] fieldset.setting[data-setting="rules"]')
    inp = cf.locator('fieldset.setting[data-setting="input"]')
    expect(inp).to_have_attribute("data-kind", "object", timeout=TIMEOUT)
    keywords = inp.locator('.setting[data-setting="keywords"] textarea')
    expect(keywords).to_have_value("launch-codes")
    expect(inp.locator('.setting[data-setting="regex"] textarea')).to_have_value("code-[0-9]{2,4}")
    # the schema's description is the field's help text, tied to it
    help_line = inp.locator('.setting[data-setting="keywords"] .field-help')
    expect(help_line).to_have_text("Words or phrases that match (case-insensitive).")
    expect(keywords).to_have_attribute("aria-describedby", help_line.get_attribute("id") or "?")
    expect(inp.locator(":scope > .field-help")).to_have_text("The rules the request's messages are checked against.")
    expect(rules.locator("li.setting-item")).to_have_count(1)
    first = rules.locator("li.setting-item").nth(0)
    expect(first.locator('.setting[data-setting="deny_models"] textarea')).to_have_value("chat-oa")
    expect(first.locator('fieldset.setting[data-setting="match"] .setting[data-setting="tags"] textarea')
           ).to_have_value("intern")

    # nothing touched: the forms give back exactly what the file has
    page.locator("#plugins-preview").click()
    expect(page.locator("#plugins-status")).to_have_text("No change: the config file already says this.",
                                                         timeout=TIMEOUT)

    # a number out of the schema's bounds is refused in the page
    chars = cf.locator('.setting[data-setting="max_match_chars"] input')
    chars.fill("0")
    page.locator("#plugins-preview").click()
    expect(page.locator("#plugins-form-error")).to_contain_text("max_match_chars is out of range")
    chars.fill("")

    keywords.fill("launch-codes\nred-button")
    rules.locator(".setting-add").click()
    expect(rules.locator("li.setting-item")).to_have_count(2)
    second = rules.locator("li.setting-item").nth(1)
    expect(second.locator('.setting[data-setting="name"] input')).to_be_focused()
    second.locator('.setting[data-setting="name"] input').fill("no-other")
    second.locator('.setting[data-setting="deny_models"] textarea').fill("other")
    page.locator("#plugins-preview").click()
    diff = page.locator("#plugins-diff")
    expect(diff.locator(".diff-add").first).to_be_visible(timeout=TIMEOUT)
    expect(diff.locator(".diff-add")).to_contain_text(["red-button"])
    expect(diff).to_contain_text("no-other")
    for theme in ("dark", "light"):
        if theme == "light":
            page.locator("#theme-toggle").click()
            expect(page.locator("html")).to_have_attribute("data-theme", "light")
        found = run_axe(page, f"plugin forms ({theme})")
        assert not found, json.dumps(found, indent=2)
    page.locator("#theme-toggle").click()
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "plugins-forms")

    page.locator("#plugins-apply").click()
    expect(page.locator("#plugins-notice")).to_contain_text("Applied the plugins", timeout=TIMEOUT)
    # what was not touched is as the file had it; the new rule has only what was filled in
    written = yaml.safe_load(config_path(forms_gw).read_text())["plugins"]
    assert written[0]["with"] == {
        "input": {"keywords": ["launch-codes", "red-button"], "regex": ["code-[0-9]{2,4}"]}, "status": 403}
    assert written[1]["with"] == {"rules": [
        {"name": "interns", "match": {"tags": ["intern"]}, "deny_models": ["chat-oa"]},
        {"name": "no-other", "deny_models": ["other"]}]}

    assert refused(forms_gw, "press the red-button", "chat-oa").status_code == 403  # the content filter
    assert refused(forms_gw, "hello", "other").status_code == 403  # the new rule
    assert ask(forms_gw, MASTER_KEY, "hello", "chat-oa") == "echo: hello"

    open_tab(page, "overview")
    open_tab(page, "plugins")
    cf_actions = page.locator('#plugin-list li.plugin-card[data-plugin="content_filter"] .plugin-actions')
    expect(cf_actions.locator('li[data-action="blocked"]')).to_contain_text("blocked 1", timeout=TIMEOUT)
    access_actions = page.locator('#plugin-list li.plugin-card[data-plugin="access"] .plugin-actions')
    expect(access_actions.locator('li[data-action="refused"]')).to_contain_text("refused 1")

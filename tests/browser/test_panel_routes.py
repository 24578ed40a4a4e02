"""Route editing in the panel's Models tab (docs/panel.md) in Chromium, against a real gateway whose
config is a file and two test upstreams: an admin sets a deployment's weight to 0, previews the
diff, applies it, and the traffic moves (counted at the upstreams) while the file keeps its
comments; an edit the loader refuses shows its file:line error and cannot be applied; the editor
works from the keyboard; a gateway that cannot write its config says so and editing is disabled. The
screenshot of the editor with a diff is test-artifacts/browser/panel-models-edit.png."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import MASTER_KEY, config_path, serve
from tests.browser.panel_support import DESKTOP, TIMEOUT, login, open_tab, shot
from tests.e2e.harness import GatewayProcess, openai_upstreams
from tests.upstreams.openai_server import OpenAIUpstream

COMMENT = "# split: half to a, half to b (the panel keeps this comment)"


@pytest.fixture(scope="module")
def ups() -> Iterator[dict[str, OpenAIUpstream]]:
    with openai_upstreams("a", "b") as servers:
        yield servers


@pytest.fixture(scope="module")
def routes_gw(tmp_path_factory: pytest.TempPathFactory, ups: dict[str, OpenAIUpstream]) -> Iterator[GatewayProcess]:
    yield from serve(tmp_path_factory.mktemp("browser-routes"), f"""# the gateway of the panel's route editing test
server:
  master_key: {MASTER_KEY}
  log_format: json
services:
  - name: a
    type: openai
    endpoint: {ups["a"].url}/v1
  - name: b
    type: openai
    endpoint: {ups["b"].url}/v1
models:
  {COMMENT}
  split:
    strategy: weighted
    deployments:
      - {{service: a, model: mock-a, weight: 1}}
      - {{service: b, model: mock-a, weight: 1}}
  other: [a/mock-a]
""")


def open_editor(page: Page, model: str) -> tuple[Locator, Locator]:
    """The model's card and its open route editor."""
    open_tab(page, "models")
    card = page.locator(f'#model-list .model-card[data-model="{model}"]')
    card.locator(".edit-model").click(timeout=TIMEOUT)
    editor = card.locator("#route-editor")
    expect(editor).to_be_visible()
    expect(card.locator(".edit-model")).to_have_attribute("aria-expanded", "true")
    return card, editor


def rows(editor: Locator) -> Locator:
    return editor.locator("tbody tr.deployment-row")


def test_setting_a_weight_to_zero_moves_the_traffic(page: Page, routes_gw: GatewayProcess,
                                                    ups: dict[str, OpenAIUpstream]) -> None:
    page.set_viewport_size(DESKTOP)
    before_file = config_path(routes_gw).read_text()
    login(page, routes_gw, MASTER_KEY)
    card, editor = open_editor(page, "split")
    expect(page.locator("#route-strategy")).to_have_value("weighted")
    expect(rows(editor)).to_have_count(2)
    expect(rows(editor).nth(0).locator(".dep-service")).to_have_value("a")
    apply = page.locator("#route-apply")
    expect(apply).to_be_disabled()  # nothing previewed yet

    rows(editor).nth(0).locator(".dep-weight").fill("0")
    page.locator("#route-preview").click()
    diff = page.locator("#route-diff")
    expect(diff.locator(".diff-del")).to_contain_text(["{service: a, model: mock-a, weight: 1}"], timeout=TIMEOUT)
    expect(diff.locator(".diff-add")).to_contain_text(["{service: a, model: mock-a, weight: 0}"])
    expect(page.locator("#route-error")).to_be_hidden()
    expect(apply).to_be_enabled()
    assert config_path(routes_gw).read_text() == before_file  # a preview writes nothing
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header at the top of the full-page shot
    shot(page, "models-edit")

    # Apply is for the previewed edit only: a change makes the preview stale until previewed again
    weight_b = rows(editor).nth(1).locator(".dep-weight")
    weight_b.fill("2")
    expect(apply).to_be_disabled()
    expect(page.locator("#route-status")).to_contain_text("preview it again")
    weight_b.fill("1")
    expect(apply).to_be_disabled()
    page.locator("#route-preview").click()
    expect(apply).to_be_enabled(timeout=TIMEOUT)

    apply.click()
    notice = page.locator("#models-notice")
    expect(notice).to_contain_text("Applied the route of split", timeout=TIMEOUT)
    expect(notice).to_contain_text("generation")
    expect(page.locator("#route-editor")).to_have_count(0)
    first = card.locator("tbody tr").first  # the table shows the reloaded config
    expect(first.locator("td").nth(0)).to_have_text("a")
    expect(first.locator("td").nth(2)).to_have_text("0")
    expect(card.locator(".edit-model")).to_be_focused()

    text = config_path(routes_gw).read_text()
    assert COMMENT in text and "# the gateway of the panel's route editing test" in text
    assert "{service: a, model: mock-a, weight: 0}" in text

    before = {name: up.request_count for name, up in ups.items()}
    client = openai.OpenAI(base_url=routes_gw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)
    for i in range(6):
        reply = client.chat.completions.create(model="split", messages=[{"role": "user", "content": f"after {i}"}])
        assert reply.choices[0].message.content == f"echo: after {i}"
    assert ups["b"].request_count - before["b"] == 6
    assert ups["a"].request_count == before["a"]

    open_tab(page, "audit")
    entry = page.locator("#audit-table tbody tr", has_text="config.update").filter(has_text="models.split")
    expect(entry).to_have_count(1, timeout=TIMEOUT)


def test_an_edit_the_loader_refuses_shows_its_error_and_cannot_be_applied(
        page: Page, routes_gw: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    before_file = config_path(routes_gw).read_text()
    login(page, routes_gw, MASTER_KEY)
    _, editor = open_editor(page, "other")
    expect(page.locator("#route-strategy")).to_have_value("ordered")
    page.locator("#route-fallbacks").fill("split, no-such-model")
    page.locator("#route-preview").click()
    error = page.locator("#route-error")
    expect(error).to_contain_text("clawdbot.yaml:", timeout=TIMEOUT)
    expect(error).to_contain_text("no-such-model")
    expect(page.locator("#route-apply")).to_be_disabled()

    page.locator("#route-fallbacks").fill("split")
    page.locator("#route-preview").click()
    expect(error).to_be_hidden(timeout=TIMEOUT)
    expect(page.locator("#route-diff .diff-add")).to_contain_text(["fallbacks"])
    expect(page.locator("#route-apply")).to_be_enabled()

    page.locator("#route-cancel").click()
    expect(editor).to_have_count(0)
    expect(page.locator('.model-card[data-model="other"] .edit-model')).to_be_focused()
    assert config_path(routes_gw).read_text() == before_file


def test_the_editor_works_from_the_keyboard(page: Page, routes_gw: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    login(page, routes_gw, MASTER_KEY)
    open_tab(page, "models")
    edit = page.locator('.model-card[data-model="split"] .edit-model')
    edit.focus()
    page.keyboard.press("Enter")
    editor = page.locator("#route-editor")
    expect(page.locator("#route-strategy")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#route-fallbacks")).to_be_focused()

    # move the first deployment down: the focus stays on the moved row's order buttons
    rows(editor).nth(0).locator(".dep-down").focus()
    page.keyboard.press("Enter")
    expect(rows(editor).nth(0).locator(".dep-service")).to_have_value("b")
    expect(rows(editor).nth(1).locator(".dep-service")).to_have_value("a")
    expect(rows(editor).nth(1).locator(".dep-up")).to_be_focused()  # the last row cannot go down
    page.keyboard.press("Enter")
    expect(rows(editor).nth(0).locator(".dep-service")).to_have_value("a")
    expect(rows(editor).nth(0).locator(".dep-down")).to_be_focused()

    page.locator("#route-add").focus()
    page.keyboard.press("Enter")
    expect(rows(editor)).to_have_count(3)
    expect(rows(editor).nth(2).locator(".dep-service")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.type("mock-c")
    expect(rows(editor).nth(2).locator(".dep-model")).to_have_value("mock-c")
    page.locator("#route-fallbacks").focus()
    page.keyboard.press("Enter")  # Enter in a field previews
    expect(page.locator("#route-diff .diff-add")).to_contain_text(["mock-c"], timeout=TIMEOUT)
    rows(editor).nth(2).locator(".dep-remove").focus()
    page.keyboard.press("Enter")
    expect(rows(editor)).to_have_count(2)
    expect(page.locator("#route-apply")).to_be_disabled()  # the preview was of another edit
    expect(rows(editor).nth(1).locator(".dep-remove")).to_be_focused()


def test_a_gateway_that_cannot_write_its_config_disables_editing(page: Page, routes_gw: GatewayProcess) -> None:
    """The 409 `config_read_only` (no config file, or one the gateway may not write) as the page
    shows it. A gateway without a config file has no `models:` entries to edit, and a read-only
    file cannot be made for root here: the answer is the server's own wording, given by the
    browser (tests/web/test_panel_edit.py has the server's side)."""
    page.set_viewport_size(DESKTOP)
    message = ("/etc/clawdbot/clawdbot.yaml is read-only for the gateway: edit it where it is kept, "
               "or make it writable")
    page.route("**/panel/api/models/**", lambda route: route.fulfill(
        status=409, content_type="application/json",
        body=json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                   "code": "config_read_only"}})))
    before_file = config_path(routes_gw).read_text()
    login(page, routes_gw, MASTER_KEY)
    _, editor = open_editor(page, "other")
    rows(editor).nth(0).locator(".dep-weight").fill("2")
    page.locator("#route-preview").click()
    expect(page.locator("#route-form-error")).to_contain_text("is read-only for the gateway", timeout=TIMEOUT)
    expect(page.locator("#models-read-only")).to_contain_text("is read-only for the gateway")
    expect(page.locator("#route-preview")).to_be_disabled()
    expect(page.locator("#route-apply")).to_be_disabled()
    expect(page.locator('.model-card[data-model="split"] .edit-model')).to_be_disabled()
    page.locator("#route-cancel").click()
    expect(page.locator("#model-list .edit-model")).to_have_count(2)
    for button in page.locator("#model-list .edit-model").all():
        expect(button).to_be_disabled()
    assert config_path(routes_gw).read_text() == before_file

"""The panel's Overview of one model or service and over a longer range (the request log), a
whole model added and removed in the Models tab, and the Audit tab searched, in Chromium against
a real gateway with two test upstreams. Screenshots: test-artifacts/browser/panel-overview-scope.png
and panel-models-add.png (shown in docs/panel.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from playwright.sync_api import Page, expect

from tests.browser.axe_support import run_axe
from tests.browser.conftest import MASTER_KEY, config_path, serve
from tests.browser.panel_support import DESKTOP, PHONE, TIMEOUT, admin, login, open_tab, shot, wait_in_page
from tests.e2e.harness import GatewayProcess, openai_upstreams
from tests.upstreams.openai_server import OpenAIUpstream


@pytest.fixture(scope="module")
def ups() -> Iterator[dict[str, OpenAIUpstream]]:
    with openai_upstreams("a", "b") as servers:
        yield servers


@pytest.fixture(scope="module")
def scopes_gw(tmp_path_factory: pytest.TempPathFactory, ups: dict[str, OpenAIUpstream]) -> Iterator[GatewayProcess]:
    yield from serve(tmp_path_factory.mktemp("browser-scopes"), f"""server:
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
  first: [a/mock-a]
  second: [b/mock-a]  # the panel keeps this comment
request_log: {{enabled: true, flush_interval: 0.05}}
""")


def ask(gw: GatewayProcess, model: str) -> str:
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)
    r = c.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": "hi"}])
    return r.headers["x-request-id"]


def shown_requests(page: Page) -> int:
    return int(page.locator("#charts-count").get_attribute("data-requests") or -1)


def test_the_overview_of_one_model_and_of_a_longer_range(page: Page, scopes_gw: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    for model in ("first", "first", "second"):
        last = ask(scopes_gw, model)
    login(page, scopes_gw, MASTER_KEY)
    wait_in_page(page, f"requests/{last}", "j.id === arg", last)  # logged: the longer ranges count it
    overview = page.locator("#tab-overview")
    scope, rng = page.locator("#overview-scope"), page.locator("#overview-range")
    expect(overview).to_have_attribute("data-shown", "1h|all", timeout=TIMEOUT)
    expect(rng.locator("option")).to_have_count(4)  # the request log is kept: 6 h, 24 h, 7 days too
    expect(scope.locator("option")).to_have_text(["All traffic", "first", "second", "a", "b"])
    scope.select_option("model:second")
    expect(overview).to_have_attribute("data-shown", "1h|model:second", timeout=TIMEOUT)
    expect(page.locator("#charts-title")).to_have_text("Last hour · model second")
    expect(page.locator("#overview-mode")).to_have_attribute("data-mode", "live")  # the socket watches the scope
    assert shown_requests(page) == 1
    rng.select_option("24h")
    expect(overview).to_have_attribute("data-shown", "24h|model:second", timeout=TIMEOUT)
    expect(page.locator("#charts-title")).to_have_text("Last 24 hours · model second")
    assert shown_requests(page) == 1
    expect(page.locator("#charts-count")).to_have_text("1 request")
    assert page.locator('#charts .chart[data-chart="requests"]').get_attribute("data-points") == "360"
    scope.select_option("service:a")
    expect(overview).to_have_attribute("data-shown", "24h|service:a", timeout=TIMEOUT)
    assert shown_requests(page) == 2  # the two to `first`
    expect(page.locator('#service-cards .service-card[data-service="b"]')).to_be_visible()  # the cards stay whole
    shot(page, "overview-scope")
    page.set_viewport_size(PHONE)
    box = page.locator("#overview-range").bounding_box()
    assert box is not None and box["x"] + box["width"] <= PHONE["width"]
    page.set_viewport_size(DESKTOP)


def test_a_model_added_used_and_removed(page: Page, scopes_gw: GatewayProcess, ups: dict[str, OpenAIUpstream]) -> None:
    page.set_viewport_size(DESKTOP)
    login(page, scopes_gw, MASTER_KEY)
    open_tab(page, "models")
    page.locator("#models-add").click()
    editor = page.locator("#model-new #route-editor")
    expect(editor).to_be_visible()
    expect(page.locator("#route-name")).to_be_focused()
    page.locator("#route-preview").click()
    expect(page.locator("#route-form-error")).to_have_text("Give the model a name.")
    page.locator("#route-name").fill("first")
    page.locator("#route-preview").click()
    expect(page.locator("#route-form-error")).to_contain_text("There is a model first already")
    page.locator("#route-name").fill("third")
    editor.locator(".dep-service").select_option("b")
    editor.locator(".dep-model").fill("mock-b")
    page.locator("#route-fallbacks").fill("first")
    page.locator("#route-name").press("Enter")  # Enter previews
    expect(page.locator("#route-diff .diff-add").first).to_contain_text("third:", timeout=TIMEOUT)
    shot(page, "models-add")
    page.locator("#route-apply").click()
    expect(page.locator("#models-notice")).to_contain_text("Added the model third", timeout=TIMEOUT)
    card = page.locator('#model-list .model-card[data-model="third"]')
    expect(card).to_be_visible()
    text = config_path(scopes_gw).read_text()
    assert "third:" in text and "# the panel keeps this comment" in text
    before = ups["b"].request_count
    ask(scopes_gw, "third")
    assert ups["b"].request_count == before + 1

    # a model another falls back to cannot go: the preview says why, Apply stays off
    page.locator('#model-list .model-card[data-model="first"] .remove-model').click()
    expect(page.locator("#route-error")).to_contain_text("first", timeout=TIMEOUT)
    expect(page.locator("#route-apply")).to_be_disabled()
    page.locator("#route-cancel").click()
    expect(page.locator('#model-list .model-card[data-model="first"] .remove-model')).to_be_focused()

    card.locator(".remove-model").click()
    expect(page.locator("#route-diff .diff-del").first).to_contain_text("third:", timeout=TIMEOUT)
    page.locator("#route-apply").click()
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text("Remove this model?")
    dialog.get_by_role("button", name="Remove").click()
    expect(page.locator("#models-notice")).to_contain_text("Removed the model third", timeout=TIMEOUT)
    expect(card).to_have_count(0)
    assert "third:" not in config_path(scopes_gw).read_text()
    with pytest.raises(openai.NotFoundError):
        ask(scopes_gw, "third")


def test_the_audit_tab_is_searched(page: Page, scopes_gw: GatewayProcess) -> None:
    made = [admin(scopes_gw, "POST", "keys", {"name": f"searched-{i}"}) for i in range(2)]
    admin(scopes_gw, "POST", f"keys/{made[0]['id']}/revoke", {})
    page.set_viewport_size(DESKTOP)
    login(page, scopes_gw, MASTER_KEY)
    open_tab(page, "audit")
    rows = page.locator("#audit-table tbody tr[data-audit-id]")
    expect(rows.first).to_be_visible(timeout=TIMEOUT)
    page.locator("#audit-action").select_option("key.create")
    page.locator("#audit-form button[type=submit]").click()
    expect(rows.locator("td:nth-child(3)")).to_have_text(["key.create", "key.create"], timeout=TIMEOUT)
    page.locator("#audit-action").select_option("key.*")
    page.locator("#audit-target").fill(made[0]["id"])
    page.locator("#audit-target").press("Enter")  # Enter searches
    expect(rows.locator("td:nth-child(3)")).to_have_text(["key.revoke", "key.create"], timeout=TIMEOUT)
    page.locator("#audit-target").fill("k_nothing_like_this")
    page.locator("#audit-target").press("Enter")
    expect(page.locator("#audit-table tbody")).to_contain_text("No change matches.", timeout=TIMEOUT)


def test_the_new_controls_have_no_serious_accessibility_violation(axe_page: Page, scopes_gw: GatewayProcess) -> None:
    """axe-core (test_panel_a11y.py) on the Overview with a scope and a range chosen, the editor of
    a new model with a diff, the removal preview and the Audit tab's search, in both themes."""
    page = axe_page
    ask(scopes_gw, "first")
    login(page, scopes_gw, MASTER_KEY)
    found: dict[str, list[dict[str, Any]]] = {}
    for theme in ("dark", "light"):
        if theme == "light":
            page.locator("#theme-toggle").click()
            expect(page.locator("html")).to_have_attribute("data-theme", "light")
        open_tab(page, "overview")
        page.locator("#overview-scope").select_option("model:first")
        page.locator("#overview-range").select_option("6h")
        expect(page.locator("#tab-overview")).to_have_attribute("data-shown", "6h|model:first", timeout=TIMEOUT)
        found[f"overview scope ({theme})"] = run_axe(page, f"overview scope ({theme})")
        page.locator("#overview-range").select_option("1h")
        open_tab(page, "models")
        page.locator("#models-add").click()
        page.locator("#route-name").fill(f"a11y-{theme}")
        page.locator("#route-preview").click()
        expect(page.locator("#route-diff .diff-add").first).to_be_visible(timeout=TIMEOUT)
        found[f"add model ({theme})"] = run_axe(page, f"add model ({theme})")
        page.locator("#route-cancel").click()
        page.locator('#model-list .model-card[data-model="second"] .remove-model').click()
        expect(page.locator("#route-diff .diff-del").first).to_be_visible(timeout=TIMEOUT)
        found[f"remove model ({theme})"] = run_axe(page, f"remove model ({theme})")
        page.locator("#route-cancel").click()
        open_tab(page, "audit")
        page.locator("#audit-action").select_option("key.*")
        page.locator("#audit-form button[type=submit]").click()
        expect(page.locator("#audit-table tbody tr").first).to_be_visible(timeout=TIMEOUT)
        found[f"audit search ({theme})"] = run_axe(page, f"audit search ({theme})")
    bad = {where: v for where, v in found.items() if v}
    assert not bad, "serious or critical accessibility violations:\n" + json.dumps(bad, indent=1)[:20000]

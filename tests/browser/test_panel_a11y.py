"""An accessibility check of the operator panel with axe-core (tests/browser/axe/, installed by
scripts/ensure-services.sh with `npm ci`): every tab, as an admin with data in it (a key, its
request in Spend and Requests, the change in Audit, a request's detail, the route editor with a
diff open, the service editor with a connection test and a diff, the plugin chain with its
settings forms and a diff, a key near its budget, an unreachable service and the revoke dialog),
in the dark and the light theme. No violation of impact "serious" or "critical" may be
left; the minor and moderate ones are printed.

axe is injected as a script, which the page's strict CSP forbids: the browser context bypasses the
CSP for this check only (every other browser test runs under it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.axe_support import run_axe
from tests.browser.conftest import MASTER_KEY, serve
from tests.browser.panel_support import TABS, TIMEOUT, admin, ask, keyed_config, login, open_tab, wait_in_page
from tests.e2e.harness import GatewayProcess, closed_port
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream


@pytest.fixture(scope="module")
def a11y_gw(tmp_path_factory: pytest.TempPathFactory,
            upstreams: tuple[OpenAIUpstream, OllamaTestServer]) -> Iterator[GatewayProcess]:
    yield from serve(tmp_path_factory.mktemp("browser-a11y"), keyed_config(upstreams[0].url, services=f"""\
  - name: ol
    type: ollama
    endpoint: {upstreams[1].url}
  - name: gone  # nothing listens there: an unreachable card
    type: openai
    endpoint: http://127.0.0.1:{closed_port()}/v1
""", rest="""\
request_log: {enabled: true, flush_interval: 0.05}
costs:
  chat-oa: {input: 1.0, output: 2.0}
models:
  chat-oa: [oa/mock-a]
  mixed:  # two deployments, weighted, with a fallback
    strategy: weighted
    deployments:
      - {service: oa, model: mock-a, weight: 2}
      - {service: ol, model: "llama3.2:latest", weight: 1}
    fallbacks: [chat-oa]
plugins:
  - name: pii
    with: {mode: mask}
    models: [mixed]
  - name: content_filter  # off: its settings form is there all the same
    enabled: false
    with: {input: {keywords: [nope]}}
"""))


def test_every_tab_has_no_serious_accessibility_violation(axe_page: Page, a11y_gw: GatewayProcess) -> None:
    page = axe_page
    made = admin(a11y_gw, "POST", "keys", {"name": "a11y", "allowed_models": ["chat-oa"], "budget_usd": 5})
    key, key_id = made["key"], made["id"]
    assert ask(a11y_gw, key, "for the tables") == "echo: for the tables"
    admin(a11y_gw, "POST", "keys", {"name": "viewer", "metadata": {"panel_role": "viewer"}})

    login(page, a11y_gw, MASTER_KEY)
    expect(page.locator('#service-cards .service-card[data-service="oa"]')).to_be_visible(timeout=TIMEOUT)
    wait_in_page(page, f"requests?key_id={key_id}", "j.data.length > 0", None)
    wait_in_page(page, "spend?group_by=key", "j.data.some((x) => x.group === arg && x.cost_micros > 0)", key_id)
    spent = next(r for r in admin(a11y_gw, "GET", "spend?group_by=key")["data"] if r["group"] == key_id)
    admin(a11y_gw, "PATCH", f"keys/{key_id}", {"budget_usd": spent["cost_usd"]})  # at its budget: highlighted

    found: dict[str, list[dict[str, Any]]] = {}
    for theme in ("dark", "light"):
        if theme == "light":
            page.locator("#theme-toggle").click()
            expect(page.locator("html")).to_have_attribute("data-theme", "light")
        for name in TABS:
            open_tab(page, name)
            ready(page, name, key_id)
            found[f"{name} ({theme})"] = run_axe(page, f"{name} ({theme})")
            if name == "keys":
                page.locator("#keys-table tbody tr", has_text="a11y").locator(".revoke-key").click()
                expect(page.locator("#confirm-dialog")).to_be_visible()
                found[f"revoke dialog ({theme})"] = run_axe(page, f"revoke dialog ({theme})")
                page.locator("#confirm-dialog .dialog-cancel").click()
                expect(page.locator("#confirm-dialog")).to_be_hidden()
    page.locator("#logout").click()
    expect(page.locator("#login-form")).to_be_visible(timeout=TIMEOUT)
    found["login"] = run_axe(page, "login")

    bad = {where: v for where, v in found.items() if v}
    assert not bad, "serious or critical accessibility violations:\n" + json.dumps(bad, indent=1)[:20000]


def ready(page: Page, name: str, key_id: str) -> None:
    """Each tab with its data in it (and, for Models and Requests, a detail open)."""
    if name == "overview":
        expect(page.locator('#service-cards .service-card[data-service="gone"]')).to_have_attribute(
            "data-state", "down", timeout=TIMEOUT)
        expect(page.locator('#charts .chart[data-chart="requests"]')).not_to_have_attribute("data-max", "0",
                                                                                           timeout=TIMEOUT)
    elif name == "models":
        card = page.locator('#model-list .model-card[data-model="mixed"]')
        expect(card).to_contain_text("weighted", timeout=TIMEOUT)
        if page.locator("#route-editor").count() == 0:
            card.locator(".edit-model").click()
        page.locator("#route-editor .dep-weight").first.fill("3")
        page.locator("#route-preview").click()
        expect(page.locator("#route-diff .diff-add").first).to_be_visible(timeout=TIMEOUT)
    elif name == "services":
        card = page.locator('#service-list .svc-card[data-service="oa"]')
        expect(card).to_be_visible(timeout=TIMEOUT)
        if page.locator("#service-editor").count() == 0:
            card.locator(".edit-service").click()
        page.locator("#svc-connect").fill("4")
        page.locator("#svc-test").click()
        expect(page.locator("#svc-test-result")).to_have_attribute("data-ok", "true", timeout=TIMEOUT)
        page.locator("#svc-preview").click()
        expect(page.locator("#svc-diff .diff-add").first).to_be_visible(timeout=TIMEOUT)
    elif name == "plugins":
        pii = page.locator('#plugin-list li.plugin-card[data-plugin="pii"]')
        expect(pii).to_be_visible(timeout=TIMEOUT)
        pii.locator('.setting[data-setting="restore"] input').set_checked(False)
        page.locator("#plugins-preview").click()
        expect(page.locator("#plugins-diff .diff-add").first).to_be_visible(timeout=TIMEOUT)
    elif name == "keys":
        expect(page.locator("#keys-table tbody tr", has_text="a11y")).to_have_count(1, timeout=TIMEOUT)
        expect(page.locator("#keys-table tbody tr.near-limit")).to_have_count(1)
    elif name == "spend":
        expect(page.locator(f'#spend-table tbody tr[data-group="{key_id}"]')).to_be_visible(timeout=TIMEOUT)
    elif name == "requests":
        row = page.locator("#requests-table tbody tr.request-row").first
        expect(row).to_be_visible(timeout=TIMEOUT)
        if page.locator("#request-detail").is_hidden():
            row.click()
        expect(page.locator("#request-detail")).to_be_visible(timeout=TIMEOUT)
    elif name == "audit":
        expect(page.locator("#audit-table tbody tr", has_text="key.create").first).to_be_visible(timeout=TIMEOUT)

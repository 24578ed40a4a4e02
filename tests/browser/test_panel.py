"""The operator panel (/panel, docs/panel.md) in Chromium against a real gateway with a master key:
an admin signs in, sees the services and the last hour's charts, creates a key in the Keys tab and
uses it through the `openai` package, finds that request in Spend and Requests and the change in
Audit, and revokes the key; a viewer sees no create, revoke or route Edit control and a write
forced from the page is refused; a key without a panel role gets no panel; without a master key
the local user is admin. Screenshots of each tab go to test-artifacts/browser/panel-<tab>.png."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import MASTER_KEY, serve
from tests.browser.panel_support import (
    DESKTOP,
    PHONE,
    TABS,
    TIMEOUT,
    admin,
    ask,
    keyed_config,
    login,
    open_tab,
    shot,
    wait_in_page,
)
from tests.e2e.harness import GatewayProcess
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream


@pytest.fixture(scope="module")
def panel_gw(tmp_path_factory: pytest.TempPathFactory,
             upstreams: tuple[OpenAIUpstream, OllamaTestServer]) -> Iterator[GatewayProcess]:
    yield from serve(tmp_path_factory.mktemp("browser-panel"), keyed_config(upstreams[0].url, """\
request_log: {enabled: true, flush_interval: 0.05}
costs:  # a key with a budget may only use priced models
  chat-oa: {input: 1.0, output: 2.0}
models:
  chat-oa: [oa/mock-a]
web:
  default_model: chat-oa
"""))


def ask_streaming(gw: GatewayProcess, key: str, text: str) -> str:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=20)
    stream = client.chat.completions.create(model="chat-oa", messages=[{"role": "user", "content": text}], stream=True)
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_a_wrong_key_is_refused_and_the_master_key_is_admin(page: Page, panel_gw: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    page.goto(panel_gw.url + "/panel")
    expect(page.locator("#login-form")).to_be_visible(timeout=TIMEOUT)
    page.locator("#login-key").fill("wrong-key")
    page.locator("#login-key").press("Enter")
    expect(page.locator("#login-error")).to_contain_text("not accepted", timeout=TIMEOUT)
    page.locator("#login-key").fill(MASTER_KEY)
    page.locator("#login-key").press("Enter")
    expect(page.locator("#role")).to_have_text("admin", timeout=TIMEOUT)
    expect(page.locator("#who")).to_have_text("admin")
    session = [c for c in page.context.cookies() if c["name"] == "clawdbot_session"]
    assert session and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict"
    expect(page.locator('#tabs a[data-tab="overview"]')).to_have_attribute("aria-current", "page")


def test_overview_shows_the_services_and_the_charts_fill(page: Page, panel_gw: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    for i in range(3):
        assert ask(panel_gw, MASTER_KEY, f"overview {i}") == f"echo: overview {i}"
    assert ask_streaming(panel_gw, MASTER_KEY, "a first token") == "echo: a first token"  # for the TTFT chart
    login(page, panel_gw, MASTER_KEY)
    card = page.locator('#service-cards .service-card[data-service="oa"]')
    expect(card).to_have_attribute("data-state", "ok", timeout=TIMEOUT)
    expect(card).to_contain_text("closed")
    for chart in ("requests", "errors", "latency", "ttft", "tokens"):
        expect(page.locator(f'#charts .chart[data-chart="{chart}"] svg')).to_be_visible()
    requests = page.locator('#charts .chart[data-chart="requests"]')
    expect(requests).not_to_have_attribute("data-max", "0", timeout=TIMEOUT)  # polled every 2 s
    expect(requests.locator("polyline, circle").first).to_be_attached()
    expect(page.locator('#charts .chart[data-chart="latency"]')).not_to_have_attribute("data-points", "0")
    expect(page.locator('#charts .chart[data-chart="ttft"]')).not_to_have_attribute("data-points", "0")
    shot(page, "overview")

    open_tab(page, "models")
    model = page.locator('#model-list .model-card[data-model="chat-oa"]')
    expect(model).to_contain_text("ordered", timeout=TIMEOUT)
    expect(model.locator("tbody tr").first).to_contain_text("mock-a")
    expect(model.locator(".edit-model")).to_be_visible()  # an admin may edit the route (test_panel_routes.py)
    shot(page, "models")


def test_a_key_created_in_the_page_works_and_shows_in_spend_requests_and_audit(
        page: Page, panel_gw: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    login(page, panel_gw, MASTER_KEY)
    open_tab(page, "keys")
    form = page.locator("#key-create-form")
    expect(form).to_be_visible()
    page.locator("#key-name").fill("panel-made")
    page.locator('#key-models input[value="chat-oa"]').check(timeout=TIMEOUT)
    page.locator("#key-rpm").fill("60")
    page.locator("#key-budget").fill("5")
    page.locator("#key-period").select_option("day")
    form.locator("button[type=submit]").click()
    expect(page.locator("#new-key")).to_be_visible(timeout=TIMEOUT)
    key = page.locator("#new-key-value").input_value()
    assert key.startswith("sk-cb-")
    row = page.locator("#keys-table tbody tr", has_text="panel-made")
    expect(row).to_have_count(1, timeout=TIMEOUT)
    key_id = row.get_attribute("data-key-id")
    assert key_id and key_id.startswith("k_")
    expect(row).to_contain_text("60 rpm")
    expect(row).to_contain_text("$5.00 / day")

    assert ask(panel_gw, key, "through the panel's key") == "echo: through the panel's key"
    page.locator("#new-key-done").click()
    expect(page.locator("#new-key")).to_be_hidden()
    assert page.locator("#new-key-value").input_value() == ""  # the page keeps no copy

    # a budget lowered under what the key has spent: highlighted (>= 80%)
    wait_in_page(page, "spend?group_by=key", "j.data.some((x) => x.group === arg && x.cost_micros > 0)", key_id)
    spent = next(r for r in admin(panel_gw, "GET", "spend?group_by=key")["data"] if r["group"] == key_id)
    admin(panel_gw, "PATCH", f"keys/{key_id}", {"budget_usd": spent["cost_usd"]})
    page.locator('[data-refresh="keys"]').click()
    expect(row).to_have_class(re.compile(r"\bnear-limit\b"), timeout=TIMEOUT)
    shot(page, "keys")

    open_tab(page, "spend")
    spend_row = page.locator(f'#spend-table tbody tr[data-group="{key_id}"]')
    expect(spend_row).to_contain_text("panel-made", timeout=TIMEOUT)
    expect(spend_row.locator("td").nth(1)).to_have_text("1")
    with page.expect_download() as download:
        page.locator("#spend-csv").click()
    csv = Path(download.value.path()).read_text()
    assert csv.splitlines()[0] == "key,key_name,requests,prompt_tokens,completion_tokens,cost_usd"
    assert any(line.startswith(f"{key_id},panel-made,1,") for line in csv.splitlines())
    page.locator("#spend-group").select_option("model")
    page.locator("#spend-form button[type=submit]").click()
    expect(page.locator('#spend-table tbody tr[data-group="chat-oa"]')).to_be_visible(timeout=TIMEOUT)
    shot(page, "spend")

    open_tab(page, "requests")
    wait_in_page(page, f"requests?key_id={key_id}", "j.data.length > 0", None)
    page.locator("#req-key").fill(key_id)
    page.locator("#req-key").press("Enter")
    found = page.locator("#requests-table tbody tr.request-row")
    expect(found).to_have_count(1, timeout=TIMEOUT)
    expect(found).to_contain_text("chat-oa")
    found.press("Enter")  # keyboard: the focused row opens
    detail = page.locator("#request-detail")
    expect(detail).to_be_visible(timeout=TIMEOUT)
    expect(detail).to_contain_text("oa/mock-a")
    expect(detail).to_contain_text(key_id)
    expect(detail.locator(".attempts li.attempt-ok")).to_have_count(1)
    expect(detail).to_contain_text("$")  # a priced model: the cost
    shot(page, "requests")
    detail.press("Escape")
    expect(detail).to_be_hidden()

    open_tab(page, "audit")
    created = page.locator("#audit-table tbody tr", has_text="key.create").filter(has_text=key_id)
    expect(created).to_have_count(1, timeout=TIMEOUT)
    expect(page.locator("#audit-table tbody tr", has_text="key.update").filter(has_text=key_id)).to_have_count(1)
    shot(page, "audit")

    open_tab(page, "keys")
    row.locator(".revoke-key").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    dialog.locator(".dialog-confirm").click()
    expect(row).to_contain_text("revoked", timeout=TIMEOUT)
    expect(row.locator(".revoke-key")).to_have_count(0)
    with pytest.raises(openai.AuthenticationError):
        ask(panel_gw, key, "after the revoke")


def test_a_viewer_sees_no_controls_and_a_forced_write_is_refused(page: Page, panel_gw: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    viewer = admin(panel_gw, "POST", "keys", {"name": "viewer", "metadata": {"panel_role": "viewer"}})["key"]
    admin(panel_gw, "POST", "keys", {"name": '<img src=x onerror="window.__xss=1">'})  # shown as text
    login(page, panel_gw, viewer, role="viewer")
    open_tab(page, "keys")
    expect(page.locator("#keys-table tbody tr", has_text="onerror")).to_have_count(1, timeout=TIMEOUT)
    expect(page.locator("#key-create-form")).to_be_hidden()
    expect(page.locator(".revoke-key")).to_have_count(0)
    assert page.locator("#keys-table img").count() == 0
    assert page.evaluate("window.__xss") is None
    shot(page, "viewer-keys")
    open_tab(page, "models")  # routes are for admins to edit: no Edit button
    expect(page.locator('#model-list .model-card[data-model="chat-oa"]')).to_contain_text("mock-a", timeout=TIMEOUT)
    expect(page.locator("#model-list .edit-model")).to_have_count(0)
    status = page.evaluate("""async () => {
        const s = await (await fetch('/auth/status')).json();
        const r = await fetch('/panel/api/admin/keys', {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-Clawdbot-CSRF': s.csrf},
            body: JSON.stringify({name: 'forced'})});
        return [r.status, (await r.json()).error.code];
    }""")
    assert status == [403, "panel_read_only"]
    assert not any(k["name"] == "forced" for k in admin(panel_gw, "GET", "keys")["data"])


def test_a_key_without_a_panel_role_gets_no_panel_and_logs_out(page: Page, panel_gw: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    plain = admin(panel_gw, "POST", "keys", {"name": "no-panel"})["key"]
    login(page, panel_gw, plain, role=None)
    expect(page.locator("#no-access")).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("#tabs")).to_be_hidden()
    page.locator("#logout").click()
    expect(page.locator("#login-form")).to_be_visible(timeout=TIMEOUT)


def test_phone_width(page: Page, panel_gw: GatewayProcess) -> None:
    page.set_viewport_size(PHONE)
    login(page, panel_gw, MASTER_KEY)
    expect(page.locator('#service-cards .service-card[data-service="oa"]')).to_be_visible(timeout=TIMEOUT)
    for name in TABS:  # every tab reachable without sideways scrolling of the page
        open_tab(page, name)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the {name} tab scrolls sideways at phone width ({width}px)"
    open_tab(page, "overview")
    expect(page.locator('#charts .chart[data-chart="requests"] svg')).to_be_visible()
    shot(page, "phone")


def test_without_a_master_key_the_local_user_is_admin(page: Page, gateway: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    page.goto(gateway.url + "/panel#models")
    expect(page.locator("#role")).to_have_text("admin", timeout=TIMEOUT)
    expect(page.locator("#login-view")).to_be_hidden()
    expect(page.locator("#logout")).to_be_hidden()  # nothing to log out of
    expect(page.locator('#model-list .model-card[data-model="chat-ol"]')).to_contain_text("llama3.2", timeout=TIMEOUT)

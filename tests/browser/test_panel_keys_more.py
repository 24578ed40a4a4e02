"""The Keys tab past its first page, a key's metadata and panel role, and the daily spend of users
and teams (docs/panel.md, "Keys, users and teams"), in Chromium against a real gateway: more than
500 keys made through the admin API, Show more reaches the 501st and the filter (by name and by
hint, matched by the server) finds one; an admin makes a key a viewer in the page (the audit entry
says so) and that key then signs in to the read-only panel; metadata that is not a JSON object is
refused by its field and nothing is sent, and what the server refuses in it is shown there too; a
user's and a team's daily spend chart after requests to a priced model; axe-core on these states
in both themes. Screenshot: test-artifacts/browser/panel-keys-more.png."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.axe_support import run_axe
from tests.browser.conftest import ARTIFACTS, MASTER_KEY, serve
from tests.browser.panel_support import DESKTOP, TIMEOUT, admin, ask, keyed_config, login, open_tab, wait_in_page
from tests.e2e.harness import GatewayProcess
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream

BULK = 505  # past the store's page of 500


@pytest.fixture(scope="module")
def more_gw(tmp_path_factory: pytest.TempPathFactory,
            upstreams: tuple[OpenAIUpstream, OllamaTestServer]) -> Iterator[GatewayProcess]:
    yield from serve(tmp_path_factory.mktemp("browser-keys-more"), keyed_config(upstreams[0].url, """\
costs:
  chat-oa: {input: 1.0, output: 2.0}
models:
  chat-oa: [oa/mock-a]
"""))


def every_key(gw: GatewayProcess, q: str = "") -> list[dict[str, Any]]:
    """Every key (matching `q`), newest first, through the admin API's pages."""
    out: list[dict[str, Any]] = []
    query = {"limit": "500", **({"q": q} if q else {})}
    for _ in range(100):  # bounded: 50,000 keys
        page = admin(gw, "GET", "keys?" + urlencode(query))
        out += page["data"]
        if not page["next_cursor"]:
            return out
        query["cursor"] = page["next_cursor"]
    raise AssertionError("more keys than a test makes")


def bulk_keys(gw: GatewayProcess) -> list[dict[str, Any]]:
    """BULK keys named bulk-000 ... (made once per gateway), oldest first."""
    if not admin(gw, "GET", "keys?q=bulk-&limit=1")["data"]:
        for i in range(BULK):  # bounded: BULK calls
            admin(gw, "POST", "keys", {"name": f"bulk-{i:03d}"})
    return list(reversed(every_key(gw, "bulk-")))


def rows(page: Page) -> Locator:
    return page.locator("#keys-table tbody tr[data-key-id]")


def key_row(page: Page, key_id: str) -> Locator:
    return page.locator(f'#keys-table tbody tr[data-key-id="{key_id}"]')


def record_row(page: Page, kind: str, name: str) -> Locator:
    return page.locator(f"#{kind}s-table tbody tr[data-record-id]", has_text=name)


def test_show_more_reaches_the_501st_key_and_the_filter_finds_one(page: Page, more_gw: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    made = bulk_keys(more_gw)
    assert [k["name"] for k in made] == [f"bulk-{i:03d}" for i in range(BULK)]
    everything = every_key(more_gw)
    login(page, more_gw, MASTER_KEY)
    open_tab(page, "keys")
    expect(rows(page)).to_have_count(500, timeout=TIMEOUT)
    oldest = made[0]
    expect(key_row(page, oldest["id"])).to_have_count(0)  # the 501st and older are not on the first page
    expect(page.locator("#keys-count")).to_have_text("Showing the newest 500 keys; there are more.")
    more = page.locator("#keys-more")
    expect(more).to_be_visible()

    more.scroll_into_view_if_needed()
    page.evaluate("document.querySelector('#keys-more').scrollIntoView({block: 'center'})")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "panel-keys-more.png"))  # the end of the first page: the count, Show more

    more.click()
    expect(rows(page)).to_have_count(len(everything), timeout=TIMEOUT)
    expect(key_row(page, oldest["id"])).to_contain_text("bulk-000")
    expect(more).to_be_hidden()
    expect(page.locator("#keys-count")).to_be_hidden()
    ids = rows(page).evaluate_all("(els) => els.map((e) => e.dataset.keyId)")
    assert ids == [k["id"] for k in everything]  # newest first, each once
    # a key of the second page edited: the tab loads both pages again, and the key stays in sight
    oldest_row = key_row(page, oldest["id"])
    oldest_row.locator(".edit-key").click()
    page.locator("#key-edit-rpm").fill("7")
    page.locator("#key-edit-rpm").press("Enter")
    expect(oldest_row).to_contain_text("7 rpm", timeout=TIMEOUT)
    expect(oldest_row.locator(".edit-key")).to_be_focused()
    expect(rows(page)).to_have_count(len(everything))

    # the filter, matched by the server: a name, then a key's hint
    box = page.locator("#keys-filter-input")
    box.fill("BULK-007")
    box.press("Enter")
    expect(rows(page)).to_have_count(1, timeout=TIMEOUT)
    expect(key_row(page, made[7]["id"])).to_be_visible()
    expect(page.locator("#keys-count")).to_have_text("1 key matching “BULK-007”.")
    box.fill(made[321]["hint"])
    page.locator("#keys-filter-apply").click()
    expect(key_row(page, made[321]["id"])).to_be_visible(timeout=TIMEOUT)
    expect(rows(page)).to_have_count(1)
    box.fill("no-key-is-called-this")
    box.press("Enter")
    expect(page.locator("#keys-table tbody")).to_contain_text("No key matches the filter.", timeout=TIMEOUT)
    page.locator("#keys-filter-clear").click()
    expect(rows(page)).to_have_count(500, timeout=TIMEOUT)
    expect(box).to_be_focused()
    expect(more).to_be_visible()


def test_an_admin_makes_a_key_a_viewer_in_the_page(page: Page, browser: Browser, more_gw: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    bulk_keys(more_gw)  # more than a page: the viewer pages too
    made = admin(more_gw, "POST", "keys", {"name": "becomes-viewer", "metadata": {"owner": "ops"}})
    key_id = made["id"]
    login(page, more_gw, MASTER_KEY)
    open_tab(page, "keys")
    page.locator("#keys-filter-input").fill("becomes-viewer")
    page.locator("#keys-filter-input").press("Enter")
    row = key_row(page, key_id)
    expect(rows(page)).to_have_count(1, timeout=TIMEOUT)
    row.locator(".edit-key").click()
    role = page.locator("#key-edit-panel-role")
    meta = page.locator("#key-edit-metadata")
    expect(role).to_have_value("none")
    assert json.loads(meta.input_value()) == {"owner": "ops"}

    # not JSON, then not an object: said by the field, nothing sent
    error = page.locator("#key-edit-metadata-error")
    for text, says in (('{"owner": ', "Not valid JSON"), ("[1, 2]", "A JSON object")):
        meta.fill(text)
        page.locator("#key-edit-save").click()
        expect(error).to_contain_text(says)
        expect(meta).to_have_attribute("aria-invalid", "true")
        expect(meta).to_have_attribute("aria-describedby", "key-edit-metadata-error")
        expect(meta).to_be_focused()
    assert not [a for a in admin(more_gw, "GET", f"audit?action=key.update&target_id={key_id}")["data"]]
    # what the server refuses in it is shown by it too (metadata.log_bodies must be a boolean)
    meta.fill('{"owner": "ops", "log_bodies": "yes"}')
    page.locator("#key-edit-save").click()
    expect(error).to_contain_text("log_bodies", timeout=TIMEOUT)
    assert admin(more_gw, "GET", f"keys/{key_id}")["metadata"] == {"owner": "ops"}

    # the role choice writes the metadata's convention, and the text area follows it
    meta.fill('{"owner": "ops"}')
    expect(role).to_have_value("none")
    role.select_option("viewer")
    assert json.loads(meta.input_value()) == {"owner": "ops", "panel_role": "viewer"}
    page.locator("#key-editor").scroll_into_view_if_needed()
    page.locator("#key-editor").screenshot(path=str(ARTIFACTS / "panel-keys-role.png"))
    page.locator("#key-edit-save").click()
    expect(page.locator("#key-editor")).to_have_count(0, timeout=TIMEOUT)
    expect(row.locator(".key-role")).to_have_text("viewer")
    assert admin(more_gw, "GET", f"keys/{key_id}")["metadata"] == {"owner": "ops", "panel_role": "viewer"}
    update = admin(more_gw, "GET", f"audit?action=key.update&target_id={key_id}")["data"]
    assert len(update) == 1 and update[0]["actor"] == "master"
    assert update[0]["before"]["metadata"] == {"owner": "ops"}
    assert update[0]["after"]["metadata"] == {"owner": "ops", "panel_role": "viewer"}

    # that key signs in to the read-only panel
    ctx = browser.new_context(viewport=DESKTOP)
    try:
        viewer = ctx.new_page()
        login(viewer, more_gw, made["key"], role="viewer")
        open_tab(viewer, "keys")
        expect(viewer.locator("#keys-table tbody tr[data-key-id]").first).to_be_visible(timeout=TIMEOUT)
        expect(viewer.locator(".edit-key")).to_have_count(0)
        expect(viewer.locator("#key-create-form")).to_be_hidden()
        expect(viewer.locator("#keys-more")).to_be_visible()  # reading every page is for every role
    finally:
        ctx.close()

    # and back to none: the role goes from the metadata, the rest stays
    row.locator(".edit-key").click()
    expect(role).to_have_value("viewer")
    role.select_option("none")
    page.locator("#key-edit-save").click()
    expect(page.locator("#key-editor")).to_have_count(0, timeout=TIMEOUT)
    expect(row.locator(".key-role")).to_have_count(0)
    assert admin(more_gw, "GET", f"keys/{key_id}")["metadata"] == {"owner": "ops"}


def spent(gw: GatewayProcess, query: str) -> float:
    return float(admin(gw, "GET", f"spend?{query}")["total"]["cost_usd"])


@pytest.mark.parametrize("kind", ["user", "team"])
def test_a_users_and_a_teams_daily_spend_chart(page: Page, more_gw: GatewayProcess, kind: str) -> None:
    page.set_viewport_size(DESKTOP)
    team = admin(more_gw, "POST", "teams", {"name": f"chart-team-{kind}"})
    user = admin(more_gw, "POST", "users", {"name": f"chart-user-{kind}", "team_id": team["id"]})
    made = admin(more_gw, "POST", "keys", {"name": f"chart-key-{kind}", "user_id": user["id"]})
    record = user if kind == "user" else team
    admin(more_gw, "PATCH", f"{kind}s/{record['id']}", {"budget_usd": 5, "budget_period": "day"})
    for i in range(2):
        assert ask(more_gw, made["key"], f"chart {i}") == f"echo: chart {i}"
    login(page, more_gw, MASTER_KEY)
    open_tab(page, "keys")
    wait_in_page(page, f"spend?group_by={kind}&{kind}_id={record['id']}", "j.total.requests === 2", None)
    used = spent(more_gw, f"group_by={kind}&{kind}_id={record['id']}")
    assert used > 0

    opener = record_row(page, kind, record["name"]).locator(f".{kind}-spend-open")
    opener.focus()
    page.keyboard.press("Enter")
    box = page.locator(f"#{kind}-spend")
    expect(box).to_be_visible()
    expect(box).to_be_focused()
    expect(opener).to_have_attribute("aria-expanded", "true")
    expect(page.locator(f"#{kind}-spend-title")).to_contain_text(f"the {kind} “{record['name']}”")
    chart = box.locator(f'.chart[data-chart="{kind}-spend"]')
    expect(chart).to_have_attribute("data-bars", "30", timeout=TIMEOUT)
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    bar = chart.locator(f'rect.bar[data-day="{today}"]')
    expect(bar).not_to_have_attribute("data-value", "0", timeout=TIMEOUT)
    assert float(bar.get_attribute("data-value") or 0) == pytest.approx(used)
    values = chart.locator("rect.bar").evaluate_all("(els) => els.map((e) => Number(e.dataset.value))")
    assert len(values) == 30 and values[-1] > 0 and all(v == 0 for v in values[:-1])
    expect(page.locator(f"#{kind}-spend-summary")).to_contain_text("budget $5.00 / day")
    expect(box.locator(".ref-label")).to_have_text("daily budget $5.00, above the scale")
    box.press("Escape")
    expect(box).to_be_hidden()
    expect(opener).to_be_focused()
    expect(opener).to_have_attribute("aria-expanded", "false")


def test_the_new_states_have_no_serious_accessibility_violation(axe_page: Page, more_gw: GatewayProcess) -> None:
    page = axe_page
    bulk_keys(more_gw)  # Show more is there
    team = admin(more_gw, "POST", "teams", {"name": "axe-team"})
    user = admin(more_gw, "POST", "users", {"name": "axe-user", "team_id": team["id"]})
    made = admin(more_gw, "POST", "keys", {"name": "axe-key", "user_id": user["id"], "metadata": {"owner": "a"}})
    assert ask(more_gw, made["key"], "for axe") == "echo: for axe"
    login(page, more_gw, MASTER_KEY)
    wait_in_page(page, f"spend?group_by=team&team_id={team['id']}", "j.total.cost_micros > 0", None)
    open_tab(page, "keys")
    expect(page.locator("#keys-more")).to_be_visible(timeout=TIMEOUT)
    found: dict[str, list[dict[str, Any]]] = {}
    for theme in ("dark", "light"):
        if theme == "light":
            page.locator("#theme-toggle").click()
            expect(page.locator("html")).to_have_attribute("data-theme", "light")
        page.locator("#teams-filter-input").fill("axe-")
        page.locator("#teams-filter-input").press("Enter")
        expect(page.locator("#teams-table tbody tr[data-record-id]")).to_have_count(1, timeout=TIMEOUT)
        record_row(page, "user", "axe-user").locator(".user-spend-open").click()
        record_row(page, "team", "axe-team").locator(".team-spend-open").click()
        expect(page.locator('#team-spend rect.bar[data-value]:not([data-value="0"])')).to_have_count(1, timeout=TIMEOUT)
        expect(page.locator('#user-spend rect.bar[data-value]:not([data-value="0"])')).to_have_count(1)
        key_row(page, made["id"]).locator(".edit-key").click()
        page.locator("#key-edit-panel-role").select_option("viewer")
        page.locator("#key-edit-metadata").fill("{not json")
        page.locator("#key-edit-save").click()
        expect(page.locator("#key-edit-metadata-error")).to_be_visible()
        found[f"keys: filter, more, role, metadata, charts ({theme})"] = run_axe(page, f"keys more ({theme})")
        page.locator("#key-edit-metadata").press("Escape")
        expect(page.locator("#key-editor")).to_have_count(0)
        for kind in ("user", "team"):
            page.locator(f"#{kind}-spend").press("Escape")
            expect(page.locator(f"#{kind}-spend")).to_be_hidden()
        page.locator("#teams-filter-clear").click()

    bad = {where: v for where, v in found.items() if v}
    assert not bad, "serious or critical accessibility violations:\n" + json.dumps(bad, indent=1)[:20000]

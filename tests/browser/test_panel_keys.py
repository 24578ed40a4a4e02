"""The panel's Keys tab beyond create and revoke (docs/panel.md, "Keys, users and teams"), in
Chromium against a real gateway: a key's rpm limit edited in the page holds for the `openai`
package (the request past it gets 429), a value the server refuses is shown by its field, Escape
cancels; a budget edited in the page highlights the key; users and teams created, edited and
deleted in the page, a key assigned to a team and a user (shown by name), their budgets near the
limit highlighted; a key's daily spend chart after requests to a priced model; a viewer sees all of
it without a control; the tab at phone width; and axe-core on the editors, the sections and the
chart in both themes. Screenshots: test-artifacts/browser/panel-keys-*.png."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.axe_support import run_axe
from tests.browser.conftest import MASTER_KEY, serve
from tests.browser.panel_support import (
    DESKTOP,
    PHONE,
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

NEAR = re.compile(r"\bnear-limit\b")


@pytest.fixture(scope="module")
def keys_gw(tmp_path_factory: pytest.TempPathFactory,
            upstreams: tuple[OpenAIUpstream, OllamaTestServer]) -> Iterator[GatewayProcess]:
    yield from serve(tmp_path_factory.mktemp("browser-keys"), keyed_config(upstreams[0].url, """\
costs:  # a key with a budget may only use priced models
  chat-oa: {input: 1.0, output: 2.0}
models:
  chat-oa: [oa/mock-a]
"""))


def key_row(page: Page, key_id: str) -> Locator:
    return page.locator(f'#keys-table tbody tr[data-key-id="{key_id}"]')


def record_row(page: Page, kind: str, name: str) -> Locator:
    return page.locator(f"#{kind}s-table tbody tr[data-record-id]", has_text=name)


def spent(gw: GatewayProcess, query: str) -> float:
    """USD of GET /admin/api/spend?<query>'s total."""
    return float(admin(gw, "GET", f"spend?{query}")["total"]["cost_usd"])


def test_a_keys_rpm_edited_in_the_page_holds_for_the_openai_package(page: Page, keys_gw: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    made = admin(keys_gw, "POST", "keys", {"name": "rpm-edit", "metadata": {"owner": "ops"}})
    key, key_id = made["key"], made["id"]
    login(page, keys_gw, MASTER_KEY)
    open_tab(page, "keys")
    row = key_row(page, key_id)
    expect(row).to_contain_text("none", timeout=TIMEOUT)  # no limits yet
    edit = row.locator(".edit-key")
    editor = page.locator("#key-editor")

    # from the keyboard: Enter on Edit opens the editor with the focus in it, Escape cancels
    edit.focus()
    page.keyboard.press("Enter")
    expect(editor).to_be_visible()
    expect(page.locator("#key-edit-name")).to_be_focused()
    expect(page.locator("#key-edit-name")).to_have_value("rpm-edit")
    expect(edit).to_have_attribute("aria-expanded", "true")
    page.locator("#key-edit-rpm").fill("1")
    page.keyboard.press("Escape")
    expect(editor).to_have_count(0)
    expect(edit).to_be_focused()
    assert admin(keys_gw, "GET", f"keys/{key_id}")["rpm"] is None  # nothing was sent

    # what the server refuses (past the API's bound) is shown by its field
    page.keyboard.press("Enter")
    rpm = page.locator("#key-edit-rpm")
    rpm.fill(str(10**16))
    rpm.press("Enter")
    error = page.locator("#key-edit-rpm-error")
    expect(error).to_be_visible(timeout=TIMEOUT)
    expect(error).to_contain_text("1000000000000000")
    expect(rpm).to_have_attribute("aria-invalid", "true")
    expect(rpm).to_have_attribute("aria-describedby", "key-edit-rpm-error")
    expect(rpm).to_be_focused()
    # and what the page itself can tell, before anything is sent
    page.locator("#key-edit-tpm").fill("2.5")
    rpm.fill("2")
    rpm.press("Enter")
    expect(page.locator("#key-edit-tpm-error")).to_contain_text("whole number")
    expect(error).to_be_hidden()
    page.locator("#key-edit-tpm").fill("")

    page.locator("#key-edit-save").click()
    expect(editor).to_have_count(0, timeout=TIMEOUT)
    expect(row).to_contain_text("2 rpm", timeout=TIMEOUT)
    expect(page.locator("#keys-notice")).to_contain_text("Saved the key rpm-edit")
    expect(edit).to_be_focused()
    record = admin(keys_gw, "GET", f"keys/{key_id}")
    assert record["rpm"] == 2 and record["tpm"] is None
    assert record["metadata"] == {"owner": "ops"}  # not in the form: kept as it was
    update = next(a for a in admin(keys_gw, "GET", "audit")["data"]
                  if a["action"] == "key.update" and a["target_id"] == key_id)
    assert update["before"]["rpm"] is None and update["after"]["rpm"] == 2

    # the limit holds at once, through the openai package
    assert ask(keys_gw, key, "one") == "echo: one"
    assert ask(keys_gw, key, "two") == "echo: two"
    with pytest.raises(openai.RateLimitError):
        ask(keys_gw, key, "three")


def test_a_budget_edited_in_the_page_highlights_the_key(page: Page, keys_gw: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    made = admin(keys_gw, "POST", "keys", {"name": "budget-edit", "allowed_models": ["chat-oa"]})
    key_id = made["id"]
    assert ask(keys_gw, made["key"], "priced") == "echo: priced"
    login(page, keys_gw, MASTER_KEY)
    open_tab(page, "keys")
    wait_in_page(page, f"spend?group_by=key&key_id={key_id}", "j.total.cost_micros > 0", None)
    used = spent(keys_gw, f"group_by=key&key_id={key_id}")
    row = key_row(page, key_id)
    expect(row).not_to_have_class(NEAR, timeout=TIMEOUT)
    row.locator(".edit-key").click()
    expect(page.locator('#key-edit-allowed-models input[value="chat-oa"]')).to_be_checked()
    page.locator("#key-edit-budget-usd").fill(f"{used / 0.9:.10f}")  # 90% of it spent
    page.locator("#key-edit-budget-period").select_option("day")
    page.locator("#key-edit-save").click()
    expect(row).to_have_class(NEAR, timeout=TIMEOUT)
    expect(row.locator(".tag.warn")).to_have_text("90%")
    expect(row).to_contain_text("/ day")
    record = admin(keys_gw, "GET", f"keys/{key_id}")
    assert record["budget_period"] == "day" and record["budget_usd"] == pytest.approx(used / 0.9, rel=1e-3)
    assert record["allowed_models"] == ["chat-oa"]  # untouched fields are not sent

    # no budget again: the highlight goes
    row.locator(".edit-key").click()
    page.locator("#key-edit-budget-usd").fill("")
    page.locator("#key-edit-budget-usd").press("Enter")
    expect(row).not_to_have_class(NEAR, timeout=TIMEOUT)
    assert admin(keys_gw, "GET", f"keys/{key_id}")["budget_usd"] is None


def test_users_and_teams_created_edited_deleted_and_a_key_assigned(page: Page, keys_gw: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    made = admin(keys_gw, "POST", "keys", {"name": "team-key"})
    key, key_id = made["key"], made["id"]
    login(page, keys_gw, MASTER_KEY)
    open_tab(page, "keys")
    expect(page.locator("#teams-table tbody")).to_be_visible(timeout=TIMEOUT)

    page.locator("#teams-add").click()
    expect(page.locator("#team-edit-name")).to_be_focused()
    page.locator("#team-edit-save").click()  # no name: said by the field, nothing sent
    expect(page.locator("#team-edit-name-error")).to_have_text("Give the team a name.")
    page.locator("#team-edit-name").fill("research")
    page.locator("#team-edit-budget-usd").fill("10")
    page.locator("#team-edit-budget-period").select_option("month")
    page.locator("#team-edit-save").click()
    team = record_row(page, "team", "research")
    expect(team).to_contain_text("$10.00 / month", timeout=TIMEOUT)
    team_id = team.get_attribute("data-record-id")
    assert team_id

    page.locator("#users-add").click()
    page.locator("#user-edit-name").fill("ada")
    page.locator("#user-edit-team-id").select_option(label="research")
    page.locator("#user-edit-rpm").fill("30")
    page.locator("#user-edit-rpm").press("Enter")
    user = record_row(page, "user", "ada")
    expect(user).to_contain_text("research", timeout=TIMEOUT)
    expect(user).to_contain_text("30 rpm")
    user_id = user.get_attribute("data-record-id")
    assert user_id
    user.locator(".edit-user").click()
    page.locator("#user-edit-tpm").fill("5000")
    page.locator("#user-edit-tpm").press("Enter")
    expect(user).to_contain_text("30 rpm · 5,000 tpm", timeout=TIMEOUT)
    assert admin(keys_gw, "GET", f"users/{user_id}")["team_id"] == team_id

    # the key to the user and the team, shown by name
    row = key_row(page, key_id)
    row.locator(".edit-key").click()
    page.locator("#key-edit-user-id").select_option(label="ada")
    page.locator("#key-edit-team-id").select_option(label="research")
    page.locator("#key-edit-save").click()
    expect(row.locator(".owner-team")).to_contain_text("research", timeout=TIMEOUT)
    expect(row.locator(".owner-user")).to_contain_text("ada")
    expect(team.locator("td").nth(1)).to_have_text("1")  # users
    expect(team.locator("td").nth(2)).to_have_text("1")  # keys
    record = admin(keys_gw, "GET", f"keys/{key_id}")
    assert (record["user_id"], record["team_id"]) == (user_id, team_id)

    # what the team's key spends counts for the user and the team: budgets near it highlighted
    assert ask(keys_gw, key, "for the team") == "echo: for the team"
    wait_in_page(page, f"spend?group_by=team&team_id={team_id}", "j.total.cost_micros > 0", None)
    team_spent = spent(keys_gw, f"group_by=team&team_id={team_id}")
    team.locator(".edit-team").click()
    expect(page.locator("#team-edit-budget-usd")).to_have_value("10")
    page.locator("#team-edit-budget-usd").fill(f"{team_spent / 0.85:.10f}")
    page.locator("#team-edit-save").click()
    expect(team).to_have_class(NEAR, timeout=TIMEOUT)
    expect(user).not_to_have_class(NEAR)
    user.locator(".edit-user").click()
    page.locator("#user-edit-budget-usd").fill(f"{team_spent:.10f}")  # all of it spent
    page.locator("#user-edit-budget-period").select_option("day")
    page.locator("#user-edit-save").click()
    expect(user).to_have_class(NEAR, timeout=TIMEOUT)
    expect(user.locator(".tag.bad")).to_contain_text("budget used up")
    row.locator(".edit-key").click()
    expect(page.locator("#key-edit-team-id")).to_have_value(team_id)
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header at the top of the full-page shot
    shot(page, "keys-edit")
    page.keyboard.press("Escape")
    expect(page.locator("#key-editor")).to_have_count(0)

    # a taken name is refused by the server and said under the form
    page.locator("#teams-add").click()
    page.locator("#team-edit-name").fill("research")
    page.locator("#team-edit-save").click()
    expect(page.locator("#team-edit-form-error")).to_contain_text("Refused", timeout=TIMEOUT)
    page.locator("#team-edit-cancel").click()
    expect(page.locator("#team-editor")).to_have_count(0)

    # delete: cancelled first, then confirmed
    dialog = page.locator("#confirm-dialog")
    user.locator(".delete-user").click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("ada")
    dialog.locator(".dialog-cancel").click()
    expect(user).to_have_count(1)
    user.locator(".delete-user").click()
    dialog.locator(".dialog-confirm").click()
    expect(user).to_have_count(0, timeout=TIMEOUT)
    expect(row.locator(".owner-user")).to_have_count(0)  # the key lost its user, kept its team
    expect(row.locator(".owner-team")).to_contain_text("research")
    team.locator(".delete-team").click()
    dialog.locator(".dialog-confirm").click()
    expect(team).to_have_count(0, timeout=TIMEOUT)
    expect(page.locator("#keys-notice")).to_contain_text("Deleted the team research")
    expect(row.locator(".owner-team")).to_have_count(0)
    assert ask(keys_gw, key, "still works") == "echo: still works"
    actions = {(a["action"], a["target_id"]) for a in admin(keys_gw, "GET", "audit")["data"]}
    assert {("team.create", team_id), ("team.update", team_id), ("team.delete", team_id), ("user.create", user_id),
            ("user.update", user_id), ("user.delete", user_id)} <= actions


def test_a_keys_daily_spend_chart(page: Page, keys_gw: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    made = admin(keys_gw, "POST", "keys", {"name": "charted", "budget_usd": 1, "budget_period": "day"})
    key_id = made["id"]
    for i in range(2):
        assert ask(keys_gw, made["key"], f"chart {i}") == f"echo: chart {i}"
    login(page, keys_gw, MASTER_KEY)
    open_tab(page, "keys")
    wait_in_page(page, f"spend?group_by=key&key_id={key_id}", "j.total.requests === 2", None)
    used = spent(keys_gw, f"group_by=key&key_id={key_id}")
    assert used > 0

    opener = key_row(page, key_id).locator(".key-spend-open")
    opener.focus()
    page.keyboard.press("Enter")
    box = page.locator("#key-spend")
    expect(box).to_be_visible()
    expect(box).to_be_focused()
    expect(opener).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#key-spend-title")).to_contain_text("charted")
    chart = box.locator('.chart[data-chart="key-spend"]')
    expect(chart).to_have_attribute("data-bars", "30", timeout=TIMEOUT)
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    bar = chart.locator(f'rect.bar[data-day="{today}"]')
    expect(bar).not_to_have_attribute("data-value", "0", timeout=TIMEOUT)
    assert float(bar.get_attribute("data-value") or 0) == pytest.approx(used)
    values = chart.locator("rect.bar").evaluate_all("(els) => els.map((e) => Number(e.dataset.value))")
    assert len(values) == 30 and values[-1] > 0 and all(v == 0 for v in values[:-1])  # empty days are zero
    assert float(bar.get_attribute("height") or 0) > 0
    expect(page.locator("#key-spend-summary")).to_contain_text("budget $1.00 / day")
    # a daily budget far above the bars is named, not drawn (the bars would be flat) ...
    expect(box.locator(".ref-label")).to_have_text("daily budget $1.00, above the scale")
    expect(box.locator(".ref-line")).to_have_count(0)
    # ... and one near them is drawn to scale (Refresh reloads the open chart)
    admin(keys_gw, "PATCH", f"keys/{key_id}", {"budget_usd": used * 2})
    page.locator('[data-refresh="keys"]').click()
    expect(box.locator(".ref-line")).to_have_count(1, timeout=TIMEOUT)
    expect(box.locator(".ref-label")).to_contain_text("daily budget $")
    shot(page, "keys-spend")
    box.press("Escape")
    expect(box).to_be_hidden()
    expect(opener).to_be_focused()
    expect(opener).to_have_attribute("aria-expanded", "false")


def test_a_viewer_sees_keys_users_and_teams_without_a_control(page: Page, keys_gw: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    viewer = admin(keys_gw, "POST", "keys", {"name": "viewer-k", "metadata": {"panel_role": "viewer"}})["key"]
    team_id = admin(keys_gw, "POST", "teams", {"name": "seen-team", "rpm": 9})["id"]
    user_id = admin(keys_gw, "POST", "users", {"name": "seen-user", "team_id": team_id})["id"]
    key_id = admin(keys_gw, "POST", "keys", {"name": "seen-key", "user_id": user_id})["id"]
    login(page, keys_gw, viewer, role="viewer")
    open_tab(page, "keys")
    expect(record_row(page, "team", "seen-team")).to_contain_text("9 rpm", timeout=TIMEOUT)
    expect(record_row(page, "user", "seen-user")).to_contain_text("seen-team")
    row = key_row(page, key_id)
    expect(row.locator(".owner-user")).to_contain_text("seen-user")
    expect(row.locator(".owner-team")).to_contain_text("seen-team")  # the user's team
    expect(record_row(page, "team", "seen-team").locator("td").nth(2)).to_have_text("1")  # its key, by its user
    for control in (".edit-key", ".revoke-key", ".edit-user", ".delete-user", ".edit-team", ".delete-team"):
        expect(page.locator(control)).to_have_count(0)
    for hidden in ("#users-add", "#teams-add", "#key-create-form"):
        expect(page.locator(hidden)).to_be_hidden()
    row.locator(".key-spend-open").click()  # reading is for everyone
    expect(page.locator('#key-spend .chart[data-chart="key-spend"]')).to_have_attribute("data-bars", "30",
                                                                                        timeout=TIMEOUT)
    shot(page, "keys-viewer")
    answers = page.evaluate("""async ([key, user]) => {
        const s = await (await fetch('/auth/status')).json();
        const call = async (method, path, body) => {
            const r = await fetch('/panel/api/admin/' + path, {method,
                headers: {'Content-Type': 'application/json', 'X-Clawdbot-CSRF': s.csrf}, body: JSON.stringify(body)});
            return [r.status, (await r.json()).error.code];
        };
        return [await call('PATCH', 'keys/' + key, {rpm: 1}), await call('DELETE', 'users/' + user, {}),
                await call('POST', 'teams', {name: 'forced'})];
    }""", [key_id, user_id])
    assert answers == [[403, "panel_read_only"]] * 3
    assert admin(keys_gw, "GET", f"keys/{key_id}")["rpm"] is None


def test_the_keys_tab_at_phone_width(page: Page, keys_gw: GatewayProcess) -> None:
    page.set_viewport_size(PHONE)
    made = admin(keys_gw, "POST", "keys", {"name": "phone-key", "budget_usd": 2, "budget_period": "month"})
    admin(keys_gw, "POST", "teams", {"name": "phone-team", "budget_usd": 3})
    login(page, keys_gw, MASTER_KEY)
    open_tab(page, "keys")
    row = key_row(page, made["id"])
    row.locator(".key-spend-open").click()
    expect(page.locator('#key-spend .chart[data-chart="key-spend"]')).to_have_attribute("data-bars", "30",
                                                                                        timeout=TIMEOUT)
    row.locator(".edit-key").click()
    expect(page.locator("#key-edit-name")).to_be_focused()
    record_row(page, "team", "phone-team").locator(".edit-team").click()
    expect(page.locator("#team-edit-name")).to_be_focused()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the Keys tab scrolls sideways at phone width ({width}px)"
    page.locator("#key-editor").scroll_into_view_if_needed()
    shot(page, "keys-phone")


def test_the_editors_sections_and_chart_have_no_serious_accessibility_violation(
        axe_page: Page, keys_gw: GatewayProcess) -> None:
    page = axe_page  # conftest.py's: a context that bypasses the CSP, so that axe can be injected
    team = admin(keys_gw, "POST", "teams", {"name": "a11y-team"})
    user = admin(keys_gw, "POST", "users", {"name": "a11y-user", "team_id": team["id"]})
    made = admin(keys_gw, "POST", "keys", {"name": "a11y-key", "user_id": user["id"]})
    assert ask(keys_gw, made["key"], "for axe") == "echo: for axe"
    login(page, keys_gw, MASTER_KEY)
    wait_in_page(page, f"spend?group_by=team&team_id={team['id']}", "j.total.cost_micros > 0", None)
    used = spent(keys_gw, f"group_by=team&team_id={team['id']}")
    for kind, record in (("keys", made), ("users", user), ("teams", team)):  # each at its budget: highlighted
        admin(keys_gw, "PATCH", f"{kind}/{record['id']}", {"budget_usd": used})
    open_tab(page, "keys")
    row = key_row(page, made["id"])
    expect(row).to_have_class(NEAR, timeout=TIMEOUT)
    expect(record_row(page, "user", "a11y-user")).to_have_class(NEAR)
    expect(record_row(page, "team", "a11y-team")).to_have_class(NEAR)

    found: dict[str, list[dict[str, Any]]] = {}
    for theme in ("dark", "light"):
        if theme == "light":
            page.locator("#theme-toggle").click()
            expect(page.locator("html")).to_have_attribute("data-theme", "light")
        row.locator(".key-spend-open").click()
        expect(page.locator('#key-spend rect.bar[data-value]:not([data-value="0"])')).to_have_count(1, timeout=TIMEOUT)
        row.locator(".edit-key").click()
        page.locator("#key-edit-rpm").fill(str(10**16))
        page.locator("#key-edit-save").click()
        expect(page.locator("#key-edit-rpm-error")).to_be_visible(timeout=TIMEOUT)  # a field in error
        record_row(page, "user", "a11y-user").locator(".edit-user").click()
        page.locator("#teams-add").click()
        expect(page.locator("#team-editor")).to_be_visible()
        found[f"keys, users and teams ({theme})"] = run_axe(page, f"keys, users and teams ({theme})")
        page.evaluate("window.scrollTo(0, 0)")
        shot(page, f"keys-editors-{theme}")
        record_row(page, "team", "a11y-team").locator(".delete-team").click()
        expect(page.locator("#confirm-dialog")).to_be_visible()
        found[f"delete dialog ({theme})"] = run_axe(page, f"delete dialog ({theme})")
        page.locator("#confirm-dialog .dialog-cancel").click()
        # closing the dialog gives the focus back to its opener, and nothing takes it back later from
        # the field the Escapes below move to (the close event once did, a task later)
        expect(record_row(page, "team", "a11y-team").locator(".delete-team")).to_be_focused()
        for kind in ("key", "user", "team"):  # Escape in a field closes its editor
            page.locator(f"#{kind}-edit-name").press("Escape")
            expect(page.locator(f"#{kind}-editor")).to_have_count(0)
        page.locator("#key-spend").press("Escape")
        expect(page.locator("#key-spend")).to_be_hidden()

    bad = {where: v for where, v in found.items() if v}
    assert not bad, "serious or critical accessibility violations:\n" + json.dumps(bad, indent=1)[:20000]

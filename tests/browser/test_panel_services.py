"""The panel's Services tab (docs/panel.md) in Chromium against a real gateway whose config is a file:
an admin adds a service pointing at a test upstream that wants a key, with the key given as
`${SOME_VAR}` (set in the gateway's environment); Test connection reaches it and lists its models;
the preview shows the change to the file, Apply writes it and reloads, and the `openai` package
reaches `extra/mock-a` through the gateway (the upstream checks the key). A key typed as it is
never leaves the page. Removing the service asks for confirmation and previews too. A viewer reads
the services without a control; a gateway that cannot write its file says so and offers no editing.
The further settings: `oa` renamed `oa-main` in the page (the route naming it rewritten in the same
edit, and the `openai` package then reaches the model through it), an extra header given as
`${HDR_TOKEN}` that arrives at the upstream, a header's literal secret refused in the page and never
sent, the breaker and the limits set and read back, the keys the form has no field for kept with
their comment, a loader's refusal shown by its field; limits.fair_share, auth.type/auth.header and
timeouts.idle set, applied and read back, their bad values refused by their fields (in the page, and
by the loader when the page is bypassed); axe on that editor in both themes.
Screenshots: test-artifacts/browser/panel-services.png, panel-services-edit.png and
panel-services-edit-more.png."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import openai
import pytest
import yaml
from playwright.sync_api import Page, Request, Route, expect

from tests.browser.axe_support import run_axe
from tests.browser.conftest import MASTER_KEY, config_path, serve
from tests.browser.panel_support import DESKTOP, PHONE, TIMEOUT, admin, ask, login, open_tab, shot
from tests.e2e.harness import GatewayProcess
from tests.secrets.collect import active as secrets_collector
from tests.upstreams.openai_server import OpenAIUpstream

UPSTREAM_KEY = "sk-extra-upstream-7f3a9c2e5b"  # what SOME_VAR holds; the upstream refuses any other key
LITERAL = "sk-typed-literal-4d8e1a6b0c"  # typed into the key field: refused in the page, never sent
COMMENT = "# the upstreams (the panel keeps this comment)"
HDR_TOKEN = "hdr-token-from-the-env-5e1d"  # what HDR_TOKEN holds: the header the upstream is sent
HDR_LITERAL = "sk-hdr-literal-9c8b7a6d5e"  # typed as a header's value: refused in the page, never sent
KEPT = "max_pool: 16   # kept by the panel"


@pytest.fixture(scope="module")
def keyed_upstream() -> Iterator[OpenAIUpstream]:
    with OpenAIUpstream(api_key=UPSTREAM_KEY) as up:
        yield up


@pytest.fixture(scope="module")
def plain_upstream() -> Iterator[OpenAIUpstream]:
    with OpenAIUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def services_gw(tmp_path_factory: pytest.TempPathFactory, plain_upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    # SOME_VAR's name does not say secret: the session-end leak scan is told (a no-op without it)
    secrets_collector().add_secret(UPSTREAM_KEY, "upstream key", "SOME_VAR of the Services tab's gateway")
    secrets_collector().add_secret(LITERAL, "upstream key", "typed into the Services tab's key field")
    secrets_collector().add_secret(HDR_LITERAL, "header token", "typed into the Services tab's header value")
    yield from serve(tmp_path_factory.mktemp("browser-services"), f"""server:
  master_key: {MASTER_KEY}
  log_format: json
{COMMENT}
services:
  - name: oa
    type: openai
    endpoint: {plain_upstream.url}/v1
    timeouts: {{connect: 3, total: 120}}
    {KEPT}
    limits: {{fair_share: {{by: team}}}}
  - name: fs
    type: mock
models:
  chat-oa: [oa/mock-a]
""", {"SOME_VAR": UPSTREAM_KEY, "HDR_TOKEN": HDR_TOKEN})


def open_services(page: Page, gw: GatewayProcess) -> list[Request]:
    """The Services tab as an admin at desktop size; the list fills with every POST the page sends to
    the services API (what a refused value must never be among)."""
    page.set_viewport_size(DESKTOP)
    sent: list[Request] = []
    page.on("request", lambda r: sent.append(r) if r.method == "POST" and "/panel/api/servic" in r.url else None)
    login(page, gw, MASTER_KEY)
    open_tab(page, "services")
    return sent


def test_add_test_apply_use_and_remove_a_service(page: Page, services_gw: GatewayProcess,
                                                 keyed_upstream: OpenAIUpstream) -> None:
    sent = open_services(page, services_gw)
    oa = page.locator('#service-list .svc-card[data-service="oa"]')
    expect(oa).to_contain_text("connect 3 s", timeout=TIMEOUT)
    expect(oa.locator(".svc-auth")).to_have_text("none")

    page.locator("#services-add").click()
    editor = page.locator("#service-editor")
    expect(editor).to_be_visible()
    expect(page.locator("#svc-name")).to_be_focused()
    page.locator("#svc-name").fill("extra")
    page.locator("#svc-type").select_option("openai")
    page.locator("#svc-endpoint").fill(f"{keyed_upstream.url}/v1")
    page.locator("#svc-model-id").fill("mock-a")
    page.locator("#svc-first-byte").fill("30")
    expect(page.locator("#svc-preset")).to_be_hidden()  # gRPC only

    # a key typed as it is: refused in the page, the field emptied, nothing sent
    page.locator("#svc-key").fill(LITERAL)
    page.locator("#svc-preview").click()
    error = page.locator("#svc-form-error")
    expect(error).to_contain_text("environment variable reference like ${MY_SERVICE_KEY}")
    expect(page.locator("#svc-key")).to_have_value("")
    expect(page.locator("#svc-key")).to_be_focused()
    page.locator("#svc-key").fill(LITERAL)
    page.locator("#svc-test").click()
    expect(error).to_contain_text("environment variable reference")
    expect(page.locator("#svc-key")).to_have_value("")
    assert LITERAL not in page.content() and LITERAL not in error.inner_text()
    assert not sent, [r.url for r in sent]

    page.locator("#svc-key").fill("${SOME_VAR}")
    page.locator("#svc-test").click()
    result = page.locator("#svc-test-result")
    expect(result).to_have_attribute("data-ok", "true", timeout=TIMEOUT)
    expect(result).to_contain_text("Connection ok")
    expect(result).to_contain_text("mock-a")
    expect(error).to_be_hidden()

    apply = page.locator("#svc-apply")
    expect(apply).to_be_disabled()  # nothing previewed yet
    page.locator("#svc-preview").click()
    diff = page.locator("#svc-diff")
    expect(diff.locator(".diff-add")).to_contain_text(["name: extra"], timeout=TIMEOUT)
    expect(diff).to_contain_text("${SOME_VAR}")
    expect(diff).to_contain_text("model_id: mock-a")
    expect(apply).to_be_enabled()
    assert "extra" not in config_path(services_gw).read_text()  # a preview writes nothing
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "services-edit")

    page.locator("#svc-model-id").fill("mock-b")  # a change after the preview: apply it only once previewed
    expect(apply).to_be_disabled()
    page.locator("#svc-model-id").fill("mock-a")
    page.locator("#svc-model-id").press("Enter")  # Enter in a field previews
    expect(apply).to_be_enabled(timeout=TIMEOUT)
    apply.click()
    notice = page.locator("#services-notice")
    expect(notice).to_contain_text("Added the service extra", timeout=TIMEOUT)
    expect(notice).to_contain_text("generation")
    expect(editor).to_have_count(0)
    extra = page.locator('#service-list .svc-card[data-service="extra"]')
    expect(extra.locator(".svc-auth")).to_have_text("${SOME_VAR}")
    expect(extra).to_contain_text("mock-a")
    expect(extra.locator(".edit-service")).to_be_focused()

    text = config_path(services_gw).read_text()
    assert COMMENT in text and "key: ${SOME_VAR}" in text
    assert UPSTREAM_KEY not in text and LITERAL not in text
    before = keyed_upstream.request_count
    answer = ask(services_gw, MASTER_KEY, "through the new service", model="extra/mock-a")
    assert answer == "echo: through the new service"
    assert keyed_upstream.request_count == before + 1
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "services")

    open_tab(page, "audit")
    entry = page.locator("#audit-table tbody tr", has_text="config.update").filter(has_text="services.extra")
    expect(entry).to_have_count(1, timeout=TIMEOUT)

    # remove it again: a preview of the removal, then a confirmation
    open_tab(page, "services")
    extra.locator(".remove-service").click()
    expect(page.locator("#svc-diff .diff-del")).to_contain_text(["name: extra"], timeout=TIMEOUT)
    page.locator("#svc-apply").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Remove this service?")
    dialog.locator(".dialog-cancel").click()
    expect(extra).to_be_visible()
    assert "name: extra" in config_path(services_gw).read_text()
    page.locator("#svc-apply").click()
    dialog.locator(".dialog-confirm").click()
    expect(notice).to_contain_text("Removed the service extra", timeout=TIMEOUT)
    expect(extra).to_have_count(0)
    assert "name: extra" not in config_path(services_gw).read_text()
    with pytest.raises(openai.NotFoundError):
        ask(services_gw, MASTER_KEY, "after the removal", model="extra/mock-a")


def test_a_viewer_reads_the_services_without_a_control(page: Page, services_gw: GatewayProcess) -> None:
    page.set_viewport_size(DESKTOP)
    viewer = admin(services_gw, "POST", "keys", {"name": "svc-viewer", "metadata": {"panel_role": "viewer"}})["key"]
    login(page, services_gw, viewer, role="viewer")
    open_tab(page, "services")
    expect(page.locator('#service-list .svc-card[data-service="oa"]')).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("#services-add")).to_be_hidden()
    expect(page.locator(".edit-service, .remove-service")).to_have_count(0)


def test_a_gateway_that_cannot_write_its_config_offers_no_editing(page: Page, services_gw: GatewayProcess) -> None:
    """The answer of a gateway without a writable file, as the browser is given it (tests/web has the
    server's side): the reason is shown and nothing can be edited."""
    page.set_viewport_size(DESKTOP)
    reason = "the gateway runs without a config file"
    page.route("**/panel/api/services", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps({"editable": False, "reason": reason, "services": [
            {"name": "oa", "type": "openai", "endpoint": "http://127.0.0.1:9/v1",
             "auth": {"type": "bearer", "key": "********"}}]})))
    login(page, services_gw, MASTER_KEY)
    open_tab(page, "services")
    card = page.locator('#service-list .svc-card[data-service="oa"]')
    expect(card.locator(".svc-auth")).to_contain_text("masked", timeout=TIMEOUT)
    expect(page.locator("#services-read-only")).to_contain_text(reason)
    expect(page.locator("#services-add")).to_be_disabled()
    expect(card.locator(".edit-service")).to_be_disabled()
    expect(card.locator(".remove-service")).to_be_disabled()


def test_the_editor_fits_a_phone(page: Page, services_gw: GatewayProcess) -> None:
    page.set_viewport_size(PHONE)
    login(page, services_gw, MASTER_KEY)
    open_tab(page, "services")
    card = page.locator('#service-list .svc-card[data-service="oa"]')
    card.locator(".edit-service").click(timeout=TIMEOUT)
    expect(page.locator("#svc-type")).to_be_focused()
    page.locator("#svc-connect").fill("4")
    page.locator("#svc-preview").click()
    expect(page.locator("#svc-diff .diff-add").first).to_be_visible(timeout=TIMEOUT)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the service editor scrolls sideways at phone width ({width}px)"
    page.locator("#svc-cancel").click()
    expect(card.locator(".edit-service")).to_be_focused()


def test_rename_headers_breaker_and_limits(page: Page, services_gw: GatewayProcess,
                                          plain_upstream: OpenAIUpstream) -> None:
    sent = open_services(page, services_gw)
    card = page.locator('#service-list .svc-card[data-service="oa"]')
    card.locator(".edit-service").click(timeout=TIMEOUT)
    expect(page.locator("#svc-other")).to_have_value('{\n  "max_pool": 16\n}')  # a key no field covers

    # a header's literal secret: refused in the page, the value emptied, nothing sent
    page.locator("#svc-header-add").click()
    row = page.locator(".svc-header-row").nth(0)
    expect(row.locator(".svc-header-name")).to_be_focused()
    row.locator(".svc-header-name").fill("X-Team-Token")
    row.locator(".svc-header-value").fill(HDR_LITERAL)
    page.locator("#svc-preview").click()
    expect(page.locator("#svc-form-error")).to_contain_text("environment variable reference like ${MY_TOKEN}")
    expect(row.locator(".svc-header-value")).to_have_value("")
    expect(row.locator(".svc-header-value")).to_be_focused()
    expect(row.locator(".svc-header-value")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#svc-field-error")).to_contain_text("X-Team-Token")
    assert not sent, [r.url for r in sent]
    row.locator(".svc-header-value").fill("${HDR_TOKEN}")
    page.locator("#svc-header-add").click()
    second = page.locator(".svc-header-row").nth(1)
    second.locator(".svc-header-name").fill("X-Team")
    second.locator(".svc-header-value").fill("blue")

    page.locator("#svc-breaker-failures").fill("3")
    page.locator("#svc-breaker-cooldown").fill("7")
    page.locator("#svc-limits-max-inflight").fill("4")
    page.locator("#svc-limits-max-queue").fill("8")
    page.locator("#svc-name").fill("oa-main")
    page.locator("#svc-preview").click()
    diff = page.locator("#svc-diff")
    expect(diff.locator(".diff-add")).to_contain_text(["name: oa-main"], timeout=TIMEOUT)
    expect(diff.locator(".diff-add").filter(has_text="chat-oa")).to_contain_text("oa-main/mock-a")  # the route
    expect(diff).to_contain_text("X-Team-Token: ${HDR_TOKEN}")
    expect(page.locator("#svc-field-error")).to_have_count(0)
    assert all(HDR_LITERAL not in (r.post_data or "") for r in sent)
    assert HDR_LITERAL not in page.content()
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "services-edit-more")

    page.locator("#svc-apply").click()
    notice = page.locator("#services-notice")
    expect(notice).to_contain_text("Renamed the service oa to oa-main", timeout=TIMEOUT)
    renamed = page.locator('#service-list .svc-card[data-service="oa-main"]')
    expect(renamed.locator(".svc-breaker-text")).to_have_text("failures 3, cooldown 7")
    expect(renamed.locator(".svc-headers-names")).to_have_text("X-Team-Token, X-Team")
    expect(card).to_have_count(0)
    text = config_path(services_gw).read_text()
    assert COMMENT in text and KEPT in text and "chat-oa: [oa-main/mock-a]" in text
    assert "fair_share: {by: team}" in text and "max_inflight: 4" in text and "X-Team-Token: ${HDR_TOKEN}" in text
    assert HDR_TOKEN not in text and HDR_LITERAL not in text

    # the model is reached through the renamed service, with the header the environment gives
    before = plain_upstream.request_count
    assert ask(services_gw, MASTER_KEY, "after the rename") == "echo: after the rename"
    assert ask(services_gw, MASTER_KEY, "by its new name", model="oa-main/mock-a") == "echo: by its new name"
    assert plain_upstream.request_count == before + 2
    seen = plain_upstream.last_request
    assert seen is not None and seen.headers["X-Team-Token"] == HDR_TOKEN and seen.headers["X-Team"] == "blue"
    with pytest.raises(openai.NotFoundError):
        ask(services_gw, MASTER_KEY, "by the old name", model="oa/mock-a")

    # round trip: the editor reads back what was applied; a loader's refusal is shown by its field
    renamed.locator(".edit-service").click()
    expect(page.locator("#svc-breaker-failures")).to_have_value("3")
    expect(page.locator("#svc-breaker-cooldown")).to_have_value("7")
    expect(page.locator("#svc-limits-max-inflight")).to_have_value("4")
    expect(page.locator("#svc-limits-max-queue")).to_have_value("8")
    expect(page.locator(".svc-header-row")).to_have_count(2)
    page.locator("#svc-tls-ca-bundle").fill("/no/such/ca.pem")  # TLS on an http endpoint: the loader says no
    page.locator("#svc-preview").click()
    expect(page.locator("#svc-error")).to_contain_text("`tls` applies to https", timeout=TIMEOUT)
    expect(page.locator("#svc-tls-ca-bundle")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#svc-field-error")).to_contain_text("tls")
    expect(page.locator("#svc-apply")).to_be_disabled()
    page.locator("#svc-cancel").click()

    open_tab(page, "audit")
    entry = page.locator("#audit-table tbody tr", has_text="config.update").filter(has_text="services.oa")
    expect(entry.first).to_be_visible(timeout=TIMEOUT)


def test_the_further_settings_pass_axe(axe_page: Page, services_gw: GatewayProcess) -> None:
    page = axe_page  # conftest.py's: a context that bypasses the CSP, so that axe can be injected
    login(page, services_gw, MASTER_KEY)
    open_tab(page, "services")
    card = page.locator("#service-list .svc-card").first
    card.locator(".edit-service").click(timeout=TIMEOUT)
    page.locator("#svc-header-add").click()
    page.locator(".svc-header-row .svc-header-name").last.fill("Authorization")
    page.locator(".svc-header-row .svc-header-value").last.fill("Bearer typed-here")
    page.locator("#svc-preview").click()  # refused in the page: the field in error
    expect(page.locator("#svc-field-error")).to_be_visible()
    found = {}
    for theme in ("dark", "light"):
        if theme == "light":
            page.locator("#theme-toggle").click()
            expect(page.locator("html")).to_have_attribute("data-theme", "light")
        found[theme] = run_axe(page, f"service editor, further settings ({theme})")
    assert not any(found.values()), json.dumps(found, indent=1)[:4000]


def test_fair_share_auth_type_and_idle_timeout(page: Page, services_gw: GatewayProcess) -> None:
    sent = open_services(page, services_gw)
    card = page.locator('#service-list .svc-card[data-service="fs"]')
    card.locator(".edit-service").click(timeout=TIMEOUT)
    expect(page.locator("#svc-auth-type")).to_have_value("")  # the file has none: the default

    # bad values: refused in the page by their own field, nothing sent
    page.locator("#svc-auth-type").select_option("header")
    page.locator("#svc-fair-weights").fill("team-a = 3\nmaster = 0.5")
    page.locator("#svc-fair-by").select_option("user")
    page.locator("#svc-fair-default-weight").fill("2")
    page.locator("#svc-idle").fill("45")
    for control, bad, good, says in [
        ("#svc-auth-header", "", "X-Upstream-Key", "needs the auth header"),
        ("#svc-auth-header", "X Upstream", "X-Upstream-Key", "an HTTP header name"),
        ("#svc-fair-weights", "team-a = -1", "team-a = 3\nmaster = 0.5", "team-a's weight is a number above 0"),
        ("#svc-fair-weights", "team-a", "team-a = 3\nmaster = 0.5", "is not tenant = weight"),
        ("#svc-fair-max-queue-per-tenant", "65", "5", "at most max queue (64)"),
        ("#svc-fair-default-weight", "0", "2", "Default weight: a number above 0"),
        ("#svc-idle", "-3", "45", "idle timeout is a number of seconds above 0"),
    ]:
        page.locator(control).fill(bad)
        page.locator("#svc-preview").click()
        expect(page.locator("#svc-form-error")).to_contain_text(says)
        expect(page.locator(control)).to_have_attribute("aria-invalid", "true")
        expect(page.locator(control)).to_be_focused()
        expect(page.locator("#svc-field-error")).to_contain_text(says)
        page.locator(control).fill(good)
    assert not sent, [r.url for r in sent]

    page.locator("#svc-preview").click()
    diff = page.locator("#svc-diff")
    expect(diff.locator(".diff-add").first).to_be_visible(timeout=TIMEOUT)
    for line in ("type: header", "header: X-Upstream-Key", "idle: 45", "by: user", "default_weight: 2",
                 "max_queue_per_tenant: 5", "team-a: 3", "master: 0.5"):
        expect(diff).to_contain_text(line)
    expect(page.locator("#svc-field-error")).to_have_count(0)
    page.locator("#svc-apply").click()
    expect(page.locator("#services-notice")).to_contain_text("fs", timeout=TIMEOUT)
    expect(page.locator("#service-editor")).to_have_count(0)
    written = next(s for s in yaml.safe_load(config_path(services_gw).read_text())["services"] if s["name"] == "fs")
    assert written == {"name": "fs", "type": "mock", "auth": {"type": "header", "header": "X-Upstream-Key"},
                       "timeouts": {"idle": 45},
                       "limits": {"fair_share": {"by": "user", "default_weight": 2, "max_queue_per_tenant": 5,
                                                 "weights": {"team-a": 3, "master": 0.5}}}}, written

    # read back; then no idle limit (null), fair share off and the header's default, applied and read back
    card.locator(".edit-service").click()
    expect(page.locator("#svc-auth-type")).to_have_value("header")
    expect(page.locator("#svc-auth-header")).to_have_value("X-Upstream-Key")
    expect(page.locator("#svc-idle")).to_have_value("45")
    expect(page.locator("#svc-fair-by")).to_have_value("user")
    expect(page.locator("#svc-fair-default-weight")).to_have_value("2")
    expect(page.locator("#svc-fair-max-queue-per-tenant")).to_have_value("5")
    expect(page.locator("#svc-fair-weights")).to_have_value("team-a = 3\nmaster = 0.5")
    page.locator("#svc-idle-off").check()
    expect(page.locator("#svc-idle")).to_be_disabled()
    page.locator("#svc-fair-enabled").select_option("false")
    page.locator("#svc-auth-type").select_option("")
    page.locator("#svc-auth-header").fill("")
    page.locator("#svc-fair-weights").fill("")
    page.locator("#svc-preview").click()
    expect(diff.locator(".diff-add").filter(has_text="idle")).to_have_text(re.compile(r"idle:\s*$"), timeout=TIMEOUT)
    expect(page.locator("#svc-apply")).to_be_enabled()
    page.locator("#svc-apply").click()
    expect(page.locator("#service-editor")).to_have_count(0, timeout=TIMEOUT)
    written = next(s for s in yaml.safe_load(config_path(services_gw).read_text())["services"] if s["name"] == "fs")
    assert "auth" not in written and written["timeouts"] == {"idle": None}, written
    assert written["limits"]["fair_share"] == {"by": "user", "default_weight": 2, "max_queue_per_tenant": 5,
                                               "enabled": False}, written
    card.locator(".edit-service").click()
    expect(page.locator("#svc-idle-off")).to_be_checked()
    expect(page.locator("#svc-idle")).to_have_value("")
    expect(page.locator("#svc-fair-enabled")).to_have_value("false")

    # the page bypassed: the loader refuses, and its path marks the field
    def corrupt(route: Route) -> None:
        body = json.loads(route.request.post_data or "{}")
        body["service"]["limits"]["fair_share"]["weights"] = {"team-b": 0}
        route.continue_(post_data=json.dumps(body))

    page.route("**/panel/api/services/fs", corrupt)
    page.locator("#svc-preview").click()
    expect(page.locator("#svc-error")).to_contain_text("a weight must be a positive number", timeout=TIMEOUT)
    expect(page.locator("#svc-fair-weights")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#svc-apply")).to_be_disabled()
    page.unroute("**/panel/api/services/fs")
    page.locator("#svc-cancel").click()

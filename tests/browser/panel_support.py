"""What the panel's browser tests share: a keyed gateway's config, the viewports, signing in,
opening a tab, screenshots, the admin API and a request through the `openai` package."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
from playwright.sync_api import Page, ViewportSize, expect

from tests.browser.conftest import ARTIFACTS, MASTER_KEY
from tests.browser.conftest import DESKTOP as DESKTOP  # the tests import it from here
from tests.e2e.harness import GatewayProcess, http_call

TIMEOUT = 15_000
PHONE: ViewportSize = {"width": 390, "height": 844}
TABS = ("overview", "models", "services", "plugins", "keys", "spend", "requests", "audit")


def keyed_config(oa_url: str, rest: str, services: str = "") -> str:
    """A gateway with the master key and the service `oa` (the OpenAI test upstream at oa_url);
    services: more `services:` entries after it; rest: the sections that follow."""
    return f"""server:
  master_key: {MASTER_KEY}
  log_format: json
services:
  - name: oa
    type: openai
    endpoint: {oa_url}/v1
{services}{rest}"""


def admin(gw: GatewayProcess, method: str, path: str, body: Any = None) -> Any:
    """The admin API with the master key (the test's own setup, not the page's)."""
    status, raw = http_call(gw, method, f"/admin/api/{path}", body,
                            {"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"})
    assert status < 300, raw
    return json.loads(raw)


def ask(gw: GatewayProcess, key: str, text: str = "hello panel", model: str = "chat-oa") -> str:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=20)
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
    return reply.choices[0].message.content or ""


def login(page: Page, gw: GatewayProcess, key: str, role: str | None = "admin") -> None:
    page.goto(gw.url + "/panel")
    expect(page.locator("#login-form")).to_be_visible(timeout=TIMEOUT)
    page.locator("#login-key").fill(key)
    page.locator("#login-key").press("Enter")
    expect(page.locator("#login-form")).to_be_hidden(timeout=TIMEOUT)
    if role is not None:
        expect(page.locator("#role")).to_have_text(role, timeout=TIMEOUT)


def open_tab(page: Page, name: str) -> None:
    page.locator(f'#tabs a[data-tab="{name}"]').click()
    expect(page.locator(f"#tab-{name}")).to_be_visible()
    expect(page.locator(f'#tabs a[data-tab="{name}"]')).to_have_attribute("aria-current", "page")


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"panel-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# The predicate Playwright polls must answer at once (a Promise would count as true): each poll
# starts a fetch when none is running and answers what the last one found.
_POLL = """([rest, arg]) => {
  const w = (window.__panelWait ||= {});
  const slot = (w[rest] ||= {found: false, busy: false});
  if (!slot.busy && !slot.found) {
    slot.busy = true;
    fetch('/panel/api/admin/' + rest, {cache: 'no-store'})
      .then((r) => (r.ok ? r.json() : null))
      .then((j) => { slot.found = Boolean(j) && (PREDICATE); })
      .catch(() => {})
      .finally(() => { slot.busy = false; });
  }
  return slot.found;
}"""


def wait_in_page(page: Page, rest: str, predicate: str, arg: Any) -> None:
    """Until GET /panel/api/admin/<rest>, fetched by the page with its session, answers JSON for
    which `predicate` (a JS expression over `j` and `arg`) holds: the spend writer and the request
    log write in batches, a moment after the answer."""
    # inlined, not passed: the page's CSP forbids compiling code from a string in the page
    page.wait_for_function(_POLL.replace("PREDICATE", predicate), arg=[rest, arg], polling=100, timeout=TIMEOUT)

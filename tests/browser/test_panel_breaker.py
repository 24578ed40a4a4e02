"""The overview in Chromium while an upstream dies: a service whose breaker opens after 2 failures
is stopped, requests fail until the breaker opens, and the service's card turns red, saying the
breaker is open and the service unreachable (the page polls the overview every 2 s)."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import MASTER_KEY, serve
from tests.browser.panel_support import DESKTOP, TIMEOUT, login, shot
from tests.e2e.harness import GatewayProcess
from tests.upstreams.openai_server import OpenAIUpstream

ATTEMPTS = 6  # requests sent at most after the upstream stopped (the breaker opens after 2 failures)


@pytest.fixture()
def dying() -> Iterator[OpenAIUpstream]:
    up = OpenAIUpstream().start()
    try:
        yield up
    finally:
        up.stop()


@pytest.fixture()
def breaker_gw(tmp_path_factory: pytest.TempPathFactory, dying: OpenAIUpstream) -> Iterator[GatewayProcess]:
    yield from serve(tmp_path_factory.mktemp("browser-breaker"), f"""
server:
  master_key: {MASTER_KEY}
  log_format: json
services:
  - name: fragile
    type: openai
    endpoint: {dying.url}/v1
    breaker: {{failures: 2, cooldown: 60}}
    health_interval: 1
models:
  chat: [fragile/mock-a]
""")


def test_a_dead_upstream_shows_an_open_breaker_on_the_overview(page: Page, breaker_gw: GatewayProcess,
                                                                 dying: OpenAIUpstream) -> None:
    page.set_viewport_size(DESKTOP)
    client = openai.OpenAI(base_url=breaker_gw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)
    reply = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "alive"}])
    assert reply.choices[0].message.content == "echo: alive"
    login(page, breaker_gw, MASTER_KEY)
    card = page.locator('#service-cards .service-card[data-service="fragile"]')
    expect(card).to_have_attribute("data-state", "ok", timeout=TIMEOUT)
    expect(card).to_have_attribute("data-breaker", "closed")

    dying.stop()
    answers: list[str] = []
    for i in range(ATTEMPTS):  # until the gateway stops trying the dead upstream: the breaker is open
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="chat", messages=[{"role": "user", "content": f"dead {i}"}])
        answers.append(f"{failed.value.status_code} {failed.value.message}")
        if "circuit open" in failed.value.message:
            break
    assert "circuit open" in answers[-1], answers

    expect(card).to_have_attribute("data-breaker", "open", timeout=TIMEOUT)
    expect(card).to_have_attribute("data-state", "down", timeout=TIMEOUT)  # unreachable is said first
    expect(card.locator(".status-pill")).to_have_text("unreachable")
    breaker = card.locator("dt", has_text="Breaker").locator("xpath=following-sibling::dd[1]")
    expect(breaker).to_have_text("open")
    expect(breaker).to_have_class("bad")
    reachable = card.locator("dt", has_text="Reachable").locator("xpath=following-sibling::dd[1]")
    expect(reachable).to_have_text("no")
    shot(page, "overview-breaker-open")

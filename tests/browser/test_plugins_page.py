"""The chat page in Chromium through the plugin pipeline: an e-mail address masked on its way to
the model and restored in the streamed answer, and the same question again answered from the
cache, each said in the trace line under the answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import serve
from tests.browser.test_chat_page import TIMEOUT, last_assistant, new_session, open_page, send
from tests.e2e.harness import GatewayProcess
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream

EMAIL = "zhang.san@example.org"


@pytest.fixture(scope="module")
def plugged(tmp_path_factory: pytest.TempPathFactory,
            upstreams: tuple[OpenAIUpstream, OllamaTestServer]) -> Iterator[GatewayProcess]:
    yield from serve(tmp_path_factory.mktemp("browser-plugins"), f"""
server:
  log_format: json
services:
  - name: oa
    type: openai
    endpoint: {upstreams[0].url}/v1
models:
  chat-oa: [oa/mock-a]
web:
  default_model: chat-oa
  rate_limits: {{per_user_per_minute: 0, per_session_per_minute: 0}}
plugins:
  - name: pii
  - name: cache
    with: {{scope: global}}
""")


def test_masked_and_restored_then_a_cache_hit(page: Page, plugged: GatewayProcess,
                                              upstreams: tuple[OpenAIUpstream, OllamaTestServer]) -> None:
    upstream = upstreams[0]
    open_page(page, plugged)
    new_session(page)
    question = f"please write to {EMAIL}"
    send(page, question)
    reply = last_assistant(page)
    expect(reply).to_have_attribute("data-status", "complete", timeout=TIMEOUT)
    expect(reply).to_contain_text(f"echo: please write to {EMAIL}")  # restored for the user
    assert upstream.last_request is not None
    assert EMAIL not in str(upstream.last_request.body) and "<EMAIL_1>" in str(upstream.last_request.body)
    summary = reply.locator(".trace summary")
    expect(summary).to_contain_text("pii: masked 1 item")
    expect(summary).to_contain_text("cache: miss")

    before = upstream.request_count
    new_session(page)
    send(page, question)
    again = last_assistant(page)
    expect(again).to_have_attribute("data-status", "complete", timeout=TIMEOUT)
    expect(again).to_contain_text(f"echo: please write to {EMAIL}")
    summary = again.locator(".trace summary")
    expect(summary).to_contain_text("cache: hit")
    expect(summary).to_contain_text("no charge")
    assert upstream.request_count == before  # the model was not asked
    again.locator(".trace summary").click()
    expect(again.locator(".trace")).to_contain_text("Plugins")

"""The chat page's Tools toggle, in Chromium: a gateway with an MCP server (mcp-server-time over
stdio) offers it; pressed, the model (the OpenAI test upstream, which calls the tool the message
names) gets the tool, and the reply lists the call with its outcome above the answer. A gateway
without `mcp:` hides the toggle."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import serve
from tests.browser.test_chat_page import TIMEOUT, last_assistant, new_session, open_page, send
from tests.e2e.harness import GatewayProcess
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream

NOW = 'call:time__get_current_time{"timezone": "UTC"}'


@pytest.fixture(scope="module")
def tools_gateway(tmp_path_factory: pytest.TempPathFactory,
                  upstreams: tuple[OpenAIUpstream, OllamaTestServer]) -> Iterator[GatewayProcess]:
    py = json.dumps(sys.executable)
    yield from serve(tmp_path_factory.mktemp("browser-tools"), f"""
services:
  - name: oa
    type: openai
    endpoint: {upstreams[0].url}/v1
models:
  chat-oa: [oa/mock-a]
web:
  default_model: chat-oa
  rate_limits: {{per_user_per_minute: 0, per_session_per_minute: 0}}
mcp:
  servers:
    - name: time
      command: {py}
      args: ["-m", "mcp_server_time", "--local-timezone", "UTC"]
""")


def test_the_tools_toggle_runs_the_tool_and_the_reply_lists_the_call(page: Page, tools_gateway: GatewayProcess) -> None:
    open_page(page, tools_gateway)
    toggle = page.locator("#tools-toggle")
    expect(toggle).to_be_visible(timeout=TIMEOUT)
    expect(toggle).to_have_attribute("aria-pressed", "false")
    new_session(page)
    send(page, f"plain first {NOW}")  # not pressed: no tools offered, the model's call is not run
    reply = last_assistant(page)
    expect(reply).to_have_attribute("data-status", "complete", timeout=TIMEOUT)
    expect(reply.locator(".tool-steps")).to_have_count(0)

    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    send(page, f"what time is it? {NOW}")
    reply = last_assistant(page)
    expect(reply).to_have_attribute("data-status", "complete", timeout=TIMEOUT)
    call = reply.locator(".tool-steps li.tool-call")
    expect(call).to_have_count(1)
    expect(call.locator("code")).to_contain_text('time.get_current_time({"timezone": "UTC"})')
    expect(call.locator(".tool-status")).to_have_attribute("data-status", "ok")
    expect(reply.locator(".message-body")).to_contain_text("tool result:")
    expect(reply.locator(".message-body")).to_contain_text("UTC")


def test_without_mcp_the_toggle_is_hidden(page: Page, gateway: GatewayProcess) -> None:
    open_page(page, gateway)
    expect(page.locator("#server-version")).not_to_be_empty(timeout=TIMEOUT)  # the hello came
    expect(page.locator("#tools-toggle")).to_be_hidden()

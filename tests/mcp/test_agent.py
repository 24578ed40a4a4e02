"""The agent loop (mcp/agent.py) in a real `clawdbot serve`: the model is the OpenAI test upstream
(it calls tools in OpenAI's wire format: tool_calls, finish_reason "tool_calls"), the tools are
mcp-server-time and the tests' peer over stdio; clients are the openai package, plain HTTP and
the chat socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.e2e.harness import GatewayProcess, http_call
from tests.mcp.conftest import MASTER, serve_yaml, stdio_servers
from tests.upstreams.openai_server import OpenAIUpstream
from tests.web.client import WsClient

NOW = 'call:time__get_current_time{"timezone": "UTC"}'


def config(upstream: str, agent: str = "max_steps: 3") -> str:
    return f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
services:
  - name: oa
    type: openai
    endpoint: {upstream}/v1
    timeouts: {{connect: 2, first_byte: 10, total: 30}}
models:
  chat: [oa/mock-a]
web:
  default_model: chat
  rate_limits: {{per_user_per_minute: 0, per_session_per_minute: 0}}
mcp:
  servers:
{stdio_servers(2)}  access:
    - allow: ["time", "peer.*"]
      deny: ["peer.secret_tool"]
  agent: {{{agent}}}
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    yield from serve_yaml(tmp_path_factory.mktemp("agent"), config(upstream.url))


def ask(gw: GatewayProcess, text: str, key: str = MASTER, opt_in: str | None = "mcp",
        **extra: Any) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if opt_in is not None:
        headers["X-Clawdbot-Tools"] = opt_in
    body = {"model": "chat", "messages": [{"role": "user", "content": text}], **extra}
    status, out = http_call(gw, "POST", "/v1/chat/completions", body, headers)
    return status, json.loads(out)


def chats(up: OpenAIUpstream) -> list[dict[str, Any]]:
    return [r.body for r in up.requests if r.path == "/v1/chat/completions"]


def offered(body: dict[str, Any]) -> set[str]:
    return {t["function"]["name"] for t in body.get("tools") or []}


def new_key(gw: GatewayProcess, **fields: Any) -> str:
    status, out = http_call(gw, "POST", "/admin/api/keys", {"name": "agent", **fields},
                            {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"})
    assert status == 201, out
    return str(json.loads(out)["key"])


def test_a_plain_openai_client_gets_an_agent(gw: GatewayProcess, upstream: OpenAIUpstream) -> None:
    upstream.reset()
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, default_headers={"X-Clawdbot-Tools": "mcp"})
    done = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": f"time? {NOW}"}])
    answer = done.choices[0].message.content or ""
    assert answer.startswith("tool result: ") and "UTC" in answer  # the model read the tool's result
    assert done.choices[0].finish_reason == "stop" and not done.choices[0].message.tool_calls
    agent = (done.model_extra or {})["clawdbot_agent"]
    assert agent["turns"] == 2 and agent["stopped"] is None
    [step] = agent["steps"]
    [call] = step["calls"]
    assert call["name"] == "time.get_current_time" and call["status"] == "ok" and "UTC" in call["content"]
    first, second = chats(upstream)
    assert {"time__get_current_time", "time__convert_time", "peer__echo"} <= offered(first)
    assert first["tool_choice"] == "auto"
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "tool"]
    asked = second["messages"][1]["tool_calls"][0]
    assert asked["function"]["name"] == "time__get_current_time"
    assert second["messages"][2]["tool_call_id"] == asked["id"]
    assert done.usage is not None and done.usage.completion_tokens > 0
    log = gw.wait_for_log("tool=get_current_time status=ok")
    line = next(ln for ln in log.splitlines() if "event=mcp_call" in ln and "tool=get_current_time" in ln)
    assert line.count("clawdbot.access") == 1 and line.count(" INFO ") == 1, line  # framed once, like /v1's


def test_the_stream_shows_each_step_then_the_answer(gw: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER)
    stream = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": 'go call:peer__echo{"text": "hi there"}'}],
        stream=True, stream_options={"include_usage": True}, extra_headers={"X-Clawdbot-Tools": "peer.echo"})
    text, steps, finish, usage = "", [], None, None
    for chunk in stream:
        extra = (chunk.model_extra or {}).get("clawdbot_agent")
        if extra is not None:
            steps.append(extra)
        for c in chunk.choices:
            text += c.delta.content or ""
            assert not c.delta.tool_calls  # the gateway's calls are never the client's to run
            finish = c.finish_reason or finish
        usage = chunk.usage or usage
    assert text == "tool result: hi there" and finish == "stop"
    assert steps[0] == {"step": 1, "calls": [{"id": steps[0]["calls"][0]["id"], "name": "peer.echo",
                                              "arguments": '{"text": "hi there"}'}]}
    assert steps[1]["result"]["status"] == "ok" and steps[1]["result"]["content"] == "hi there"
    assert steps[-1]["turns"] == 2
    assert usage is not None and usage.completion_tokens > 0


def test_a_hidden_tool_is_never_offered_and_refused_when_asked(gw: GatewayProcess, upstream: OpenAIUpstream) -> None:
    key = new_key(gw)
    upstream.reset()
    status, out = ask(gw, "please call:peer__secret_tool", key)
    assert status == 200, out
    first, _ = chats(upstream)
    names = offered(first)
    assert "peer__echo" in names and "peer__secret_tool" not in names
    [call] = out["clawdbot_agent"]["steps"][0]["calls"]
    assert call["status"] == "unknown_tool"
    assert out["choices"][0]["message"]["content"] == "tool result: unknown_tool: no tool named " \
                                                      "'peer__secret_tool' is available"
    gw.wait_for_log("status=unknown_tool")
    # narrowing by the header: only what was asked for is offered, and nothing else runs
    upstream.reset()
    status, out = ask(gw, 'call:peer__echo{"text": "x"}', key, opt_in="time")
    assert status == 200 and offered(chats(upstream)[0]) == {"time__get_current_time", "time__convert_time"}
    assert out["clawdbot_agent"]["steps"][0]["calls"][0]["status"] == "unknown_tool"


def test_every_turn_is_admitted_like_a_request(gw: GatewayProcess) -> None:
    key = new_key(gw, rpm=2)
    status, out = ask(gw, 'call:peer__echo{"text": "x"}', key)
    assert status == 200 and out["clawdbot_agent"]["turns"] == 2, out
    status, out = ask(gw, "hi", key, opt_in=None)  # the key's third request this minute
    assert status == 429, out
    one = new_key(gw, rpm=1)
    status, out = ask(gw, 'call:peer__echo{"text": "x"}', one)  # the second turn is refused: its error
    assert status == 429 and out["error"]["type"], out


def test_the_step_limit_ends_a_model_that_keeps_calling(gw: GatewayProcess, upstream: OpenAIUpstream) -> None:
    upstream.reset()
    status, out = ask(gw, 'tools:loop call:peer__echo{"text": "again"}')
    assert status == 200, out
    agent = out["clawdbot_agent"]
    assert agent["turns"] == 3 and agent["stopped"] == "max_steps" and len(agent["steps"]) == 2
    bodies = chats(upstream)
    assert [b.get("tool_choice") for b in bodies] == ["auto", "auto", "none"]  # the last turn must answer
    assert out["choices"][0]["message"]["content"] == "tool result: again"
    assert out["choices"][0]["finish_reason"] == "stop"


def test_a_crashing_or_slow_tool_is_an_error_result_not_a_failure(gw: GatewayProcess) -> None:
    status, out = ask(gw, "call:peer__crash")
    assert status == 200, out
    [call] = out["clawdbot_agent"]["steps"][0]["calls"]
    assert call["status"] == "error" and call["content"].startswith("unavailable: ")
    status, out = ask(gw, 'call:peer__slow{"seconds": 30}')
    assert status == 200, out
    [call] = out["clawdbot_agent"]["steps"][0]["calls"]
    assert call["status"] == "error" and call["content"].startswith("timeout: ")
    assert out["choices"][0]["message"]["content"].startswith("tool result: timeout: ")
    # two calls of one turn run at once, each answered
    status, out = ask(gw, 'call:peer__echo{"text": "a"} call:time__get_current_time{"timezone": "UTC"}')
    assert status == 200 and [c["status"] for c in out["clawdbot_agent"]["steps"][0]["calls"]] == ["ok", "ok"]
    assert out["choices"][0]["message"]["content"].startswith("tool result: a | ")


def test_without_the_opt_in_nothing_changes(gw: GatewayProcess, upstream: OpenAIUpstream) -> None:
    upstream.reset()
    status, out = ask(gw, f"time? {NOW}", opt_in=None)
    assert status == 200 and "clawdbot_agent" not in out
    assert out["choices"][0]["message"]["content"].startswith("echo: time?")  # no tools: the model echoes
    [body] = chats(upstream)
    assert "tools" not in body


def test_bad_opt_ins_are_refused(gw: GatewayProcess) -> None:
    status, out = ask(gw, "hi", opt_in="time;rm -rf")
    assert status == 400 and out["error"]["param"] == "X-Clawdbot-Tools"
    fn = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    status, out = ask(gw, "hi", tools=[fn])
    assert status == 400 and out["error"]["param"] == "tools"


def test_the_chat_page_runs_tools_and_shows_each_call(gw: GatewayProcess) -> None:
    async def run() -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        async with await WsClient.connect(gw.url, additional_headers={"Authorization": f"Bearer {MASTER}"}) as c:
            await c.hello()
            sent = await c.call("chat.send", {"text": f"what time is it? {NOW}", "tools": True})
            end = (await c.run_end(sent["runId"], 30))["payload"]
            return sent, [f["payload"] for f in c.events(sent["runId"])], end

    sent, events, end = asyncio.run(run())
    assert sent["tools"] is True
    states = [e["state"] for e in events]
    assert states.index("tool_call") < states.index("tool_result") < states.index("final")
    call = next(e for e in events if e["state"] == "tool_call")
    result = next(e for e in events if e["state"] == "tool_result")
    assert call["calls"][0]["name"] == "time.get_current_time" and call["step"] == 1
    assert result["id"] == call["calls"][0]["id"] and result["status"] == "ok" and "UTC" in result["content"]
    assert end["state"] == "final" and end["message"]["content"].startswith("tool result: ")
    assert end["trace"]["agent"]["turns"] == 2 and end["trace"]["agent"]["steps"][0]["calls"][0]["status"] == "ok"
    deltas = "".join(e.get("delta", "") for e in events if e["state"] == "delta")
    assert deltas == end["message"]["content"]


def test_the_chat_page_without_tools_is_unchanged(gw: GatewayProcess) -> None:
    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        async with await WsClient.connect(gw.url, additional_headers={"Authorization": f"Bearer {MASTER}"}) as c:
            await c.hello()
            sent = await c.call("chat.send", {"text": f"time? {NOW}"})
            return sent, (await c.run_end(sent["runId"], 30))["payload"]

    sent, end = asyncio.run(run())
    assert sent["tools"] is False and "agent" not in end["trace"]
    assert end["message"]["content"].startswith("echo: time?")


def test_the_time_limit_stops_a_slow_step_and_asks_for_the_answer(
        tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> None:
    tmp = tmp_path_factory.mktemp("agent-time")
    (tmp / "clawdbot.yaml").write_text(config(upstream.url, "max_steps: 5, max_seconds: 1"))
    with GatewayProcess(["serve", "--config", str(tmp / "clawdbot.yaml")], tmp / "gateway.log",
                        {"TEST_MASTER_KEY": MASTER}) as quick:
        upstream.reset()
        status, out = ask(quick, 'tools:loop call:peer__slow{"seconds": 1.5}')
    assert status == 200, out
    agent = out["clawdbot_agent"]
    assert agent["stopped"] == "max_seconds" and agent["turns"] == 2
    [call] = agent["steps"][0]["calls"]
    assert call["content"] == "timeout: the agent's time limit (mcp.agent.max_seconds) ran out"
    assert [b.get("tool_choice") for b in chats(upstream)] == ["auto", "none"]

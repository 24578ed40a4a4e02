"""The request paths leave no reference cycles behind: a real `clawdbot serve`, its garbage
collector off (tests/e2e/gc_census.py), answers plain, streamed, aborted and failed requests from
the `openai` package and plain HTTP; then one full collection must find nothing unreachable.

Why it matters: api/heap.py freezes what survives a full collection, and a frozen object that
later joins a cycle stays until the next thaw; and every cycle is work for the collector. The two
found (the upstream response and its parser's bound methods on an abort; the failover's last error
held by its own traceback's frame) failed this test before they were broken."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import ollama
import openai
import pytest

from tests.e2e.harness import GatewayProcess, http_call, metric
from tests.upstreams.openai_server import OpenAIUpstream
from tests.web.client import WsClient

MASTER = "sk-cycles-master-0123456789"
CENSUS = str(Path(__file__).with_name("gc_census.py"))
# What SQLAlchemy's cycles are made of: a query expression built per call (`column == value`)
THIRD_PARTY = {"BindParameter", "_anonymous_label", "HasExpressionLookup.Comparator", "frozenset", "dict"}


def config(upstream: OpenAIUpstream) -> str:
    return f"""server:
  master_key: ${{TEST_MASTER_KEY}}
  gc_freeze: none   # no freezing: the census must see every cycle
services:
  - name: oa
    type: openai
    endpoint: {upstream.base_url}
    breaker: {{enabled: false}}   # the failures asked for must not close the service
models:
  chat: [oa/mock-a]
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, openai_upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("cycles")
    (tmp / "clawdbot.yaml").write_text(config(openai_upstream))
    env = {"TEST_MASTER_KEY": MASTER, "GC_CENSUS_OUT": str(tmp / "census.jsonl")}
    with GatewayProcess(["serve", "--config", str(tmp / "clawdbot.yaml")], tmp / "gateway.log", env,
                        runner=[CENSUS]) as gw:
        yield gw


def census(gw: GatewayProcess) -> dict[str, object]:
    """Asks the gateway for a census; waits for its line."""
    out = Path(gw.env["GC_CENSUS_OUT"])
    before = out.read_text().count("\n") if out.exists() else 0
    assert gw.proc is not None
    os.kill(gw.proc.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        lines = out.read_text().splitlines() if out.exists() else []
        if len(lines) > before:
            return dict(json.loads(lines[-1]))
        time.sleep(0.02)  # polling a file the gateway appends to, with a deadline
    raise AssertionError(f"no census within 20 s:\n{gw.log()[-2000:]}")


def in_flight(gw: GatewayProcess) -> float:
    return metric(gw, "clawdbot_http_requests_in_flight", MASTER)


def settled(gw: GatewayProcess) -> None:
    """Until every request before has ended in the gateway (the scrape itself is the one left)."""
    deadline = time.monotonic() + 20
    while in_flight(gw) > 1:
        assert time.monotonic() < deadline, "requests still in flight after 20 s"
        time.sleep(0.02)


def chat(client: openai.OpenAI, text: str, **kw: Any) -> Any:
    return client.chat.completions.create(model="chat", messages=[{"role": "user", "content": text}], **kw)


def test_no_request_path_leaves_a_cycle(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0)
    settled(gw)
    census(gw)  # start-up's own cycles, if any, do not count
    for _ in range(3):
        chat(client, "plain answer")
        assert "".join(c.choices[0].delta.content or "" for c in chat(client, "streamed", stream=True)
                       if c.choices)
        for fault in ("fault:500", "fault:400", "fault:malformed"):
            with pytest.raises(openai.APIStatusError):
                chat(client, f"failing {fault}")
        with pytest.raises(openai.APIError):  # cut off mid-stream by the upstream
            for _ in chat(client, "cut fault:midstream", stream=True):
                pass
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-wrong", max_retries=0).models.list()
        status, _ = http_call(gw, "POST", "/v1/chat/completions", {"model": "chat", "messages": "x"},
                              {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"})
        assert status == 400
        # the client goes away mid-stream: the gateway hangs up on the upstream
        gone = len(openai_upstream.disconnected)
        stream = chat(client, "abort me fault:slow=200 fault:chunks=20", stream=True)
        next(iter(stream))
        stream.close()
        assert openai_upstream.wait_for(lambda: len(openai_upstream.disconnected) > gone, timeout=10)  # noqa: B023
    settled(gw)
    found = census(gw)
    assert found["unreachable"] == 0, f"reference cycles left by the request paths: {found['kinds']}"


def test_the_chat_page_and_the_other_dialects_leave_no_cycle(gw: GatewayProcess) -> None:
    async def chat_page() -> None:
        headers = {"Authorization": f"Bearer {MASTER}"}
        async with await WsClient.connect(gw.url, additional_headers=headers) as c:
            await c.hello()
            for text in ("hello page", "failing fault:500", "cut fault:midstream"):
                sent = await c.call("chat.send", {"text": text})
                await c.run_end(sent["runId"], 20)

    def dialects() -> None:
        claude = anthropic.Anthropic(base_url=gw.url, api_key=MASTER, max_retries=0)
        claude.messages.create(model="chat", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
        with claude.messages.stream(model="chat", max_tokens=64,
                                    messages=[{"role": "user", "content": "streamed"}]) as s:
            assert s.get_final_text()
        with pytest.raises(anthropic.APIStatusError):
            claude.messages.create(model="chat", max_tokens=64, messages=[{"role": "user", "content": "x fault:500"}])
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0)
        assert client.responses.create(model="chat", input="responses dialect").output_text
        ol = ollama.Client(host=gw.url, headers={"Authorization": f"Bearer {MASTER}"})
        assert ol.chat(model="chat", messages=[{"role": "user", "content": "ollama dialect"}]).message.content

    # a first round loads and builds what lives as long as the process (the state store's SQL
    # layer, its compiled queries, msgspec's type information): its one-time cycles do not count
    asyncio.run(chat_page())
    dialects()
    settled(gw)
    census(gw)
    for _ in range(3):
        asyncio.run(chat_page())
        dialects()
    settled(gw)
    found = census(gw)
    # One library's cycles remain, not on the proxy's path: the query expressions that the chat
    # store builds per call through SQLAlchemy (a BindParameter and its comparator). None of ours
    # (uvicorn's HTTP protocol object of each WebSocket upgrade was one: api/protocol.py drops its
    # parser).
    assert found["ours"] == 0, f"reference cycles made by clawdbot's code: {found['our_kinds']}"
    kinds = {k for k, _ in found["kinds"]}  # type: ignore[attr-defined]
    assert kinds <= THIRD_PARTY, f"cycles of kinds not seen before: {kinds - THIRD_PARTY}"

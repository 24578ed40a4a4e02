"""The seed's split topology: `clawdbot gateway` (page, socket, store) in front of `clawdbot proxy`
(no page, no socket). The same chat code runs; `debug` shows both processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from tests.e2e.harness import GatewayProcess
from tests.upstreams.openai_server import OpenAIUpstream
from tests.web.client import WsClient, http_request, run

PROXY_KEY = "sk-proxy-key-0123456789"


@pytest.fixture(scope="module")
def chain(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    d = tmp_path_factory.mktemp("split")
    proxy = GatewayProcess(["proxy"], d / "proxy.log", {
        "CLAWDBOT_MODEL_ENDPOINT": upstream.url, "CLAWDBOT_MASTER_KEY": PROXY_KEY, "CLAWDBOT_DATA_DIR": str(d / "p")})
    with proxy:
        gateway = GatewayProcess(["gateway"], d / "gateway.log", {
            "CLAWDBOT_MODEL_ENDPOINT": proxy.url, "CLAWDBOT_MODEL_API_KEY": PROXY_KEY,
            "CLAWDBOT_DATA_DIR": str(d / "g")})
        with gateway:
            yield gateway, proxy
    assert not (Path(d / "p") / "clawdbot.db").exists()  # the proxy keeps no chats


def test_debug_returns_both_processes(chain: tuple[GatewayProcess, GatewayProcess]) -> None:
    gateway, proxy = chain

    async def body() -> None:
        async with await WsClient.connect(gateway.url) as c:
            end, _ = await c.chat("through the chain")
            assert end["state"] == "final" and end["message"]["content"] == "echo: through the chain"
            procs = (await c.call("debug"))["processes"]
            assert [p["role"] for p in procs] == ["gateway", "proxy"]
            gw_entry, proxy_entry = procs
            assert gw_entry["url"] == gateway.url and proxy_entry["url"] == proxy.url
            up = gw_entry["services"]["upstream"]
            assert up["reachable"] is True and up["requests"] >= 1 and up["type"] == "openai"
            assert proxy_entry["services"]["upstream"]["reachable"] is True
            assert proxy_entry["services"]["upstream"]["requests"] >= 1
            assert {"wsConnections", "chatsInFlight", "loopLagP50Ms"} <= set(proxy_entry["load"])
            assert proxy_entry["load"]["wsConnections"] == 0 and gw_entry["load"]["wsConnections"] >= 1

    run(body())


def test_the_run_request_id_reaches_the_proxy_log(chain: tuple[GatewayProcess, GatewayProcess]) -> None:
    gateway, proxy = chain

    async def body() -> str:
        async with await WsClient.connect(gateway.url) as c:
            end, _ = await c.chat("trace me")
            rid: str = end["trace"]["requestId"]
            return rid

    rid = run(body())
    assert f"request_id={rid}" in gateway.wait_for_log(f"request_id={rid}")  # the business line
    line = next(x for x in proxy.wait_for_log(rid).splitlines() if rid in x and "clawdbot.access" in x)
    assert "status=200" in line and "path=/v1/chat/completions" in line


def test_proxy_serves_no_page_and_no_socket(chain: tuple[GatewayProcess, GatewayProcess]) -> None:
    _, proxy = chain
    bearer = {"Authorization": f"Bearer {PROXY_KEY}"}
    for path in ("/", "/app.css", "/static/js/main.js", "/auth/status"):
        assert http_request(proxy.url, "GET", path)[0] == 404, path

    async def body() -> int:
        with pytest.raises(InvalidStatus) as info:
            await WsClient.connect(proxy.url, additional_headers=bearer)
        return info.value.response.status_code

    assert run(body()) == 404
    assert http_request(proxy.url, "GET", "/debug/stats")[0] == 401
    status, _, data = http_request(proxy.url, "GET", "/debug/stats", headers=bearer)
    assert status == 200 and json.loads(data)["role"] == "proxy"

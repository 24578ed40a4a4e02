"""deploy/nginx/nginx.conf as it is, run by Debian's nginx in front of two real gateway processes
(over the test upstream), on loopback: `nginx -t`, then a chat completion and a streamed one with
the `openai` package, and the chat socket. The copy differs from the file only where Compose's
names must become this machine's: the upstream servers (`clawdbot:18789` -> the two gateways),
the listen address, the pid file and nginx's temporary directories.

The stream: the upstream holds every event after the first until the test opens its gate
(`fault:gate`), so the first event reaches the client only if nothing on the way (nginx, the
gateway) waits for more. Debian's nginx 1.22 passed events on at once here even with
`proxy_buffering on` (tried by hand): `off` is in the file so that a slow client's backpressure
reaches the gateway instead of nginx's temporary file (docs/deploy.md). The socket proves the
upgrade headers and that Host keeps its port (removing `Host $http_host` from /ws fails it: the
gateway's Origin check)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from tests.deploy.artefacts import NGINX_CONF
from tests.e2e.harness import GatewayProcess, free_port, healthy, stop_group, wait_ready
from tests.upstreams.openai_server import OpenAIUpstream
from tests.web.client import WsClient, run

MASTER = "sk-deploy-lb-0123456789abcdef"
GATEWAY_CONFIG = """
server:
  master_key: ${TEST_MASTER_KEY}
services:
  - name: oa
    type: openai
    endpoint: UPSTREAM/v1
    timeouts: {connect: 2, first_byte: 10, total: 30}
models:
  chat: [oa/mock-a]
web:
  default_model: chat
  rate_limits: {per_user_per_minute: 0, per_session_per_minute: 0}
"""
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        pytest.fail("nginx is missing: `apt-get install -y nginx` (scripts/ensure-services.sh installs it)")
    return found


def local_copy(tmp: Path, listen: int, replicas: list[int]) -> Path:
    """nginx.conf with this machine's addresses; everything else as written."""
    text = NGINX_CONF.read_text()

    def servers(m: re.Match[str]) -> str:
        return "\n".join(f"{m.group(1)}server 127.0.0.1:{port}{m.group(2)};" for port in replicas)

    text, upstreams = re.subn(r"^(\s*)server clawdbot:18789([^;]*);", servers, text, flags=re.M)
    text, listens = re.subn(r"^(\s*)listen 8080;", rf"\1listen 127.0.0.1:{listen};", text, flags=re.M)
    assert upstreams == 2 and listens == 1, "the config's shape changed: update this copy's substitutions"
    temps = "".join(f"    {name}_temp_path {tmp / name};\n" for name in TEMP_DIRS)
    text = text.replace("http {\n", "http {\n" + temps, 1)
    path = tmp / "nginx.conf"
    path.write_text(text)
    return path


def nginx_command(conf: Path, *extra: str) -> list[str]:
    return [nginx_binary(), "-c", str(conf), "-p", f"{conf.parent}/", "-e", "stderr",
            "-g", f"pid {conf.parent / 'nginx.pid'};{' '.join(extra)}"]


@dataclass
class Fleet:
    url: str
    gateways: list[GatewayProcess]
    upstream: OpenAIUpstream


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("lb")
    with OpenAIUpstream() as upstream:
        cfg = tmp / "clawdbot.yaml"
        cfg.write_text(GATEWAY_CONFIG.replace("UPSTREAM", upstream.url))
        gateways = [GatewayProcess(["serve", "--config", str(cfg)], tmp / f"gw{i}.log", {"TEST_MASTER_KEY": MASTER})
                    for i in (1, 2)]
        port = free_port()
        conf = local_copy(tmp, port, [gw.port for gw in gateways])
        log_path = tmp / "nginx.log"
        nginx: subprocess.Popen[bytes] | None = None
        try:
            for gw in gateways:
                gw.start()
            with log_path.open("wb") as log:
                nginx = subprocess.Popen(nginx_command(conf, " daemon off;"), stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
            assert wait_ready(nginx, lambda: healthy(port), "nginx", lambda: log_path.read_text(errors="replace"),
                              timeout=30)
            yield Fleet(f"http://127.0.0.1:{port}", gateways, upstream)
        finally:
            stop_group(nginx)
            for gw in gateways:
                gw.stop()


def client(fleet: Fleet) -> openai.OpenAI:
    return openai.OpenAI(base_url=fleet.url + "/v1", api_key=MASTER, timeout=10, max_retries=0)


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    conf = local_copy(tmp_path, free_port(), [free_port(), free_port()])
    command = nginx_command(conf)
    out = subprocess.run([command[0], "-t", *command[1:]], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "test is successful" in out.stderr, out.stderr


def test_chat_completion_through_the_balancer(fleet: Fleet) -> None:
    answer = client(fleet).chat.completions.create(model="chat", messages=[{"role": "user", "content": "hello lb"}])
    assert answer.choices[0].message.content == "echo: hello lb"


def test_requests_are_spread_over_both_replicas(fleet: Fleet) -> None:
    c = client(fleet)
    ids = []
    for i in range(6):
        raw = c.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": f"spread {i}"}])
        ids.append(raw.headers["x-request-id"])
    for gw in fleet.gateways:  # each access line names its request id
        gw.wait_until(lambda log: any(rid in log for rid in ids), timeout=10, what="a request of the six")


def test_stream_arrives_event_by_event(fleet: Fleet) -> None:
    fleet.upstream.set_gate(False)
    try:
        stream = client(fleet).chat.completions.create(
            model="chat", stream=True, messages=[{"role": "user", "content": "fault:chunks=6 fault:gate streamed"}])
        chunks = iter(stream)
        first = ""
        while not first:  # the role chunk may come first; a buffering proxy would time out here
            first = next(chunks).choices[0].delta.content or ""
        fleet.upstream.set_gate(True)
        rest = [ch.choices[0].delta.content or "" for ch in chunks if ch.choices]
    finally:
        fleet.upstream.set_gate(True)
    assert len([first, *[r for r in rest if r]]) == 6
    assert "".join([first, *rest]).startswith("echo:")


def test_chat_socket_through_the_balancer(fleet: Fleet) -> None:
    async def body() -> None:
        headers = {"Authorization": f"Bearer {MASTER}", "Origin": fleet.url}
        async with await WsClient.connect(fleet.url, additional_headers=headers) as ws:
            hello = await ws.hello()
            assert hello["payload"]["user"] == "admin"
            end, deltas = await ws.chat("over the socket")
            assert end["state"] == "final" and end["message"]["content"] == "echo: over the socket"
            assert deltas

    run(body(), timeout=60)


def test_foreign_origin_is_still_refused_through_the_balancer(fleet: Fleet) -> None:
    async def body() -> int:
        headers = {"Authorization": f"Bearer {MASTER}", "Origin": "http://evil.example"}
        try:
            await WsClient.connect(fleet.url, additional_headers=headers)
        except Exception as exc:  # websockets' InvalidStatus: the upgrade was refused
            return int(exc.response.status_code)  # type: ignore[attr-defined]
        return 101

    assert asyncio.run(body()) == 403

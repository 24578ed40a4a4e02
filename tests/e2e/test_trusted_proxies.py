"""`server.trusted_proxies` (tenancy/throttle.py client_address): behind a load balancer every
client arrives from the balancer's address, so the failed-key throttle needs X-Forwarded-For, but
only from a proxy the config trusts (anyone else could write any address into it). Real gateway
processes, wrong keys sent over real sockets."""

from __future__ import annotations

from pathlib import Path

import pytest

from clawdbot.core.networks import networks
from clawdbot.tenancy.throttle import client_address
from tests.e2e.harness import GatewayProcess, http_call

MASTER = "sk-trusted-proxies-0123456789"


def start(tmp: Path, trusted: str) -> GatewayProcess:
    (tmp / "c.yaml").write_text(f"""server:
  master_key: {MASTER}
  auth_failures_burst: 3
  auth_failures_per_minute: 1
  trusted_proxies: {trusted}
services:
  - {{name: m, type: mock}}
""")
    return GatewayProcess(["serve", "--config", str(tmp / "c.yaml")], tmp / "gw.log").start()


def wrong_key(gw: GatewayProcess, forwarded: str) -> int:
    status, _ = http_call(gw, "GET", "/v1/models", headers={"Authorization": "Bearer sk-wrong-0123456789",
                                                            "X-Forwarded-For": forwarded})
    return status


def test_behind_a_trusted_proxy_each_client_has_its_own_budget(tmp_path: Path) -> None:
    gw = start(tmp_path, "[127.0.0.1/32]")
    try:
        assert [wrong_key(gw, "203.0.113.5") for _ in range(4)] == [401, 401, 401, 429]
        # another client behind the same proxy is not held back by the first one's guesses
        assert wrong_key(gw, "203.0.113.6") == 401
        # an address the client wrote left of the one the proxy appended changes nothing
        assert wrong_key(gw, "198.51.100.1, 203.0.113.5") == 429
    finally:
        gw.stop()


def test_without_trusted_proxies_the_header_is_never_read(tmp_path: Path) -> None:
    gw = start(tmp_path, "[]")
    try:
        assert [wrong_key(gw, f"203.0.113.{i}") for i in range(4)] == [401, 401, 401, 429]
    finally:
        gw.stop()


def test_a_bad_network_is_a_config_error_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("server:\n  trusted_proxies: [10.0.0.0/8, not-a-net]\nservices:\n"
                                     "  - {name: m, type: mock}\n")
    code, out = GatewayProcess(["serve", "--config", str(tmp_path / "c.yaml")], tmp_path / "x.log").run_to_exit()
    assert code == 2 and "c.yaml:2" in out and "not-a-net" in out, out


@pytest.mark.parametrize(("peer", "header", "expected"), [
    ("10.0.0.2", b"203.0.113.9", "203.0.113.9"),  # the proxy is trusted: the client it names
    ("192.0.2.7", b"203.0.113.9", "192.0.2.7"),  # not a trusted peer: its header is ignored
    ("10.0.0.2", b"198.51.100.1, 203.0.113.9, 10.0.0.3", "203.0.113.9"),  # trusted hops skipped, right to left
    ("10.0.0.2", b"10.0.0.4, 10.0.0.3", "10.0.0.4"),  # only proxies: the first of them
    ("10.0.0.2", b"garbage", "10.0.0.2"),  # not an address: the peer
    ("10.0.0.2", None, "10.0.0.2"),
])
def test_the_client_address_rule(peer: str, header: bytes | None, expected: str) -> None:
    headers = [] if header is None else [(b"x-forwarded-for", header)]
    scope = {"client": (peer, 5000), "headers": headers}
    assert client_address(scope, networks(["10.0.0.0/8"])) == expected

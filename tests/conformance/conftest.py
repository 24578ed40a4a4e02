"""One replay upstream per upstream dialect and one gateway process in front of them all (a service
per dialect plus the mock), for the whole matrix."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conformance import captures
from tests.conformance.clients import Driver, build
from tests.conformance.matrix import INBOUND
from tests.conformance.replay import NAMES, ReplayUpstream
from tests.e2e.harness import GatewayProcess, serve_config

MASTER = "sk-conformance-master-0123456789"
ANTHROPIC_KEY = "sk-ant-replay"


@pytest.fixture(scope="session")
def replays() -> Iterator[dict[str, ReplayUpstream]]:
    servers = {d: ReplayUpstream(d) for d in captures.DIALECTS}
    try:
        for s in servers.values():
            s.start()
        yield servers
    finally:
        for s in servers.values():
            s.stop()


def config(replays: dict[str, ReplayUpstream]) -> str:
    common = "breaker: {enabled: false}\n    discover: false\n    timeouts: {connect: 2, first_byte: 5, total: 15}"
    endpoints = {"openai": replays["openai"].url + "/v1", "ollama": replays["ollama"].url,
                 "anthropic": replays["anthropic"].url}
    services = "".join(
        f"  - name: {d}\n    type: {d}\n    endpoint: {endpoints[d]}\n    {common}\n" for d in captures.DIALECTS)
    services += f"    auth: {{key: {ANTHROPIC_KEY}}}\n  - name: mock\n    type: mock\n"
    models = "".join(f"  {d}-{n}: [{d}/{n}]\n" for d in captures.DIALECTS for n in NAMES)
    return (f"server:\n  master_key: ${{TEST_MASTER_KEY}}\nservices:\n{services}"
            f"models:\n{models}  mock-any: [mock/any]\n")


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, replays: dict[str, ReplayUpstream]) -> Iterator[GatewayProcess]:
    with serve_config(tmp_path_factory.mktemp("conformance"), config(replays), MASTER) as gw:
        yield gw


@pytest.fixture(scope="session")
def drivers(gateway: GatewayProcess) -> dict[str, Driver]:
    """One client per inbound dialect, for every cell (connections kept alive across cells)."""
    return {name: build(name, gateway.url, MASTER) for name in INBOUND}

"""The spend report end to end: a real gateway process with a master key, spend records written
with SqlSpendStore into the very SQLite file the gateway uses, read back through GET
/admin/api/spend and through `clawdbot spend` run as a command."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clawdbot.state.spend_base import SpendRecord
from clawdbot.state.spend_sql import SqlSpendStore
from clawdbot.state.sql import Database
from tests.e2e.harness import GatewayProcess
from tests.e2e.test_tenancy import MASTER, call

DAY = 86_400_000
MAR_1 = int(dt.datetime(2026, 3, 1, tzinfo=dt.UTC).timestamp() * 1000)


def rec(id: str, at: int, cost: int, key_id: str | None, model: str, prompt: int = 100, completion: int = 50,
        user_id: str | None = None, team_id: str | None = None) -> SpendRecord:
    return SpendRecord(id=id, at_ms=at, model=model, prompt_tokens=prompt, completion_tokens=completion, cost=cost,
                       key_id=key_id, user_id=user_id, team_id=team_id, request_id=f"req-{id}", service="oa")


RECORDS = [
    rec("sp_e1", MAR_1 + 10 * 3_600_000, 1_250_000, "k_alpha", "gpt-x", 1000, 500, "u_1", "t_1"),
    rec("sp_e2", MAR_1 + DAY - 1, 250_000, "k_alpha", "gpt-y", user_id="u_1", team_id="t_1"),  # Mar 1, 23:59:59.999
    rec("sp_e3", MAR_1 + DAY, 3_000_000, "k_beta", "gpt-x", 2000, 1000, "u_2"),  # Mar 2, 00:00
    rec("sp_e4", MAR_1 + 2 * DAY + 5, 125, None, "gpt-y"),  # the master key's request: no key id
]


async def write(url: str, records: list[SpendRecord]) -> None:
    store = SqlSpendStore(Database(url))
    try:
        await store.write(records)
    finally:
        await store.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    d = tmp_path_factory.mktemp("spend")
    cfg = d / "clawdbot.yaml"
    cfg.write_text("server:\n  master_key: ${TEST_MASTER_KEY}\n  log_format: json\n")
    with GatewayProcess(["serve", "--config", str(cfg)], d / "gateway.log", {"TEST_MASTER_KEY": MASTER}) as g:
        db = Path(g.env["CLAWDBOT_DATA_DIR"]) / "clawdbot.db"  # the gateway's default database
        # written twice, as a spend writer replaying its journal would: counted once
        asyncio.run(write(f"sqlite:///{db}", RECORDS))
        asyncio.run(write(f"sqlite:///{db}", RECORDS[1:3]))
        yield g


def spend(gw: GatewayProcess, query: str = "", key: str = MASTER) -> dict[str, Any]:
    status, out = call(gw, "GET", f"/admin/api/spend?{query}", key=key)
    assert status == 200, out
    return dict(out)


def groups(out: dict[str, Any]) -> list[tuple[Any, int, int]]:
    return [(r["group"], r["requests"], r["cost_micros"]) for r in out["data"]]


def test_report_by_key_with_the_master_key(gw: GatewayProcess) -> None:
    out = spend(gw)
    assert out["object"] == "list" and out["group_by"] == "key"
    assert out["since"] is None and out["until"] is None
    assert groups(out) == [("k_beta", 1, 3_000_000), ("k_alpha", 2, 1_500_000), (None, 1, 125)]
    alpha = out["data"][1]
    assert alpha == {"group": "k_alpha", "requests": 2, "prompt_tokens": 1100, "completion_tokens": 550,
                     "cost_usd": 1.5, "cost_micros": 1_500_000}
    assert out["data"][2]["cost_usd"] == 0.000125
    assert out["total"] == {"requests": 4, "prompt_tokens": 3200, "completion_tokens": 1600,
                            "cost_usd": 4.500125, "cost_micros": 4_500_125, "groups": 3}


def test_by_day_with_utc_dates_and_an_inclusive_until(gw: GatewayProcess) -> None:
    out = spend(gw, "group_by=day&since=2026-03-01&until=2026-03-02")
    assert out["since"] == MAR_1 and out["until"] == MAR_1 + 2 * DAY
    assert groups(out) == [("2026-03-01", 2, 1_500_000), ("2026-03-02", 1, 3_000_000)]
    assert groups(spend(gw, "group_by=day")) == [("2026-03-01", 2, 1_500_000), ("2026-03-02", 1, 3_000_000),
                                                 ("2026-03-03", 1, 125)]
    # ms bounds: since inclusive, until exclusive
    edge = spend(gw, f"group_by=day&since={MAR_1 + DAY - 1}&until={MAR_1 + DAY}")
    assert groups(edge) == [("2026-03-01", 1, 250_000)]


def test_filters_and_limit(gw: GatewayProcess) -> None:
    assert groups(spend(gw, "group_by=model&key_id=k_alpha")) == [("gpt-x", 1, 1_250_000), ("gpt-y", 1, 250_000)]
    assert groups(spend(gw, "group_by=team&model=gpt-x")) == [(None, 1, 3_000_000), ("t_1", 1, 1_250_000)]
    assert groups(spend(gw, "group_by=user&user_id=u_2&team_id=t_1")) == []
    assert groups(spend(gw, "group_by=service")) == [("oa", 4, 4_500_125)]
    top = spend(gw, "limit=1")
    assert groups(top) == [("k_beta", 1, 3_000_000)]
    assert top["total"]["groups"] == 3 and top["total"]["cost_micros"] == 4_500_125


def test_a_virtual_key_may_not_read_spend(gw: GatewayProcess) -> None:
    status, made = call(gw, "POST", "/admin/api/keys", {"name": "plain"})
    assert status == 201, made
    status, out = call(gw, "GET", "/admin/api/spend", key=made["key"])
    assert status == 403 and out["error"]["code"] == "admin_required"
    status, admin = call(gw, "POST", "/admin/api/keys", {"name": "ops", "metadata": {"role": "admin"}})
    assert spend(gw, key=admin["key"])["total"]["requests"] == 4


@pytest.mark.parametrize(("query", "param"), [
    ("group_by=region", "group_by"),
    ("since=yesterday", "since"),
    ("until=2026-02-30", "until"),
    ("since=2026-3-1", "since"),
    ("limit=0", "limit"),
    ("limit=ten", "limit"),
    ("key=k_alpha", "key"),  # a misspelt filter must not report everyone's spend
    ("since=2026-03-02&until=2026-03-01", "until"),
])
def test_bad_parameters_are_named(gw: GatewayProcess, query: str, param: str) -> None:
    status, out = call(gw, "GET", f"/admin/api/spend?{query}")
    assert status == 400, out
    assert out["error"]["param"] == param and out["error"]["type"] == "invalid_request_error"
    assert param in out["error"]["message"]


def test_only_get(gw: GatewayProcess) -> None:
    status, out = call(gw, "POST", "/admin/api/spend", {})
    assert status == 405 and out["error"]["code"] == "method_not_allowed"


def test_openapi_describes_spend(gw: GatewayProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn.request("GET", "/openapi.json")
    doc = json.loads(conn.getresponse().read())
    conn.close()
    op = doc["paths"]["/admin/api/spend"]["get"]
    assert {p["name"] for p in op["parameters"]} == {"group_by", "since", "until", "key_id", "user_id", "team_id",
                                                     "model", "limit"}
    assert "SpendReport" in doc["components"]["schemas"]


def cli(gw: GatewayProcess, *args: str, key: str | None = MASTER) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDBOT_")}
    if key is not None:
        env["CLAWDBOT_MASTER_KEY"] = key
    return subprocess.run([sys.executable, "-m", "clawdbot", "spend", "--url", gw.url, *args],
                          env=env, capture_output=True, text=True, timeout=60)


def test_the_cli_prints_a_table(gw: GatewayProcess) -> None:
    out = cli(gw, "--by", "model")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "REQUESTS", "PROMPT", "COMPLETION", "COST"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows == {"gpt-x": ["2", "3,000", "1,500", "$4.25"], "gpt-y": ["2", "200", "100", "$0.250125"],
                    "TOTAL": ["4", "3,200", "1,600", "$4.500125"]}
    assert lines[1].startswith("gpt-x")  # most expensive first
    assert len({len(line) for line in lines}) == 1  # numbers right-aligned: every line as wide


def test_the_cli_filters_and_prints_json(gw: GatewayProcess) -> None:
    out = cli(gw, "--by", "day", "--since", "2026-03-02", "--until", "2026-03-02", "--json")
    assert out.returncode == 0, out.stderr
    parsed = json.loads(out.stdout)
    assert groups(parsed) == [("2026-03-02", 1, 3_000_000)]
    assert parsed == spend(gw, "group_by=day&since=2026-03-02&until=2026-03-02")
    keyed = cli(gw, "--key", "k_alpha", "--model", "gpt-y")
    assert keyed.returncode == 0, keyed.stderr
    assert keyed.stdout.splitlines()[1].split() == ["k_alpha", "1", "100", "50", "$0.25"]
    none = cli(gw, "--user", "u_nobody")
    assert none.returncode == 0 and none.stdout.strip() == "no spend recorded"


def test_the_cli_explains_its_failures(gw: GatewayProcess) -> None:
    out = cli(gw, key=None)
    assert out.returncode == 2 and "CLAWDBOT_MASTER_KEY" in out.stderr
    out = cli(gw, "--since", "last week")
    assert out.returncode == 1 and "400" in out.stderr and "'since'" in out.stderr
    out = cli(gw, key="wrong")
    assert out.returncode == 1 and "401" in out.stderr
    out = cli(gw, "--by", "region")
    assert out.returncode == 2  # argparse: not one of the choices

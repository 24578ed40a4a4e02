"""The keys CLI's formatting and argument handling, without a gateway (e2e/test_tenancy.py runs it
against one)."""

from __future__ import annotations

from typing import Any

import pytest

from clawdbot.cli.keys import CliError, parse_duration, row, status, table, vertical
from clawdbot.cli.main import build_parser


def test_durations() -> None:
    assert parse_duration("3600") == 3600
    assert parse_duration("90m") == 5400
    assert parse_duration("30d") == 30 * 86400
    with pytest.raises(CliError):
        parse_duration("soon")


def test_table_columns_line_up() -> None:
    keys: list[dict[str, Any]] = [
        {"id": "k_1", "name": "a", "hint": "sk-cb-AAAA...BBBB", "allowed_models": None},
        {
            "id": "k_22",
            "name": "longer name",
            "hint": "sk-cb-CCCC...DDDD",
            "allowed_models": ["x", "y"],
            "rpm": 10,
            "budget_usd": 2.5,
            "budget_period": "month",
            "revoked_at": 1,
        },
    ]
    out = table([row(k) for k in keys], ("id", "name", "models", "rpm", "budget", "status"))
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "MODELS", "RPM", "BUDGET", "STATUS"]
    assert {line.index(word) for line, word in zip(lines, ("MODELS", "all", "x,y"), strict=True)} == {
        lines[0].index("MODELS")
    }
    assert lines[2].endswith("revoked") and "$2.5/month" in lines[2]


def test_status_and_vertical() -> None:
    assert status({"expires_at": 1}, now_ms=2) == "expired"
    assert status({"expires_at": 3}, now_ms=2) == "active"
    out = vertical({"id": "k_1", "tags": ["a", "b"], "metadata": {"x": 1}, "expires_at": None})
    assert "tags        a, b" in out and 'metadata    {"x": 1}' in out and "status      active" in out
    assert "expires_at  -" in out


def test_keys_is_a_command() -> None:
    args = build_parser().parse_args(["keys", "--url", "http://x", "revoke", "k_1"])
    assert args.url == "http://x" and args.id == "k_1"

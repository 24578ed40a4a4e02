"""How `server.tool` names become OpenAI function names and back (mcp/agent.py)."""

from __future__ import annotations

import re

from clawdbot.mcp.agent import function_name, selected

OPENAI_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def names(*mcp_names: str) -> dict[str, str]:
    table: dict[str, str] = {}
    for n in mcp_names:
        table[function_name(n, table)] = n
    return table


def test_the_dot_becomes_two_underscores() -> None:
    assert names("time.get_current_time") == {"time__get_current_time": "time.get_current_time"}


def test_every_name_is_a_valid_function_name_and_maps_back() -> None:
    given = ["time.get_current_time", "docs.search pages", "a.b.c", "x." + "y" * 100, "x." + "y" * 101,
             "weird.naïve/tool", "a__b.c", "a.b__c"]
    table = names(*given)
    assert sorted(table.values()) == sorted(given)  # one function name each: nothing lost, nothing shared
    assert all(OPENAI_NAME.fullmatch(fn) for fn in table)
    assert table["a__b__c"] == "a__b.c"  # the first one keeps the plain name; the clash is hashed
    clash = next(fn for fn, n in table.items() if n == "a.b__c")
    assert clash.startswith("a__b__c_") and len(clash) == len("a__b__c") + 9


def test_globs_narrow_by_server_or_tool() -> None:
    assert selected("time.get_current_time", None)
    assert selected("time.get_current_time", ["time"]) and not selected("peer.echo", ["time"])
    assert selected("docs.search_pages", ["docs.search_*"]) and not selected("docs.delete", ["docs.search_*"])

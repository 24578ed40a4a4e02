"""Paging and searching the admin API's lists (GET /admin/api/keys, /users, /teams: `cursor`,
`q`), as the panel's Keys tab uses them under its session (/panel/api/admin/...), against a real
gateway: every record reached once, newest first, the filter by name, id and hint, and each bad
parameter a 400 naming it. The stores' side on SQLite and PostgreSQL: tests/state/test_key_store.py."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.e2e.harness import GatewayProcess
from tests.web.client import http_request
from tests.web.conftest import MASTER_KEY, StartGateway
from tests.web.test_panel_api import Session, admin_key


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway) -> GatewayProcess:
    return start_gateway(server=f"master_key: {MASTER_KEY}")


def get(gw: GatewayProcess, path: str, **query: Any) -> tuple[int, Any]:
    status, _, body = http_request(gw.url, "GET", f"/admin/api/{path}?{urlencode(query)}",
                                   headers={"Authorization": f"Bearer {MASTER_KEY}"})
    return status, json.loads(body)


def first_cursor(gw: GatewayProcess) -> str:
    """The cursor after the newest two `paged-` keys."""
    return str(get(gw, "keys", q="paged-", limit=2)[1]["next_cursor"])


def test_every_key_is_reached_page_by_page_and_the_filter_finds_one(gw: GatewayProcess) -> None:
    made = [admin_key(gw, name=f"paged-{i}") for i in range(7)]
    seen: list[str] = []
    cursor = None
    for _ in range(10):  # bounded: 7 keys in pages of 3 take 3
        status, page = get(gw, "keys", limit=3, **({"cursor": cursor} if cursor else {}))
        assert status == 200, page
        assert len(page["data"]) <= 3
        seen += [k["id"] for k in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [k["id"] for k in reversed(made)]  # newest first, each once
    assert all("key_hash" not in k and "key" not in k for k in page["data"])

    status, found = get(gw, "keys", q="PAGED-4")
    assert status == 200 and [k["id"] for k in found["data"]] == [made[4]["id"]] and found["next_cursor"] is None
    assert [k["id"] for k in get(gw, "keys", q=made[2]["id"])[1]["data"]] == [made[2]["id"]]
    hint = made[5]["hint"]
    assert [k["id"] for k in get(gw, "keys", q=hint[:14])[1]["data"]] == [made[5]["id"]]
    assert get(gw, "keys", q="paged-", limit=2)[1]["next_cursor"] is not None  # the filter pages too
    status, skipped = get(gw, "keys", q="paged-", limit=2, offset=1, cursor=first_cursor(gw))
    assert status == 200 and [k["id"] for k in skipped["data"]] == [made[3]["id"], made[2]["id"]]  # after it, less 1

    # the panel's session reaches the same pages
    s = Session(gw, MASTER_KEY)
    status, first = s.get("/panel/api/admin/keys?" + urlencode({"limit": 2, "q": "paged-"}))
    assert status == 200 and [k["id"] for k in first["data"]] == [made[6]["id"], made[5]["id"]]
    status, second = s.get("/panel/api/admin/keys?" + urlencode({"limit": 2, "q": "paged-",
                                                                 "cursor": first["next_cursor"]}))
    assert status == 200 and [k["id"] for k in second["data"]] == [made[4]["id"], made[3]["id"]]


def test_users_and_teams_page_and_filter_the_same_way(gw: GatewayProcess) -> None:
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    ids = []
    for i in range(3):
        status, _, body = http_request(gw.url, "POST", "/admin/api/teams", {"name": f"Squad {i}"}, auth)
        assert status == 201, body
        ids.append(json.loads(body)["id"])
    status, page = get(gw, "teams", limit=2, q="squad")
    assert status == 200 and [t["id"] for t in page["data"]] == ids[:0:-1]
    status, rest = get(gw, "teams", limit=2, q="squad", cursor=page["next_cursor"])
    assert [t["id"] for t in rest["data"]] == ids[:1] and rest["next_cursor"] is None
    assert get(gw, "users", q="nobody-has-this")[1] == {"object": "list", "data": [], "next_cursor": None}


@pytest.mark.parametrize(("query", "param"), [
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"cursor": "1." + "a" * 129}, "cursor"),
    ({"q": ""}, "q"),
    ({"q": "x" * 201}, "q"),
    ({"q": "a\x00b"}, "q"),
    ({"q": "line\nbreak"}, "q"),
    ({"limit": 0}, "limit"),
    ({"search": "x"}, "search"),
])
def test_a_bad_page_or_filter_is_a_400_naming_it(gw: GatewayProcess, query: dict[str, Any], param: str) -> None:
    status, body = get(gw, "keys", **query)
    assert status == 400, body
    assert body["error"]["param"] == param and body["error"]["code"] == "invalid_query"

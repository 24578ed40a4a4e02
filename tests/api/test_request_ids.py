"""Request ids: the gateway's are UUIDs, and what goes upstream always is one."""

from __future__ import annotations

import uuid

from clawdbot.api.app import request_id
from clawdbot.core.context import RequestContext, new_request_id


def test_new_ids_are_random_version_4_uuids() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    for rid in ids:
        u = uuid.UUID(rid)
        assert str(u) == rid and u.version == 4 and u.variant == uuid.RFC_4122


def test_a_sane_client_id_is_kept_and_anything_else_replaced() -> None:
    assert request_id(b"trace-abc.123_x") == "trace-abc.123_x"
    for bad in (None, b"", b"bad id!", b"x" * 129, b"a\r\nb"):
        rid = request_id(bad)
        assert str(uuid.UUID(rid)) == rid


def test_upstream_id_is_the_request_id_when_it_is_a_uuid_else_one_fresh_uuid() -> None:
    mine = str(uuid.uuid4()).upper()
    assert RequestContext(mine).upstream_id() == mine
    ctx = RequestContext("trace-abc.123_x")
    sent = ctx.upstream_id()
    assert str(uuid.UUID(sent)) == sent and ctx.upstream_id() == sent == ctx.upstream_request_id  # every attempt

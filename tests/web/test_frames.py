"""Parsing requests and naming bad params (web/frames.py), the oversize check (web/socket.py)."""

from __future__ import annotations

import json

import msgspec
import pytest

from clawdbot.web import frames
from clawdbot.web.frames import BadFrame, WsError


class Params(msgspec.Struct, rename="camel"):
    session_id: str
    limit: int = 50


def test_parse_request() -> None:
    req = frames.parse_request('{"type":"req","id":3,"method":"status"}')
    assert (req.id, req.method, req.params) == (3, "status", {})
    assert frames.parse_request(b'{"type":"req","id":"x","method":"m","params":null}').params == {}
    with pytest.raises(BadFrame) as info:
        frames.parse_request('{"type":"req","id":4,"method":""}')
    assert info.value.request_id == 4 and info.value.code == "bad_frame"
    with pytest.raises(BadFrame) as info:
        frames.parse_request(b"\xff\xfe")
    assert info.value.request_id is None


def test_params_errors_name_the_field() -> None:
    assert frames.params(Params, {"sessionId": "s", "extra": 1}).session_id == "s"
    with pytest.raises(WsError) as info:
        frames.params(Params, {"sessionId": "s", "limit": "x"})
    assert info.value.code == "bad_params" and info.value.message.startswith("limit:")
    with pytest.raises(WsError) as info:
        frames.params(Params, {})
    assert "sessionId" in info.value.message


def test_encoding() -> None:
    assert json.loads(frames.ok(1, {"a": 1})) == {"type": "res", "id": 1, "ok": True, "payload": {"a": 1}}
    err = json.loads(frames.error(None, WsError("rate_limited", "slow down", retry_after=3)))
    assert err == {"type": "res", "id": None, "ok": False,
                   "error": {"code": "rate_limited", "message": "slow down", "retryAfter": 3}}
    assert json.loads(frames.event("chat", 9, {})) == {"type": "event", "event": "chat", "seq": 9, "payload": {}}


def test_oversize_is_counted_in_bytes() -> None:
    from clawdbot.web.socket import Socket

    s = Socket.__new__(Socket)
    s.max_frame = 100
    assert not s._too_big("a" * 100) and s._too_big("a" * 101)
    assert s._too_big("\u00e9" * 51) and not s._too_big("\u00e9" * 50)
    assert s._too_big(b"a" * 101) and not s._too_big(b"a" * 100)

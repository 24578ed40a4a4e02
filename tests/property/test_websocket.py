"""The chat socket's message layer (web/frames.py, socket.py, methods.py, chat.py) under any client
frame: arbitrary bytes, text (lone surrogates included), any JSON, and valid requests of every
method mutated. Every frame gets exactly one `res` reply, naming its id when one could be read,
with `ok: true` or a protocol error code other than `internal` (which says a method raised
something unexpected); nothing is logged as an error and the socket stays open.

The WebSocket framing itself (opcodes, masking, fragmentation, UTF-8 of text frames, the size
limit) is done by the `websockets` library under uvicorn (cli/serve.py: ws="websockets-sansio");
what reaches clawdbot is ASGI `websocket.receive` messages, and those are what is fuzzed here,
through the whole app built by the CLI's composition root (build_app), served in this process with
the `mock` service (a real in-process provider)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from clawdbot.api.app import App
from clawdbot.cli.serve import build_app
from clawdbot.config.loader import load_config_text
from clawdbot.observability.access import AccessLog
from clawdbot.web import frames
from clawdbot.web.frames import BadFrame, WsError
from clawdbot.web.methods import METHODS
from clawdbot.web.socket import ALL_METHODS, ResumeParams
from tests.property.strategies import Raw, any_text, bodies, clean_text, dumps, json_values, spelled, to_bytes

CONFIG = """
server: {log_format: text}
services:
  - {name: m, type: mock}
models:
  chat: [m/mock-model]
web:
  default_model: chat
  max_sessions_per_user: 1000000
  rate_limits: {per_user_per_minute: 0, per_session_per_minute: 0, session_changes_per_minute: 0}
"""
REPLY_S = 10.0  # a reply slower than this is none: the reader died or hangs
SESSION = Raw('"$session"')  # stands for a session this socket created (so methods find one)
KEYS = ["type", "id", "method", "params", "sessionId", "title", "model", "limit", "before", "text", "regenerate",
        "runId", "connId", "resumeToken", "lastSeq"]
ids = st.one_of(st.integers(-(2**63), 2**63), st.text(max_size=8), st.sampled_from([0, -1, "", "0"]))
session_ids = st.one_of(st.just(SESSION), clean_text)
PARAMS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "sessions.list": st.fixed_dictionaries({}, optional={"limit": st.integers(-5, 300), "before": st.integers()}),
    "sessions.get": st.fixed_dictionaries({"sessionId": session_ids}, optional={"before": st.integers()}),
    "sessions.create": st.fixed_dictionaries({}, optional={"title": any_text, "model": any_text}),
    "sessions.rename": st.fixed_dictionaries({"sessionId": session_ids, "title": any_text}),
    "sessions.delete": st.fixed_dictionaries({"sessionId": session_ids}),
    "models.list": st.just({}),
    "status": st.fixed_dictionaries({}, optional={"sessionId": session_ids}),
    "debug": st.just({}),
    "connect.resume": st.fixed_dictionaries({"connId": clean_text, "resumeToken": clean_text,
                                             "lastSeq": st.integers()}),
    "chat.send": st.fixed_dictionaries({"text": any_text}, optional={
        "sessionId": session_ids, "model": st.sampled_from(["chat", "m/mock-model", "nope"]) | clean_text,
        "regenerate": st.booleans()}),
    "chat.abort": st.fixed_dictionaries({"runId": clean_text}),
}
requests = st.sampled_from(sorted(PARAMS)).flatmap(lambda m: st.fixed_dictionaries(
    {"type": st.just("req"), "id": ids, "method": st.just(m), "params": PARAMS[m]}))


def text_frames(values: st.SearchStrategy[bytes]) -> st.SearchStrategy[dict[str, Any]]:
    """A frame as text (what a browser sends; invalid UTF-8 is then replaced, as never from a real
    socket, or left as lone surrogates) or as bytes."""
    return st.one_of(
        values.map(lambda b: {"type": "websocket.receive", "bytes": b}),
        values.map(lambda b: {"type": "websocket.receive", "text": b.decode("utf-8", "surrogateescape")}),
    )


frames_ = st.one_of(
    text_frames(spelled(requests)), text_frames(bodies(requests, KEYS)),
    text_frames(spelled(json_values)), text_frames(st.binary(max_size=64)),
    st.text(max_size=64).map(lambda t: {"type": "websocket.receive", "text": t}),
)


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Gateway:
    """The app built from CONFIG, started (its lifespan), on a loop of its own that runs only while
    a test talks to it."""

    def __init__(self, data_dir: Path) -> None:
        config = load_config_text(CONFIG, "ws.yaml", {})
        env = {"CLAWDBOT_DATA_DIR": str(data_dir)}
        self.app: App = build_app(config, AccessLog("text"), "serve", env)
        self.loop = asyncio.new_event_loop()
        self.lifespan: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.started: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        self.task = self.loop.create_task(self.app({"type": "lifespan"}, self.lifespan.get, self._started))
        self.lifespan.put_nowait({"type": "lifespan.startup"})
        assert self.loop.run_until_complete(self.started.get())["type"] == "lifespan.startup.complete"
        gc.unfreeze()  # the app's startup freezes what exists for a server's life: not this test run's

    async def _started(self, msg: MutableMapping[str, Any]) -> None:
        await self.started.put(msg)

    def close(self) -> None:
        self.lifespan.put_nowait({"type": "lifespan.shutdown"})
        self.loop.run_until_complete(self.task)
        self.loop.close()

    def talk(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Open a socket, create a session, send `messages` (SESSION replaced by its id), close: the
        `res` replies to `messages`, in order."""
        return self.loop.run_until_complete(self._talk(messages))

    async def _talk(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        outbox: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        scope = {"type": "websocket", "path": "/ws", "scheme": "ws", "headers": [(b"host", b"127.0.0.1:18789")],
                 "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 18789), "query_string": b"",
                 "subprotocols": []}

        async def send(msg: MutableMapping[str, Any]) -> None:
            await outbox.put(msg)

        served = asyncio.create_task(self.app(scope, inbox.get, send))
        await inbox.put({"type": "websocket.connect"})
        assert (await asyncio.wait_for(outbox.get(), REPLY_S))["type"] == "websocket.accept"

        async def reply() -> dict[str, Any]:
            while True:
                msg = await asyncio.wait_for(outbox.get(), REPLY_S)
                assert msg["type"] == "websocket.send", msg  # not a close: the socket stays open
                frame: dict[str, Any] = json.loads(msg["text"])
                if frame["type"] == "res":
                    return frame

        await inbox.put({"type": "websocket.receive", "text": '{"type":"req","id":"s","method":"sessions.create"}'})
        created = await reply()  # (the nightly profile's thousands of chats could reach the limit)
        session = json.dumps(created["payload"]["session"]["id"] if created["ok"] else "s_none")
        out = []
        for m in messages:
            if "text" in m and SESSION in m["text"]:
                m = {**m, "text": m["text"].replace(SESSION, session)}
            elif "bytes" in m and SESSION.encode() in m["bytes"]:
                m = {**m, "bytes": m["bytes"].replace(SESSION.encode(), session.encode())}
            await inbox.put(m)
            out.append(await reply())
        assert not served.done()
        await inbox.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(served, REPLY_S)
        return out


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("ws"))
    yield gw
    gw.close()


@pytest.fixture(scope="module")
def errors() -> Iterator[Errors]:
    handler = Errors()
    logging.getLogger("clawdbot").addHandler(handler)
    yield handler
    logging.getLogger("clawdbot").removeHandler(handler)


def readable_id(message: dict[str, Any]) -> Any:
    """The id a reply must name: the frame's, when it is a JSON object with an id of a usable type."""
    data = message.get("text") or message.get("bytes") or b""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeError, RecursionError):
        return None
    value = obj.get("id") if isinstance(obj, dict) else None
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


@given(st.lists(frames_, min_size=1, max_size=6))
@example([{"type": "websocket.receive", "text": '{"type":"req","id":1,"method":"\ud800"}'}])  # was a
# UnicodeEncodeError out of the frame parser (the reader task died, the socket went quiet)
@example([{"type": "websocket.receive", "text": '{"type":"req","id":1,"method":"sessions.list","params":'
                                                '{"before":123456789012345678901234567890}}'}])
def test_every_frame_gets_one_reply(gateway: Gateway, errors: Errors, messages: list[dict[str, Any]]) -> None:
    before = len(errors.records)
    replies = gateway.talk(messages)
    for message, res in zip(messages, replies, strict=True):
        assert res["ok"] or (res["error"]["code"] in frames.ERROR_CODES and res["error"]["code"] != "internal"), res
        rid = readable_id(message)
        if rid is not None and (res["ok"] or res["error"]["code"] != "bad_frame" or res["id"] is not None):
            assert res["id"] == rid, (res, message)
    assert errors.records[before:] == [], [r.getMessage() for r in errors.records[before:]]


# ---- the pure layer, with many more inputs ----------------------------------------------------------


@given(st.one_of(st.binary(max_size=80), st.text(max_size=80), st.text(st.characters(exclude_categories=()),
                                                                        max_size=40),
                 spelled(requests), bodies(requests, KEYS), spelled(json_values).map(
                     lambda b: b.decode("utf-8", "surrogateescape"))), st.integers(1, 80))
@example('{"type":"req","id":1,"method":"\ud800"}', 64)
@example(b"[" * 100, 64)
def test_a_frame_parses_or_is_a_bad_frame(data: str | bytes, depth: int) -> None:
    try:
        req = frames.parse_request(data, depth, 10_000)
    except BadFrame as exc:
        assert exc.code == "bad_frame" and exc.message
        json.loads(frames.error(exc.request_id, exc))  # the reply encodes, whatever the id
        return
    assert isinstance(req.method, str) and req.method and isinstance(req.params, dict)
    json.loads(frames.ok(req.id, {}))


@given(st.sampled_from(sorted([*ALL_METHODS, "connect.resume"])), st.one_of(
    st.dictionaries(any_text, json_values, max_size=5), st.sampled_from(sorted(PARAMS)).flatmap(lambda m: PARAMS[m])))
def test_params_convert_or_are_bad_params(method: str, raw: dict[str, Any]) -> None:
    try:  # params as a frame can hold them: decoded JSON (no lone surrogates, no huge literals)
        raw = frames.parse_request(to_bytes(dumps({"type": "req", "id": 1, "method": method, "params": raw}))).params
    except BadFrame:
        return
    cls = ResumeParams if method == "connect.resume" else ALL_METHODS[method][0]
    try:
        frames.params(cls, raw)
    except WsError as exc:
        assert exc.code == "bad_params" and exc.message
    assert set(METHODS) <= set(ALL_METHODS)


@given(st.one_of(st.text(st.characters(exclude_categories=()), max_size=300), st.binary(max_size=300)),
       st.integers(1, 400))
@example("\ud800" * 30, 100)  # a lone surrogate in a frame of a quarter to all of the limit: was UnicodeEncodeError
def test_the_size_check_counts_utf8_bytes(data: str | bytes, limit: int) -> None:
    from clawdbot.web.socket import Socket

    s = Socket.__new__(Socket)  # only the check, which reads max_frame
    s.max_frame = limit
    size = len(to_bytes(data)) if isinstance(data, str) else len(data)
    assert s._too_big(data) == (size > limit)

"""Schemathesis hooks for tests/e2e/test_schemathesis.py, loaded by the `st` CLI (SCHEMATHESIS_HOOKS).

Generated data knows nothing of what exists on the gateway; these hooks give references the
values that exist, as a client would, without making a case invalid (each value they set is one
the schema allows; schemathesis re-checks an edited case):

- `model`: half the bodies (by a hash of the generated name, so a case keeps its choice) name the
  model the test gateway serves, so that answers come from the test upstream through the whole
  pipeline; the other half name random models (404).
- `previous_response_id` (POST /v1/responses): the id of a response an earlier answer stored
  (and no case deleted since), or left out when there is none. A made-up id is refused with 400
  `previous_response_not_found`: OpenAI's contract, which the document cannot express.
- `since` and `until` (the spend report, the request log): `until` must come after `since`, a
  rule between two parameters that a schema cannot state; a pair out of order is swapped (or
  `until` left out), read as the gateway reads them.
- GET /admin/api/requests/stream: a stream ends only when its client goes away or its
  `timeout_s` is up; every case gets a short one.
- Legacy function calling (chat completions): `functions`/`function_call` beside `tools` or
  `tool_choice` are left out, and a `function_call` names one of the `functions` (or is left out
  without them): rules between fields, which the document cannot state.
- Responses `input`: reasoning items after the last assistant message or `function_call` are left
  out: reasoning starts an assistant turn, and one that none follows is a 400 (OpenAI's rule too)."""

from __future__ import annotations

import threading
import zlib
from typing import Any

import schemathesis

from clawdbot.api.admin_queries import log_bound, spend_bound
from clawdbot.api.openapi_paths import MODEL  # the model the test gateway serves (and the examples name)
from clawdbot.core.errors import BadRequest

STREAM_S = 0.2
RESPONSES = ("/v1/responses", "/responses")
CHATS = ("/v1/chat/completions", "/chat/completions")
WINDOWS = {"/admin/api/spend": lambda name, text: spend_bound(name, text, day_end=name == "until"),
           "/admin/api/requests": log_bound}
_stored: list[str] = []  # ids of stored responses, as answers gave them
_lock = threading.Lock()  # schemathesis may run workers in threads


def _model(body: dict[str, Any]) -> None:
    model = body.get("model")
    if isinstance(model, str) and model and zlib.crc32(model.encode()) % 2 == 0:
        body["model"] = MODEL


def _previous(body: dict[str, Any]) -> None:
    given = body.get("previous_response_id")
    if not isinstance(given, str):
        return
    with _lock:
        known = list(_stored)
    if given in known:
        return
    if known:
        body["previous_response_id"] = known[zlib.crc32(given.encode()) % len(known)]
    else:
        del body["previous_response_id"]


def _legacy_functions(body: dict[str, Any]) -> None:
    if body.get("tools") is not None or body.get("tool_choice") is not None:
        body.pop("functions", None)
        body.pop("function_call", None)
        return
    functions, choice = body.get("functions"), body.get("function_call")
    if not isinstance(choice, dict) or not isinstance(choice.get("name"), str):
        if choice is not None and not functions:
            del body["function_call"]
        return  # (a value of the wrong type is left: that case is a negative one)
    names = [f.get("name") for f in functions if isinstance(f, dict)] if isinstance(functions, list) else []
    if choice["name"] not in names:
        if names and isinstance(names[0], str) and names[0]:
            choice["name"] = names[0]
        else:
            del body["function_call"]


def _turns_follow_reasoning(body: dict[str, Any]) -> None:
    items = body.get("input")
    if not isinstance(items, list):
        return

    def starts_turn(item: Any) -> bool:  # an assistant message or a function_call, as the gateway reads them
        if not isinstance(item, dict):
            return False
        kind = item.get("type", "message")
        return kind == "function_call" or (kind == "message" and item.get("role") == "assistant")

    last = max((i for i, item in enumerate(items) if starts_turn(item)), default=-1)
    items[:] = [item for i, item in enumerate(items)
                if i < last or not (isinstance(item, dict) and item.get("type") == "reasoning")]


def _in_order(query: dict[str, Any], bound: Any) -> bool | None:
    """Whether until comes after since (None: one is absent, or not a bound the gateway reads)."""
    try:
        since, until = bound("since", str(query["since"])), bound("until", str(query["until"]))
    except (KeyError, BadRequest):
        return None
    return bool(until > since)


def _window(query: dict[str, Any], bound: Any) -> None:
    if _in_order(query, bound) is not False:
        return
    query["since"], query["until"] = query["until"], query["since"]
    if not _in_order(query, bound):
        del query["until"]


def _short(query: dict[str, Any]) -> None:
    """A stream the gateway would keep open longer than STREAM_S is cut to it (a value the gateway
    refuses, the point of a negative case, is left as it is)."""
    given = query.get("timeout_s")
    try:
        seconds = float(given[-1] if isinstance(given, list) else given)  # a repeated name: the last wins
    except (TypeError, ValueError, IndexError):
        seconds = None if given is None else -1.0
    if seconds is None or STREAM_S < seconds <= 86400:
        query["timeout_s"] = STREAM_S


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if isinstance(case.body, dict):
        _model(case.body)
        if case.path in RESPONSES and case.method.upper() == "POST":
            _previous(case.body)
            _turns_follow_reasoning(case.body)
        if case.path in CHATS and case.method.upper() == "POST":
            _legacy_functions(case.body)
    if case.path in WINDOWS and isinstance(case.query, dict):
        _window(case.query, WINDOWS[case.path])
    if case.path == "/admin/api/requests/stream" and isinstance(case.query, dict):
        _short(case.query)


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    """Keeps _stored to the responses that exist: those stored (`store` true in the answer; a stream
    is left out), less those deleted since."""
    if response.status_code != 200:
        return
    method = case.method.upper()
    if case.path in RESPONSES and method == "POST":
        try:
            answer = response.json()
        except ValueError:
            return  # a stream
        rid = answer.get("id") if isinstance(answer, dict) else None
        if isinstance(rid, str) and answer.get("store") is True:
            with _lock:
                _stored.append(rid)
    elif case.path.endswith("/responses/{id}") and method == "DELETE":
        with _lock:
            if case.path_parameters.get("id") in _stored:
                _stored.remove(case.path_parameters["id"])

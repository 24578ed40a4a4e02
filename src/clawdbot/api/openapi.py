"""GET /openapi.json: the gateway's HTTP API as an OpenAPI 3.1 document, written by hand (the API is
small, and a generator would need a framework). Built once, served as bytes."""

from __future__ import annotations

from typing import Any

import msgspec

from clawdbot import __version__
from clawdbot.api.admin_requests import FILTERS, LIST_PARAMS
from clawdbot.api.exchange import Exchange
from clawdbot.pipeline.policy import Pipeline
from clawdbot.state.spend_base import GROUPS

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


ERRORS = {code: {"$ref": f"#/components/responses/{name}"} for code, name in
          (("400", "BadRequest"), ("401", "Unauthorized"), ("403", "Forbidden"), ("404", "NotFound"))}


def _op(summary: str, ok: dict[str, Any], body: str | None = None, secured: bool = True, tag: str = "v1",
        params: list[dict[str, Any]] | None = None, status: str = "200") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": {status: ok, **ERRORS}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": _ref(body)}}}
    if not secured:
        op["security"] = []
    if params:
        op["parameters"] = params
    return op


def _param(name: str, where: str = "path", kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": {"type": kind}}


def _crud(kind: str, schema: str, create: str, update: str, delete: bool) -> dict[str, Any]:
    one = {
        "get": _op(f"Read a {kind}", _json(_ref(schema)), tag="admin", params=[_param("id")]),
        "patch": _op(f"Change a {kind}", _json(_ref(schema)), update, tag="admin", params=[_param("id")]),
    }
    if delete:
        one["delete"] = _op(f"Delete a {kind}", _json({"type": "object"}), tag="admin", params=[_param("id")])
    page = [_param("limit", "query", "integer"), _param("offset", "query", "integer")]
    created = _json(_ref("NewKey" if kind == "key" else schema), "Created")
    return {
        f"/admin/api/{kind}s": {
            "get": _op(f"List {kind}s, newest first", _json(_list(schema)), tag="admin", params=page),
            "post": _op(f"Create a {kind}", created, create, tag="admin", status="201"),
        },
        f"/admin/api/{kind}s/{{id}}": one,
    }


def _list(schema: str) -> dict[str, Any]:
    items = {"type": "array", "items": _ref(schema)}
    return {"type": "object", "properties": {"object": {"const": "list"}, "data": items}}


NULL_INT = {"type": ["integer", "null"], "minimum": 0}
LIMITS = {"rpm": NULL_INT, "tpm": NULL_INT, "max_parallel": NULL_INT,
          "budget_usd": {"type": ["number", "null"], "minimum": 0},
          "budget_period": {"enum": ["day", "month", "total", None]},
          "metadata": {"type": ["object", "null"]}}
STRINGS = {"type": ["array", "null"], "items": {"type": "string"}}
KEY_FIELDS = {**LIMITS, "name": {"type": ["string", "null"]}, "user_id": {"type": ["string", "null"]},
              "team_id": {"type": ["string", "null"]}, "allowed_models": STRINGS, "tags": STRINGS,
              "expires_at": {"type": ["integer", "null"], "description": "ms since the epoch"}}
STAMPS = {"id": {"type": "string"}, "created_at": {"type": "integer"}, "updated_at": {"type": "integer"}}
KEY = {**KEY_FIELDS, **STAMPS, "hint": {"type": "string"}, "revoked_at": {"type": ["integer", "null"]}}
OPEN = {"type": "object", "additionalProperties": True}
NULL_MS = {"type": ["integer", "null"], "description": "ms since the epoch"}
SPEND_AMOUNTS = {name: {"type": "integer"} for name in ("requests", "prompt_tokens", "completion_tokens",
                                                         "cost_micros")} | {"cost_usd": {"type": "number"}}
SPEND_PARAMS = [
    {**_param("group_by", "query"), "schema": {"enum": list(GROUPS)}},
    {**_param("since", "query"), "description": "YYYY-MM-DD (UTC) or ms since the epoch"},
    {**_param("until", "query"), "description": "YYYY-MM-DD (UTC, inclusive) or ms since the epoch (exclusive)"},
    *(_param(name, "query") for name in ("key_id", "user_id", "team_id", "model")),
    _param("limit", "query", "integer"),
]


def _obj(props: dict[str, Any], required: list[str] | None = None, closed: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    if closed:
        out["additionalProperties"] = False
    return out


def document() -> dict[str, Any]:
    error = _obj({"error": _obj({"message": {"type": "string"}, "type": {"type": "string"},
                                 "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}},
                                closed=False)}, ["error"])
    paths: dict[str, Any] = {
        "/v1/chat/completions": {"post": _op("Chat completion (OpenAI wire format; SSE when stream is true)",
                                             _json(OPEN), "ChatRequest")},
        "/v1/embeddings": {"post": _op("Embeddings (OpenAI wire format)", _json(OPEN), "EmbeddingsRequest")},
        "/v1/models": {"get": _op("The models this gateway serves", _json(OPEN))},
        "/v1/completions": {"post": _op("Legacy text completion (OpenAI wire format; the prompt answered as a "
                                        "chat turn)", _json(OPEN), "CompletionRequest")},
        "/v1/responses": {"post": _op("OpenAI Responses (input text or items; semantic SSE events when stream "
                                      "is true; stored per key unless store is false)", _json(OPEN),
                                      "ResponsesRequest")},
        "/v1/responses/{id}": {"get": _op("A stored response (the key that created it only)", _json(OPEN),
                                          params=[_param("id")]),
                               "delete": _op("Delete a stored response", _json(OPEN), params=[_param("id")])},
        "/v1/responses/{id}/input_items": {"get": _op("A stored response's input items", _json(OPEN), params=[
            _param("id"), _param("limit", "query", "integer"), _param("order", "query"), _param("after", "query")])},
        "/v1/messages": {"post": _op("Anthropic Messages (Anthropic wire format; SSE events when stream is "
                                     "true; key in x-api-key or Authorization)", _json(OPEN), "MessagesRequest",
                                     tag="anthropic")},
        "/v1/messages/count_tokens": {"post": _op("Estimated prompt tokens (Anthropic wire format)", _json(OPEN),
                                                  "MessagesRequest", tag="anthropic")},
        **{f"/api/{name}": {"post": _op(f"Ollama /api/{name} (Ollama wire format; NDJSON when streaming)",
                                        _json(OPEN), "OllamaRequest", tag="ollama")}
           for name in ("chat", "generate", "embed", "embeddings", "show")},
        **{f"/api/{name}": {"get": _op(f"Ollama /api/{name}", _json(OPEN), tag="ollama")} for name in ("tags", "ps")},
        "/api/version": {"get": _op("Ollama /api/version", _json(OPEN), secured=False, tag="ollama")},
        "/healthz": {"get": _op("Liveness", _json(OPEN), secured=False, tag="ops")},
        "/readyz": {"get": _op("Readiness: can the gateway serve a request now?", _json(OPEN), secured=False,
                               tag="ops")},
        "/admin/reload": {"post": _op("Read the config file again and swap it in", _json(OPEN), tag="admin")},
        "/metrics": {"get": _op("Prometheus text (OpenMetrics on Accept); the master key or an admin key",
                                {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}},
                                tag="ops")},
        "/admin/api/keys/{id}/revoke": {"post": _op("Revoke a key (seen by every process within a second)",
                                                    _json(_ref("Key")), tag="admin", params=[_param("id")])},
        "/admin/api/audit": {"get": _op("The audit log of admin actions, newest first", _json(OPEN), tag="admin",
                                        params=[_param("limit", "query", "integer"),
                                                _param("before", "query", "integer")])},
        "/admin/api/spend": {"get": _op("Spend, grouped by key, user, team, model, day or service",
                                        _json(_ref("SpendReport")), tag="admin", params=SPEND_PARAMS)},
        "/openapi.json": {"get": _op("This document", _json(OPEN), secured=False, tag="ops")},
        # the request log (docs/observability.md, Request log)
        "/admin/api/requests": {"get": _op("The request log, newest first: filters and a cursor", _json(OPEN),
                                           tag="admin", params=[_param(n, "query") for n in LIST_PARAMS])},
        "/admin/api/requests/{id}": {"get": _op("One logged request, with its bodies when they were kept",
                                                _json(OPEN), tag="admin", params=[_param("id")])},
        "/admin/api/requests/stream": {"get": _op(
            "Requests as they end (Server-Sent Events, one JSON record per `data:` line)",
            {"description": "OK", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
            tag="admin", params=[_param(n, "query") for n in FILTERS])},
    }
    paths.update(_crud("key", "Key", "KeyCreate", "KeyUpdate", delete=False))
    paths.update(_crud("user", "User", "UserCreate", "UserUpdate", delete=True))
    paths.update(_crud("team", "Team", "TeamCreate", "TeamUpdate", delete=True))
    user = {**LIMITS, "name": {"type": "string"}, "team_id": {"type": ["string", "null"]}}
    team = {**LIMITS, "name": {"type": "string"}}
    schemas = {
        "Error": error,
        "ChatRequest": _obj({"model": {"type": "string"}, "messages": {"type": "array"},
                             "stream": {"type": "boolean"}}, ["model", "messages"], closed=False),
        "EmbeddingsRequest": _obj({"model": {"type": "string"}, "input": {}}, ["model", "input"], closed=False),
        "CompletionRequest": _obj({"model": {"type": "string"}, "prompt": {}, "max_tokens": {"type": "integer"}},
                                  ["model"], closed=False),
        "MessagesRequest": _obj({"model": {"type": "string"}, "messages": {"type": "array"},
                                 "max_tokens": {"type": "integer"}, "system": {}}, ["model", "messages"],
                                closed=False),
        "ResponsesRequest": _obj({"model": {"type": "string"}, "input": {}, "instructions": {"type": "string"},
                                  "previous_response_id": {"type": "string"}, "store": {"type": "boolean"},
                                  "stream": {"type": "boolean"}, "max_output_tokens": {"type": "integer"}},
                                 ["model", "input"], closed=False),
        "OllamaRequest": _obj({"model": {"type": "string"}}, ["model"], closed=False),
        "Key": _obj(KEY),
        "NewKey": _obj({**KEY, "key": {"type": "string", "description": "shown once, never again"}}),
        "KeyCreate": _obj({**KEY_FIELDS, "expires_in": {"type": "number", "exclusiveMinimum": 0}}),
        "KeyUpdate": _obj(KEY_FIELDS),
        "User": _obj({**user, **STAMPS}),
        "UserCreate": _obj(user, ["name"]),
        "UserUpdate": _obj(user),
        "Team": _obj({**team, **STAMPS}),
        "TeamCreate": _obj(team, ["name"]),
        "TeamUpdate": _obj(team),
        "SpendReport": _obj({"object": {"const": "list"}, "group_by": {"type": "string"},
                             "since": NULL_MS, "until": {**NULL_MS, "description": "exclusive"},
                             "data": {"type": "array", "items": _obj({"group": {"type": ["string", "null"]},
                                                                      **SPEND_AMOUNTS})},
                             "total": _obj({**SPEND_AMOUNTS, "groups": {"type": "integer"}})}),
    }
    responses = {name: _json(_ref("Error"), name) for name in ("BadRequest", "Unauthorized", "Forbidden", "NotFound")}
    return {
        "openapi": "3.1.0",
        "info": {"title": "clawdbot", "version": __version__,
                 "description": "An AI gateway. Send `Authorization: Bearer <master key or sk-cb- key>`."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": schemas, "responses": responses,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


class OpenApi:
    def __init__(self) -> None:
        self.body = msgspec.json.encode(document())

    async def __call__(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        await ex.json(200, self.body)

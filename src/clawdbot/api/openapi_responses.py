"""What the gateway answers, as /openapi.json describes it: the error bodies of each dialect (the
one place that writes them is api/errors.py), and the success bodies. Answers relayed from an
upstream are described by the fields every OpenAI-compatible server sends; the gateway's own
answers in full."""

from __future__ import annotations

from typing import Any

from clawdbot.api.openapi_schemas import NULL, Schema, nullable, obj, ref
from clawdbot.state.spend_base import GROUPS

JSON = "application/json"
SSE = "text/event-stream"
NDJSON = "application/x-ndjson"

STRING, INTEGER, NUMBER, BOOLEAN = ({"type": t} for t in ("string", "integer", "number", "boolean"))
OBJECT: Schema = {"type": "object"}
NULL_STRING = nullable(STRING)


def listing(items: Schema, **more: Schema) -> Schema:
    return obj({"object": {"const": "list"}, "data": {"type": "array", "items": items}, **more},
               ["object", "data", *more])


_AMOUNTS = {name: INTEGER for name in ("requests", "prompt_tokens", "completion_tokens", "cost_micros")}
_AMOUNTS["cost_usd"] = NUMBER

SCHEMAS: dict[str, Schema] = {
    # errors (api/errors.py error_body_for): OpenAI's shape; Anthropic's under /v1/messages; Ollama's under /api/
    "Error": obj({"error": obj({"message": STRING, "type": STRING, "param": NULL_STRING, "code": NULL_STRING,
                                "upstream_status": INTEGER}, ["message", "type", "param", "code"])}, ["error"]),
    "AnthropicError": obj({"type": {"const": "error"},
                           "error": obj({"type": STRING, "message": STRING, "upstream_status": INTEGER},
                                        ["type", "message"])}, ["type", "error"]),
    "OllamaError": obj({"error": STRING}, ["error"]),
    # the OpenAI dialect
    "ChatCompletion": obj({"id": STRING, "object": STRING, "created": INTEGER, "model": STRING,
                           "choices": {"type": "array", "items": obj({"index": INTEGER, "message": OBJECT,
                                                                      "finish_reason": NULL_STRING})},
                           "usage": nullable(OBJECT)}, ["choices"]),
    "Embeddings": obj({"object": {"const": "list"}, "model": NULL_STRING, "usage": OBJECT,
                       "data": {"type": "array", "items": obj({
                           "object": {"const": "embedding"}, "index": INTEGER,
                           "embedding": {"anyOf": [{"type": "array", "items": NUMBER}, STRING]}},
                           ["index", "embedding"])}}, ["object", "data"]),
    "Completion": obj({"id": STRING, "object": {"const": "text_completion"}, "created": INTEGER, "model": STRING,
                       "choices": {"type": "array", "items": obj({"text": STRING, "index": INTEGER,
                                                                  "finish_reason": NULL_STRING})},
                       "usage": OBJECT}, ["id", "object", "choices"]),
    "Response": obj({"id": STRING, "object": {"const": "response"}, "status": STRING, "model": STRING,
                     "output": {"type": "array"}}, ["id", "object"]),
    "ResponseDeleted": obj({"id": STRING, "object": {"const": "response"}, "deleted": {"const": True}},
                           ["id", "object", "deleted"]),
    "InputItems": listing(OBJECT, first_id=NULL_STRING, last_id=NULL_STRING, has_more=BOOLEAN),
    "Model": obj({"id": STRING, "object": {"const": "model"}, "created": INTEGER, "owned_by": STRING,
                  "description": STRING}, ["id", "object", "created", "owned_by"]),
    "ModelList": listing(ref("Model")),
    # Anthropic's
    "AnthropicMessage": obj({"id": STRING, "type": {"const": "message"}, "role": {"const": "assistant"},
                             "content": {"type": "array", "items": OBJECT}, "model": STRING,
                             "stop_reason": NULL_STRING, "usage": OBJECT}, ["id", "type", "role", "content"]),
    "AnthropicTokenCount": obj({"input_tokens": INTEGER}, ["input_tokens"]),
    # Ollama's
    "OllamaChat": obj({"model": STRING, "created_at": STRING, "message": OBJECT, "done": BOOLEAN}, ["model", "done"]),
    "OllamaGenerate": obj({"model": STRING, "created_at": STRING, "response": STRING, "done": BOOLEAN},
                          ["model", "response", "done"]),
    "OllamaEmbed": obj({"model": STRING, "embeddings": {"type": "array", "items": {"type": "array", "items": NUMBER}},
                        "prompt_eval_count": INTEGER}, ["model", "embeddings"]),
    "OllamaEmbedding": obj({"embedding": {"type": "array", "items": NUMBER}}, ["embedding"]),
    "OllamaModels": obj({"models": {"type": "array", "items": OBJECT}}, ["models"]),
    "OllamaVersion": obj({"version": STRING}, ["version"]),
    # operations
    "Health": obj({"status": {"const": "ok"}}, ["status"]),
    "Readiness": obj({"status": {"enum": ["ready", "unavailable"]}, "services": {
        "type": "object", "additionalProperties": obj({
            "type": STRING, "reachable": BOOLEAN, "latency_ms": nullable(NUMBER), "checked_at": nullable(NUMBER),
            "detail": NULL_STRING, "breaker": NULL_STRING})}}, ["status"]),
    "Reloaded": obj({"status": {"const": "reloaded"}, "generation": INTEGER, "services": {"type": "array"},
                     "models": {"type": "array"}}, ["status"]),
    "ProcessStats": obj({"role": STRING, "url": STRING, "pid": INTEGER, "uptimeS": NUMBER, "load": OBJECT,
                         "services": OBJECT},
                        ["role", "services"]),
    # the admin API (the records are generated from state/keys_base.py)
    "NewKey": {"allOf": [ref("StoredKeyRecord"),
                         obj({"key": {"type": "string", "description": "shown once, never again"}}, ["key"])]},
    "KeyList": listing(ref("StoredKeyRecord"), next_cursor=NULL_STRING),
    "UserList": listing(ref("StoredUserRecord"), next_cursor=NULL_STRING),
    "TeamList": listing(ref("StoredTeamRecord"), next_cursor=NULL_STRING),
    "Deleted": obj({"id": STRING, "deleted": {"const": True}}, ["id", "deleted"]),
    "AuditLog": listing(ref("StoredAuditRecord"), next_before=nullable(INTEGER)),
    "SpendReport": obj({"object": {"const": "list"}, "group_by": {"enum": list(GROUPS)},
                        "since": nullable(INTEGER), "until": nullable(INTEGER),
                        "data": {"type": "array", "items": obj({"group": NULL_STRING, **_AMOUNTS},
                                                               ["group", *_AMOUNTS])},
                        "total": obj({**_AMOUNTS, "groups": INTEGER}, [*_AMOUNTS, "groups"])},
                       ["object", "group_by", "since", "until", "data", "total"]),
    "RequestRecord": obj({"id": STRING, "at": INTEGER, "status": nullable(INTEGER), "model": NULL_STRING,
                          "cost_usd": nullable(NUMBER), "has_bodies": BOOLEAN}, ["id", "at", "has_bodies"]),
    "RequestLog": listing(ref("RequestRecord"), next_cursor=NULL_STRING),
    # the chat page's login (web/auth.py)
    "LoginBody": obj({"key": {"type": "string", "description": "the master key or a virtual key"}}, ["key"]),
    "Session": obj({"required": BOOLEAN, "authenticated": BOOLEAN, "user": STRING,
                    # the control panel's role (null: none) and the token its writes send back (web/panel.py)
                    "role": nullable({"type": "string", "enum": ["admin", "viewer"]}), "csrf": nullable(STRING)},
                   ["required", "authenticated"]),
    "PanelEdit": obj({"diff": STRING, "valid": BOOLEAN, "error": nullable(STRING), "applied": BOOLEAN,
                      "reload": {"type": "object"}, "warning": STRING}, ["diff", "valid", "applied"]),
    "PanelOverview": obj({"now": NUMBER, "bucket_s": NUMBER, "series": {"type": "object"},
                          "range": {"type": "string", "enum": ["1h", "6h", "24h", "7d"]},
                          "ranges": {"type": "array", "items": STRING},
                          "scope": nullable(obj({"model": nullable(STRING), "service": nullable(STRING)},
                                                ["model", "service"])),
                          "services": {"type": "array", "items": {"type": "object"}},
                          "models": {"type": "array", "items": {"type": "object"}}},
                         ["now", "bucket_s", "series", "range", "ranges", "scope", "services", "models"]),
}


# one Server-Sent Event as a client reads it (`data:` lines joined; `event` "message" when unnamed)
SSE_EVENT = obj({"event": STRING, "data": STRING, "id": STRING, "retry": INTEGER}, ["event", "data"])


def content(schema: Schema, *types: str) -> dict[str, Any]:
    """A media type map: JSON with `schema`, Server-Sent Events each an SSE_EVENT, any other type
    (NDJSON, text, the page) a string."""
    return {t: {"schema": schema if t == JSON else SSE_EVENT if t == SSE else STRING} for t in (types or (JSON,))}


def answer(description: str, schema: Schema, *types: str) -> dict[str, Any]:
    return {"description": description, "content": content(schema, *types)}


ERROR_SCHEMA = {"openai": ref("Error"), "anthropic": ref("AnthropicError"), "ollama": ref("OllamaError")}
# why each status can come; every operation lists the ones its route can give
REASONS = {
    400: "A malformed or invalid request: the message says what, `param` names the field",
    401: "A missing, wrong, revoked or expired key",
    403: "The key may not do this (a model outside its allowed models, an admin endpoint, ...)",
    404: "Not found: the message says what",
    409: "A name that is taken, or an owner (user, team) that does not exist",
    413: "The body is too large",
    414: "The request target is too long",
    422: "The upstream refused the request itself",
    429: "Too many wrong keys from this address, or a rate limit, parallel limit or budget used up",
    431: "The request head is too large",
    501: "The service's type is not implemented yet",
    502: "The upstream failed",
    503: "No upstream can serve now, or the key store is unreachable",
    504: "The upstream timed out",
}
PROTOCOL = (414, 431)  # answered by the HTTP layer, before the app: always OpenAI's shape (api/http.py)


def _name(dialect: str, status: int) -> str:
    return f"{'openai' if status in PROTOCOL else dialect}{status}"


def errors(dialect: str, statuses: tuple[int, ...]) -> dict[str, Any]:
    """An operation's error responses: references to ERROR_RESPONSES."""
    return {str(s): {"$ref": f"#/components/responses/{_name(dialect, s)}"} for s in sorted({*statuses, *PROTOCOL})}


# components/responses: each dialect's error body for each status
ERROR_RESPONSES = {_name(d, s): answer(REASONS[s], ERROR_SCHEMA["openai" if s in PROTOCOL else d])
                   for d in ERROR_SCHEMA for s in REASONS}


__all__ = ["ERROR_RESPONSES", "JSON", "NDJSON", "NULL", "SCHEMAS", "SSE", "answer", "content", "errors"]

"""The operations of /openapi.json: one entry per route (api/routes.py, the admin API, the web
layer's HTTP paths), each with the struct its handler decodes the body or the query with, the
statuses its route can answer, and links from what creates a resource to what reads it
(schemathesis follows them). tests/api/test_openapi_routes.py holds this table and the route
tables to each other."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import msgspec

from clawdbot.api import admin_bodies as ab
from clawdbot.api import admin_queries as aq
from clawdbot.api.openapi_params import path_parameter, query_parameters
from clawdbot.api.openapi_responses import JSON, NDJSON, SSE, answer, errors
from clawdbot.api.openapi_schemas import Schema, ref, ref_of
from clawdbot.api.responses import InputItemsQuery
from clawdbot.codecs import anthropic_wire as aw
from clawdbot.codecs import ollama_inbound as oi
from clawdbot.codecs import openai_completions as oc
from clawdbot.codecs import openai_responses as orq
from clawdbot.codecs import openai_wire as ow

# the statuses a kind of route can answer besides its success (api/openapi_responses.py REASONS)
PUBLIC = (400,)
KEYED = (400, 401, 429, 503)
ADMIN = (*KEYED, 403)
PIPELINE = (*KEYED, 403, 404, 413, 422, 501, 502, 503, 504)  # through routing to an upstream

MODEL = "gpt-4o-mini"
HELLO = [{"role": "user", "content": "Hello"}]
EXAMPLES: dict[str, dict[str, Any]] = {
    "chat": {"model": MODEL, "messages": HELLO, "max_tokens": 16},
    "embeddings": {"model": MODEL, "input": ["Hello", "world"]},
    "completions": {"model": MODEL, "prompt": "Say hello", "max_tokens": 16},
    "responses": {"model": MODEL, "input": "Hello", "max_output_tokens": 16},
    "messages": {"model": MODEL, "max_tokens": 16, "messages": HELLO},
    "count_tokens": {"model": MODEL, "messages": HELLO},
    "ollama_chat": {"model": MODEL, "messages": HELLO, "stream": False, "options": {"num_predict": 16}},
    "ollama_generate": {"model": MODEL, "prompt": "Hello", "stream": False, "options": {"num_predict": 16}},
    "ollama_embed": {"model": MODEL, "input": ["Hello"]},
    "ollama_embeddings": {"model": MODEL, "prompt": "Hello"},
    "ollama_show": {"model": MODEL},
    "key": {"name": "ci", "allowed_models": [MODEL], "rpm": 60, "expires_in": 86400},
    "user": {"name": "alice", "rpm": 60},
    "team": {"name": "research", "budget_usd": 100, "budget_period": "month"},
    "update": {"rpm": 120},
}


class Op(NamedTuple):
    op_id: str
    summary: str
    ok: dict[str, Any]  # status -> response
    fails: tuple[int, ...]
    body: Schema | None = None
    body_required: bool = True
    query: type[msgspec.Struct] | None = None
    auth: str = "key"  # key, none, optional (a key that is sent is checked)
    tag: str = "v1"
    dialect: str = "openai"
    links: dict[str, Any] | None = None
    example: dict[str, Any] | None = None  # a request body that works (schemathesis's examples phase sends it)


def _ok(schema: Schema, *types: str, status: str = "200", description: str = "OK") -> dict[str, Any]:
    return {status: answer(description, schema, *types)}


def _links(*targets: str, where: str = "$response.body#/id") -> dict[str, Any]:
    return {t: {"operationId": t, "parameters": {"id": where}} for t in targets}


def _crud(kind: str, record: str, create: Schema, update: Schema, delete: bool) -> Iterator[tuple[str, str, Op]]:
    title, plural = kind.title(), f"/admin/api/{kind}s"
    targets = [f"get{title}", f"update{title}"] + ([f"delete{title}"] if delete else [f"revoke{title}"])
    yield plural, "get", Op(f"list{title}s", f"List {kind}s, newest first", _ok(ref(f"{title}List")),
                            ADMIN, query=aq.PageQuery, tag="admin")
    made = ref("NewKey") if kind == "key" else ref(record)
    yield plural, "post", Op(f"create{title}", f"Create a {kind}", _ok(made, status="201", description="Created"),
                             (*ADMIN, 409, 413), create, body_required=kind != "key", tag="admin",
                             links=_links(*targets), example=EXAMPLES[kind])
    one = f"{plural}/{{id}}"
    yield one, "get", Op(f"get{title}", f"Read a {kind}", _ok(ref(record)), (*ADMIN, 404), tag="admin")
    yield one, "patch", Op(f"update{title}", f"Change a {kind}: absent fields stay, null clears",
                           _ok(ref(record)), (*ADMIN, 404, 409, 413), update, tag="admin",
                           example=EXAMPLES["update"])
    if delete:
        yield one, "delete", Op(f"delete{title}", f"Delete a {kind}", _ok(ref("Deleted")), (*ADMIN, 404),
                                tag="admin")


def _openai(prefix: str, alias: str) -> Iterator[tuple[str, str, Op]]:
    """The OpenAI dialect under /v1 (prefix "/v1", alias "") and without it (prefix "", alias "Alias")."""
    yield f"{prefix}/chat/completions", "post", Op(
        f"createChatCompletion{alias}", "Chat completion (SSE when `stream` is true)",
        _ok(ref("ChatCompletion"), JSON, SSE), PIPELINE, ref_of(ow.WireChatRequest), example=EXAMPLES["chat"])
    yield f"{prefix}/embeddings", "post", Op(f"createEmbeddings{alias}", "Embeddings", _ok(ref("Embeddings")),
                                             PIPELINE, ref_of(ow.WireEmbeddingRequest),
                                             example=EXAMPLES["embeddings"])
    yield f"{prefix}/completions", "post", Op(
        f"createCompletion{alias}", "Legacy text completion (the prompt answered as a chat turn)",
        _ok(ref("Completion"), JSON, SSE), PIPELINE, ref_of(oc.CompletionBody), example=EXAMPLES["completions"])
    yield f"{prefix}/models", "get", Op(f"listModels{alias}", "The models this gateway serves (to this key)",
                                        _ok(ref("ModelList")), KEYED)
    yield f"{prefix}/models/{{id}}", "get", Op(f"getModel{alias}", "One model (ids may hold `/`: service/model)",
                                               _ok(ref("Model")), (*KEYED, 404))
    items = f"listInputItems{alias}"
    yield f"{prefix}/responses", "post", Op(
        f"createResponse{alias}", "OpenAI Responses (semantic SSE events when `stream` is true; stored per key "
        "unless `store` is false)", _ok(ref("Response"), JSON, SSE), PIPELINE, ref_of(orq.ResponsesBody),
        links=_links(f"getResponse{alias}", f"deleteResponse{alias}", items), example=EXAMPLES["responses"])
    one = f"{prefix}/responses/{{id}}"
    yield one, "get", Op(f"getResponse{alias}", "A stored response (the key that created it only)",
                         _ok(ref("Response")), (*KEYED, 404))
    yield one, "delete", Op(f"deleteResponse{alias}", "Delete a stored response", _ok(ref("ResponseDeleted")),
                            (*KEYED, 404))
    yield f"{one}/input_items", "get", Op(items, "A stored response's input items", _ok(ref("InputItems")),
                                          (*KEYED, 404), query=InputItemsQuery)


def _dialects() -> Iterator[tuple[str, str, Op]]:
    yield from _openai("/v1", "")
    yield from _openai("", "Alias")
    yield "/v1/messages", "post", Op(
        "createMessage", "Anthropic Messages (SSE events when `stream` is true; the key in x-api-key or "
        "Authorization)", _ok(ref("AnthropicMessage"), JSON, SSE), PIPELINE, ref_of(aw.WireMessagesRequest),
        tag="anthropic", dialect="anthropic", auth="anthropic", example=EXAMPLES["messages"])
    yield "/v1/messages/count_tokens", "post", Op(
        "countTokens", "The prompt's tokens as the gateway estimates them (no upstream is asked)",
        _ok(ref("AnthropicTokenCount")), (*KEYED, 404, 413), ref_of(aw.WireCountTokensRequest), tag="anthropic",
        dialect="anthropic", auth="anthropic", example=EXAMPLES["count_tokens"])
    for name, summary, body, schema in (
            ("chat", "Ollama chat (NDJSON unless `stream` is false)", oi.ChatBody, "OllamaChat"),
            ("generate", "Ollama generate: the prompt as a chat turn (NDJSON unless `stream` is false)",
             oi.GenerateBody, "OllamaGenerate")):
        yield f"/api/{name}", "post", Op(f"ollama{name.title()}", summary, _ok(ref(schema), JSON, NDJSON), PIPELINE,
                                         ref_of(body), tag="ollama", dialect="ollama",
                                         example=EXAMPLES[f"ollama_{name}"])
    yield "/api/embed", "post", Op("ollamaEmbed", "Ollama embeddings", _ok(ref("OllamaEmbed")), PIPELINE,
                                   ref_of(oi.EmbedBody), tag="ollama", dialect="ollama",
                                   example=EXAMPLES["ollama_embed"])
    yield "/api/embeddings", "post", Op("ollamaEmbeddings", "Ollama embeddings (the older form)",
                                        _ok(ref("OllamaEmbedding")), PIPELINE, ref_of(oi.EmbeddingsBody),
                                        tag="ollama", dialect="ollama", example=EXAMPLES["ollama_embeddings"])
    yield "/api/show", "post", Op("ollamaShow", "One model as Ollama describes it", _ok({"type": "object"}),
                                  (*KEYED, 404, 413), ref_of(oi.ModelBody), tag="ollama", dialect="ollama",
                                  example=EXAMPLES["ollama_show"])
    for name in ("tags", "ps"):
        yield f"/api/{name}", "get", Op(f"ollama{name.title()}", f"Ollama /api/{name}: the models this gateway "
                                        "serves", _ok(ref("OllamaModels")), KEYED, tag="ollama", dialect="ollama")
    yield "/api/version", "get", Op("ollamaVersion", "The Ollama API version answered as",
                                    _ok(ref("OllamaVersion")), PUBLIC, auth="none", tag="ollama", dialect="ollama")


def _admin() -> Iterator[tuple[str, str, Op]]:
    yield from _crud("key", "StoredKeyRecord", ref_of(ab.KeyCreate), ref_of(ab.KeyFields), delete=False)
    yield "/admin/api/keys/{id}/revoke", "post", Op("revokeKey", "Revoke a key (every process refuses it within "
                                                    "a second)", _ok(ref("StoredKeyRecord")), (*ADMIN, 404),
                                                    tag="admin")
    yield from _crud("user", "StoredUserRecord", ref_of(ab.UserCreate), ref_of(ab.UserUpdate), delete=True)
    yield from _crud("team", "StoredTeamRecord", ref_of(ab.TeamCreate), ref_of(ab.TeamUpdate), delete=True)
    yield "/admin/api/audit", "get", Op("listAudit", "The audit log of admin actions, newest first",
                                        _ok(ref("AuditLog")), ADMIN, query=aq.AuditQuery, tag="admin")
    yield "/admin/api/spend", "get", Op("spendReport", "Spend, grouped by key, user, team, model, day or service",
                                        _ok(ref("SpendReport")), ADMIN, query=aq.SpendQuery, tag="admin")
    yield "/admin/api/requests", "get", Op("listRequests", "The request log, newest first: filters and a cursor",
                                           _ok(ref("RequestLog")), ADMIN, query=aq.RequestsQuery, tag="admin")
    yield "/admin/api/requests/stream", "get", Op(
        "streamRequests", "Requests as they end (Server-Sent Events, one JSON record per `data:` line)",
        _ok({}, SSE), (*ADMIN, 429), query=aq.StreamQuery, tag="admin")
    yield "/admin/api/requests/{id}", "get", Op("getRequest", "One logged request, with its bodies when they were "
                                                "kept", _ok({"type": "object"}), (*ADMIN, 404), tag="admin")
    yield "/admin/reload", "post", Op("reload", "Read the config file again and swap it in (400 when it is "
                                      "refused: the old one keeps serving)", _ok(ref("Reloaded")), ADMIN,
                                      tag="admin")


def _operations() -> Iterator[tuple[str, str, Op]]:
    yield from _dialects()
    yield from _admin()
    ready = answer("Ready, and why (`services` with a key)", ref("Readiness"))
    unready = answer("No service is reachable with its circuit closed, or the key store is unreachable",
                     {"anyOf": [ref("Readiness"), ref("Error")]})
    yield "/readyz", "get", Op("readyz", "Readiness: can the gateway serve a request now?",
                               {"200": ready, "503": unready}, (400, 401, 429), auth="optional", tag="ops")
    yield "/healthz", "get", Op("healthz", "Liveness: 200 while the process is up", _ok(ref("Health")), PUBLIC,
                                auth="none", tag="ops")
    yield "/metrics", "get", Op("metrics", "Prometheus text (OpenMetrics on Accept); the master key or an admin key",
                                _ok({"type": "string"}, "text/plain", "application/openmetrics-text"), ADMIN,
                                tag="ops")
    yield "/openapi.json", "get", Op("openapi", "This document", _ok({"type": "object"}), PUBLIC, auth="none",
                                     tag="ops")
    yield "/debug/stats", "get", Op("debugStats", "This process's link health and load", _ok(ref("ProcessStats")),
                                    KEYED, tag="ops")


def _web() -> Iterator[tuple[str, str, Op]]:
    """The chat page's HTTP paths (web/layer.py); not in `clawdbot proxy` (web.enabled: false)."""
    page = {"200": answer("The chat page", {"type": "string"}, "text/html"),
            "304": {"description": "Not modified (If-None-Match)"}}
    yield "/", "get", Op("chatPage", "The chat page (its files are beside it: see docs/api.md)", page, PUBLIC,
                         auth="none", tag="web")
    session = ref("Session")
    yield "/auth/login", "post", Op("login", "Log in with the master key or a virtual key (sets the session "
                                    "cookie)", _ok(session), (400, 401, 403, 413, 429), ref("LoginBody"),
                                    auth="none", tag="web")
    yield "/auth/logout", "post", Op("logout", "Log out (clears the cookie)", _ok(session), (400, 403), auth="none",
                                     tag="web")
    yield "/auth/status", "get", Op("authStatus", "Who the session cookie says this is", _ok(session), PUBLIC,
                                    auth="none", tag="web")
    yield "/panel", "get", Op("panelPage", "The control panel (docs/panel.md)", page, PUBLIC, auth="none", tag="web")
    yield "/panel/api/overview", "get", Op(
        "panelOverview", "The panel's overview: the last hour in 10 s buckets (longer ranges from the request "
        "log), of all traffic or one model or service; services, routes (the session's cookie; the panel's other "
        "calls are the admin API under /panel/api/admin/, docs/panel.md)",
        _ok(ref("PanelOverview")), (400, 401, 403, 404, 409), query=aq.OverviewQuery, auth="none", tag="web")
    yield "/panel/api/services", "get", Op(
        "panelServices", "The config file's services, secrets only as the ${VAR} they name",
        _ok({"type": "object"}), (400, 401, 403), auth="none", tag="web")
    edit = _ok(ref("PanelEdit"))
    yield "/panel/api/service-test", "post", Op(
        "panelServiceTest", "Probe a service as configured, before saving it (admin, X-Clawdbot-CSRF)",
        _ok({"type": "object"}), (400, 401, 403, 413), {"type": "object"}, auth="none", tag="web")
    yield "/panel/api/plugins", "get", Op(
        "panelPlugins", "The installed plugins with their settings' JSON schema, and the configured list",
        _ok({"type": "object"}), (400, 401, 403), auth="none", tag="web")
    yield "/panel/api/plugins", "post", Op(
        "panelEditPlugins", "Preview (a diff) or apply the whole plugins: list (admin, X-Clawdbot-CSRF)",
        edit, (400, 401, 403, 409, 413), {"type": "object"}, auth="none", tag="web")
    yield "/panel/api/models/{id}", "post", Op(
        "panelEditModel", "Preview (a diff) or apply an edit of one models: entry (admin, X-Clawdbot-CSRF)",
        edit, (400, 401, 403, 409, 413), {"type": "object"}, auth="none", tag="web")
    yield "/panel/api/services/{id}", "post", Op(
        "panelEditService", "Preview (a diff) or apply an edit of one service (admin, X-Clawdbot-CSRF)",
        edit, (400, 401, 403, 409, 413), {"type": "object"}, auth="none", tag="web")
    nothing = {"type": "object", "maxProperties": 0, "description": "{}: what to send is the request log's"}
    yield "/panel/api/requests/{id}/replay", "post", Op(
        "panelReplayRequest", "Send a request logged with its body again, not streamed, as the signed-in admin, "
        "and answer both (admin, X-Clawdbot-CSRF; docs/panel.md)",
        _ok({"type": "object"}), (400, 401, 403, 404, 409, 413, 429), nothing, auth="none", tag="web")
    yield "/panel/api/requests/{id}/chat", "post", Op(
        "panelOpenRequestInChat", "A new chat session of the signed-in admin's holding a logged request's "
        "conversation (admin, X-Clawdbot-CSRF; docs/panel.md)",
        _ok({"type": "object"}), (400, 401, 403, 404, 409, 413, 429), nothing, auth="none", tag="web")


SECURITY: dict[str, list[dict[str, list[str]]] | None] = {
    "key": None, "none": [], "optional": [{}, {"bearer": []}], "anthropic": [{"bearer": []}, {"xApiKey": []}]}


def _operation(path: str, op: Op) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.op_id, "summary": op.summary, "tags": [op.tag]}
    params = [path_parameter("id", "the resource's id")] if "{id}" in path else []
    if op.query is not None:
        params += query_parameters(op.query)
    if params:
        out["parameters"] = params
    if op.body is not None:
        media: dict[str, Any] = {"schema": op.body}
        if op.example is not None:
            media["example"] = op.example
        out["requestBody"] = {"required": op.body_required, "content": {JSON: media}}
    responses = dict(op.ok)
    responses.update({k: v for k, v in errors(op.dialect, op.fails).items() if k not in responses})
    if op.links:
        for status in op.ok:
            responses[status] = {**responses[status], "links": op.links}
    out["responses"] = responses
    security = SECURITY[op.auth]
    if security is not None:
        out["security"] = security
    return out


def _mcp() -> Iterator[tuple[str, str, Op]]:
    """The MCP gateway (docs/mcp.md), served when `mcp:` lists servers: JSON-RPC over Streamable
    HTTP, answered as JSON (stateless: no GET stream, no session to DELETE)."""
    rpc = {"type": "object", "required": ["jsonrpc"],
           "properties": {"jsonrpc": {"const": "2.0"}, "id": {"type": ["string", "integer"]},
                          "method": {"type": "string"}, "params": {"type": "object"}}}
    accepted = {"202": {"description": "A notification or response, accepted (no body)"}}
    yield "/mcp", "post", Op("mcp", "MCP (Streamable HTTP): initialize, tools/list, tools/call (`server.tool`), ping",
                             {**_ok(rpc), **accepted}, (400, 401, 413, 429), body=rpc, tag="mcp",
                             example={"jsonrpc": "2.0", "id": 1, "method": "ping"})


def paths(web: bool, mcp: bool = False) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path, method, op in [*_operations(), *(_web() if web else ()), *(_mcp() if mcp else ())]:
        out.setdefault(path, {})[method] = _operation(path, op)
    return out

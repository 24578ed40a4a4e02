"""GET /openapi.json: the gateway's HTTP API as an OpenAPI 3.1 document, generated from the structs
the handlers validate with (api/openapi_schemas.py), narrowed where a parser checks more
(api/openapi_dialects.py), with the operations of every route (api/openapi_paths.py).

The document describes this gateway as configured: whether it serves the chat page, how many
messages a request may hold, which plugins a key's metadata may name. It is built once per such
configuration and served as bytes. Not in it: the page's static files and the chat WebSocket
(docs/api.md says why)."""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from clawdbot import __version__
from clawdbot.api import openapi_dialects, openapi_schemas
from clawdbot.api.exchange import Exchange
from clawdbot.api.openapi_paths import paths
from clawdbot.api.openapi_responses import ERROR_RESPONSES, SCHEMAS
from clawdbot.pipeline.policy import Pipeline


class Shape(NamedTuple):
    """What of the configuration the document depends on."""

    web: bool = True  # the chat page and /auth/* (web.enabled)
    max_messages: int = 2048  # server.max_messages
    plugins: tuple[str, ...] = ()  # the configured plugin instances a key may override
    mcp: bool = False  # POST /mcp (mcp.servers)


def shape_of(pl: Pipeline) -> Shape:
    config = pl.gateway.config
    ids = tuple(sorted(s.plugin.id for s in pl.chain.slots))
    return Shape(config.web.enabled, config.server.max_messages, ids, bool(config.mcp.servers))


DEFAULT = Shape()


def document(shape: Shape = DEFAULT) -> dict[str, Any]:
    schemas = openapi_schemas.generated()
    openapi_schemas.admin(schemas, shape.plugins)
    openapi_dialects.narrow(schemas, shape.max_messages)
    schemas.update(SCHEMAS)
    return {
        "openapi": "3.1.0",
        "info": {"title": "clawdbot", "version": __version__,
                 "description": "An AI gateway. Send `Authorization: Bearer <master key or sk-cb- key>`; the "
                                "admin API takes the master key or an admin key."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [{"name": n} for n in ("v1", "anthropic", "ollama", "admin", "ops", "web", "mcp")],
        "paths": paths(shape.web, shape.mcp),
        "components": {"schemas": schemas, "responses": ERROR_RESPONSES,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                           "xApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}}},
    }


class OpenApi:
    def __init__(self) -> None:
        self._built: dict[Shape, bytes] = {}  # a handful at most: one per configuration served

    def body(self, shape: Shape) -> bytes:
        body = self._built.get(shape)
        if body is None:
            body = self._built[shape] = msgspec.json.encode(document(shape))
        return body

    async def __call__(self, ex: Exchange, pl: Pipeline, body: bytes) -> None:
        await ex.json(200, self.body(shape_of(pl)))

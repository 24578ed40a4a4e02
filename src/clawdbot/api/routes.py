"""The proxy layer's HTTP routes: path -> what answers it and what the request must bring."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple

from clawdbot.api import admin, chat, completions, endpoints, messages, metrics, ollama_api, openapi, responses
from clawdbot.api.exchange import Exchange
from clawdbot.pipeline.policy import Pipeline

Handler = Callable[[Exchange, Pipeline, bytes], Awaitable[None]]


class Route(NamedTuple):
    method: str  # or several, space-separated
    handler: Handler
    needs_body: bool  # a JSON body, read (bounded) before the handler runs
    is_api: bool  # the caller must authenticate when auth is on
    max_body: int | None = None  # bytes; None: server.max_body_bytes
    key_optional: bool = False  # not is_api, but a key that is sent is checked (and may show more)
    any_content_type: bool = False  # JSON whatever Content-Type says (Ollama's clients and curl -d)
    admin: bool = False  # with auth on, the master key or an admin key only (as /admin/*)


ROUTES: dict[str, Route] = {
    "/v1/chat/completions": Route("POST", chat.chat_completions, True, True),
    "/v1/embeddings": Route("POST", endpoints.embeddings, True, True),
    "/v1/completions": Route("POST", completions.completions, True, True),  # OpenAI's legacy text completions
    "/v1/messages": Route("POST", messages.messages, True, True),  # Anthropic's dialect
    "/v1/messages/count_tokens": Route("POST", messages.count_tokens, True, True),
    "/v1/responses": Route("POST", responses.create, True, True),  # OpenAI's Responses API
    "/v1/models": Route("GET", endpoints.list_models, False, True),
    # Ollama's native API (api/ollama_api.py)
    "/api/chat": Route("POST", ollama_api.chat, True, True, any_content_type=True),
    "/api/generate": Route("POST", ollama_api.generate, True, True, any_content_type=True),
    "/api/embed": Route("POST", ollama_api.embed, True, True, any_content_type=True),
    "/api/embeddings": Route("POST", ollama_api.embeddings, True, True, any_content_type=True),
    "/api/show": Route("POST", ollama_api.show, True, True, any_content_type=True),
    "/api/tags": Route("GET", ollama_api.tags, False, True),
    "/api/ps": Route("GET", ollama_api.ps, False, True),
    "/api/version": Route("GET", ollama_api.version, False, False),
    "/healthz": Route("GET", endpoints.healthz, False, False),
    "/readyz": Route("GET", endpoints.readyz, False, False, key_optional=True),
    "/admin/reload": Route("POST", admin.reload, False, True),
    "/openapi.json": Route("GET", openapi.OpenApi(), False, False),
    "/metrics": Route("GET", metrics.metrics, False, True, admin=True),  # docs/observability.md
}
for _p in ("/chat/completions", "/completions", "/embeddings", "/models", "/responses"):
    ROUTES[_p] = ROUTES["/v1" + _p]

# GET /v1/models/{id} (the `openai` package's models.retrieve); ids may contain "/" (service/model)
MODEL_PREFIXES = ("/v1/models/", "/models/")
MODEL_ROUTE = Route("GET", endpoints.retrieve_model, False, True)
# GET / DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items (stored responses)
RESPONSE_PREFIXES = ("/v1/responses/", "/responses/")
RESPONSE_ROUTE = Route("GET DELETE", responses.stored, False, True)
RESPONSE_ITEMS_ROUTE = Route("GET", responses.stored, False, True)


def find(path: str) -> Route | None:
    route = ROUTES.get(path)
    if route is None:
        if path.startswith(MODEL_PREFIXES):
            return MODEL_ROUTE
        if path.startswith(RESPONSE_PREFIXES):
            return RESPONSE_ITEMS_ROUTE if path.endswith("/input_items") else RESPONSE_ROUTE
    return route


# Paths with a parameter, as /openapi.json names them: the route find() gives for each (a test holds
# the document and these tables to each other: tests/api/test_openapi_routes.py).
TEMPLATES: dict[str, Route] = {
    "/v1/models/{id}": MODEL_ROUTE,
    "/models/{id}": MODEL_ROUTE,
    "/v1/responses/{id}": RESPONSE_ROUTE,
    "/responses/{id}": RESPONSE_ROUTE,
    "/v1/responses/{id}/input_items": RESPONSE_ITEMS_ROUTE,
    "/responses/{id}/input_items": RESPONSE_ITEMS_ROUTE,
}

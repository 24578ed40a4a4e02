"""Every service type in one table: what the schema accepts, which provider serves it (imported only
when a service of the type is configured), the wire dialect it speaks upstream, and what loading,
autodetection, pricing, auth and the fast path need to know about it. Adding a type is one entry
here, a provider module and (for a new wire dialect) a codec: docs/architecture.md.

It lives in config/ (the bottom layer) because the schema and the loader read it; the provider is
named as a "module:Class" string, so nothing above config is imported from here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Endpoint = Literal["required", "optional", "ignored", "none", "grpc"]


@dataclass(frozen=True, slots=True)
class ServiceType:
    name: str
    provider: str  # "module:Class", constructed as cls(service)
    # the wire dialect spoken upstream: a client of the same dialect gets the byte fast path
    dialect: str
    summary: str  # for people: docs and start-up lines
    # `endpoint`: required (an http(s) URL), optional (an http(s) URL when given, else
    # `default_endpoint`), ignored (not a URL: not checked), none (refused: runs in-process),
    # grpc (required: host:port, grpc:// or grpcs://)
    endpoint: Endpoint = "required"
    # where a server of the type listens unless told: the default of an optional endpoint, and
    # where autodetection looks for one (config/autodetect.py)
    default_endpoint: str | None = None
    # the header `auth.key` goes in unless `auth.header` names another: "Authorization" as a Bearer
    # token, any other header raw
    key_header: str = "Authorization"
    models: str | None = None  # how the served models are discovered (its provider's probe)
    limit_field: bool = False  # takes `max_tokens_field` (the output limit's name upstream)
    self_hosted: bool = False  # its tokens cost nothing unless a cost is configured (pricing)

    def auth_headers(self, key: str | None, header: str | None, kind: str = "api_key") -> dict[str, str]:
        """The key as this type sends it (`header`: the config's own header name; `kind` the auth
        type: `bearer` is a Bearer token in Authorization whatever the service type's own header)."""
        if not key:
            return {}
        name = header or ("Authorization" if kind == "bearer" else self.key_header)
        return {"Authorization": f"Bearer {key}"} if name == "Authorization" and not header else {name: key}


_OPENAI = "clawdbot.providers.openai_http:OpenAIProvider"
_OPENAI_SUMMARY = "an OpenAI-compatible server (`http://h:8000` means `http://h:8000/v1`)"

TYPES: dict[str, ServiceType] = {t.name: t for t in (
    ServiceType("http", _OPENAI, "openai", _OPENAI_SUMMARY, models="GET /v1/models", limit_field=True),
    ServiceType("openai", _OPENAI, "openai", _OPENAI_SUMMARY, models="GET /v1/models", limit_field=True),
    ServiceType("ollama", "clawdbot.providers.ollama:OllamaProvider", "ollama", "an Ollama server (native API)",
                default_endpoint="http://127.0.0.1:11434", models="GET /api/tags", self_hosted=True),
    ServiceType("anthropic", "clawdbot.providers.anthropic:AnthropicProvider", "anthropic",
                "Anthropic's Messages API", endpoint="optional", default_endpoint="https://api.anthropic.com",
                key_header="x-api-key", models="GET /v1/models"),
    ServiceType("local", "clawdbot.providers.local:LocalProvider", "local", "a GGUF model run in-process (llama.cpp)",
                endpoint="none", models="its model file", self_hosted=True),
    ServiceType("mock", "clawdbot.providers.mock:MockProvider", "mock", "a deterministic in-process model",
                endpoint="ignored", models="its one model", self_hosted=True),
    ServiceType("grpc", "clawdbot.providers.oip.provider:GrpcProvider", "grpc",
                "an Open Inference Protocol (KServe v2) gRPC server: Triton, MLServer", endpoint="grpc",
                models="ModelReady and RepositoryIndex", self_hosted=True),
)}

NAMES = tuple(TYPES)


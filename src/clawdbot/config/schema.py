"""The configuration schema. Loading (YAML, ${ENV}, file:line errors) lives in loader.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import msgspec

from clawdbot.config import service_types
from clawdbot.config.grpc_schema import GrpcSettings
from clawdbot.config.mcp_schema import Mcp
from clawdbot.config.strict import Strict

LimitField = Literal["max_tokens", "max_completion_tokens"]
# local: how a chat becomes the prompt (providers/local.py): the GGUF's own Jinja template, ChatML
# with no system block unless there is a system message, or a User:/Assistant: transcript (base models)
ChatFormat = Literal["template", "chatml", "transcript"]
# settings only a local service takes
LOCAL_ONLY = ("model", "chat_format", "system_prompt", "sampling", "stream_interval")
if TYPE_CHECKING:
    ServiceType = str
else:  # the names of config/service_types.py, checked (and listed in errors) when the config is decoded
    ServiceType = Literal[service_types.NAMES]


class Auth(Strict):
    # api_key: "Authorization: Bearer <key>" (OpenAI style) unless `header` names another header.
    type: Literal["api_key", "bearer", "header", "none"] = "api_key"
    key: str | None = None
    header: str | None = None


class Timeouts(Strict):
    connect: float = 5.0  # seconds to open the TCP connection
    # seconds from sending the request until the headers and the first body bytes (time to first token)
    first_byte: float = 120.0
    total: float = 600.0  # seconds for the whole response, stream included
    idle: float | None = 60.0  # seconds of silence allowed between two body chunks (None: no limit)


class UpstreamTLS(Strict):
    """How an https service is verified and how the gateway proves itself (providers/http_transport.py)."""

    ca_bundle: str | None = None  # PEM file of the CAs to trust instead of the system's (a private CA)
    client_cert: str | None = None  # PEM certificate (chain) sent for mutual TLS
    client_key: str | None = None  # its private key, when not in client_cert's file


class Sampling(Strict):
    """A local model's sampling defaults; a request's own settings win (llama.cpp's names)."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None  # > 1 discourages repeating recent tokens (small models loop)


class Breaker(Strict):
    """Per-service circuit breaker (routing/breaker.py)."""

    enabled: bool = True
    failures: int = 5  # consecutive failures that open it
    error_rate: float = 0.5  # ...or this share of failed requests in the last `window` seconds
    window: float = 30.0
    min_requests: int = 20  # ...counted only once the window holds this many requests
    cooldown: float = 30.0  # seconds open before trial requests are let through (half-open)
    trials: int = 1  # concurrent trial requests while half-open; this many successes close it


class FairShare(Strict):
    """How a full service's wait queue is shared between tenants (routing/fair.py, limiter.py): one
    FIFO per tenant; a freed slot goes to the tenant that has used the service least lately, for
    its weight."""

    enabled: bool = True
    by: Literal["key", "user", "team"] = "key"  # the tenant: a key id, its user's id or its team's id
    weights: dict[str, float] = {}  # tenant id (or `master`, `anonymous`) -> its share, relative
    default_weight: float = 1.0
    # requests one tenant may have waiting (None: max_queue); a full queue pushes out the newest
    # waiter of the tenant furthest over its share anyway, so this is only for a tighter cap
    max_queue_per_tenant: int | None = None


class Limits(Strict):
    """Per-service concurrency limit with a bounded wait queue (routing/limiter.py)."""

    max_inflight: int | None = None  # requests sent to the service at once (None: no limit)
    max_queue: int = 64  # requests waiting for a slot; beyond that: 503 with Retry-After
    queue_timeout: float = 10.0  # seconds a request waits for a slot
    fair_share: FairShare = msgspec.field(default_factory=FairShare)


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
    # local: path of a GGUF file; without one, `model` names a packaged model (config/local_models.py)
    model_path: str | None = None
    # local: smollm2-135m-instruct (the default) or gemma-3-270m, shipped by PyPI packages
    model: str | None = None
    # local: the prompt format (ChatFormat); None: the packaged model's own choice, else the GGUF's
    # template when it has one, else the transcript
    chat_format: ChatFormat | None = None
    # local: a system message put first when a request brings none; "": none, whatever the model's default
    system_prompt: str | None = None
    # local: sampling defaults (None: the packaged model's, else llama.cpp's)
    sampling: Sampling | None = None
    # local: seconds between hand-overs of a stream's tokens to the event loop (the first at once);
    # None: 0.04; 0: every token. Each costs the model's cores ~0.4 ms (providers/local.py)
    stream_interval: float | None = None
    # local: llama.cpp settings
    n_ctx: int = 2048
    n_threads: int | None = None
    # idle keep-alive upstream connections kept (http, openai, ollama); never a limit on requests in
    # flight: limits.max_inflight bounds those and the open connections (providers/http_pool.py)
    max_pool: int = 64
    # http, openai, ollama, anthropic: an outbound HTTP proxy (http://[user:pass@]host:port; https
    # services go through a CONNECT tunnel); None: HTTP_PROXY/HTTPS_PROXY/NO_PROXY from the
    # environment (loopback never proxied); "direct": none, whatever the environment says
    proxy: str | None = None
    tls: UpstreamTLS | None = None
    # bytes of an upstream's response body held at once (a whole answer, gzip decoded, or one
    # stream line); more is a 502 that says so (providers/http_client.py)
    max_response_bytes: int = 64 * 1024 * 1024
    # grpc: tensors, presets, prompt template, streams per channel (config/grpc_schema.py, docs/grpc.md)
    grpc: GrpcSettings | None = None
    breaker: Breaker = msgspec.field(default_factory=Breaker)
    limits: Limits = msgspec.field(default_factory=Limits)
    # seconds between active health checks (None: server.discovery_interval)
    health_interval: float | None = None
    # openai/http: the request field the upstream honours as the output limit; the client's
    # max_tokens or max_completion_tokens is sent under this name (None: limit_field() decides)
    max_tokens_field: LimitField | None = None

    @property
    def model_id(self) -> str | None:
        v = self.metadata.get("model_id")
        return str(v) if v is not None else None

    def limit_field(self) -> LimitField:
        """OpenAI's own API refuses max_tokens for its reasoning models and takes max_completion_tokens
        for all; llama.cpp's server, vLLM and Ollama's OpenAI API honour max_tokens and ignore the
        other (llama.cpp wrote 2,026 tokens for max_completion_tokens: 5)."""
        if self.max_tokens_field is not None:
            return self.max_tokens_field
        host = urlsplit(self.endpoint or "").hostname or ""
        return "max_completion_tokens" if host == "api.openai.com" else "max_tokens"


Strategy = Literal["ordered", "round_robin", "weighted", "least_inflight", "latency", "cost", "rules"]


class Cost(Strict):
    input: float = 0.0  # per million input (prompt) tokens
    output: float = 0.0  # per million output (completion) tokens


class Deployment(Strict):
    """One place a public model name can be served: a service (and its upstream model)."""

    service: str
    model: str | None = None  # upstream model name (default: the service's default model)
    weight: float = 1.0  # share of traffic (weighted); 0: only requests tagged for it
    priority: int = 0  # lower goes first (ordered, and the failover order of every strategy)
    tags: list[str] = []  # traffic tags (X-Clawdbot-Tag) steered to it; rule groups
    cost: Cost | None = None
    max_inflight: int | None = None  # this entry's requests on it at once; full: the next one


class RuleWhen(Strict):
    priority: list[str] | str | None = None  # the request's priority is one of these
    time: list[str] | str | None = None  # now is in one of these `routing.windows`
    tag: list[str] | str | None = None  # the request's tag is one of these


class Rule(Strict):
    use: list[str] | str  # deployment tags or service names: the group tried first
    when: RuleWhen = msgspec.field(default_factory=RuleWhen)


class ModelEntry(Strict):
    # Each target is "service" or "service/upstream-model", tried in order.
    targets: list[str] = []
    # The long form: strings like `targets`, or mappings with weight, priority, tags, cost, ...
    deployments: list[str | Deployment] = []
    strategy: Strategy = "ordered"
    fallbacks: list[str] = []  # other model names tried when every deployment failed
    hook: str | None = None  # "module:function" or "file.py:function": route_request(request, context)
    rules: list[Rule] = []  # strategy `rules`: first match picks the group
    retries: int = 0  # extra rounds over the deployments, with exponential backoff and jitter
    max_attempts: int | None = None  # upstream calls per request at most (None: every candidate once)
    explore: float = 0.05  # latency: share of requests sent to a random deployment
    description: str | None = None
    # Limits of the model itself, shared by every caller (the master key too): requests and tokens
    # per minute (tenancy/limits.py). None: no limit.
    rpm: int | None = None
    tpm: int | None = None
    # the request log keeps this model's request and answer bodies (after the plugins' masking)
    log_bodies: bool = False

    def all_deployments(self) -> list[Deployment]:
        out = [parse_target(t) for t in self.targets]
        out += [d if isinstance(d, Deployment) else parse_target(d) for d in self.deployments]
        return out


def parse_target(ref: str) -> Deployment:
    service, slash, model = ref.partition("/")
    return Deployment(service=service, model=model if slash else None)


class Routing(Strict):
    """Settings every `models:` entry shares (routing/, pipeline/gateway.py)."""

    timezone: str = "UTC"  # for `windows`
    windows: dict[str, list[str]] = {}  # name -> ["09:00-12:00", ...]: rules' `time`, the hook's time_of_day
    retry_budget: float = 0.2  # retries allowed per request, on average
    retry_min_per_second: float = 5.0  # retries always allowed at this rate
    backoff: float = 0.05  # seconds: base of the exponential backoff between rounds
    backoff_max: float = 2.0  # seconds: the backoff's ceiling; a longer Retry-After skips the service


class Server(Strict):
    host: str = "127.0.0.1"
    port: int | None = None  # default: 18789 (serve, gateway) or 8080 (proxy)
    master_key: str | None = None
    # HMAC secret for virtual keys (env CLAWDBOT_KEY_SECRET); default: derived from master_key.
    # Changing it (or the master key it derives from) invalidates every virtual key.
    key_secret: str | None = None
    key_cache_ttl: float = 1.0  # seconds a looked-up virtual key is trusted (a revoke takes this long)
    max_body_bytes: int = 16 * 1024 * 1024
    # What a client can send, bounded before it costs memory or an upstream call (docs/api.md, Limits)
    max_json_depth: int = 64  # nesting of arrays and objects in a JSON body or chat frame
    max_json_items: int = 100_000  # values in arrays and objects of one JSON body
    max_messages: int = 2048  # messages in one chat request
    max_url_bytes: int = 8 * 1024  # the request target (path and query); longer: 414
    max_header_bytes: int = 64 * 1024  # the request line and every header together; more: 431
    max_headers: int = 100  # header lines in one request; more: 431
    head_timeout: float = 30.0  # seconds for a request's head to arrive (a new connection's first byte too); then 408
    body_timeout: float = 60.0  # seconds a request body may pause between two reads; then 408
    # Host names this gateway answers besides the loopback names (DNS rebinding): "gw.example.com",
    # "*.example.com", or "*" for any. Empty: loopback names only without a master key, any Host
    # with one (every request authenticates then). See docs/configuration.md.
    allowed_hosts: list[str] = []
    # Browser origins, besides the gateway's own and pages on loopback, whose requests are served
    # (with CORS headers): "https://app.example.com", "https://*.example.com", "http://host:*",
    # "chrome-extension://*", or "*" (needs a master key). Others get 403 (api/origins.py).
    cors_origins: list[str] = []
    # Wrong keys per client address (login page, Bearer on /v1 and /admin, the chat socket): this
    # many at once, then one per 60/auth_failures_per_minute seconds (tenancy/throttle.py)
    auth_failures_burst: int = 10
    auth_failures_per_minute: float = 10.0
    # Proxies (addresses or CIDR networks) whose X-Forwarded-For names the client for the throttle
    # above; empty: the header is never read (a client could write anything in it)
    trusted_proxies: list[str] = []
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    discovery_interval: float = 30.0  # seconds between model-list refreshes of dynamic services
    watch_interval: float = 2.0  # seconds between checks of the config file for changes (0: off)
    # The garbage collector (api/heap.py, docs/architecture.md): what survives a full collection
    # ("full") or any collection ("young") is frozen, not walked again: short stalls with many open
    # streams; "none": CPython's collector as it is. Read at start.
    gc_freeze: Literal["full", "young", "none"] = "full"
    # seconds between thaws: the frozen objects go back, and one full collection walks everything
    # (and frees any cycle among them)
    gc_thaw_interval: float = 600.0
    # with gc_freeze "young": seconds between timed young collections (0: off). Freezing starves
    # CPython's own trigger while open streams churn, and the young generation fills with their
    # objects; the timer bounds each young collection at the price of more, smaller ones
    gc_young_every: float = 0.0


class RateLimits(Strict):
    # chat messages a user / one session may send per minute through the web chat (0: no limit)
    per_user_per_minute: int = 30
    per_session_per_minute: int = 12
    # sessions.create / rename / delete a user may call per minute (0: no limit)
    session_changes_per_minute: int = 60


class Web(Strict):
    enabled: bool = True  # `clawdbot proxy` turns it off: the proxy layer serves no page
    allowed_origins: list[str] = []  # extra browser origins allowed to open /ws (the own origin always is)
    max_frame_bytes: int = 256 * 1024
    resume_seconds: float = 60.0  # how long a dropped socket's logical connection waits for a resume
    resume_events: int = 2000  # events kept per logical connection for replay
    default_model: str | None = None  # the page's initial model (default: the first that resolves)
    rate_limits: RateLimits = msgspec.field(default_factory=RateLimits)
    max_sessions_per_user: int = 10_000  # stored chats per user; then sessions.create answers bad_params
    max_messages_per_session: int = 1_000  # messages in one chat; then chat.send asks for a new one
    max_page_bytes: int = 1024 * 1024  # sessions.list / sessions.get: one reply's JSON, about; older: page back


class Responses(Strict):
    """Stored responses of OpenAI's Responses dialect (POST /v1/responses, api/responses.py)."""

    store: bool = True  # false: nothing is kept, whatever a request's `store` says
    retention_hours: float = 720.0  # 30 days, as OpenAI keeps them
    max_per_key: int = 10_000  # stored per key; past it, its oldest go
    # a conversation continued with previous_response_id, stored, plus the new request: more is refused
    max_conversation_bytes: int = 16 * 1024 * 1024


class MetricsSettings(Strict):
    """GET /metrics (docs/observability.md)."""

    # a second listener on 127.0.0.1 serving only /metrics, without auth (env CLAWDBOT_METRICS_PORT)
    port: int | None = None
    key_labels: bool = False  # per key and team series (clawdbot_key_*): one series per key in use
    max_key_series: int = 1000  # distinct (key, team, status) series; beyond it they count as `other`


class Metering(Strict):
    """Budgets, rate limits and spend of virtual keys (tenancy/metering.py, docs/limits.md)."""

    # completion tokens a request without max_tokens reserves against a budget (its worst case)
    default_max_tokens: int = 4096
    flush_interval: float = 0.25  # seconds between batches of spend records to the database
    journal_max_mb: int = 64  # local journal of spend the database could not take (then: errors)


class RequestLog(Strict):
    """Every request's record in the state store (observability/request_log.py, docs/observability.md)."""

    enabled: bool = False  # off by default: docs/observability.md says why
    retention_hours: float = 168.0  # older records are deleted
    # the row budget (at least 8): past it, the oldest go, an eighth of the budget at a time on SQL
    max_rows: int = 200_000
    prune_interval: float = 60.0  # seconds between retention passes
    max_queue: int = 10_000  # records waiting for the writer; a full queue drops (and counts) them
    batch_size: int = 2_000  # records a batch (one transaction); a full batch is written at once
    flush_interval: float = 1.0  # seconds between batches
    max_body_bytes: int = 64 * 1024  # a logged request or answer body is cut at this size
    max_subscribers: int = 16  # live streams (`clawdbot tail`) at once
    subscriber_queue: int = 1_000  # records a live stream may fall behind before it is dropped


class Telemetry(Strict):
    """OpenTelemetry tracing (observability/tracing.py, docs/observability.md "Traces"); needs the
    `otel` extra. A setting left out here is read by the SDK from its OTEL_* variable."""

    enabled: bool = False  # env CLAWDBOT_TELEMETRY (true/false) wins; OTEL_SDK_DISABLED=true turns it off
    endpoint: str | None = None  # OTLP/HTTP: a base URL (http://collector:4318) or the full .../v1/traces
    headers: dict[str, str] = {}  # sent with each export (a collector's token: ${ENV} works)
    service_name: str | None = None  # default: OTEL_SERVICE_NAME, else clawdbot / clawdbot-proxy / -gateway
    # share of new traces sampled, 0..1 (a client's sampled flag wins); default: OTEL_TRACES_SAMPLER
    sample_ratio: float | None = None
    capture_content: bool = False  # prompts and completions in spans: never unless this is true


class PluginEntry(Strict):
    """One plugin in the request pipeline (docs/plugins.md). `with:` is checked against the
    plugin's own settings when the pipeline is built (start and reload), with file:line errors."""

    name: str  # a built-in (pii, access, content_filter, cache, semantic_cache) or an entry point
    with_: dict[str, Any] = msgspec.field(default_factory=dict, name="with")
    # Scope: empty = every request. A request must match each list given (model names and globs,
    # key ids, traffic tags).
    models: list[str] = []
    keys: list[str] = []
    tags: list[str] = []
    enabled: bool = True
    # a second instance of the same plugin needs its own id (per-request state and notes use it)
    id: str | None = None


class Config(Strict):
    server: Server = msgspec.field(default_factory=Server)
    data_dir: str = "~/.clawdbot"  # SQLite database and local state (env CLAWDBOT_DATA_DIR)
    database_url: str | None = None  # e.g. postgresql+asyncpg://user@host/db (env CLAWDBOT_DATABASE_URL)
    # Shared state for several replicas: rate limits, budgets, key invalidation, circuit breakers
    # (env CLAWDBOT_REDIS_URL), e.g. redis://127.0.0.1:6379/0. None: all of it in process.
    redis_url: str | None = None
    redis_prefix: str = "clawdbot:"  # of every Redis key and channel: replicas of one deployment share it
    # Prices per model, USD per million tokens: public names, upstream model names or
    # "service/model". A deployment's own `cost` wins. Local, Ollama and mock services cost 0.
    costs: dict[str, Cost] = {}
    metering: Metering = msgspec.field(default_factory=Metering)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    responses: Responses = msgspec.field(default_factory=Responses)
    request_log: RequestLog = msgspec.field(default_factory=RequestLog)
    telemetry: Telemetry = msgspec.field(default_factory=Telemetry)
    web: Web = msgspec.field(default_factory=Web)
    services: list[Service] = []
    # public model name -> targets (a list, or an object with `targets`)
    models: dict[str, list[str] | ModelEntry] = {}
    routing: Routing = msgspec.field(default_factory=Routing)
    # The request pipeline's plugins, in order: pre hooks run in this order, post and chunk hooks
    # in reverse (pipeline/plugins.py).
    plugins: list[PluginEntry] = []
    # MCP servers served at /mcp, and who may call which tool (config/mcp_schema.py, docs/mcp.md)
    mcp: Mcp = msgspec.field(default_factory=Mcp)

    def model_targets(self, name: str) -> list[str] | None:
        entry = self.models.get(name)
        if entry is None:
            return None
        if isinstance(entry, list):
            return entry
        return [d.service if d.model is None else f"{d.service}/{d.model}" for d in entry.all_deployments()]

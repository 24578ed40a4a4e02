"""The backend when no config file is given: CLAWDBOT_MODEL_ENDPOINT (probed: Ollama answers
/api/tags, OpenAI-compatible servers /v1/models), else an Ollama on 127.0.0.1:11434 if one answers,
else the embedded local models: SmolLM2-135M-Instruct (the default, instruction-tuned) and Gemma 3
270M (a base model), both from PyPI packages, each loaded at its first request."""

from __future__ import annotations

import http.client
import os
from urllib.parse import urlsplit

from clawdbot.config.local_models import DEFAULT, GEMMA, PackagedModel
from clawdbot.config.schema import Auth, Config, Service
from clawdbot.config.service_types import TYPES

OLLAMA_DEFAULT = TYPES["ollama"].default_endpoint or ""
LOCAL_MODEL_NAME = DEFAULT.name


GATEWAY_HEADER = "X-Clawdbot-Gateway"  # on clawdbot's own /api/tags: another clawdbot, not an Ollama


def _get(url: str, timeout: float, headers: dict[str, str] | None = None) -> tuple[int | None, dict[str, str]]:
    """HTTP status and headers of a GET, (None, {}) when nothing answers. Blocking: runs before
    the loop starts."""
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/", headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    except (OSError, http.client.HTTPException):
        return None, {}
    finally:
        conn.close()


def _status(url: str, timeout: float, headers: dict[str, str] | None = None) -> int | None:
    return _get(url, timeout, headers)[0]


def probe_endpoint(endpoint: str, api_key: str | None, timeout: float = 2.0) -> tuple[str, str]:
    """(service type, why) for an endpoint URL."""

    endpoint = endpoint.rstrip("/")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    status, answered = _get(endpoint + "/api/tags", timeout, headers)
    if status == 200 and GATEWAY_HEADER.lower() not in answered:  # a clawdbot speaks Ollama's API too
        return "ollama", "answers /api/tags (Ollama)"
    status = _status(api_base(endpoint) + "/models", timeout, headers)
    if status == 200:
        return "http", "answers /v1/models (OpenAI-compatible)"
    if status in (401, 403):
        return "http", f"answers /v1/models with {status} (OpenAI-compatible, needs CLAWDBOT_MODEL_API_KEY)"
    return "http", "did not answer a probe; assuming OpenAI-compatible"


def detect(env: dict[str, str] | None = None) -> tuple[Config, str]:
    """A config for the detected backend and a one-line explanation to print at start."""
    env = dict(os.environ) if env is None else env
    endpoint = env.get("CLAWDBOT_MODEL_ENDPOINT")
    api_key = env.get("CLAWDBOT_MODEL_API_KEY")
    auth = Auth(key=api_key) if api_key else None
    if endpoint:
        kind, why = probe_endpoint(endpoint, api_key)
        svc = Service(name="upstream", type=kind, endpoint=endpoint, auth=auth)
        return Config(services=[svc]), f"backend: CLAWDBOT_MODEL_ENDPOINT={endpoint} {why}"
    if _status(OLLAMA_DEFAULT + "/api/tags", 0.5) == 200:
        svc = Service(name="ollama", type="ollama", endpoint=OLLAMA_DEFAULT)
        return Config(services=[svc]), f"backend: Ollama at {OLLAMA_DEFAULT}"
    services = [embedded("local", DEFAULT), embedded("gemma", GEMMA)]
    return Config(services=services), (
        f"backend: embedded local model {LOCAL_MODEL_NAME!r} (no CLAWDBOT_MODEL_ENDPOINT, no Ollama on "
        f"127.0.0.1:11434), and {GEMMA.name!r} (a base model); tiny models, see /v1/models"
    )


def embedded(name: str, model: PackagedModel) -> Service:
    return Service(name=name, type="local", model=model.name,
                   metadata={"model_id": model.name, "description": model.description})


def api_base(endpoint: str) -> str:
    """`http://h:8000` means `http://h:8000/v1`; an endpoint with a path is used as given."""
    endpoint = endpoint.rstrip("/")
    return endpoint + "/v1" if urlsplit(endpoint).path in ("", "/") else endpoint

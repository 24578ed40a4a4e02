"""What `clawdbot models` asks an Ollama service of the config, over its native API: /api/tags
(installed models), /api/show, /api/delete and /api/pull (a stream of NDJSON progress lines, each
`{"status", "digest", "total", "completed"}` with the empty ones left out, then `{"status":
"success"}`; a failure arrives as a line `{"error": ...}`, also after a 200). Blocking urllib: a
command does one thing at a time. Every failure is a CliError naming the service."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from clawdbot.cli.admin_http import CliError
from clawdbot.config.schema import Service
from clawdbot.config.service_types import TYPES

TIMEOUT = 30.0
PULL_LINE_TIMEOUT = 600.0  # seconds between two progress lines (Ollama writes one every 60 ms)


def api_root(endpoint: str) -> str:
    # as providers/ollama.py api_root: .../v1 and .../api name the same server
    base = endpoint.rstrip("/")
    for suffix in ("/v1", "/api"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


class OllamaClient:
    def __init__(self, svc: Service) -> None:
        self.name = svc.name
        self.base = api_root(svc.endpoint or TYPES["ollama"].default_endpoint or "")
        a = svc.auth  # as providers/http.py auth_headers
        self.headers = {} if a is None or a.type == "none" else TYPES[svc.type].auth_headers(a.key, a.header)

    def tags(self) -> list[dict[str, Any]]:
        models = self._json("GET", "/api/tags", None).get("models") or []
        return [m for m in models if isinstance(m, dict)]

    def show(self, model: str) -> dict[str, Any]:
        out: dict[str, Any] = self._json("POST", "/api/show", {"model": model})
        return out

    def delete(self, model: str) -> None:
        self._open("DELETE", "/api/delete", {"model": model}, TIMEOUT).close()

    def pull(self, model: str) -> Iterator[dict[str, Any]]:
        """The progress lines, as they come; the `{"error"}` line raises CliError."""
        resp = self._open("POST", "/api/pull", {"model": model, "stream": True}, PULL_LINE_TIMEOUT)
        with resp:
            try:
                for raw in resp:
                    if not raw.strip():
                        continue
                    event = self._object(raw, f"a line of the pull stream ({raw[:80]!r})")
                    if "error" in event:
                        raise CliError(f"{self._where()}: pull {model}: {event['error']}")
                    yield event
            except (OSError, urllib.error.URLError) as exc:
                raise CliError(f"{self._where()}: the pull stream broke: {getattr(exc, 'reason', exc)}") from None

    def _where(self) -> str:
        return f"service {self.name} ({self.base})"

    def _json(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        with self._open(method, path, body, TIMEOUT) as resp:
            data = resp.read()
        return self._object(data, f"the answer to {method} {path}")

    def _object(self, data: bytes, what: str) -> dict[str, Any]:
        """`data` as a JSON object; CliError naming `what` when it is not one."""
        try:
            out = json.loads(data)
        except ValueError:
            raise CliError(f"{self._where()}: {what} is not JSON") from None
        if not isinstance(out, dict):
            raise CliError(f"{self._where()}: {what} is not a JSON object")
        return out

    def _open(self, method: str, path: str, body: dict[str, Any] | None, timeout: float) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {**self.headers, **({"Content-Type": "application/json"} if data is not None else {})}
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            return urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as exc:
            try:
                msg = json.loads(exc.read())["error"]
            except (ValueError, KeyError, TypeError):
                msg = exc.reason
            raise CliError(f"{self._where()}: {msg} ({exc.code})") from None
        except (urllib.error.URLError, OSError) as exc:
            raise CliError(f"{self._where()} cannot be reached: {getattr(exc, 'reason', exc)}") from None

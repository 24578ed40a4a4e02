"""The running gateway `clawdbot models` talks to (--url): what it routes (GET /v1/models), and
how a pulled or removed model is made to show there without a restart (GatewayView.await_listed)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from clawdbot.cli.admin_http import CliError

LISTED_TIMEOUT = 10.0  # seconds a pull or rm waits for the gateway's /v1/models to show the change


class GatewayView:
    """The running gateway at --url, when one answers: what it routes, and a discovery refresh."""

    def __init__(self, url: str, key: str | None) -> None:
        self.url = url.rstrip("/")
        self.key = key

    def get(self, path: str) -> tuple[int, Any] | None:
        """(status, JSON body) of a GET; None when nothing answers."""
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        req = urllib.request.Request(self.url + path, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"null")
            except ValueError:
                return exc.code, None
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def models(self) -> list[dict[str, Any]] | None:
        """GET /v1/models: None when no gateway answers. Raises CliError when it refuses the key."""
        got = self.get("/v1/models")
        if got is None:
            return None
        status, body = got
        if status in (401, 403):
            raise CliError(f"the gateway at {self.url} refused the key ({status}): give --key or set "
                           f"CLAWDBOT_MASTER_KEY")
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise CliError(f"the gateway at {self.url} answered GET /v1/models with {status}")
        return [m for m in body["data"] if isinstance(m, dict)]

    def await_listed(self, model_id: str, present: bool = True, timeout: float = LISTED_TIMEOUT) -> bool:
        """Make the gateway see a model that was pulled (or removed) and wait until its /v1/models
        says so. GET /readyz probes again every service whose last probe is over a second old
        (api/endpoints.py), and a probe of an Ollama service reads /api/tags: the models it
        reports become routable at once (routing/health.py). POST /admin/reload would not do:
        it re-probes only services that are new in the config."""
        deadline = time.monotonic() + timeout
        while True:
            self.get("/readyz")
            listed = {m.get("id") for m in self.models() or ()}
            if (model_id in listed) == present:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)  # the next probe is due a second after the last one

    def settle(self, notes: list[str], model_id: str, discovers: bool, present: bool = True) -> dict[str, Any]:
        """After a pull or rm: what the running gateway makes of it, for the report."""
        try:
            listed = self.models()
        except CliError as exc:
            notes.append(str(exc))
            return {"url": self.url, "running": True, "routable": None}
        if listed is None:
            return {"url": self.url, "running": False, "routable": None}
        if not discovers:
            notes.append(f"the service does not discover models (discover: false): name {model_id} under "
                             f"models: in the config to route it")
            return {"url": self.url, "running": True, "routable": None}
        seen = self.await_listed(model_id, present)
        if not seen:
            notes.append(f"the gateway at {self.url} did not {'list' if present else 'drop'} {model_id} "
                             f"within {LISTED_TIMEOUT:.0f}s")
        return {"url": self.url, "running": True, "id": model_id, "routable": present == seen}

"""A stand-in Kubernetes API server for the chart's checks: a real HTTP server on loopback that
answers discovery for the kinds the chart renders, finds no existing object and accepts every
create (echoing it back, as the API server does). Real Helm (tests/deploy/helm.py) installs
against it, which is how `helm template` is had here without the helm binary, and real kubectl
runs `apply --dry-run=client` against it, which needs discovery to map kinds to resources.

It checks nothing itself: the schemas are kubernetes-validate's, the parsing Helm's and kubectl's."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SERVER_VERSION = {"major": "1", "minor": "30", "gitVersion": "v1.30.0", "platform": "linux/amd64"}

# group -> version -> [(resource, kind, namespaced)]: what the chart renders, and what Helm's
# release storage would touch (secrets)
RESOURCES: dict[str, dict[str, list[tuple[str, str, bool]]]] = {
    "": {"v1": [("configmaps", "ConfigMap", True), ("secrets", "Secret", True), ("services", "Service", True),
                ("serviceaccounts", "ServiceAccount", True), ("pods", "Pod", True),
                ("namespaces", "Namespace", False)]},
    "apps": {"v1": [("deployments", "Deployment", True)]},
    "autoscaling": {"v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)]},
    "policy": {"v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)]},
    "networking.k8s.io": {"v1": [("ingresses", "Ingress", True)]},
}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
_GROUP_VERSION = re.compile(r"^/(?:api/(v1)|apis/([^/]+)/([^/]+))$")
_LIST = re.compile(r"^/(?:api/v1|apis/[^/]+/[^/]+)(?:/namespaces/[^/]+)?/[a-z]+$")


def _api_group_list() -> dict[str, Any]:
    groups = []
    for group, versions in RESOURCES.items():
        if not group:
            continue
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _resource_list(group: str, version: str) -> dict[str, Any] | None:
    entries = RESOURCES.get(group, {}).get(version)
    if entries is None:
        return None
    return {
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
        "resources": [{"name": n, "singularName": "", "namespaced": ns, "kind": k, "verbs": VERBS}
                      for n, k, ns in entries],
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        self.server.log.append(f"{self.command} {self.path}")

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self) -> None:
        self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                         "code": 404, "message": f"{self.path.split('?')[0]} not found"})

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/version":
            return self._send(200, SERVER_VERSION)
        if path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
        if path == "/apis":
            return self._send(200, _api_group_list())
        m = _GROUP_VERSION.match(path)
        if m:
            group, version = ("", "v1") if m.group(1) else (m.group(2), m.group(3))
            found = _resource_list(group, version)
            return self._send(200, found) if found else self._not_found()
        if _LIST.match(path):
            return self._send(200, {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                                    "items": []})
        return self._not_found()  # a named object (nothing exists yet), /openapi/*

    def _accept(self, status: int) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        obj = json.loads(self.rfile.read(length) or b"{}")
        self.server.created.append((self.path.split("?", 1)[0], obj))
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{len(self.server.created)}")
        meta["resourceVersion"] = "1"
        self._send(status, obj)

    def do_POST(self) -> None:
        self._accept(201)

    def do_PUT(self) -> None:
        self._accept(200)

    def do_PATCH(self) -> None:
        self._accept(200)

    def do_DELETE(self) -> None:
        self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.created: list[tuple[str, dict[str, Any]]] = []
        self.log: list[str] = []


class KubeAPI:
    def __init__(self, server: _Server, kubeconfig: Path) -> None:
        self._server = server
        self.kubeconfig = kubeconfig

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def created(self) -> list[tuple[str, dict[str, Any]]]:
        return self._server.created


@contextmanager
def kube_api(tmp: Path) -> Iterator[KubeAPI]:
    """The server on a free loopback port, and a kubeconfig (tmp/kubeconfig) that points at it."""
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, name="kube-api", daemon=True)
    thread.start()
    port = server.server_address[1]
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "stand-in",
        "clusters": [{"name": "stand-in", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "contexts": [{"name": "stand-in", "context": {"cluster": "stand-in", "namespace": "default"}}],
        "users": [{"name": "nobody", "user": {}}],
    }))
    try:
        yield KubeAPI(server, kubeconfig)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)

"""/openapi.json against the route tables: every route the gateway serves has an operation for each
of its methods, and every operation is a route that answers that method. The tables: api/routes.py
(ROUTES, and TEMPLATES for the paths with an id), the admin API's (api/admin_api.py ROUTES), and the
web layer's HTTP paths (web/layer.py). Left out by decision (docs/api.md): the chat page's static
files and the chat WebSocket."""

from __future__ import annotations

from pathlib import Path

import pytest

from clawdbot.api import admin_api, openapi, routes
from clawdbot.api.app import App
from clawdbot.api.routes import Route
from clawdbot.cli.serve import build_app
from clawdbot.config.mcp_schema import Mcp, McpServer
from clawdbot.config.schema import Config, Service
from clawdbot.observability.access import AccessLog

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def built(tmp_path: Path, role: str) -> App:
    config = Config(services=[Service(name="m", type="mock")])
    return build_app(config, AccessLog("text"), role, env={"CLAWDBOT_DATA_DIR": str(tmp_path)})


def methods(route: Route) -> set[str]:
    return {m.lower() for m in route.method.split(" ")}


def served(app: App) -> dict[str, set[str]]:
    """Every path the app routes (an id as {id}) and the methods it answers there."""
    out = {path: methods(r) for path, r in {**routes.ROUTES, **routes.TEMPLATES}.items()}
    out |= {admin_api.PREFIX + t: {m.lower() for m in ms} for t, ms in admin_api.ROUTES.items()}
    out |= {path: methods(r) for path, r in getattr(app.ext, "routes", {}).items()}  # WebLayer's table
    out |= {path: methods(r) for path, r in getattr(app.mcp, "routes", {}).items()}  # the MCP endpoint's
    panel = getattr(app.ext, "panel", None)  # the control panel's own (its /panel/api/admin/ mirror is the admin API)
    if panel is not None:
        out |= {path: methods(r) for path, r in {**panel.routes, **panel.templates}.items()}
    stats = app.ext.route("/debug/stats")  # the proxy's StatsOnly has only this one
    if stats is not None:
        out["/debug/stats"] = methods(stats)
    return out


def documented(app: App) -> dict[str, set[str]]:
    doc = openapi.document(openapi.shape_of(app.pipeline))
    return {path: set(item) & METHODS for path, item in doc["paths"].items()}


@pytest.mark.parametrize("role", ["serve", "proxy"])
def test_every_route_is_documented_and_every_operation_is_a_route(tmp_path: Path, role: str) -> None:
    app = built(tmp_path, role)
    have, doc = served(app), documented(app)
    assert sorted(set(have) - set(doc)) == [], "routes without an operation in /openapi.json"
    assert sorted(set(doc) - set(have)) == [], "operations no route serves"
    assert {p: m for p, m in have.items() if doc[p] != m} == {}, "methods differ (route: served)"


def test_mcp_is_documented_when_configured(tmp_path: Path) -> None:
    config = Config(services=[Service(name="m", type="mock")],
                    mcp=Mcp(servers=[McpServer(name="t", command="/bin/true")]))
    app = build_app(config, AccessLog("text"), "serve", env={"CLAWDBOT_DATA_DIR": str(tmp_path)})
    have, doc = served(app), documented(app)
    assert have["/mcp"] == doc["/mcp"] == {"post"}
    assert "/mcp" not in documented(built(tmp_path / "plain", "serve"))


def test_the_web_layer_is_documented_only_where_it_serves(tmp_path: Path) -> None:
    serve, proxy = documented(built(tmp_path / "s", "serve")), documented(built(tmp_path / "p", "proxy"))
    page = {"/", "/auth/login", "/auth/logout", "/auth/status", "/panel", "/panel/api/overview"}
    assert page <= set(serve) and not page & set(proxy)
    assert "/debug/stats" in serve and "/debug/stats" in proxy


def test_templates_are_what_the_routers_find() -> None:
    for template, route in routes.TEMPLATES.items():
        assert routes.find(template.replace("{id}", "some-id")) is route, template
    assert routes.find("/v1/models/svc/model") is routes.MODEL_ROUTE  # a model id may hold a slash
    for template in admin_api.ROUTES:
        assert admin_api.template(template.replace("{id}", "k_1").split("/")) == template
    assert admin_api.template(["requests", "stream"]) == "requests/stream"  # the literal, not an id
    assert admin_api.template(["keys", ""]) is None and admin_api.template(["keys", "k", "x"]) is None


def test_static_files_and_the_socket_are_left_out(tmp_path: Path) -> None:
    app = built(tmp_path, "serve")
    doc = documented(app)
    static = app.ext.route("/app.css")
    assert static is not None and app.ext.route("/static/app.css") is static  # served, by prefix
    assert not any(p.startswith("/static") or p.endswith((".css", ".js", ".svg")) for p in doc)
    assert app.ext.route("/ws") is None and "/ws" not in doc  # WebSocket only (docs/websocket.md)

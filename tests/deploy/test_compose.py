"""deploy/compose: the Compose file's structure, its secrets (references only, each one in
.env.example), its agreement with the nginx config and the Dockerfile, `docker-compose config`
(Debian's Compose, which validates without an engine), and the gateways' config file through
`clawdbot config validate`. Running the stack needs images from a registry this machine cannot
reach: docs/deploy.md."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.artefacts import COMPOSE_DIR, NGINX_CONF, ROOT

COMPOSE = COMPOSE_DIR / "docker-compose.yml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
GATEWAY_CONFIG = COMPOSE_DIR / "clawdbot.yaml"
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
_SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|TOKEN", re.I)


def uncommented(path: Path) -> str:
    """The file without its comment lines (which may show examples of variables)."""
    return "\n".join(ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#"))


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def env_example() -> tuple[dict[str, str], set[str]]:
    """(variables set, variables shown commented with their default)."""
    set_: dict[str, str] = {}
    commented: set[str] = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = re.match(r"^(#\s*)?([A-Z_][A-Z0-9_]*)=(.*)$", line)
        if m and m.group(1):
            commented.add(m.group(2))
        elif m:
            set_[m.group(2)] = m.group(3)
    return set_, commented


def clean_env() -> dict[str, str]:
    """The environment without the stack's variables (so only the env file fills them) nor a
    PYTHONPATH, which would reach the system Python that Debian's docker-compose runs on."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("CLAWDBOT_", "POSTGRES_", "REDIS_", "OLLAMA_", "COMPOSE_", "PYTHONPATH"))}


def test_services_and_profiles() -> None:
    services = compose()["services"]
    assert set(services) == {"lb", "clawdbot", "postgres", "redis", "ollama"}
    assert services["ollama"]["profiles"] == ["ollama"]
    assert all("profiles" not in s for name, s in services.items() if name != "ollama")
    gw = services["clawdbot"]
    assert gw["deploy"]["replicas"] == 2
    assert (COMPOSE_DIR / gw["build"]["context"] / gw["build"]["dockerfile"]).resolve() == ROOT / "Dockerfile"
    assert gw["build"]["args"]["EXTRAS"].startswith("${CLAWDBOT_EXTRAS:-")
    assert "ports" not in gw, "replicas are reached through the load balancer only"


def test_healthchecks_and_start_order() -> None:
    services = compose()["services"]
    for name in ("lb", "clawdbot", "postgres", "redis", "ollama"):
        assert services[name]["healthcheck"]["test"], name
    assert "/healthz" in " ".join(services["clawdbot"]["healthcheck"]["test"])
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])
    assert services["clawdbot"]["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                                  "redis": {"condition": "service_healthy"}}
    assert services["lb"]["depends_on"] == {"clawdbot": {"condition": "service_healthy"}}


def test_volumes_and_networks() -> None:
    doc = compose()
    services = doc["services"]
    assert set(doc["volumes"]) == {"pgdata", "redisdata", "ollama"}
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "redisdata:/data" in services["redis"]["volumes"]
    gw_volumes = services["clawdbot"]["volumes"]
    assert "./clawdbot.yaml:/etc/clawdbot/clawdbot.yaml:ro" in gw_volumes
    assert services["clawdbot"]["environment"]["CLAWDBOT_CONFIG"] == "/etc/clawdbot/clawdbot.yaml"
    assert "/var/lib/clawdbot" in gw_volumes, "an anonymous volume: a data directory per replica"
    assert services["clawdbot"]["read_only"] is True and "/tmp" in services["clawdbot"]["tmpfs"]
    assert doc["networks"]["state"]["internal"] is True
    assert services["postgres"]["networks"] == ["state"] and services["redis"]["networks"] == ["state"]


def test_load_balancer_matches_the_nginx_config_and_the_image() -> None:
    services = compose()["services"]
    lb = services["lb"]
    assert "../nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in lb["volumes"]
    assert (COMPOSE_DIR / "../nginx/nginx.conf").resolve() == NGINX_CONF
    (published,) = lb["ports"]
    bind, _host_port, container_port = published.rsplit(":", 2)
    assert bind.startswith("${CLAWDBOT_BIND:-127.0.0.1}"), "loopback unless the operator says otherwise"
    conf = NGINX_CONF.read_text()
    assert re.search(rf"^\s*listen {container_port};", conf, re.M)
    upstream_hosts = set(re.findall(r"^\s*server ([\w.-]+:\d+)", conf, re.M))
    assert upstream_hosts == {"clawdbot:18789"}
    assert services["clawdbot"]["expose"] == ["18789"]
    assert "CLAWDBOT_PORT=18789" in (ROOT / "Dockerfile").read_text()


def test_nginx_config_carries_websocket_and_streaming_settings() -> None:
    conf = NGINX_CONF.read_text()
    assert re.search(r"map \$http_upgrade \$connection_upgrade \{\s*default upgrade;\s*'' +'';\s*\}", conf)
    ws = conf[conf.index("location = /ws"):]
    ws = ws[:ws.index("}")]
    assert "proxy_set_header Upgrade $http_upgrade;" in ws
    assert "proxy_set_header Connection $connection_upgrade;" in ws
    assert "proxy_set_header Host $http_host;" in ws, "a location that sets headers inherits none"
    assert "proxy_http_version 1.1;" in conf
    assert "proxy_buffering off;" in conf
    read_timeout = int(re.search(r"^\s{8}proxy_read_timeout (\d+)s;", conf, re.M).group(1))  # type: ignore[union-attr]
    assert read_timeout >= 600, "a non-streamed answer is silent until whole (timeouts.total: 600 s)"
    assert "proxy_next_upstream error timeout;" in conf and "non_idempotent" not in conf


def test_no_secret_literals_only_references() -> None:
    doc = compose()
    set_, _ = env_example()
    for name, service in doc["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if _SECRET_NAME.search(key):
                m = _REF.fullmatch(str(value))
                assert m and m.group(2) == ":?", f"{name}.{key} must be ${{VAR:?...}}, not {value!r}"
    for text in (COMPOSE.read_text(), GATEWAY_CONFIG.read_text()):
        for name, value in set_.items():
            if _SECRET_NAME.search(name):
                assert value not in text, f"{name}'s example value is written in a deployed file"
        assert not re.search(r"\bsk-[A-Za-z0-9]", text)
    config = yaml.safe_load(GATEWAY_CONFIG.read_text())
    assert config["server"]["master_key"] == "${CLAWDBOT_MASTER_KEY}"
    assert "${POSTGRES_PASSWORD}" in config["database_url"] and "${REDIS_PASSWORD}" in config["redis_url"]


def test_env_example_names_every_variable_and_holds_no_secret() -> None:
    set_, commented = env_example()
    text = uncommented(COMPOSE) + uncommented(GATEWAY_CONFIG)
    for name, mode, _ in _REF.findall(text):
        if mode == ":?" or not mode:
            assert name in set_, f"{name} has no default and is not in .env.example"
        else:
            assert name in set_ or name in commented, f"{name} is not shown in .env.example"
    for name, value in set_.items():
        if _SECRET_NAME.search(name):
            assert value.startswith("change-me-"), f"{name} must be a placeholder in .env.example"


def test_gateway_config_is_what_serve_would_start_with(tmp_path: Path) -> None:
    set_, _ = env_example()
    env = clean_env() | set_ | {"CLAWDBOT_HOST": "0.0.0.0", "CLAWDBOT_DATA_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "clawdbot", "config", "validate", str(GATEWAY_CONFIG), "--json"],
                         env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    report = json.loads(out.stdout)
    assert out.returncode == 0 and report["ok"], out.stdout + out.stderr
    assert {s["name"] for s in report["services"]} == {"demo", "ollama"}
    # .env.example's placeholders are recognised, so a copied-as-is .env is called out
    assert any("placeholder" in w for w in report["warnings"])


def _docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail("docker-compose is missing: `apt-get install -y --no-install-recommends docker-compose` "
                    "(scripts/ensure-services.sh installs it)")
    return found


def test_docker_compose_config_validates_it(tmp_path: Path) -> None:
    binary = _docker_compose()
    ok = subprocess.run([binary, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE), "config", "--quiet"],
                        env=clean_env(), capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    resolved = subprocess.run([binary, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE), "config"],
                              env=clean_env(), capture_output=True, text=True, timeout=60, cwd=tmp_path)
    doc = yaml.safe_load(resolved.stdout)
    (port,) = doc["services"]["lb"]["ports"]  # Compose v1 prints the short form, v2 the long one
    if isinstance(port, dict):
        port = f"{port['host_ip']}:{port['published']}:{port['target']}/{port['protocol']}"
    assert port == "127.0.0.1:18789:8080/tcp"
    assert doc["services"]["clawdbot"]["build"]["args"]["EXTRAS"] == "postgres,redis"
    empty = tmp_path / "empty.env"
    empty.write_text("")
    refused = subprocess.run([binary, "--env-file", str(empty), "-f", str(COMPOSE), "config", "--quiet"],
                             env=clean_env(), capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert refused.returncode != 0, "a missing secret must stop Compose, not start with an empty one"
    assert "in .env (see .env.example)" in refused.stderr

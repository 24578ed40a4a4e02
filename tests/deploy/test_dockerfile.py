"""The Dockerfile, read instruction by instruction, and the parts of it that run outside a container
run here for real: the extras script, the HEALTHCHECK command against a gateway, the ENTRYPOINT
(Debian's tini, the image's own package) in front of `clawdbot serve` under SIGTERM, and the
image's environment without a master key. Building the image needs a registry this machine cannot
reach: docs/deploy.md says what was tried."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tests.deploy.artefacts import ROOT, Instruction, dockerfile
from tests.e2e.harness import GatewayProcess, free_port, healthy, wait_ready

BASE = "python:3.11-slim-bookworm"
EXTRAS_SCRIPT = ROOT / "deploy" / "docker" / "extras.sh"
TINI = "/usr/bin/tini"
MASTER = "sk-deploy-docker-0123456789abcdef"
MOCK_CONFIG = "services:\n  - name: demo\n    type: mock\n"


def instructions(keyword: str, stage: int | None = None) -> list[Instruction]:
    return [i for i in dockerfile() if i.keyword == keyword and (stage is None or i.stage == stage)]


def final_stage() -> int:
    return max(i.stage for i in dockerfile())


def env_of(stage: int) -> dict[str, str]:
    """The stage's ENV, with $PATH-style references left as written."""
    out: dict[str, str] = {}
    for ins in instructions("ENV", stage):
        for word in shlex.split(ins.args):
            key, _, value = word.partition("=")
            out[key] = value
    return out


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_multi_stage_on_the_slim_python_base() -> None:
    args = {i.args.partition("=")[0]: i.args.partition("=")[2] for i in instructions("ARG") if i.stage == -1}
    assert args.get("PYTHON_IMAGE") == BASE
    froms = instructions("FROM")
    assert len(froms) >= 2, "multi-stage: a build stage and a runtime stage"
    assert all(f.args.split()[0] == "${PYTHON_IMAGE}" for f in froms)
    assert froms[-1].args.endswith("AS runtime")
    copies = [c.args for c in instructions("COPY", final_stage())]
    assert any(c.startswith("--from=build ") for c in copies), "the runtime stage takes the build stage's venv"
    runs = " ".join(r.args for r in instructions("RUN", final_stage()))
    assert "build-essential" not in runs and "uv sync" not in runs, "nothing compiles or resolves at run time"


def test_installed_from_the_lockfile_with_pinned_uv() -> None:
    build = [i for i in dockerfile() if i.stage == 0]
    copies = " ".join(i.args for i in build if i.keyword == "COPY")
    assert "uv.lock" in copies and "pyproject.toml" in copies
    syncs = [i.args for i in build if i.keyword == "RUN" and "uv sync" in i.args]
    assert syncs and all("--frozen" in s and "--no-dev" in s for s in syncs)
    assert any("--no-editable" in s for s in syncs), "the package itself, not a link to /src"
    assert not any(re.search(r"pip install (?!\"uv==)", i.args) for i in build if i.keyword == "RUN")
    uv = [i.args for i in build if i.keyword == "ARG" and i.args.startswith("UV_VERSION=")]
    assert uv and re.fullmatch(r"UV_VERSION=\d+\.\d+\.\d+", uv[0])


def test_extras_by_build_argument() -> None:
    defaults = {i.args for i in instructions("ARG") if i.args.startswith("EXTRAS=")}
    assert defaults == {"EXTRAS=postgres,redis"}, "build and runtime stages agree on the default"
    allowed = re.search(r'^ALLOWED="([^"]*)"', EXTRAS_SCRIPT.read_text(), re.M)
    assert allowed is not None
    names = set(allowed.group(1).split())
    declared = set(pyproject()["project"]["optional-dependencies"])  # type: ignore[index]
    assert {"local", "postgres", "redis", "grpc", "otel"} <= names <= declared

    def flags(extras: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", str(EXTRAS_SCRIPT), extras], capture_output=True, text=True, timeout=10)

    assert flags("postgres,redis").stdout.split() == ["--extra", "postgres", "--extra", "redis"]
    assert flags("local,grpc,otel").stdout.split() == ["--extra", "local", "--extra", "grpc", "--extra", "otel"]
    assert flags("").stdout.strip() == "" and flags("").returncode == 0
    refused = flags("postgres,presidio")
    assert refused.returncode == 1 and "unknown extra 'presidio'" in refused.stderr


def test_runs_as_a_numeric_non_root_user() -> None:
    users = instructions("USER")
    assert users and users[-1].stage == final_stage()
    uid, _, gid = users[-1].args.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0, \
        "numeric, so Kubernetes' runAsNonRoot can check it"
    runs = " ".join(r.args for r in instructions("RUN", final_stage()))
    assert f"--uid {uid}" in runs and f"-o {uid} -g {gid} -m 0700 /var/lib/clawdbot" in runs


def test_environment_config_mount_and_port() -> None:
    env = env_of(final_stage())
    assert env["CLAWDBOT_HOST"] == "0.0.0.0" and env["CLAWDBOT_PORT"] == "18789"
    assert env["CLAWDBOT_DATA_DIR"] == "/var/lib/clawdbot"
    assert env["PATH"].startswith("/opt/clawdbot/bin:")
    assert instructions("WORKDIR", final_stage())[-1].args == "/etc/clawdbot", \
        "a file mounted at /etc/clawdbot/clawdbot.yaml is ./clawdbot.yaml"
    assert [e.args for e in instructions("EXPOSE")] == ["18789"]


def test_oci_labels() -> None:
    labels = " ".join(i.args for i in instructions("LABEL", final_stage()))
    found = dict(re.findall(r'(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"', labels))
    project = pyproject()["project"]
    assert found["org.opencontainers.image.title"] == "clawdbot"
    assert found["org.opencontainers.image.licenses"] == project["license"]["text"]  # type: ignore[index]
    for name in ("version", "revision", "created", "base.name", "description"):
        assert f"org.opencontainers.image.{name}" in found
    args = {i.args.partition("=")[0]: i.args.partition("=")[2] for i in instructions("ARG", final_stage())}
    assert args["VERSION"] == project["version"]  # type: ignore[index]


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", "an allow-list: nothing is sent unless named"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    for copy in instructions("COPY"):
        if copy.args.startswith("--from="):
            continue
        *sources, _dest = copy.args.split()
        for src in sources:
            assert any(src == a or src.startswith(a + "/") for a in allowed), f"COPY {src} is not in the context"
            assert (ROOT / src).exists(), src
    assert "**/.env" in lines


def test_healthcheck_asks_healthz_without_curl(tmp_path: Path) -> None:
    (check,) = instructions("HEALTHCHECK")
    words = check.exec_form()
    assert words is not None and words[0] == "python3", "the slim image has no curl or wget"
    assert "/healthz" in words[-1] and "127.0.0.1" in words[-1]
    command = [sys.executable, *words[1:]]
    cfg = tmp_path / "clawdbot.yaml"
    cfg.write_text(MOCK_CONFIG)
    gw = GatewayProcess(["serve", "--config", str(cfg)], tmp_path / "gw.log")
    with gw:
        ok = subprocess.run(command, env={**os.environ, "CLAWDBOT_PORT": str(gw.port)}, timeout=10)
        assert ok.returncode == 0
    down = subprocess.run(command, env={**os.environ, "CLAWDBOT_PORT": str(gw.port)}, capture_output=True,
                          timeout=10)
    assert down.returncode != 0, "a gateway that is gone is unhealthy"


def _serve_under(entrypoint: list[str], tmp: Path, name: str) -> tuple[int, str]:
    """`clawdbot serve` behind the entrypoint as the image runs it (on loopback), SIGTERM to the
    entrypoint's process once it answers /healthz: (exit status, log)."""
    cfg = tmp / "clawdbot.yaml"
    cfg.write_text(MOCK_CONFIG)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDBOT_")}
    env |= {"CLAWDBOT_HOST": "127.0.0.1", "CLAWDBOT_PORT": str(port), "CLAWDBOT_MASTER_KEY": MASTER,
            "CLAWDBOT_DATA_DIR": str(tmp / f"data-{name}"), "TINI_SUBREAPER": "1"}
    log_path = tmp / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*entrypoint, sys.executable, "-m", "clawdbot", "serve", "--config", str(cfg)],
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            assert wait_ready(proc, lambda: healthy(port), name, log_path.read_text, timeout=60)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
            assert time.monotonic() - started < 15, "stopped within the graceful timeout"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
    return code, log_path.read_text(errors="replace")


def test_tini_forwards_sigterm_and_a_clean_stop_exits_0(tmp_path: Path) -> None:
    (entry,) = instructions("ENTRYPOINT")
    words = entry.exec_form()
    assert words == [TINI, "-e", "143", "--"]
    assert instructions("STOPSIGNAL")[-1].args == "SIGTERM"
    assert instructions("CMD", final_stage())[-1].exec_form() == ["clawdbot", "serve"]
    if not os.access(TINI, os.X_OK):
        pytest.fail(f"{TINI} is missing: `apt-get install -y tini` (scripts/ensure-services.sh installs it)")
    code, log = _serve_under(words, tmp_path, "with-e")
    assert code == 0, f"tini -e 143 should report the gateway's SIGTERM stop as 0, got {code}:\n{log[-3000:]}"
    assert "listening on" in log
    # why -e 143 is there: uvicorn re-raises SIGTERM once it has drained, so without it the same
    # clean stop is reported as "killed by SIGTERM"
    code, log = _serve_under([TINI, "--"], tmp_path, "without-e")
    assert code == 128 + signal.SIGTERM, log[-3000:]


def test_the_images_environment_refuses_to_start_without_a_master_key(tmp_path: Path) -> None:
    env = env_of(final_stage())
    cfg = tmp_path / "clawdbot.yaml"
    cfg.write_text(MOCK_CONFIG)
    gw = GatewayProcess(["serve", "--config", str(cfg)], tmp_path / "refused.log",
                        {"CLAWDBOT_HOST": env["CLAWDBOT_HOST"], "CLAWDBOT_DATA_DIR": str(tmp_path / "data")})
    code, out = gw.run_to_exit()
    assert code == 2
    assert "refusing to bind 0.0.0.0" in out and "CLAWDBOT_MASTER_KEY" in out


def test_nothing_is_fetched_when_the_container_runs() -> None:
    runtime = instructions("CMD") + instructions("ENTRYPOINT") + instructions("HEALTHCHECK")
    words = " ".join(i.args for i in runtime)
    assert not re.search(r"\b(curl|wget|pip|uv|apt-get)\b", words)
    assert not re.search(r"https?://(?!127\.0\.0\.1)", words)
    assert not any(re.search(r"\b(curl|wget)\b", i.args) for i in instructions("RUN"))

"""`clawdbot init`: every template written, then validated as the user would (the variables of its
.env.example set); never overwriting; asking only on a terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from clawdbot.cli.init import TEMPLATES
from tests.cli.test_config_cmd import clawdbot

REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def env_file(path: Path) -> dict[str, str]:
    """The uncommented NAME=value lines, as `set -a; . ./.env.example` would export them."""
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            out[name] = value
    return out


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_every_template_validates_with_its_env_example(tmp_path: Path, template: str) -> None:
    r = clawdbot("init", template, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    config = (tmp_path / "clawdbot.yaml").read_text()
    assert config.startswith("# clawdbot.yaml")  # commented for the reader
    example = (tmp_path / ".env.example").read_text()
    files = [config] + ([(tmp_path / "docker-compose.yml").read_text()] if template == "compose" else [])
    for name in {m.group(1) for text in files for m in REF.finditer(text)}:
        assert re.search(rf"^(# )?{name}=", example, re.M), f"{name} missing from .env.example"
    env = env_file(tmp_path / ".env.example")
    r = clawdbot("config", "validate", "--json", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout
    assert '"ok": true' in r.stdout


def test_compose_writes_a_compose_file_with_the_whole_stack(tmp_path: Path) -> None:
    assert clawdbot("init", "compose", cwd=tmp_path).returncode == 0
    compose = yaml.safe_load((tmp_path / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"clawdbot", "postgres", "redis", "ollama"}
    gw = compose["services"]["clawdbot"]
    assert gw["ports"] == ["127.0.0.1:18789:18789"]  # loopback on the host by default
    assert "./clawdbot.yaml:/etc/clawdbot/clawdbot.yaml:ro" in gw["volumes"]
    config = yaml.safe_load((tmp_path / "clawdbot.yaml").read_text())
    assert "@postgres:5432/" in config["database_url"] and "redis:6379" in config["redis_url"]


def test_init_never_overwrites_without_force(tmp_path: Path) -> None:
    (tmp_path / "clawdbot.yaml").write_text("# mine\n")
    r = clawdbot("init", "ollama", cwd=tmp_path)
    assert r.returncode == 1 and "--force" in r.stderr
    assert (tmp_path / "clawdbot.yaml").read_text() == "# mine\n"
    assert not (tmp_path / ".env.example").exists()  # a refused run writes nothing at all
    r = clawdbot("init", "ollama", "--force", cwd=tmp_path)
    assert r.returncode == 0
    assert "type: ollama" in (tmp_path / "clawdbot.yaml").read_text()


def test_init_asks_nothing_when_not_on_a_terminal(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "clawdbot", "init", "--dir", str(tmp_path / "out")],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "type: local" in (tmp_path / "out" / "clawdbot.yaml").read_text()
    assert "template [" not in r.stdout


def test_init_asks_for_a_template_on_a_terminal(tmp_path: Path) -> None:
    """On a pseudo-terminal: the menu, an answer typed, the chosen template written."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: clawdbot with the pty as its terminal
        os.chdir(tmp_path)
        os.execv(sys.executable, [sys.executable, "-m", "clawdbot", "init"])
    screen = b""

    def read_until(needle: bytes, timeout: float = 30.0) -> None:
        nonlocal screen
        deadline = time.monotonic() + timeout
        while needle not in screen:
            left = deadline - time.monotonic()
            assert left > 0, f"{needle!r} never shown; screen: {screen.decode(errors='replace')}"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                try:
                    screen += os.read(fd, 4096)
                except OSError:  # the child closed the terminal
                    break

    read_until(b"template [1-6, default 1]: ")
    assert b"openai-compatible" in screen and b"ollama" in screen
    os.write(fd, b"2\n")
    read_until(b"then: clawdbot serve")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert "type: ollama" in (tmp_path / "clawdbot.yaml").read_text()

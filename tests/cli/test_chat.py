"""`clawdbot chat` in a real terminal: tmux runs it, the test types into it and reads the screen."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import GatewayProcess

CONFIG = """\
server: {master_key: sk-chat-test}
services:
  - name: toy
    type: mock
  - name: other
    type: mock
    metadata: {model_id: other-model}
models:
  chat: [toy]
"""


class Terminal:
    """One tmux session running a command, 100x40."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.name = f"clawdbot-test-{uuid.uuid4().hex[:8]}"
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        line = f"cd {shlex.quote(str(cwd))} && env {exports} {shlex.join(command)}; echo EXITED=$?; sleep 600"
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", "100", "-y", "40", line], check=True)

    def send(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def type(self, text: str) -> None:
        self.send("-l", text)
        self.send("Enter")

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name, "-S", "-200"], check=True,
                              capture_output=True, text=True).stdout

    def wait_for(self, needle: str, timeout: float = 30.0, count: int = 1) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if text.count(needle) >= count:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} (x{count}) not on the screen after {timeout}s:\n{text}")
            time.sleep(0.05)  # polling the screen, not synchronising on a guess

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], check=False)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    (tmp_path / "clawdbot.yaml").write_text(CONFIG)
    with GatewayProcess(["serve", "--config", str(tmp_path / "clawdbot.yaml")], tmp_path / "gw.log") as gw:
        yield gw


def chat_env() -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")}
    return {**keep, "TERM": "xterm-256color", "NO_COLOR": "1"}


def test_chat_streams_answers_and_runs_the_page_commands(tmp_path: Path, gateway: GatewayProcess) -> None:
    term = Terminal([sys.executable, "-m", "clawdbot", "chat", "--url", gateway.url, "--key", "sk-chat-test",
                     "--model", "chat"], tmp_path, chat_env())
    try:
        term.wait_for("you>")
        term.type("hello there")
        term.wait_for("mock reply to: hello there")
        term.wait_for("[chat · toy · TTFT")  # the trace line: the model and the service that answered
        term.wait_for("tokens]")
        term.type("first line \\")
        term.wait_for("\n...")
        term.type("second line")
        term.wait_for("mock reply to: first line")  # the mock echoes the message's words
        term.type("/status")
        screen = term.wait_for("conversation: 2 turns, 4 messages")
        assert f"gateway: {gateway.url}" in screen and "model: chat" in screen
        term.type("/model")
        term.wait_for("* chat")
        term.type("/model other-modle")
        term.wait_for("did you mean other-model")
        term.type("/model other-model")
        term.wait_for("model: other-model")
        term.type("/new")
        term.wait_for("a new conversation")
        term.type("/status")
        term.wait_for("conversation: 0 turns, 0 messages")
        term.type('"""')
        term.type("block one")
        term.type("block two")
        term.type('"""')
        term.wait_for("mock reply to: block one")
        term.send("C-d")
        term.wait_for("EXITED=0")
    finally:
        term.close()
    log = gateway.log()
    assert log.count("path=/v1/chat/completions status=200") == 3


def test_chat_without_a_gateway_runs_one_in_process(tmp_path: Path) -> None:
    (tmp_path / "clawdbot.yaml").write_text("services:\n  - name: toy\n    type: mock\n")
    env = {**chat_env(), "CLAWDBOT_DATA_DIR": str(tmp_path / "data")}
    # --url is not given and nothing must answer on the default port for this test to mean anything
    term = Terminal([sys.executable, "-m", "clawdbot", "chat", "--model", "toy"], tmp_path, env)
    try:
        screen = term.wait_for("you>")
        if "running one in this process" not in screen:
            pytest.skip("a gateway answers on 127.0.0.1:18789 on this machine")
        term.type("are you there")
        term.wait_for("mock reply to: are you there")
        term.type("/quit")
        term.wait_for("EXITED=0")
    finally:
        term.close()


def test_chat_says_why_it_cannot_start(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "clawdbot", "chat", "--url", "ftp://x"], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "not an http(s) URL" in r.stderr and "Traceback" not in r.stderr

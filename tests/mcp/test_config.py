"""The `mcp:` section: what loads, and each mistake at its file:line."""

from __future__ import annotations

import pytest

from clawdbot.config.loader import ConfigError, load_config_text


def fails(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "test.yaml", env={"TOKEN": "t"})
    return info.value


def test_servers_and_rules_load_with_env_references() -> None:
    c = load_config_text("""
mcp:
  servers:
    - name: time
      command: uvx
      args: [mcp-server-time]
      env_allow: [TZ]
    - name: docs
      url: https://docs.example.com/mcp
      headers: {Authorization: "Bearer ${TOKEN}"}
  access:
    - teams: [t_1]
      allow: [time]
      calls_per_minute: 30
""", "test.yaml", env={"TOKEN": "t"})
    time, docs = c.mcp.servers
    assert time.stdio and time.args == ["mcp-server-time"] and not docs.stdio
    assert docs.headers == {"Authorization": "Bearer t"}
    assert c.mcp.access[0].calls_per_minute == 30


@pytest.mark.parametrize(("text", "where", "message"), [
    ("mcp:\n  servers:\n    - name: a.b\n      command: x\n", "test.yaml:3: mcp.servers[0].name", "a server name"),
    ("mcp:\n  servers:\n    - name: a\n", "test.yaml:3: mcp.servers[0]", "exactly one of `url`"),
    ("mcp:\n  servers:\n    - name: a\n      url: http://x/mcp\n      command: x\n", "test.yaml:3: mcp.servers[0]",
     "exactly one of"),
    ("mcp:\n  servers:\n    - name: a\n      url: http://x/mcp\n      args: [x]\n", "test.yaml:5: mcp.servers[0].args",
     "for stdio servers"),
    ("mcp:\n  servers:\n    - name: a\n      command: x\n      cwd: rel\n", "test.yaml:5: mcp.servers[0].cwd",
     "absolute"),
    ("mcp:\n  servers:\n    - name: a\n      command: x\n      timeout: 0\n", "test.yaml:5: mcp.servers[0].timeout",
     "positive"),
    ("mcp:\n  servers:\n    - {name: a, command: x}\n    - {name: a, command: y}\n",
     "test.yaml:4: mcp.servers[1].name", "duplicate"),
    ("mcp:\n  access:\n    - calls_per_minute: -1\n", "test.yaml:3: mcp.access[0].calls_per_minute", "positive"),
    ("mcp:\n  servers:\n    - name: a\n      command: x\n      shell: true\n", "test.yaml:5: mcp.servers[0].shell",
     "unknown key"),
    ("mcp:\n  agent:\n    max_steps: 0\n", "test.yaml:3: mcp.agent.max_steps", "positive"),
    ("mcp:\n  agent:\n    max_tools: 500\n", "test.yaml:3: mcp.agent.max_tools", "at most 128"),
])
def test_mistakes_name_their_line(text: str, where: str, message: str) -> None:
    err = str(fails(text))
    assert err.startswith(where) and message in err, err


def test_the_agent_loop_has_bounded_defaults() -> None:
    agent = load_config_text("mcp:\n  agent: {max_steps: 3}\n", "test.yaml", env={}).mcp.agent
    assert agent.max_steps == 3 and agent.max_seconds == 300 and agent.max_parallel_calls == 4
    assert agent.max_calls_per_step == 16 and agent.max_tools == 128

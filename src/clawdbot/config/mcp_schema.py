"""The `mcp:` section: the MCP servers the gateway fronts at /mcp, and who may call which tool
(src/clawdbot/mcp/, docs/mcp.md). Checked by problems() when the file loads, at file:line."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import msgspec

from clawdbot.config.strict import Strict

# a server's name is the namespace of its tools (`time.get_current_time`): no dot, nothing a glob reads
SERVER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class McpServer(Strict):
    """One upstream MCP server: remote (`url`, Streamable HTTP) or local (`command`, stdio). A local
    server's command, arguments, environment and directory come from this file only."""

    name: str
    url: str | None = None  # Streamable HTTP endpoint, e.g. https://tools.example.com/mcp
    headers: dict[str, str] = {}  # sent with each request to `url` (a token: ${ENV})
    command: str | None = None  # stdio: the program (an absolute path, or found on the gateway's PATH)
    args: list[str] = []
    env: dict[str, str] = {}  # stdio: variables set for the process (values may use ${ENV})
    env_allow: list[str] = []  # stdio: names copied from the gateway's environment, if set; nothing else is
    cwd: str | None = None  # stdio: working directory (absolute); default: the gateway's
    timeout: float = 60.0  # seconds one tool call may take; then the caller gets an error result
    connect_timeout: float = 30.0  # seconds to start (stdio) and initialize the session
    max_result_bytes: int = 1024 * 1024  # a tool result larger than this (as JSON) is replaced by an error
    idle_timeout: float | None = 300.0  # stdio: seconds without a call before the process is stopped
    restart_backoff: float = 0.5  # seconds before the first restart after a failure, doubled per failure
    restart_backoff_max: float = 30.0

    @property
    def stdio(self) -> bool:
        return self.command is not None


class McpAccessRule(Strict):
    """Which callers a rule is for (empty lists: every virtual key) and what it grants or limits.
    A key sees a tool that some rule of its allows and none of its rules denies."""

    keys: list[str] = []  # key ids (k_...)
    users: list[str] = []  # user ids: every key of the user
    teams: list[str] = []  # team ids: every key of the team's users
    allow: list[str] = []  # globs over `server.tool`; a pattern without a dot is a whole server
    deny: list[str] = []
    calls_per_minute: int | None = None  # per key; the tightest of a key's rules wins
    max_result_bytes: int | None = None  # the tighter of this and the server's


class McpAgent(Strict):
    """The tool loop the gateway runs for a model (mcp/agent.py): the chat page's `tools: true`, and
    /v1/chat/completions with `X-Clawdbot-Tools`."""

    max_steps: int = 8  # model turns of one request; the last one is asked to answer without tools
    max_seconds: float = 300.0  # the whole loop; once past it, the next turn is the last
    max_parallel_calls: int = 4  # tool calls of one turn that run at once
    max_calls_per_step: int = 16  # tool calls of one turn that run; more get an error result
    max_tools: int = 128  # tools offered to the model (OpenAI takes at most 128)


class Mcp(Strict):
    servers: list[McpServer] = []
    access: list[McpAccessRule] = []
    agent: McpAgent = msgspec.field(default_factory=McpAgent)
    max_tracked_keys: int = 10_000  # no effect: accepted for older files (the tenancy limiter forgets idle keys)


def problems(mcp: Mcp) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(key path under `mcp`, message) of each mistake, first one first."""
    seen: set[str] = set()
    for i, s in enumerate(mcp.servers):
        at: tuple[str | int, ...] = ("servers", i)
        if not SERVER_NAME.fullmatch(s.name):
            yield (*at, "name"), "a server name is 1-64 letters, digits, `_` or `-` (it prefixes its tools)"
        if s.name in seen:
            yield (*at, "name"), f"duplicate MCP server name `{s.name}`"
        seen.add(s.name)
        if (s.url is None) == (s.command is None):
            yield at, "an MCP server needs exactly one of `url` (Streamable HTTP) or `command` (stdio)"
        if s.url is not None and not s.url.startswith(("http://", "https://")):
            yield (*at, "url"), "`url` must be an http:// or https:// URL"
        if s.url is not None:
            for key in ("args", "env", "env_allow", "cwd"):
                if key in _given(s):
                    yield (*at, key), f"`{key}` is for stdio servers (`command`), not `url`"
        if s.command is not None:
            if not s.command.strip():
                yield (*at, "command"), "`command` must not be empty"
            if s.headers:
                yield (*at, "headers"), "`headers` are for Streamable HTTP servers (`url`), not `command`"
        if s.cwd is not None and not os.path.isabs(s.cwd):
            yield (*at, "cwd"), "`cwd` must be an absolute path"
        for name in [*s.env, *s.env_allow]:
            if not ENV_NAME.fullmatch(name):
                yield (*at, "env_allow" if name in s.env_allow else "env"), f"`{name}` is not a variable name"
        for key in ("timeout", "connect_timeout", "max_result_bytes", "idle_timeout", "restart_backoff",
                    "restart_backoff_max"):
            value = getattr(s, key)
            if value is not None and value <= 0:
                yield (*at, key), f"`{key}` must be positive"
    for i, r in enumerate(mcp.access):
        for key in ("calls_per_minute", "max_result_bytes"):
            value = getattr(r, key)
            if value is not None and value <= 0:
                yield ("access", i, key), f"`{key}` must be positive"
    for key in ("max_steps", "max_seconds", "max_parallel_calls", "max_calls_per_step", "max_tools"):
        if getattr(mcp.agent, key) <= 0:
            yield ("agent", key), f"`{key}` must be positive"
    if mcp.agent.max_tools > 128:
        yield ("agent", "max_tools"), "`max_tools` is at most 128 (the most an OpenAI request may offer)"
    if mcp.max_tracked_keys <= 0:
        yield ("max_tracked_keys",), "`max_tracked_keys` must be positive"


def _given(s: McpServer) -> set[str]:
    out = set()
    if s.args:
        out.add("args")
    if s.env:
        out.add("env")
    if s.env_allow:
        out.add("env_allow")
    if s.cwd is not None:
        out.add("cwd")
    return out

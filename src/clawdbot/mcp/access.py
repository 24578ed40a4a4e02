"""Who may see and call which tool: the `mcp.access` rules of the config file, matched against
the caller's key, user and team (docs/mcp.md says why the rules live in the config file and not
in key metadata)."""

from __future__ import annotations

from fnmatch import fnmatchcase

from clawdbot.config.mcp_schema import Mcp, McpAccessRule
from clawdbot.tenancy.principal import Principal

UNLIMITED = ("master", "anonymous")  # the master key, and every caller while auth is off


def _expand(pattern: str) -> str:
    return pattern if "." in pattern else pattern + ".*"  # `time` is every tool of server time


class Grant:
    """What one caller may do: built per call from the rules (a handful of globs)."""

    __slots__ = ("allow", "calls_per_minute", "deny", "everything", "max_result_bytes")

    def __init__(self, rules: list[McpAccessRule], everything: bool) -> None:
        self.everything = everything
        self.allow = tuple(_expand(p) for r in rules for p in r.allow)
        self.deny = tuple(_expand(p) for r in rules for p in r.deny)
        per_minute = [r.calls_per_minute for r in rules if r.calls_per_minute is not None]
        self.calls_per_minute = min(per_minute) if per_minute else None
        sizes = [r.max_result_bytes for r in rules if r.max_result_bytes is not None]
        self.max_result_bytes = min(sizes) if sizes else None

    def tool(self, server: str, tool: str) -> bool:
        name = f"{server}.{tool}"
        if any(fnmatchcase(name, p) for p in self.deny):
            return False
        return self.everything or any(fnmatchcase(name, p) for p in self.allow)

    def server(self, server: str) -> bool:
        """Might any tool of `server` be visible? (A server no pattern names is not even started.)"""
        if any(p == f"{server}.*" or p == "*" or p == "*.*" for p in self.deny):
            return False
        return self.everything or any(fnmatchcase(server, p.split(".", 1)[0]) for p in self.allow)


class Access:
    def __init__(self, mcp: Mcp) -> None:
        self.rules = mcp.access

    def grant(self, p: Principal) -> Grant:
        matching = [r for r in self.rules if _applies(r, p)]
        return Grant(matching, everything=p.kind in UNLIMITED)


def _applies(rule: McpAccessRule, p: Principal) -> bool:
    if p.kind in UNLIMITED:  # rules name keys, users and teams; the master key is none of them
        return p.kind in rule.keys
    if not (rule.keys or rule.users or rule.teams):
        return True
    return ((p.key_id is not None and p.key_id in rule.keys)
            or (p.user_id is not None and p.user_id in rule.users)
            or (p.team_id is not None and p.team_id in rule.teams))

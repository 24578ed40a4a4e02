"""The access plugin: models, tools and prompt size per key, user, team and tag."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from clawdbot.core.types import ChatRequest, ImagePart, Message, TextPart, Tool, ToolCall
from clawdbot.plugins.access import IMAGE_TOKENS, AccessDenied, AccessPlugin, AccessSettings, estimate_context_tokens
from clawdbot.plugins.base import PluginConfigError
from clawdbot.tenancy.costs import MESSAGE_OVERHEAD_TOKENS, REPLY_PRIMING_TOKENS
from clawdbot.tenancy.principal import Principal

from .support import LocalHost, context, run

ALICE = Principal(kind="key", key_id="key-alice", user_id="alice", team_id="research", tags=("beta",))
BOB = Principal(kind="key", key_id="key-bob", user_id="bob", team_id="interns")
OPS = Principal(kind="admin", key_id="key-ops", user_id="olga", team_id="ops", tags=("trusted",))


def make(*rules: dict[str, Any]) -> AccessPlugin:
    return AccessPlugin(msgspec.convert({"rules": list(rules)}, AccessSettings), LocalHost())


def req(model: str = "gpt-4o", text: str = "hi", tools: list[str] | None = None,
        tool_choice: Any = None) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content=text)],
                       tools=[Tool(name=t) for t in tools] if tools is not None else None, tool_choice=tool_choice)


def allowed(p: AccessPlugin, request: ChatRequest, who: Principal | None, tag: str | None = None) -> bool:
    try:
        assert run(p.pre(request, context(identity=who, tag=tag))) is None
    except AccessDenied:
        return False
    return True


def refusal(p: AccessPlugin, request: ChatRequest, who: Principal | None, tag: str | None = None) -> AccessDenied:
    ctx = context(identity=who, tag=tag)
    with pytest.raises(AccessDenied) as info:
        run(p.pre(request, ctx))
    assert ctx.plugin_notes is not None and ctx.plugin_notes[-1].startswith("access: refused ")
    return info.value


def test_settings_and_contract() -> None:
    assert AccessPlugin.needs == "request" and AccessPlugin.guard is True
    with pytest.raises(PluginConfigError):
        make()
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        make({"match": {"team": ["x"]}})
    with pytest.raises(msgspec.ValidationError):
        make({"max_context_tokens": 0})


def test_model_globs_allow_and_deny_and_deny_wins() -> None:
    p = make({"allow_models": ["gpt-4o*", "local/*"], "deny_models": ["gpt-4o-realtime*"]})
    assert allowed(p, req("gpt-4o"), ALICE)
    assert allowed(p, req("gpt-4o-mini"), ALICE)
    assert allowed(p, req("local/llama3"), None)  # an empty match is everyone, anonymous included
    err = refusal(p, req("gpt-4o-realtime-preview"), ALICE)
    assert (err.status, err.code, err.type, err.param) == (403, "access_denied", "permission_error", "model")
    assert err.message == "Access denied: model 'gpt-4o-realtime-preview' is denied by rule 1."
    err = refusal(p, req("claude-3"), ALICE)
    assert "model 'claude-3' is not in the allow list of rule 1" in err.message
    assert "GPT-4O" not in err.message and not allowed(p, req("GPT-4O"), ALICE)  # case-sensitive
    assert not allowed(make({"allow_models": []}), req("any"), ALICE)  # an empty allow list allows nothing


def test_match_fields_combine_with_and_values_with_or() -> None:
    p = make({"name": "interns", "match": {"teams": ["interns", "temps"]}, "allow_models": ["small"]},
             {"match": {"users": ["alice"], "tags": ["beta"]}, "deny_models": ["big"]},
             {"match": {"keys": ["key-ops"]}, "deny_models": ["ops-forbidden"]})
    err = refusal(p, req("big"), BOB)
    assert err.message.endswith("is not in the allow list of rule 1 (interns).")
    assert allowed(p, req("small"), BOB)
    assert not allowed(p, req("big"), ALICE)  # user alice AND tag beta
    no_tag = Principal(kind="key", key_id="k2", user_id="alice", team_id="research")
    assert allowed(p, req("big"), no_tag)  # alice without the tag: rule 2 does not apply
    assert not allowed(p, req("ops-forbidden"), OPS)
    assert allowed(p, req("ops-forbidden"), ALICE)
    assert allowed(p, req("big"), None)  # anonymous: no key, user, team or tag rule applies


def test_every_matching_rule_applies_so_rules_only_narrow() -> None:
    p = make({"allow_models": ["gpt-4o", "gpt-4o-mini", "local/*"]},
             {"match": {"teams": ["interns"]}, "allow_models": ["gpt-4o-mini", "local/*"]},
             {"match": {"tags": ["batch"]}, "allow_models": ["local/*"]})
    assert allowed(p, req("gpt-4o"), ALICE)
    assert not allowed(p, req("gpt-4o"), BOB)
    assert allowed(p, req("gpt-4o-mini"), BOB)
    # the traffic tag (it may come from the client) can only add restrictions
    err = refusal(p, req("gpt-4o-mini"), BOB, tag="batch")
    assert "rule 3" in err.message
    assert allowed(p, req("local/phi"), BOB, tag="batch")
    assert allowed(p, req("gpt-4o"), ALICE, tag="other")


def test_unless_exempts_by_the_keys_own_tags_only() -> None:
    p = make({"unless": {"tags": ["trusted"]}, "deny_models": ["gpt-4o"]},
             {"unless": {"keys": ["key-ops"]}, "deny_tools": ["shell"]})
    assert allowed(p, req("gpt-4o"), OPS)  # a key tagged trusted
    assert not allowed(p, req("gpt-4o"), ALICE)
    assert not allowed(p, req("gpt-4o"), ALICE, tag="trusted")  # a traffic tag does not exempt
    assert allowed(p, req("m", tools=["shell"]), OPS)
    assert not allowed(p, req("m", tools=["shell"]), ALICE)


def test_tools_by_name_glob_and_forced_choice() -> None:
    p = make({"deny_tools": ["shell_*", "delete_*"]},
             {"match": {"teams": ["interns"]}, "allow_tools": ["get_*", "search"]})
    assert allowed(p, req(tools=["get_weather", "search"]), BOB)
    err = refusal(p, req(tools=["get_weather", "shell_exec"]), ALICE)
    assert err.param == "tools" and err.message == "Access denied: tool 'shell_exec' is denied by rule 1."
    assert "tool 'send_mail' is not in the allow list of rule 2" in refusal(p, req(tools=["send_mail"]), BOB).message
    assert allowed(p, req(tools=["send_mail"]), ALICE)
    forced = {"type": "function", "function": {"name": "delete_user"}}
    assert not allowed(p, req(tools=[], tool_choice=forced), ALICE)
    assert not allowed(p, req(tool_choice={"name": "shell_run"}), ALICE)
    assert allowed(p, req(tools=["x"], tool_choice="auto"), ALICE)


def test_the_smallest_context_limit_applies() -> None:
    p = make({"max_context_tokens": 1000}, {"match": {"teams": ["interns"]}, "max_context_tokens": 100})
    small, large = "x" * 300, "x" * 2000  # about 75 and 500 tokens
    assert allowed(p, req(text=small), BOB)
    err = refusal(p, req(text=large), BOB)
    estimate = REPLY_PRIMING_TOKENS + MESSAGE_OVERHEAD_TOKENS + 500
    assert err.param == "messages"
    assert err.message == (f"Access denied: the prompt is about {estimate} tokens (estimated), over the limit of "
                           "100 set by rule 2.")
    assert allowed(p, req(text=large), ALICE)
    assert not allowed(p, req(text="x" * 4000), ALICE)


def test_the_context_estimate() -> None:
    request = ChatRequest(model="m", messages=[
        Message(role="system", content="s" * 8),
        Message(role="user", content=[TextPart("t" * 9), ImagePart(url="data:image/png;base64," + "A" * 100_000)]),
        Message(role="assistant", tool_calls=[ToolCall(id="c", name="f", arguments='{"a":1}')]),
        Message(role="tool", content="r" * 4, tool_call_id="c", name="f"),
    ], tools=[Tool(name="f", description="d", parameters={"type": "object"})])
    tool_def = -(-len('fd{"type":"object"}') // 4)
    assert estimate_context_tokens(request) == (REPLY_PRIMING_TOKENS + 4 * MESSAGE_OVERHEAD_TOKENS
                                                + 2 + 3 + IMAGE_TOKENS + 2 + 1 + 1 + tool_def)


def test_verdicts_are_cached_per_caller_and_the_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from clawdbot.plugins import access

    monkeypatch.setattr(access, "CACHE_ENTRIES", 8)
    p = make({"allow_models": ["ok-*"]}, {"match": {"teams": ["interns"]}, "deny_models": ["ok-bad"]})
    for i in range(50):  # model names come from clients: any number of them
        assert allowed(p, req(f"ok-{i}"), BOB)
        assert not allowed(p, req(f"no-{i}"), BOB)
    for i in range(50):
        who = Principal(kind="key", key_id=f"k{i}", team_id="interns")
        assert not allowed(p, req("ok-bad"), who)
    policies = p._policies
    assert len(policies) <= 8 and all(len(x.models) <= 8 and len(x.tools) <= 8 for x in policies.values())
    # a cached verdict is the same verdict
    assert not allowed(p, req("ok-bad"), BOB) and allowed(p, req("ok-1"), BOB)
    assert allowed(p, req("ok-bad"), ALICE)  # not an intern

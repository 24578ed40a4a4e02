"""The `access` plugin: which models and tools a key, user, team or tag may use, and how large a
prompt it may send. Settings and semantics: docs/plugin-access.md.

    - name: access
      with:
        rules:
          - deny_tools: ["shell_*"]                   # everyone
          - match: {teams: [interns]}
            allow_models: ["gpt-4o-mini", "local/*"]
            max_context_tokens: 8000
          - match: {tags: [batch]}
            unless: {keys: [key-ops]}
            deny_models: ["gpt-4o"]

Every rule whose `match` fits the caller (and whose `unless` does not) applies, and all of them
must agree: a model or tool denied by any of them is refused; one that some rule lists
`allow_*` for must be in each such list; the smallest `max_context_tokens` is the limit. So a rule
can only narrow access, never widen it: matching more rules (a client can add a traffic tag)
never gives more. Refusals are 403 `access_denied`, naming what was refused and the rule."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, ClassVar

import msgspec

from clawdbot.core.context import RequestContext
from clawdbot.core.errors import Forbidden
from clawdbot.core.types import ChatRequest, ImagePart, Message
from clawdbot.plugins.base import Answer, Host, Needs, Plugin, PluginConfigError, doc
from clawdbot.tenancy.costs import MESSAGE_OVERHEAD_TOKENS, REPLY_PRIMING_TOKENS, estimate_text_tokens

# What an image part counts for in the prompt estimate: OpenAI's price of a 1024x1024 image at
# "high" detail (85 + 4 tiles x 170). Counting the data URL's length instead would make any
# vision request exceed any limit.
IMAGE_TOKENS = 765


class AccessDenied(Forbidden):
    code = "access_denied"


class Match(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Who a rule is for: each list that is set must contain the caller's value (key id, team id,
    user id, or one of its tags); the lists combine with AND. Every list empty: everyone."""

    keys: Annotated[list[str], doc("Virtual key ids.")] = []
    teams: Annotated[list[str], doc("Team ids.")] = []
    users: Annotated[list[str], doc("User ids.")] = []
    tags: Annotated[list[str], doc("Tags of the key (or the request's tags).")] = []


class AccessRule(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One rule: who it is for, and what they may not use."""

    name: Annotated[str | None, doc("Its name in the refusal and the notes.")] = None
    match: Annotated[Match, doc("Who the rule is for (every list empty: everyone).")] = msgspec.field(
        default_factory=Match)
    # callers the rule leaves out (tags: the key's tags only)
    unless: Annotated[Match | None, doc("Callers the rule leaves out (tags: the key's tags only).")] = None
    allow_models: Annotated[list[str] | None, doc(
        "Glob patterns of the only models they may use (not set: no allow list).")] = None
    deny_models: Annotated[list[str], doc("Glob patterns of models they may not use.")] = []
    allow_tools: Annotated[list[str] | None, doc(
        "Function names or glob patterns of the only tools they may send (not set: any).")] = None
    deny_tools: Annotated[list[str], doc("Function names or glob patterns of tools they may not send.")] = []
    max_context_tokens: Annotated[Annotated[int, msgspec.Meta(ge=1)] | None, doc(
        "The longest prompt they may send, in estimated tokens.")] = None


class AccessSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    rules: Annotated[list[AccessRule], doc("The rules, each checked on every request.")]


def _globs(patterns: Sequence[str] | None) -> re.Pattern[str] | None:
    """One pattern matching any of the globs (fnmatch syntax, case-sensitive), or None."""
    if patterns is None:
        return None
    if not patterns:
        return re.compile(r"(?!)")  # an empty allow list allows nothing
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


class _Who:
    """A compiled Match: None for a field that is not set."""

    __slots__ = ("keys", "tags", "teams", "users")

    def __init__(self, m: Match) -> None:
        self.keys = frozenset(m.keys) or None
        self.teams = frozenset(m.teams) or None
        self.users = frozenset(m.users) or None
        self.tags = frozenset(m.tags) or None

    def fits(self, identity: Any, tags: Iterable[str]) -> bool:
        if self.keys is not None and getattr(identity, "key_id", None) not in self.keys:
            return False
        if self.teams is not None and getattr(identity, "team_id", None) not in self.teams:
            return False
        if self.users is not None and getattr(identity, "user_id", None) not in self.users:
            return False
        return self.tags is None or not self.tags.isdisjoint(tags)


class _Rule:
    __slots__ = ("allow_models", "allow_tools", "deny_models", "deny_tools", "label", "max_context",
                 "unless", "who")

    def __init__(self, number: int, rule: AccessRule) -> None:
        self.label = f"rule {number}" + (f" ({rule.name})" if rule.name else "")
        self.who = _Who(rule.match)
        self.unless = _Who(rule.unless) if rule.unless is not None else None
        self.allow_models = _globs(rule.allow_models)
        self.deny_models = _globs(rule.deny_models or None)
        self.allow_tools = _globs(rule.allow_tools)
        self.deny_tools = _globs(rule.deny_tools or None)
        self.max_context = rule.max_context_tokens

    def applies(self, identity: Any, tags: frozenset[str], key_tags: tuple[str, ...]) -> bool:
        if not self.who.fits(identity, tags):
            return False
        # `unless` trusts only the key's own tags: a traffic tag may come from the client, and must
        # not lift a restriction
        return self.unless is None or not self.unless.fits(identity, key_tags)


CACHE_ENTRIES = 4096  # callers (and, per caller, model and tool names) remembered; cleared when full


class _Policy:
    """The rules that apply to one caller, with the verdicts already reached (model and tool names
    come from the client: each cache is bounded)."""

    __slots__ = ("limit", "models", "rules", "tools")

    def __init__(self, rules: list[_Rule]) -> None:
        self.rules = rules
        limits = [(r.max_context, r.label) for r in rules if r.max_context is not None]
        self.limit: tuple[int, str] | None = min(limits) if limits else None
        self.models: dict[str, str | None] = {}
        self.tools: dict[str, str | None] = {}

    def model(self, name: str) -> str | None:
        """Why the model is refused, or None."""
        try:
            return self.models[name]
        except KeyError:
            pass
        why = _verdict(name, [(r.deny_models, r.allow_models, r.label) for r in self.rules])
        if len(self.models) >= CACHE_ENTRIES:
            self.models.clear()
        self.models[name] = why
        return why

    def tool(self, name: str) -> str | None:
        try:
            return self.tools[name]
        except KeyError:
            pass
        why = _verdict(name, [(r.deny_tools, r.allow_tools, r.label) for r in self.rules])
        if len(self.tools) >= CACHE_ENTRIES:
            self.tools.clear()
        self.tools[name] = why
        return why


def _verdict(name: str, lists: Sequence[tuple[re.Pattern[str] | None, re.Pattern[str] | None, str]]) -> str | None:
    """Why `name` is refused by (deny, allow, label) lists: deny lists first (deny wins), or None."""
    for deny, _, label in lists:
        if deny is not None and deny.match(name):
            return f"denied by {label}"
    for _, allow, label in lists:
        if allow is not None and not allow.match(name):
            return f"not in the allow list of {label}"
    return None


def tool_names(request: ChatRequest) -> list[str]:
    """The functions the request offers the model, and the one it forces with tool_choice."""
    names = [t.name for t in request.tools or ()]
    choice = request.tool_choice
    if isinstance(choice, dict):
        fn = choice.get("function")
        forced = fn.get("name") if isinstance(fn, dict) else choice.get("name")
        if isinstance(forced, str) and forced not in names:
            names.append(forced)
    return names


def estimate_context_tokens(request: ChatRequest) -> int:
    """The prompt's estimated tokens: the gateway's estimate (tenancy/costs.py: text characters / 4,
    rounded up, plus per-message overhead and the reply priming) over the canonical messages, with
    an image part as IMAGE_TOKENS, tool calls by their name and arguments, and the tool definitions
    offered (name, description, JSON schema) counted too: they take context as well."""
    total = REPLY_PRIMING_TOKENS
    for m in request.messages:
        total += MESSAGE_OVERHEAD_TOKENS + _message_tokens(m)
    for tool in request.tools or ():
        schema = msgspec.json.encode(tool.parameters).decode() if tool.parameters is not None else ""
        total += estimate_text_tokens(tool.name + (tool.description or "") + schema)
    return total


def _message_tokens(m: Message) -> int:
    n = 0
    content = m.content
    if isinstance(content, str):
        n += estimate_text_tokens(content)
    elif content:
        for part in content:
            n += IMAGE_TOKENS if isinstance(part, ImagePart) else estimate_text_tokens(part.text)
    for call in m.tool_calls or ():
        n += estimate_text_tokens(call.name + call.arguments)
    if m.name:
        n += estimate_text_tokens(m.name)
    return n


class AccessPlugin(Plugin):
    name = "access"
    needs: ClassVar[Needs] = "request"
    guard = True
    Settings = AccessSettings

    def __init__(self, settings: AccessSettings, host: Host) -> None:
        super().__init__(settings, host)
        if not settings.rules:
            raise PluginConfigError("access: `rules` is empty")
        self.rules = [_Rule(i, r) for i, r in enumerate(settings.rules, 1)]
        # (key, user, team, key tags, traffic tag) -> the rules that apply and their verdicts
        self._policies: dict[tuple[Any, ...], _Policy] = {}

    def applicable(self, ctx: RequestContext) -> list[_Rule]:
        """The rules that apply to this request's caller."""
        return self._policy(ctx).rules

    def _policy(self, ctx: RequestContext) -> _Policy:
        identity = ctx.identity
        key_tags: tuple[str, ...] = tuple(getattr(identity, "tags", ()) or ())
        who = (getattr(identity, "key_id", None), getattr(identity, "user_id", None),
               getattr(identity, "team_id", None), key_tags, ctx.tag)
        policy = self._policies.get(who)
        if policy is None:
            tags = frozenset(key_tags) | {ctx.tag} if ctx.tag else frozenset(key_tags)
            policy = _Policy([r for r in self.rules if r.applies(identity, tags, key_tags)])
            if len(self._policies) >= CACHE_ENTRIES:
                self._policies.clear()
            self._policies[who] = policy
        return policy

    def _refuse(self, ctx: RequestContext, what: str, param: str) -> AccessDenied:
        self.note(ctx, f"refused {what}")
        return AccessDenied(f"Access denied: {what}.", param=param)

    async def pre(self, request: ChatRequest, ctx: RequestContext) -> ChatRequest | Answer | None:
        policy = self._policy(ctx)
        if not policy.rules:
            return None
        why = policy.model(request.model)
        if why is not None:
            raise self._refuse(ctx, f"model {request.model!r} is {why}", "model")
        if request.tools or request.tool_choice:
            for tool in tool_names(request):
                why = policy.tool(tool)
                if why is not None:
                    raise self._refuse(ctx, f"tool {tool!r} is {why}", "tools")
        if policy.limit is not None:
            limit, label = policy.limit
            estimate = estimate_context_tokens(request)
            if estimate > limit:
                raise self._refuse(ctx, f"the prompt is about {estimate} tokens (estimated), over the limit of "
                                        f"{limit} set by {label}", "messages")
        return None

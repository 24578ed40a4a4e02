"""A chat as the plain turns a prompt template takes ({"role", "content"} with roles system, user
and assistant): for the upstreams that are given one prompt string (llama.cpp in-process, gRPC
inference servers). Developer messages count as system, tool results and anything else as user;
consecutive turns of one role are merged, since strict templates (Gemma's among them) insist that
user and assistant alternate. What such a prompt cannot carry is refused, by name."""

from __future__ import annotations

from clawdbot.core.errors import BadRequest
from clawdbot.core.types import UNCARRIED, ChatRequest, Message, TextPart

PROMPT_STRING_TYPES = frozenset({"local", "grpc"})  # the service types whose upstream takes one prompt string
_ROLES = {"system": "system", "developer": "system", "assistant": "assistant"}  # others speak as user


def text_turns(messages: list[Message]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for msg in messages:
        role = _ROLES.get(msg.role, "user")
        if out and out[-1]["role"] == role:
            out[-1]["content"] += "\n\n" + msg.text()
        else:
            out.append({"role": role, "content": msg.text()})
    return out


def refuse_unsupported(req: ChatRequest, who: str, honours: frozenset[str] = frozenset()) -> None:
    """A 400 naming the first thing in `req` that an upstream given one prompt string cannot honour:
    tools (unless `tool_choice` is "none": then they need not be offered), image or other non-text
    parts, log probabilities, and JSON mode or `logit_bias` unless `honours` names them. Said before
    the request costs anything (a model load, a queue place), never silently dropped."""
    if req.tools and req.tool_choice != "none":
        raise BadRequest(f"{who} take text only: 'tools' cannot be offered to them.", param="tools",
                         code="unsupported_parameter")
    for msg in req.messages:
        if isinstance(msg.content, list) and any(not isinstance(p, TextPart) for p in msg.content):
            raise BadRequest(f"{who} take text only: images and other parts cannot be sent to them.",
                             param="messages", code="unsupported_parameter")
    extra = req.extra or {}
    for name in UNCARRIED:
        if extra.get(name) and name not in honours:
            raise BadRequest(f"{who} answer text only: '{name}' cannot be honoured.", param=name,
                             code="unsupported_parameter")
    rf = req.response_format
    if rf and rf.get("type") not in (None, "text") and "response_format" not in honours:
        raise BadRequest(f"{who} have no JSON mode: 'response_format' cannot be honoured.",
                         param="response_format", code="unsupported_parameter")

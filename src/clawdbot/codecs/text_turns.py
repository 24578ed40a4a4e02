"""A chat as the plain turns a prompt template takes ({"role", "content"} with roles system, user
and assistant): for the upstreams that are given one prompt string (llama.cpp in-process, gRPC
inference servers). Developer messages count as system, tool results and anything else as user;
consecutive turns of one role are merged, since strict templates (Gemma's among them) insist that
user and assistant alternate."""

from __future__ import annotations

from clawdbot.core.types import Message

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

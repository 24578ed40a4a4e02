"""`clawdbot replay <request-id>`: send a logged request again, to the same model or another one
(`--model`), and print the logged answer and the new one side by side. The request must have been
logged with its bodies (`log_bodies` on for its key or model): what is sent is the request as the
gateway sent it on, after the plugins' masking, as an OpenAI chat request, not streamed."""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import textwrap
import time
from typing import Any
from urllib.parse import quote

from clawdbot.cli.admin_http import Client, CliError, add_options, run

CHAT_PATH = "/v1/chat/completions"


def register(sub: Any) -> None:
    p = sub.add_parser("replay", help="send a logged request again and compare the answers",
                       description="Send a request from the request log again (it must have been logged with "
                                   "its bodies: log_bodies) to the same or another model, and print both "
                                   "answers side by side (needs CLAWDBOT_MASTER_KEY).")
    p.add_argument("request_id", help="the request's id (X-Request-ID; `clawdbot tail` shows it)")
    p.add_argument("--model", help="send it to this model instead of the one it asked for")
    p.add_argument("--width", type=int, help="columns to print in (default: the terminal's)")
    add_options(p)
    p.set_defaults(func=lambda a: run("replay", a), action=replay)


def resend(client: Client, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], float]:
    """POST the chat request through the gateway: its answer, its headers, the time it took (ms)."""
    started = time.perf_counter()
    out, headers = client.exchange("POST", CHAT_PATH, body, timeout=600, failed="the replayed request failed")
    return out, headers, (time.perf_counter() - started) * 1000


def request_body(rec: dict[str, Any], model: str | None) -> dict[str, Any]:
    body = rec.get("request_body")
    if body is None:
        raise CliError(f"request {rec['id']} was logged without its bodies (log_bodies was off for its key and "
                       f"model): there is nothing to send again")
    if not isinstance(body, dict) or rec.get("body_truncated"):
        raise CliError(f"request {rec['id']}'s body was cut at request_log.max_body_bytes: it cannot be sent again")
    body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    body["model"] = model or body.get("model") or rec.get("model")
    return body


def answer_of(out: dict[str, Any]) -> str:
    try:
        msg = out["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        return json.dumps(out)
    text = msg.get("content") or ""
    if msg.get("tool_calls"):
        text += "".join(f"\n[tool call {c['function']['name']}({c['function']['arguments']})]"
                        for c in msg["tool_calls"])
    return text


def columns(left: list[str], right: list[str], width: int) -> str:
    col = max((width - 3) // 2, 20)

    def wrap(lines: list[str]) -> list[str]:
        out: list[str] = []
        for text in lines:
            for para in text.split("\n"):
                out += textwrap.wrap(para, col, replace_whitespace=False) or [""]
        return out

    a, b = wrap(left), wrap(right)
    return "\n".join(f"{x:<{col}} | {y}".rstrip() for x, y in itertools.zip_longest(a, b, fillvalue=""))


def _tokens(p: Any, c: Any) -> str:
    return f"{p if p is not None else '?'}+{c if c is not None else '?'} tokens"


def replay(client: Client, args: argparse.Namespace) -> str:
    rec = client.call("GET", f"/admin/api/requests/{quote(args.request_id, safe='')}")
    body = request_body(rec, args.model)
    out, headers, ms = resend(client, body)
    usage = out.get("usage") or {}
    original = {"model": rec.get("model"), "service": rec.get("service"), "latency_ms": rec.get("latency_ms"),
                "prompt_tokens": rec.get("prompt_tokens"), "completion_tokens": rec.get("completion_tokens"),
                "answer": rec.get("answer")}
    again = {"model": body["model"], "service": headers.get("x-clawdbot-service"),
             "request_id": headers.get("x-request-id"), "latency_ms": round(ms, 1),
             "prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": usage.get("completion_tokens"),
             "answer": answer_of(out)}
    if args.json:
        return json.dumps({"request_id": rec["id"], "original": original, "replay": again}, indent=2)
    width = args.width or shutil.get_terminal_size((120, 24)).columns
    left = [f"original: {original['model']} via {original['service'] or '-'}",
            f"{original['latency_ms']:.0f} ms, {_tokens(original['prompt_tokens'], original['completion_tokens'])}",
            "", original["answer"] if original["answer"] is not None else "(the answer was not kept)"]
    right = [f"replay: {again['model']} via {again['service'] or '-'}",
             f"{again['latency_ms']:.0f} ms, {_tokens(again['prompt_tokens'], again['completion_tokens'])}",
             "", again["answer"]]
    return columns(left, right, width)

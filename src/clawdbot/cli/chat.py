"""`clawdbot chat [--model M] [--url U]`: a chat in the terminal, streamed, against a running gateway
or, when none answers, one started in this process on a loopback port of its own (the config as
`serve` reads it).

Input: a line is a message; a line ending in `\\` goes on on the next line; a line `\"\"\"` opens a
block that the next `\"\"\"` line closes. Commands, as on the chat page: `/model [NAME]` (list, or
switch), `/new` (a new conversation), `/status` (where, which model, the conversation's size and
tokens, the last answer's timings), `/help`, `/quit` (or Ctrl-D). Ctrl-C stops an answer (the
gateway sees the client go and stops the upstream); at the prompt it clears the line.

Every answer ends with a line of its trace: model, service, time to first token, total, tokens."""

from __future__ import annotations

import argparse
import difflib
import http.client
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from clawdbot.cli.output import Output
from clawdbot.cli.serve import DEFAULT_FILE

DEFAULT_URL = "http://127.0.0.1:18789"
HELP = ("/model [NAME]  list the models, or switch to NAME\n/new           a new conversation\n"
        "/status        where, which model, this conversation, the last answer\n/help          this\n"
        "/quit          leave (Ctrl-D too)\n"
        'A line ending in \\ goes on on the next; """ opens and closes a block of lines.')
MAX_ANSWER_BYTES = 16 << 20  # one answer's events; past it the answer is cut


def register(sub: Any) -> None:
    p = sub.add_parser("chat", help="chat with a model in the terminal",
                       description="Chat in the terminal, streamed, with a running gateway or one in this process.")
    p.add_argument("--url", help=f"a running gateway (default {DEFAULT_URL}, else one in this process)")
    p.add_argument("--model", help="the model (default: the first the gateway lists)")
    p.add_argument("--key", help="API key (env CLAWDBOT_API_KEY, else CLAWDBOT_MASTER_KEY)")
    p.add_argument("--config", help=f"for the gateway in this process (default ./{DEFAULT_FILE} or detection)")
    p.add_argument("--system", help="a system message at the start of each conversation")
    p.set_defaults(func=run, host=None, port=None, default_port=18789, log_format=None, log_level=None,
                   metrics_port=None)


class Gateway:
    """HTTP to one gateway: keep-alive, a fresh connection after an aborted stream."""

    def __init__(self, url: str, key: str | None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url.rstrip("/")
        self.host, self.port, self.tls = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), \
            parts.scheme == "https"
        self.base = parts.path.rstrip("/")
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._conn: http.client.HTTPConnection | None = None

    def conn(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self.tls else http.client.HTTPConnection
            self._conn = cls(self.host, self.port, timeout=600)
        return self._conn

    def drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def get(self, path: str) -> tuple[int, Any]:
        conn = self.conn()
        try:
            conn.request("GET", self.base + path, headers=self.headers)
            resp = conn.getresponse()
            body = resp.read(MAX_ANSWER_BYTES)
        except (OSError, http.client.HTTPException):
            self.drop()
            raise
        try:
            return resp.status, json.loads(body)
        except ValueError:
            return resp.status, None

    def models(self) -> list[str]:
        status, body = self.get("/v1/models")
        if status != 200 or not isinstance(body, dict):
            raise ChatError(error_text(status, body))
        return [m["id"] for m in body.get("data", [])]

    def stream(self, model: str, messages: list[dict[str, str]], trace: dict[str, Any]) -> Iterator[str]:
        """The answer's content deltas; `trace` gets the timings, tokens and service."""
        body = json.dumps({"model": model, "messages": messages, "stream": True,
                           "stream_options": {"include_usage": True}})
        conn = self.conn()
        started = time.perf_counter()
        try:
            conn.request("POST", self.base + "/v1/chat/completions", body,
                         {**self.headers, "Content-Type": "application/json"})
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException):
            self.drop()
            raise
        trace["service"] = resp.getheader("x-clawdbot-service")
        trace["request_id"] = resp.getheader("x-request-id")
        if resp.status != 200:
            data = resp.read(MAX_ANSWER_BYTES)
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = None
            raise ChatError(error_text(resp.status, parsed))
        seen = 0
        for line in resp:
            seen += len(line)
            if seen > MAX_ANSWER_BYTES:
                self.drop()
                raise ChatError("the answer passed 16 MiB: cut")
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            event = json.loads(line[6:])
            if event.get("error"):
                raise ChatError(str(event["error"].get("message") or event["error"]))
            if event.get("usage"):
                trace["usage"] = event["usage"]
            trace["model"] = event.get("model") or trace.get("model")
            for choice in event.get("choices") or ():
                text = (choice.get("delta") or {}).get("content")
                if text:
                    trace.setdefault("ttft_ms", (time.perf_counter() - started) * 1000.0)
                    yield text
        trace["total_ms"] = (time.perf_counter() - started) * 1000.0


class ChatError(Exception):
    pass


def error_text(status: int, body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return f"{status}: {body['error'].get('message')}"
    return f"the gateway answered {status}"


def in_process(args: argparse.Namespace) -> tuple[str, str | None, Any]:
    """A gateway in this process on a free loopback port: (url, its master key, its server)."""
    import uvicorn

    from clawdbot.api.protocol import bounded_protocol
    from clawdbot.cli.serve import build_app, resolve_config
    from clawdbot.observability.access import AccessLog

    env = dict(os.environ)
    config, _ = resolve_config(args, env)
    app = build_app(config, AccessLog("text", lambda line: None), "serve", env)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", log_config=None,
                                           access_log=False, http=bounded_protocol(config.server)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="gateway")
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ChatError("the gateway in this process did not start")
        time.sleep(0.02)  # polling for readiness
    return f"http://127.0.0.1:{port}", config.server.master_key, server


def answering(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=1.0):
            return True
    except OSError:
        return False


class Repl:
    def __init__(self, gw: Gateway, model: str, out: Output, system: str | None) -> None:
        self.gw, self.model, self.out, self.system = gw, model, out, system
        self.messages: list[dict[str, str]] = []
        self.tokens = 0
        self.last: dict[str, Any] = {}

    def read(self) -> str | None:
        """One message (or command); None at the end of input."""
        lines: list[str] = []
        block = False
        while True:
            try:
                line = input("... " if lines else "you> ")
            except EOFError:
                return None
            if line.strip() == '"""':
                if block:
                    return "\n".join(lines)
                block = True
                continue
            if block:
                lines.append(line)
            elif line.endswith("\\"):
                lines.append(line[:-1])
            else:
                lines.append(line)
                return "\n".join(lines)

    def command(self, text: str) -> bool:
        """Runs a /command; False for /quit."""
        name, _, arg = text[1:].partition(" ")
        arg = arg.strip()
        if name in ("quit", "exit"):
            return False
        if name == "help":
            self.out.line(HELP)
        elif name == "new":
            self.messages, self.last = [], {}
            self.out.line("a new conversation")
        elif name == "model":
            models = self.gw.models()
            if not arg:
                for m in models:
                    self.out.line(("* " if m == self.model else "  ") + m)
            elif arg in models:
                self.model = arg
                self.out.line(f"model: {arg}")
            else:
                close = difflib.get_close_matches(arg, models, n=3)
                self.out.line(f"no model {arg!r}" + (f"; did you mean {', '.join(close)}?" if close else
                                                     "; /model lists them"))
        elif name == "status":
            turns = sum(m["role"] == "user" for m in self.messages)
            self.out.line(f"gateway: {self.gw.url}\nmodel: {self.model}\nconversation: {turns} turns, "
                          f"{len(self.messages)} messages, {self.tokens} tokens")
            if self.last:
                self.out.line("last answer: " + trace_line(self.last))
        else:
            self.out.line(f"unknown command /{name}: /help lists them")
        return True

    def ask(self, text: str) -> None:
        head = [{"role": "system", "content": self.system}] if self.system else []
        self.messages.append({"role": "user", "content": text})
        trace: dict[str, Any] = {"model": self.model}
        parts: list[str] = []
        try:
            for delta in self.gw.stream(self.model, head + self.messages, trace):
                parts.append(delta)
                self.out.stream.write(delta)
                self.out.stream.flush()
        except KeyboardInterrupt:
            self.gw.drop()  # the gateway sees the client go and stops the upstream
            parts.append("")
            self.out.line("\n(stopped)", style="yellow")
        except (ChatError, OSError, http.client.HTTPException, ValueError) as exc:
            self.messages.pop()
            self.out.line(f"\nerror: {exc}", style="red")
            return
        self.out.line()
        self.messages.append({"role": "assistant", "content": "".join(parts)})
        usage = trace.get("usage") or {}
        self.tokens += int(usage.get("total_tokens") or 0)
        self.last = trace
        self.out.line(trace_line(trace), style="dim")

    def loop(self) -> None:
        while True:
            try:
                text = self.read()
            except KeyboardInterrupt:
                self.out.line()
                continue
            if text is None:
                self.out.line()
                return
            if not text.strip():
                continue
            try:
                if text.startswith("/") and not self.command(text.strip()):
                    return
            except (ChatError, OSError, http.client.HTTPException) as exc:
                self.out.line(f"error: {exc}", style="red")
                continue
            if not text.startswith("/"):
                self.ask(text)


def trace_line(t: dict[str, Any]) -> str:
    usage = t.get("usage") or {}
    parts = [t.get("model") or "?", t.get("service") or "", f"TTFT {t['ttft_ms']:.0f} ms" if "ttft_ms" in t else "",
             f"total {t['total_ms'] / 1000:.2f} s" if "total_ms" in t else "",
             f"{usage.get('prompt_tokens', 0)}+{usage.get('completion_tokens', 0)} tokens" if usage else ""]
    return "[" + " · ".join(p for p in parts if p) + "]"


def run(args: argparse.Namespace) -> int:
    import readline  # noqa: F401  (line editing and history for input())

    out = Output()
    env = os.environ
    key = args.key or env.get("CLAWDBOT_API_KEY") or env.get("CLAWDBOT_MASTER_KEY")
    server = None
    url = args.url or DEFAULT_URL
    try:
        if args.url is None and not answering(url):
            url, master, server = in_process(args)
            key = key or master
            out.line(f"no gateway at {DEFAULT_URL}: running one in this process", style="dim")
        gw = Gateway(url, key)
        models = gw.models()
        model = args.model or (models[0] if models else None)
        if model is None:
            raise ChatError("the gateway lists no model: configure a service (clawdbot init)")
    except (ChatError, ValueError, OSError, http.client.HTTPException) as exc:
        print(f"clawdbot: {exc}", file=sys.stderr)
        return 1
    out.line(f"{gw.url} · model {model} · /help for commands, Ctrl-D to leave", style="dim")
    try:
        Repl(gw, model, out, args.system).loop()
    finally:
        gw.drop()
        if server is not None:
            server.should_exit = True
    return 0

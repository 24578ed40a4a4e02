"""A stand-in Ollama server for the test suite: a real aiohttp server on a real socket, speaking
Ollama's native API the way Ollama writes it (Go encoding/json output: compact, struct key order,
omitempty fields left out, map keys sorted, <>& escaped; created_at in RFC3339 with nanoseconds;
application/x-ndjson streams, application/json; charset=utf-8 otherwise).

Replies are deterministic and built from the request: the answer echoes the last user message, a
tool is called when tools are offered and the prompt names one (`call get_weather city=Tokyo`),
thinking is produced when `think` is set, and `num_predict` truncates with done_reason "length".

Fault modes, chosen per request by markers in the last user message:
  fault:500 (any status)  answer that status with Ollama's {"error": ...} body
  fault:midstream         send two lines, then drop the connection
  fault:malformed         send a line that is not JSON in the middle of the stream
  fault:errorline         send {"error": ...} as a stream line (as Ollama does when a runner dies)
  fault:nodone            end the stream cleanly but without a done:true line
  fault:hang              never answer (until the server stops)
  fault:slow=MS           wait MS milliseconds before every line
  replay:chat_stream      send a recorded capture from tests/fixtures/ollama/ verbatim

Model management, as `clawdbot models` uses it: POST /api/pull streams Ollama's progress lines
(`pulling manifest`, then per layer `pulling <12 hex>` with digest, total and a growing completed,
then `verifying sha256 digest`, `writing manifest`, `success`) and adds the model to /api/tags; a
name starting with `no-such` gets `pulling manifest` and then an `{"error": ...}` line, as Ollama
answers a name its library lacks. `pull_delay` (seconds) paces the lines. POST /api/show and
DELETE /api/delete answer for the models /api/tags lists.

Use it from a test with `with OllamaTestServer() as server: ... server.url ... server.last_request`,
or run it alone: `python -m tests.upstreams.ollama_server --port 11434`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ollama"
VERSION = "0.11.4"
JSON_TYPE = "application/json; charset=utf-8"
NDJSON_TYPE = "application/x-ndjson"

_FAULT = re.compile(r"fault:([a-z0-9]+)(?:=(\d+))?")
_REPLAY = re.compile(r"replay:([a-z_]+)")
_ARG = re.compile(r"(\w+)=(\"[^\"]*\"|\S+)")
_TOKEN = re.compile(r"\s*\S+")


# --- Go-compatible JSON ---------------------------------------------------------------------------


def go_json(value: Any) -> bytes:
    """json.Marshal's bytes: compact, <, >, & and U+2028/9 escaped (they only occur inside strings,
    so a byte replace is safe)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text.encode()


def sorted_map(value: Any) -> Any:
    # Go marshals a map[string]any (tool-call arguments) with its keys sorted.
    if isinstance(value, dict):
        return {k: sorted_map(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_map(v) for v in value]
    return value


def created_at(unix_ns: int | None = None) -> str:
    """time.Now().UTC() formatted as RFC3339Nano: nanoseconds with trailing zeros cut."""
    ns = time.time_ns() if unix_ns is None else unix_ns
    seconds, nanos = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return stamp + (f".{nanos:09d}".rstrip("0") if nanos else "") + "Z"


def shaped(template: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """`values` in the key order of a recorded capture; absent keys stay out (Go omitempty)."""
    out = {k: values[k] for k in template if k in values}
    out.update((k, v) for k, v in values.items() if k not in out)
    return out


# --- what a request asks for ---------------------------------------------------------------------


@dataclass
class Faults:
    status: int | None = None
    midstream: bool = False
    malformed: bool = False
    errorline: bool = False
    nodone: bool = False
    hang: bool = False
    slow_ms: int = 0
    replay: str | None = None

    @classmethod
    def parse(cls, prompt: str) -> Faults:
        faults = cls()
        for name, arg in _FAULT.findall(prompt):
            if name.isdigit():
                faults.status = int(name)
            elif name == "slow":
                faults.slow_ms = int(arg or 0)
            elif hasattr(faults, name):
                setattr(faults, name, True)
        replay = _REPLAY.search(prompt)
        faults.replay = replay.group(1) if replay else None
        return faults


@dataclass
class Reply:
    thinking: list[str] = field(default_factory=list)
    content: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    done_reason: str = "stop"
    prompt_eval_count: int = 0

    @property
    def eval_count(self) -> int:
        return len(self.thinking) + len(self.content) + len(self.tool_calls)


def plan_reply(body: dict[str, Any]) -> Reply:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    prompt = last_user_text(messages)
    reply = Reply(prompt_eval_count=sum(len(str(m.get("content") or "").split()) for m in messages))
    if body.get("think") not in (None, False):
        reply.thinking = _TOKEN.findall(f"The user wrote: {prompt}. I will echo it.")
    reply.tool_calls = tool_calls(body.get("tools") or [], prompt) if last.get("role") == "user" else []
    if reply.tool_calls:
        return reply
    text = answer_text(body, last, prompt)
    reply.content = _TOKEN.findall(text)
    limit = (body.get("options") or {}).get("num_predict")
    if isinstance(limit, int) and 0 < limit < len(reply.content):
        reply.content, reply.done_reason = reply.content[:limit], "length"
    return reply


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return str(m.get("content") or "")
    return ""


def answer_text(body: dict[str, Any], last: dict[str, Any], prompt: str) -> str:
    if last.get("role") == "tool":
        return f"The tool {last.get('tool_name', 'tool')} returned: {last.get('content', '')}"
    if body.get("format") is not None:
        return go_json({"echo": prompt}).decode()
    images = len(last.get("images") or [])
    return f"echo: {prompt}" + (f" [{images} image(s)]" if images else "")


def tool_calls(tools: list[dict[str, Any]], prompt: str) -> list[dict[str, Any]]:
    pairs = {k: v.strip('"') for k, v in _ARG.findall(prompt)}
    calls: list[dict[str, Any]] = []
    for tool in tools:
        fn = tool.get("function") or {}
        if fn.get("name") and re.search(rf"\b{re.escape(fn['name'])}\b", prompt):
            args = tool_arguments(fn.get("parameters") or {}, pairs)
            function: dict[str, Any] = {"name": fn["name"], "arguments": sorted_map(args)}
            if calls:  # ToolCallFunction.Index is `json:"index,omitempty"`: absent for the first call
                function = {"index": len(calls), **function}
            calls.append({"function": function})
    return calls


def tool_arguments(schema: dict[str, Any], pairs: dict[str, str]) -> dict[str, Any]:
    props = schema.get("properties") or {}
    if not props:
        return dict(pairs)
    convert = {"integer": int, "number": float, "boolean": lambda v: v.lower() == "true"}
    out: dict[str, Any] = {}
    for key, prop in props.items():
        if key in pairs:
            out[key] = convert.get(prop.get("type"), str)(pairs[key])  # type: ignore[operator]
    return out


# --- the server ----------------------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    raw: bytes
    body: Any
    headers: dict[str, str]


class OllamaTestServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.requests: deque[Recorded] = deque(maxlen=64)  # bounded: a long test run must not grow
        self.fixtures = {p.name: p.read_bytes() for p in FIXTURES.iterdir() if p.is_file()}
        self._tags = json.loads(self.fixtures["tags.json"])["models"]
        self.models = [m["name"] for m in self._tags]
        self._tags_changed = False  # until a pull or delete, /api/tags is the recorded capture verbatim
        self.pull_delay = 0.0  # seconds before each /api/pull line
        self._chat_keys = json.loads(self.fixtures["chat.json"])
        self._line_keys = json.loads(self.fixtures["chat_stream.ndjson"].splitlines()[0])
        self._embed_keys = json.loads(self.fixtures["embed.json"])
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closing: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None

    # lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def last_request(self) -> Any:
        """The parsed JSON body of the last request that had one."""
        return next((r.body for r in reversed(self.requests) if r.body is not None), None)

    @property
    def last_headers(self) -> dict[str, str]:
        """The headers of the last request that had a body (as last_request): a health probe or a
        model discovery the gateway sends meanwhile has none."""
        return next((r.headers for r in reversed(self.requests) if r.body is not None), {})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.root)
        app.router.add_get("/api/version", self.version)
        app.router.add_get("/api/tags", self.tags)
        app.router.add_post("/api/chat", self.chat)
        app.router.add_post("/api/embed", self.embed)
        app.router.add_post("/api/pull", self.pull)
        app.router.add_post("/api/show", self.show)
        app.router.add_delete("/api/delete", self.delete)
        return app

    def start(self) -> str:
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="ollama-test-server", daemon=True)
        self._thread.start()
        started.wait(10)
        if failure:
            raise failure[0]
        return self.url

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._closing is not None:
            self._loop.call_soon_threadsafe(self._closing.set)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> OllamaTestServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        self._closing = asyncio.Event()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # handlers

    async def root(self, request: web.Request) -> web.Response:
        return web.Response(body=b"Ollama is running", headers={"Content-Type": "text/plain; charset=utf-8"})

    async def version(self, request: web.Request) -> web.Response:
        self._record(request, b"", None)
        return self._json(200, {"version": VERSION})

    async def tags(self, request: web.Request) -> web.Response:
        self._record(request, b"", None)
        if self._tags_changed:
            return self._json(200, {"models": self._tags})
        return web.Response(body=self.fixtures["tags.json"], headers={"Content-Type": JSON_TYPE})

    # model management: /api/pull, /api/show, /api/delete

    async def _named_body(self, request: web.Request) -> tuple[str, dict[str, Any], web.Response | None]:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self._record(request, raw, body)
        if not raw:
            return "", {}, self._error(400, "missing request body")
        if not isinstance(body, dict):
            return "", {}, self._error(400, "invalid character in request body: not a JSON object")
        name = str(body.get("model") or body.get("name") or "")
        if not _NAME.fullmatch(name):
            return name, body, self._error(400, f"name {name!r} is invalid".replace("'", '"'))
        return name, body, None

    async def pull(self, request: web.Request) -> web.StreamResponse:
        name, body, error = await self._named_body(request)
        if error is not None:
            return error
        lines = pull_lines(name)
        if body.get("stream", True) is False:
            failed = next((line for line in lines if "error" in line), None)
            if failed is None:
                self._installed(name)
            return self._json(500 if failed else 200, failed or {"status": "success"})
        resp = web.StreamResponse(status=200, headers={"Content-Type": NDJSON_TYPE})
        await resp.prepare(request)
        try:
            for line in lines:
                if self.pull_delay:
                    await asyncio.sleep(self.pull_delay)
                if line.get("status") == "success":
                    self._installed(name)
                await resp.write(go_json(line) + b"\n")
            await resp.write_eof()
        except ConnectionResetError:
            pass
        return resp

    async def _named_tag(self, request: web.Request) -> tuple[dict[str, Any] | None, web.Response | None]:
        """The pulled model a body names, or the error Ollama answers (a bad body, 404)."""
        name, _, error = await self._named_body(request)
        if error is not None:
            return None, error
        tag = self._tag(name)
        if tag is None:
            return None, self._error(404, f"model '{name}' not found")
        return tag, None

    async def show(self, request: web.Request) -> web.Response:
        tag, error = await self._named_tag(request)
        if tag is None:
            assert error is not None
            return error
        return self._json(200, show_document(tag))

    async def delete(self, request: web.Request) -> web.Response:
        tag, error = await self._named_tag(request)
        if tag is None:
            assert error is not None
            return error
        self._tags = [t for t in self._tags if t is not tag]
        self.models = [t["name"] for t in self._tags]
        self._tags_changed = True
        return web.Response(status=200)

    def _tag(self, name: str) -> dict[str, Any] | None:
        want = self._canonical(name)
        return next((t for t in self._tags if t["name"] == want), None)

    def _installed(self, name: str) -> None:
        name = self._canonical(name)
        if self._tag(name) is None:
            self._tags.insert(0, tag_entry(name))
            self.models = [t["name"] for t in self._tags]
            self._tags_changed = True

    async def embed(self, request: web.Request) -> web.Response:
        body, error = await self._body(request)
        if error is not None:
            return error
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return self._error(400, "invalid input type")
        dims = body.get("dimensions") or 8
        values = {
            "model": body["model"],
            "embeddings": [vector(t, dims) for t in texts],
            "total_duration": 14143917,
            "load_duration": 1019500,
            "prompt_eval_count": sum(len(t.split()) for t in texts),
        }
        return self._json(200, shaped(self._embed_keys, values))

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body, error = await self._body(request)
        if error is not None:
            return error
        fmt = body.get("format")
        if fmt is not None and fmt != "json" and not isinstance(fmt, dict):
            return self._error(400, 'invalid format: expected "json" or a valid JSON schema')
        faults = Faults.parse(last_user_text(body.get("messages") or []))
        if faults.status is not None:
            return self._error(faults.status, f"fault injected: status {faults.status}")
        if faults.hang:
            # Run alone (python -m), there is no stop event: wait until the server is killed.
            await (self._closing or asyncio.Event()).wait()
            return self._error(503, "server shutting down")
        stream = body.get("stream", True) is not False
        if faults.replay:
            return await self._replay(request, faults.replay, stream)
        reply = plan_reply(body)
        if not stream:
            if faults.malformed:  # a body cut off mid-object, as a crashed proxy in between sends
                cut = b'{"model":"x","message":{"role":'
                return web.Response(status=200, body=cut, content_type="application/json")
            return self._json(200, self._final(body["model"], reply, whole=True))
        return await self._stream(request, self._lines(body["model"], reply), faults)

    # building replies

    def _lines(self, model: str, reply: Reply) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = [
            {"role": "assistant", "content": "", "thinking": t} for t in reply.thinking
        ]
        messages += [{"role": "assistant", "content": c} for c in reply.content]
        messages += [{"role": "assistant", "content": "", "tool_calls": [c]} for c in reply.tool_calls]
        lines = [
            shaped(self._line_keys, {"model": model, "created_at": created_at(), "message": m, "done": False})
            for m in messages
        ]
        return [*lines, self._final(model, reply, whole=False)]

    def _final(self, model: str, reply: Reply, *, whole: bool) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.content) if whole else ""}
        if whole and reply.thinking:
            message["thinking"] = "".join(reply.thinking)
        if whole and reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        values: dict[str, Any] = {
            "model": model,
            "created_at": created_at(),
            "message": message,
            "done_reason": reply.done_reason,
            "done": True,
            "total_duration": 5191566416,
            "load_duration": 2154458,
            "prompt_eval_count": reply.prompt_eval_count,
            "prompt_eval_duration": 383809000,
            "eval_count": reply.eval_count,
            "eval_duration": 4799921000,
        }
        # Go omitempty: zero counts are not sent.
        return shaped(self._chat_keys, {k: v for k, v in values.items() if v != 0})

    async def _stream(
        self, request: web.Request, lines: list[dict[str, Any]], faults: Faults
    ) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"Content-Type": NDJSON_TYPE})
        await resp.prepare(request)
        if faults.nodone:
            lines = lines[:-1]
        try:
            for i, line in enumerate(lines):
                if faults.slow_ms:
                    await asyncio.sleep(faults.slow_ms / 1000)
                if faults.midstream and i == 2:
                    return self._drop(request, resp)
                if faults.malformed and i == 1:
                    await resp.write(b'{"model":"broken","message":{"role":"assistant","content":\n')
                if faults.errorline and i == 1:
                    await resp.write(
                        go_json({"error": "an error was encountered while running the model"}) + b"\n"
                    )
                    break
                await resp.write(go_json(line) + b"\n")
            await resp.write_eof()
        except ConnectionResetError:
            pass  # the client went away (it saw a fault it was meant to see)
        return resp

    async def _replay(self, request: web.Request, name: str, stream: bool) -> web.StreamResponse:
        data = self.fixtures.get(f"{name}.ndjson" if stream else f"{name}.json")
        if data is None:
            return self._error(404, f"no recorded capture named {name!r}")
        if not stream:
            return web.Response(body=data, headers={"Content-Type": JSON_TYPE})
        resp = web.StreamResponse(status=200, headers={"Content-Type": NDJSON_TYPE})
        await resp.prepare(request)
        for line in data.splitlines(keepends=True):
            await resp.write(line)
        await resp.write_eof()
        return resp

    def _drop(self, request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
        # Close the socket without the final empty chunk: the client sees a truncated body.
        if request.transport is not None:
            request.transport.close()
        return resp

    # plumbing

    async def _body(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self._record(request, raw, body)
        if not isinstance(body, dict):
            return {}, self._error(400, "invalid character in request body: not a JSON object")
        model = body.get("model")
        if not model:
            return body, self._error(400, "model is required")
        if self._canonical(str(model)) not in self.models:
            return body, self._error(404, f'model "{model}" not found, try pulling it first')
        return body, None

    def _canonical(self, model: str) -> str:
        return model if ":" in model else f"{model}:latest"

    def _record(self, request: web.Request, raw: bytes, body: Any) -> None:
        self.requests.append(Recorded(request.method, request.path, raw, body, dict(request.headers)))

    def _json(self, status: int, value: Any) -> web.Response:
        return web.Response(status=status, body=go_json(value), headers={"Content-Type": JSON_TYPE})

    def _error(self, status: int, message: str) -> web.Response:
        return self._json(status, {"error": message})


# --- model management replies --------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*(?::[A-Za-z0-9._-]+)?")
LAYERS = (  # a library model's layers: the weights, then template, licence, parameters (Ollama's order)
    ("application/vnd.ollama.image.model", 0),
    ("application/vnd.ollama.image.template", 1429),
    ("application/vnd.ollama.image.license", 7711),
    ("application/vnd.ollama.image.params", 96),
)
PULL_STEPS = 5  # progress lines of the weights layer, completed growing to total


def layer_digest(name: str, i: int) -> str:
    return "sha256:" + hashlib.sha256(f"{name}:{i}".encode()).hexdigest()


def model_size(name: str) -> int:
    """The weights' size in bytes, deterministic per name (a few hundred MB)."""
    return 200_000_000 + int(hashlib.sha256(name.encode()).hexdigest()[:6], 16) * 37


def pull_lines(name: str) -> list[dict[str, Any]]:
    """Ollama's /api/pull stream (server/images.go PullModel, server/download.go): api.ProgressResponse
    is {status, digest omitempty, total omitempty, completed omitempty}; a layer's status is
    `pulling ` and 12 hex digits of its digest; an error ends the stream as {"error": ...}."""
    lines: list[dict[str, Any]] = [{"status": "pulling manifest"}]
    if name.split("/")[-1].startswith("no-such"):
        return [*lines, {"error": "pull model manifest: file does not exist"}]
    for i, (_, size) in enumerate(LAYERS):
        digest, total = layer_digest(name, i), size or model_size(name)
        steps = PULL_STEPS if i == 0 else 1
        first = {"status": f"pulling {digest[7:19]}", "digest": digest, "total": total}
        lines.append(first)  # completed 0: left out (omitempty)
        lines += [{**first, "completed": total * k // steps} for k in range(1, steps + 1)]
    return [*lines, {"status": "verifying sha256 digest"}, {"status": "writing manifest"}, {"status": "success"}]


def tag_entry(name: str) -> dict[str, Any]:
    """A pulled model as /api/tags lists it (the recorded capture's key order)."""
    family = re.split(r"[^a-z]", name.lower())[0] or "llama"
    return {
        "name": name, "model": name, "modified_at": created_at(), "size": sum(s or model_size(name) for _, s in LAYERS),
        "digest": hashlib.sha256(f"manifest:{name}".encode()).hexdigest(),
        "details": {"parent_model": "", "format": "gguf", "family": family, "families": [family],
                    "parameter_size": "1.2B", "quantization_level": "Q8_0"},
    }


def show_document(tag: dict[str, Any]) -> dict[str, Any]:
    """/api/show's answer (api.ShowResponse field order: license, modelfile, parameters, template,
    details, model_info, capabilities, modified_at; model_info is a map: keys sorted)."""
    name, details = tag["name"], tag["details"]
    family = details.get("family") or "llama"
    embedding = family in ("bert", "nomic")
    template = "" if embedding else (
        "<|start_header_id|>system<|end_header_id|>\n\n{{ if .System }}{{ .System }}{{ end }}<|eot_id|>"
        "{{ range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
        "{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n")
    params = {} if embedding else {"stop": ['"<|start_header_id|>"', '"<|end_header_id|>"', '"<|eot_id|>"'],
                                   "temperature": ["0.6"]}
    parameters = "\n".join(f"{k:<30} {v}" for k, vs in params.items() for v in vs)
    license_text = f"{name} LICENSE AGREEMENT\nVersion 1.0\n\nYou may use, copy and modify this model.\n"
    blob = layer_digest(name, 0).replace(":", "-")
    modelfile = (f"# Modelfile generated by \"ollama show\"\n# To build a new Modelfile based on this, replace "
                 f"FROM with:\n# FROM {name}\n\nFROM /root/.ollama/models/blobs/{blob}\n"
                 f'TEMPLATE """{template}"""\n'
                 + "".join(f"PARAMETER {k} {v}\n" for k, vs in params.items() for v in vs)
                 + f'LICENSE """{license_text}"""\n')
    values: dict[str, Any] = {
        "license": license_text, "modelfile": modelfile, "parameters": parameters, "template": template,
        "details": details,
        "model_info": sorted_map({"general.architecture": family, "general.parameter_count": 1235814432,
                                  f"{family}.context_length": 8192 if embedding else 131072,
                                  f"{family}.embedding_length": 2048}),
        "capabilities": ["embedding"] if embedding else ["completion", "tools"],
        "modified_at": tag["modified_at"],
    }
    return {k: v for k, v in values.items() if v not in ("", None)}  # omitempty


def vector(text: str, dims: int) -> list[float]:
    """A deterministic embedding. Values are odd multiples of 1/256, exact in float32, so Go's and
    Python's shortest float formats print them identically."""
    digest = b"".join(hashlib.sha256(f"{text}:{i}".encode()).digest() for i in range(1 + dims // 32))
    return [(2 * b - 255) / 256 for b in digest[:dims]]


def main() -> None:
    parser = argparse.ArgumentParser(description="A deterministic stand-in for the Ollama API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    args = parser.parse_args()
    server = OllamaTestServer(args.host, args.port)
    with contextlib.suppress(KeyboardInterrupt):
        web.run_app(server.app(), host=args.host, port=args.port, access_log=None)


if __name__ == "__main__":
    main()

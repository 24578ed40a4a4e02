"""Recording in the test process, at the client libraries the tests use to talk to gateways: every
response a gateway gave (status, headers, body; WebSocket frames), the credentials the tests
presented, the output of `clawdbot` commands the tests ran, log records of clawdbot code running in
the test process, and the spans the tests' OTLP receivers got.

Each tap wraps one public entry point of a library (http.client, the transports of httpx and its
fork httpx2, websockets' client connection, subprocess.run, logging) or of a test server (the OTLP
receiver), passes everything through unchanged, and keeps a copy only of traffic with a port a
harness gateway listens on. A tap that fails records nothing more and says so in the summary; it
never changes what the test sees. Nothing of the gateway itself is replaced.

The one response not kept whole: the key-create answer (`POST /admin/api/keys`, 201, or the same
endpoint through the control panel, `/panel/api/admin/keys`), the one place
a virtual key is shown; its `key` is taken as a secret to look for, the rest of the record is kept.
Likewise `clawdbot keys create` prints the key it made: taken, then cut from the output kept."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import http.client
import importlib
import json
import logging
import re
import subprocess
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.secrets import gateways
from tests.secrets.collect import Collector, active

_KEY_CREATE = re.compile(r"^/(admin/api|panel/api/admin)/keys/?(\?.*)?$")  # the panel reaches the same endpoint
_LOGIN = re.compile(r"^/auth/login/?(\?.*)?$")
_VIRTUAL_KEY = re.compile(r"sk-cb-[A-Za-z0-9_-]{20,128}")
_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key", "proxy-authorization")
_MAX_PRESENTED = 256  # longer "keys" are probes of the header size, not credentials


def _safely(record: Callable[..., Any], *args: Any) -> Any:
    """Recording never changes what the test sees: a tap that fails keeps nothing and says so once."""
    try:
        return record(*args)
    except Exception as exc:
        if not _failures:
            active().add_text("tap failures", "a tap failed (its recording is incomplete)",
                              f"{type(exc).__name__}: {exc}")
        _failures.append(exc)
        return None


_failures: list[BaseException] = []


# --- what a request presents and what a response holds ---------------------------------------------

def _presented(c: Collector, method: str, path: str, headers: Iterable[tuple[str, str]], body: bytes | None) -> None:
    origin = f"presented by {c.test or 'the session'} ({method} {path.split('?')[0]})"
    for name, value in headers:
        if name.lower() in _CREDENTIAL_HEADERS:
            scheme, _, token = value.strip().partition(" ")
            token = token.strip() if scheme.lower() in ("bearer", "basic", "token") and token else value.strip()
            if len(token) <= _MAX_PRESENTED and len(set(token)) >= 4:
                c.add_secret(token, "virtual key" if token.startswith("sk-cb-") else "presented credential", origin)
    if method == "POST" and body and (_KEY_CREATE.match(path) or _LOGIN.match(path)):
        with contextlib.suppress(ValueError, AttributeError, RecursionError):  # probes send deep or odd JSON
            key = json.loads(body).get("key")
            if isinstance(key, str):
                c.add_secret(key, "virtual key" if key.startswith("sk-cb-") else "presented credential", origin)


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes | bytearray) else str(value)


def _dechunk(data: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(data):
        end = data.find(b"\r\n", i)
        if end < 0:
            break
        try:
            size = int(data[i:end].split(b";")[0], 16)
        except ValueError:
            return data  # not chunked after all: keep what came
        if size == 0:
            break
        out += data[end + 2:end + 2 + size]
        i = end + 2 + size + 2
    return bytes(out)


def _decoded(body: bytes, headers: dict[str, str]) -> bytes:
    encoding = headers.get("content-encoding", "").lower()
    with contextlib.suppress(OSError, zlib.error, EOFError):
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    return body


class _Response:
    """One gateway response being read; kept when it ends (or at the session's end, if never)."""

    open: set[_Response] = set()  # unfinished reads, for flush()

    def __init__(self, c: Collector, method: str, path: str, port: int, status: int,
                 headers: list[tuple[str, str]], chunked: bool) -> None:
        self.c, self.method, self.path, self.port, self.status = c, method, path, port, status
        self.headers, self.chunked = headers, chunked
        self.parts: list[bytes] = []
        self.test = c.test
        _Response.open.add(self)

    def add(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            self.parts.append(bytes(data))

    def finish(self) -> None:
        if self in _Response.open:
            _Response.open.discard(self)
            _safely(self._keep)

    def _keep(self) -> None:
        body = b"".join(self.parts)
        if self.chunked:
            body = _dechunk(body)
        lower = {k.lower(): v for k, v in self.headers}
        text = _decoded(body, lower).decode("utf-8", "replace")
        if self.path == "/healthz" and self.status == 200:
            return  # the harness polling for readiness: "ok", dozens of times a start
        if self.method == "POST" and self.status == 201 and _KEY_CREATE.match(self.path):
            with contextlib.suppress(ValueError, AttributeError, KeyError, RecursionError):
                record = json.loads(text)
                key = record.pop("key")
                self.c.add_secret(key, "virtual key", f"created by {self.test or 'the session'}")
                text = json.dumps(record)
        head = "\n".join(f"{k}: {v}" for k, v in self.headers)
        self.c.add_text("HTTP responses", f"HTTP response to {self.method} {self.path} from :{self.port}, "
                        f"status {self.status}", f"{head}\n\n{text}", test=self.test)

    @classmethod
    def flush(cls) -> None:
        for r in list(cls.open):
            r.finish()


# --- http.client (and urllib over it) ---------------------------------------------------------------

class _TeeReader:
    """The response's socket file, every byte read from it also kept."""

    def __init__(self, fp: Any, response: _Response) -> None:
        self._fp, self._response = fp, response

    def read(self, n: int | None = -1) -> bytes:
        data: bytes = self._fp.read() if n is None or n < 0 else self._fp.read(n)
        self._response.add(data)
        return data

    def read1(self, n: int = -1) -> bytes:
        data: bytes = self._fp.read1(n)
        self._response.add(data)
        return data

    def readline(self, limit: int = -1) -> bytes:
        data: bytes = self._fp.readline(limit)
        self._response.add(data)
        return data

    def readinto(self, b: Any) -> int:
        n: int = self._fp.readinto(b)
        self._response.add(memoryview(b)[:n])
        return n

    def close(self) -> None:
        self._response.finish()
        self._fp.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)


def _tap_http_client() -> Callable[[], None]:
    conn = http.client.HTTPConnection
    putrequest, putheader, request, getresponse = conn.putrequest, conn.putheader, conn.request, conn.getresponse

    @functools.wraps(putrequest)
    def _putrequest(self: Any, method: str, url: str, *a: Any, **kw: Any) -> None:
        self._secrets_req = (method, url, [], None)
        putrequest(self, method, url, *a, **kw)

    @functools.wraps(putheader)
    def _putheader(self: Any, header: str | bytes, *values: Any) -> None:
        putheader(self, header, *values)
        req = getattr(self, "_secrets_req", None)
        if req is not None:
            _safely(req[2].extend, [(_text(header), _text(v)) for v in values])

    @functools.wraps(request)
    def _request(self: Any, method: str, url: str, body: Any = None, *a: Any, **kw: Any) -> None:
        request(self, method, url, body, *a, **kw)
        req = getattr(self, "_secrets_req", None)
        if req is not None and isinstance(body, bytes | str):
            self._secrets_req = (*req[:3], body.encode() if isinstance(body, str) else body)

    @functools.wraps(getresponse)
    def _getresponse(self: Any) -> http.client.HTTPResponse:
        resp = getresponse(self)
        _safely(tap, self, resp)
        return resp

    def tap(self: Any, resp: http.client.HTTPResponse) -> None:
        c, req = active(), getattr(self, "_secrets_req", None)
        if req is None or gateways.quiet() or not c.is_gateway(self.host, self.port):
            return
        method, path, headers, body = req
        path = urlsplit(path).path + (f"?{urlsplit(path).query}" if urlsplit(path).query else "") \
            if "://" in path else path
        _presented(c, method, path, headers, body)
        chunked = resp.getheader("transfer-encoding", "").lower() == "chunked"
        t = _Response(c, method, path, self.port, resp.status, resp.getheaders(), chunked)
        if resp.fp is None:  # no body (HEAD, 204, 304): already closed
            t.finish()
        else:
            resp.fp = _TeeReader(resp.fp, t)  # type: ignore[assignment]

    conn.putrequest, conn.putheader = _putrequest, _putheader
    conn.request, conn.getresponse = _request, _getresponse

    def undo() -> None:
        conn.putrequest, conn.putheader, conn.request, conn.getresponse = putrequest, putheader, request, getresponse

    return undo


# --- httpx (the ollama package) and its fork httpx2 (the openai and anthropic packages) -------------

def _tap_httpx(module: str) -> Callable[[], None]:
    try:
        httpx = importlib.import_module(module)
    except ImportError:
        return lambda: None

    class Tee(httpx.SyncByteStream):
        def __init__(self, stream: Any, tap: _Response) -> None:
            self._stream, self._tap = stream, tap

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self._stream:
                self._tap.add(chunk)
                yield chunk
            self._tap.finish()

        def close(self) -> None:
            self._tap.finish()
            self._stream.close()

    class AsyncTee(httpx.AsyncByteStream):
        def __init__(self, stream: Any, tap: _Response) -> None:
            self._stream, self._tap = stream, tap

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in self._stream:
                self._tap.add(chunk)
                yield chunk
            self._tap.finish()

        async def aclose(self) -> None:
            self._tap.finish()
            await self._stream.aclose()

    def tap(request: Any, response: Any) -> _Response | None:
        c = active()
        if gateways.quiet() or not c.is_gateway(request.url.host, request.url.port):
            return None
        try:
            body: bytes | None = request.content
        except httpx.RequestNotRead:
            body = None
        path = request.url.raw_path.decode("ascii", "replace")
        _presented(c, request.method, path, request.headers.multi_items(), body)
        return _Response(c, request.method, path, request.url.port or 80, response.status_code,
                         response.headers.multi_items(), False)

    sync, async_ = httpx.HTTPTransport.handle_request, httpx.AsyncHTTPTransport.handle_async_request

    @functools.wraps(sync)
    def handle_request(self: Any, request: Any) -> Any:
        response = sync(self, request)
        t = _safely(tap, request, response)
        if t is not None:
            response.stream = Tee(response.stream, t)
        return response

    @functools.wraps(async_)
    async def handle_async_request(self: Any, request: Any) -> Any:
        response = await async_(self, request)
        t = _safely(tap, request, response)
        if t is not None:
            response.stream = AsyncTee(response.stream, t)
        return response

    httpx.HTTPTransport.handle_request = handle_request
    httpx.AsyncHTTPTransport.handle_async_request = handle_async_request

    def undo() -> None:
        httpx.HTTPTransport.handle_request = sync
        httpx.AsyncHTTPTransport.handle_async_request = async_

    return undo


# --- websockets (the chat socket) -------------------------------------------------------------------

def _tap_websockets() -> Callable[[], None]:
    try:
        from websockets.asyncio.connection import Connection as AsyncConnection
        from websockets.client import ClientProtocol
        from websockets.sync.connection import Connection as SyncConnection
    except ImportError:
        return lambda: None

    def port_of(conn: Any) -> int | None:
        with contextlib.suppress(Exception):
            return int(conn.remote_address[1])
        return None

    def keep(conn: Any, message: Any) -> None:
        c, port = active(), port_of(conn)
        if not gateways.quiet() and c.is_gateway("127.0.0.1", port):
            text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
            c.add_text("WebSocket frames", f"WebSocket frame from :{port}", text)

    arecv, srecv = AsyncConnection.recv, SyncConnection.recv
    connect, process = ClientProtocol.connect, ClientProtocol.process_response

    @functools.wraps(arecv)
    async def async_recv(self: Any, *a: Any, **kw: Any) -> Any:
        message = await arecv(self, *a, **kw)
        _safely(keep, self, message)
        return message

    @functools.wraps(srecv)
    def sync_recv(self: Any, *a: Any, **kw: Any) -> Any:
        message = srecv(self, *a, **kw)
        _safely(keep, self, message)
        return message

    def sent(protocol: Any, request: Any) -> None:
        c = active()
        if c.is_gateway(protocol.uri.host, protocol.uri.port):
            _presented(c, "GET", request.path, request.headers.raw_items(), None)

    def answered(protocol: Any, response: Any) -> None:
        c = active()
        if c.is_gateway(protocol.uri.host, protocol.uri.port):
            head = "\n".join(f"{k}: {v}" for k, v in response.headers.raw_items())
            body = (response.body or b"").decode("utf-8", "replace")
            c.add_text("HTTP responses", f"WebSocket handshake response from :{protocol.uri.port}, status "
                       f"{response.status_code}", f"{head}\n\n{body}")

    @functools.wraps(connect)
    def handshake_request(self: Any) -> Any:
        request = connect(self)
        _safely(sent, self, request)
        return request

    @functools.wraps(process)
    def handshake_response(self: Any, response: Any) -> None:
        _safely(answered, self, response)
        process(self, response)

    AsyncConnection.recv, SyncConnection.recv = async_recv, sync_recv
    ClientProtocol.connect, ClientProtocol.process_response = handshake_request, handshake_response

    def undo() -> None:
        AsyncConnection.recv, SyncConnection.recv = arecv, srecv
        ClientProtocol.connect, ClientProtocol.process_response = connect, process

    return undo


# --- `clawdbot` commands the tests run ----------------------------------------------------------------

@dataclasses.dataclass
class _Command:
    """A CLI run, seen as the gateways module reads a gateway: its arguments, environment, directory."""

    args: list[str]
    env: dict[str, str]
    cwd: Path | None
    port: int = 0
    log_path: Path = Path("/nonexistent")


def _clawdbot_args(args: Any) -> list[str] | None:
    argv = [str(a) for a in args] if isinstance(args, list | tuple) else str(args).split()
    for i, a in enumerate(argv):
        if a == "-m" and i + 1 < len(argv) and argv[i + 1] == "clawdbot":
            return argv[i + 2:]
        if Path(a).name == "clawdbot":
            return argv[i + 1:]
    return None


def _tap_subprocess() -> Callable[[], None]:
    run = subprocess.run

    @functools.wraps(run)
    def tapped(*popenargs: Any, **kwargs: Any) -> Any:
        result = run(*popenargs, **kwargs)
        _safely(keep, popenargs, kwargs, result)
        return result

    def keep(popenargs: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        args = kwargs.get("args", popenargs[0] if popenargs else None)
        sub = _clawdbot_args(args) if args is not None else None
        c = active()
        if sub is None:
            return
        cwd = kwargs.get("cwd")
        cmd = _Command(sub, dict(kwargs.get("env") or {}), Path(cwd) if cwd else None)
        gateways.harvest(cmd, c)
        text = "\n".join(o.decode("utf-8", "replace") if isinstance(o, bytes) else o
                         for o in (result.stdout, result.stderr) if isinstance(o, bytes | str))
        if sub[:1] == ["keys"] and "create" in sub:  # the one place the CLI shows a key: the key-create answer
            for key in _VIRTUAL_KEY.findall(text):
                c.add_secret(key, "virtual key", f"created by {c.test or 'the session'} (clawdbot keys create)")
            text = _VIRTUAL_KEY.sub("<the created key>", text)
        c.add_text("CLI output", f"output of `clawdbot {' '.join(sub)}` (exit {result.returncode})", text)

    subprocess.run = tapped

    def undo() -> None:
        subprocess.run = run

    return undo


# --- log records of clawdbot code in the test process -------------------------------------------------

class LogRecords(logging.Handler):
    """Every record a `clawdbot.*` logger emits in this process, as its formatted line; the levels
    stay as they are (a handler on the root, NOTSET: what is emitted anyway, nothing more)."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("clawdbot"):
            with contextlib.suppress(Exception):
                self.lines.append(self.format(record))

    def flush_to(self, c: Collector, test: str) -> None:
        lines, self.lines = self.lines, []
        if lines:
            c.add_text("in-process log records", f"log records of clawdbot code in the test process ({test})",
                       "\n".join(lines), test=test)


def _tap_logging(handler: LogRecords) -> Callable[[], None]:
    logging.getLogger().addHandler(handler)
    return lambda: logging.getLogger().removeHandler(handler)


# --- spans the OTLP receiver got ---------------------------------------------------------------------

def _tap_otlp() -> Callable[[], None]:
    try:
        from tests.upstreams.otlp_receiver import OtlpReceiver
    except ImportError:
        return lambda: None
    seen: set[tuple[str, str]] = set()

    def keep(rx: Any) -> None:
        lines = []
        for span in rx.spans:
            if (span.trace_id, span.span_id) not in seen:
                seen.add((span.trace_id, span.span_id))
                lines.append(json.dumps(dataclasses.asdict(span), default=str))
        if lines:
            active().add_text("trace spans", f"spans received by the OTLP receiver on :{rx.port}", "\n".join(lines))

    stop, clear = OtlpReceiver.stop, OtlpReceiver.clear
    own_stop = "stop" in OtlpReceiver.__dict__

    @functools.wraps(stop)
    def tapped_stop(self: Any, *a: Any, **kw: Any) -> None:
        _safely(keep, self)
        stop(self, *a, **kw)

    @functools.wraps(clear)
    def tapped_clear(self: Any) -> None:
        _safely(keep, self)
        clear(self)

    OtlpReceiver.stop, OtlpReceiver.clear = tapped_stop, tapped_clear

    def undo() -> None:
        if own_stop:
            OtlpReceiver.stop = stop
        else:
            del OtlpReceiver.stop  # back to the inherited ServerThread.stop
        OtlpReceiver.clear = clear

    return undo


_installed: list[bool] = []


def install(records: LogRecords) -> Callable[[], None]:
    """Every tap on; the function returned takes them off."""
    undos = [_tap_http_client(), _tap_httpx("httpx"), _tap_httpx("httpx2"), _tap_websockets(), _tap_subprocess(),
             _tap_logging(records), _tap_otlp()]
    _installed.append(True)

    def undo() -> None:
        for u in reversed(undos):
            u()
        _installed.pop()

    return undo


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """The taps on for the block: those of the session's plugin, or this block's own when the plugin is
    off (`-p no:tests.secrets.plugin`)."""
    if _installed:
        yield
        return
    undo = install(LogRecords())
    try:
        yield
    finally:
        undo()


def failures() -> list[BaseException]:
    """Recordings that failed this session (each left a gap in what was scanned)."""
    return list(_failures)


def flush() -> None:
    """Responses never read to their end: kept as far as they were read."""
    _Response.flush()

"""Records tests/fixtures/llamacpp/ from the real llama.cpp server (see tests/fixtures/README.md):

    uv run python -m tests.upstreams.record_llamacpp

Each capture is the response body exactly as the server sent it; `*.http` files also keep the
status line and headers (the date header dropped)."""

from __future__ import annotations

import http.client
import json
import tempfile
from pathlib import Path
from typing import Any

from tests.upstreams.llama_server import LlamaServer

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "llamacpp"
SAY_HELLO = [{"role": "user", "content": "Say hello"}]
CAPTURES: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
    "chat.json": ("/v1/chat/completions", {
        "model": LlamaServer.MODEL, "messages": SAY_HELLO, "max_tokens": 4, "temperature": 0}, {}),
    # stream_options is ignored: no usage event comes
    "chat_stream.sse": ("/v1/chat/completions", {
        "model": LlamaServer.MODEL, "messages": SAY_HELLO, "max_tokens": 4, "temperature": 0, "stream": True,
        "stream_options": {"include_usage": True}}, {}),
    "error_context_length.json": ("/v1/chat/completions", {
        "model": LlamaServer.MODEL, "messages": [{"role": "user", "content": "word " * 700}], "max_tokens": 5}, {}),
    # a request id that is not a UUID: an empty 400
    "error_request_id.http": ("/v1/chat/completions", {
        "model": LlamaServer.MODEL, "messages": SAY_HELLO, "max_tokens": 1},
        {"X-Request-ID": "req_0123456789abcdef01234567"}),
    "embeddings.json": ("/v1/embeddings", {"model": LlamaServer.MODEL, "input": "hello"}, {}),
}


def fetch(port: int, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[bytes, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **headers})
    resp = conn.getresponse()
    head = f"HTTP/1.1 {resp.status} {resp.reason}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in resp.getheaders() if k.lower() != "date") + "\r\n"
    data = resp.read()
    conn.close()
    return head.encode(), data


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, LlamaServer(Path(tmp)) as server:
        for name, (path, body, headers) in CAPTURES.items():
            head, data = fetch(server.port, path, body, headers)
            (OUT / name).write_bytes(head + data if name.endswith(".http") else data)
            print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()

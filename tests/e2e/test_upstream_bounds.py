"""An upstream that answers too much, through a real gateway process and the openai client: a
whole answer over `max_response_bytes`, and a gzip bomb, are 502s that say why; the gateway
keeps serving (a healthy service beside it answers)."""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.e2e.harness import GatewayProcess, serve_config
from tests.upstreams.openai_server import OpenAIUpstream

MASTER = "sk-bounds-master-key-0123456789"


class Flood:
    """Answers every request on a loopback socket with one fixed (oversized) HTTP response."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                conn.sendall(self.response)
            except OSError:
                pass  # the gateway hung up once it had enough: that is the point

    def close(self) -> None:
        self.sock.close()


def _json_response(body: bytes, gzipped: bool = False) -> bytes:
    enc = b"Content-Encoding: gzip\r\n" if gzipped else b""
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + enc +
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    text = ('{"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": '
            '{"role": "assistant", "content": "' + "y" * 400_000 + '"}, "finish_reason": "stop"}]}')
    big = Flood(_json_response(text.encode()))
    bomb = Flood(_json_response(gzip.compress(b" " * 30_000_000), gzipped=True))
    with OpenAIUpstream() as healthy:
        config = f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
services:
  - name: big
    type: openai
    endpoint: http://127.0.0.1:{big.port}/v1
    max_response_bytes: 100000
    discover: false
  - name: bomb
    type: openai
    endpoint: http://127.0.0.1:{bomb.port}/v1
    max_response_bytes: 1000000
    discover: false
  - name: ok
    type: openai
    endpoint: {healthy.base_url}
models:
  too-big: [big]
  bomb: [bomb]
  fine: [ok/mock-a]
"""
        tmp: Path = tmp_path_factory.mktemp("bounds")
        with serve_config(tmp, config, MASTER) as gw:
            yield gw
    big.close()
    bomb.close()


def test_an_answer_over_max_response_bytes_is_a_502_that_says_why(gateway: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{gateway.port}/v1", api_key=MASTER, max_retries=0)
    for model, limit in (("too-big", "100000"), ("bomb", "1000000")):
        with pytest.raises(openai.APIStatusError) as err:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert err.value.status_code == 502
        message = str(err.value)
        assert "too large" in message and limit in message and "Traceback" not in message
    answer = client.chat.completions.create(model="fine", messages=[{"role": "user", "content": "still here"}])
    assert answer.choices[0].message.content

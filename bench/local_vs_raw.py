"""The local provider's own cost: one GGUF, prompt, thread count and greedy decoding, streamed by raw
llama-cpp-python in this process and by `clawdbot serve` (a `local` service on the same file) over
HTTP, in alternating rounds. Per side, medians over the rounds of:

  ttft_ms     request made -> first content (raw: the call; clawdbot: the HTTP request written on a
              kept-alive socket, to the event's bytes read)
  tok_s       completion tokens after the first / (last content - first content)

Both sides prompt in ChatML without a system prompt (clawdbot's default for SmolLM2) with the same
sampling (temperature 0, repeat penalty 1.1), and load without ggml's extra buffer types on a CPU
with AMX as clawdbot does (providers/local.py), so the tokens are the same.

    .venv/bin/python bench/local_vs_raw.py [--rounds 8] [--threads 2] [--max-tokens 128] [--model PATH]
                                           [--gap-ms 200] [--stream-interval S]"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import llama_cpp

from clawdbot.config.local_models import SMOLLM2, locate
from clawdbot.providers.local import _extra_buffers, chatml_prompt, cpu_has_amx

PROMPT = "Explain how a bicycle works, step by step."


def raw_round(llm: llama_cpp.Llama, max_tokens: int) -> tuple[float, float, int]:
    started = time.perf_counter()
    first = last = 0.0
    n = 0
    for chunk in llm.create_chat_completion(messages=[{"role": "user", "content": PROMPT}], stream=True,
                                            max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.1):
        if chunk["choices"][0]["delta"].get("content"):
            last = time.perf_counter()
            first = first or last
            n += 1
    return (first - started) * 1000.0, (n - 1) / (last - first), n


class Client:
    """HTTP/1.1 on one kept-alive socket, read as it arrives: the gateway's time, not a client
    library's (http.client's header parsing alone costs a few hundred microseconds)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = port

    def round(self, max_tokens: int) -> tuple[float, float, int]:
        body = json.dumps({"model": "m", "stream": True, "max_tokens": max_tokens, "temperature": 0.0,
                           "stream_options": {"include_usage": True},
                           "messages": [{"role": "user", "content": PROMPT}]}).encode()
        head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        started = time.perf_counter()
        self.sock.sendall(head + body)
        first = last = 0.0
        tokens = 0
        buf = b""
        while not buf.endswith(b"\r\n0\r\n\r\n"):  # the chunked body's end
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the gateway closed the connection")
            now = time.perf_counter()
            buf += data
            for line in data.split(b"\n"):
                if line.startswith(b"data: {"):
                    event = json.loads(line[6:])
                    if event.get("usage"):
                        tokens = event["usage"]["completion_tokens"]
                    if event["choices"] and event["choices"][0]["delta"].get("content"):
                        last = now
                        first = first or now
        return (first - started) * 1000.0, (tokens - 1) / (last - first), tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--model", help="a GGUF file (default: the packaged SmolLM2)")
    ap.add_argument("--port", type=int, default=18797)
    ap.add_argument("--stream-interval", type=float, help="the local service's stream_interval (default: its own)")
    ap.add_argument("--gap-ms", type=float, default=200.0,
                    help="idle time before each round: llama.cpp's OpenMP threads spin a while after a "
                         "generation, and would take CPU from the other side's next round")
    a = ap.parse_args()
    path = a.model or locate(SMOLLM2)
    with _extra_buffers(llama_cpp, not cpu_has_amx()):
        llm = llama_cpp.Llama(model_path=path, n_ctx=2048, n_threads=a.threads, n_threads_batch=a.threads,
                              verbose=False)
    llm.chat_handler = llama_cpp.llama_chat_format.chat_formatter_to_chat_completion_handler(chatml_prompt)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "local.yaml"
        config.write_text(f"services:\n  - name: m\n    type: local\n    model_path: {path}\n"
                          f"    chat_format: chatml\n    n_threads: {a.threads}\n    n_ctx: 2048\n"
                          f"    sampling: {{repeat_penalty: 1.1}}\n"
                          + (f"    stream_interval: {a.stream_interval}\n" if a.stream_interval is not None else ""))
        env = {**os.environ, "CLAWDBOT_DATA_DIR": tmp}
        gw = subprocess.Popen([sys.executable, "-m", "clawdbot", "serve", "--config", str(config), "--port",
                               str(a.port), "--log-level", "warning"], env=env)
        try:
            for _ in range(300):
                try:
                    client = Client(a.port)
                    break
                except OSError:
                    time.sleep(0.1)  # waiting for the gateway to listen
            raw_round(llm, 8)  # warm-ups: both models loaded, caches filled
            client.round(8)
            raw: list[tuple[float, float, int]] = []
            via: list[tuple[float, float, int]] = []
            for i in range(a.rounds):
                for side in ("raw", "via") if i % 2 == 0 else ("via", "raw"):
                    time.sleep(a.gap_ms / 1000.0)
                    if side == "raw":
                        raw.append(raw_round(llm, a.max_tokens))
                    else:
                        via.append(client.round(a.max_tokens))
        finally:
            gw.terminate()
            gw.wait(30)
    print(f"model {Path(path).name}, threads {a.threads}, {a.max_tokens} tokens max, {a.rounds} rounds")
    print("| side | TTFT p50 (ms) | TTFT range | tokens/s p50 | tokens/s range | tokens |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rows in (("raw llama-cpp-python", raw), ("clawdbot", via)):
        ttft = [r[0] for r in rows]
        tps = [r[1] for r in rows]
        print(f"| {name} | {statistics.median(ttft):.1f} | {min(ttft):.1f}-{max(ttft):.1f} | "
              f"{statistics.median(tps):.1f} | {min(tps):.1f}-{max(tps):.1f} | {rows[0][2]} |")
    d_ttft = statistics.median(r[0] for r in via) - statistics.median(r[0] for r in raw)
    ratio = statistics.median(r[1] for r in via) / statistics.median(r[1] for r in raw)
    print(f"\nclawdbot - raw: TTFT {d_ttft:+.1f} ms, tokens/s x{ratio:.3f}")


if __name__ == "__main__":
    main()

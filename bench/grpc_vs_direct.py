"""The gRPC provider's own cost, against a real MLServer (tests/upstreams/grpc_peers.py, the
deterministic `echo` model: the prompt's words streamed back one per response) called two ways in
alternating rounds:

  direct    grpcio in this process: one ModelStreamInfer call, as clawdbot makes it
  clawdbot  `clawdbot serve` (a grpc service, preset mlserver, raw template) over HTTP on one
            kept-alive socket, streamed as OpenAI SSE

Per side: TTFT (request sent -> first text), medians and p90 over the rounds. For clawdbot also its
CPU (all its threads: /proc/PID/task/*/stat utime+stime) per relayed token over the long rounds, and
per request over one-token rounds (the fixed cost a token count does not amortise). For scale, the
floor under any grpcio-based provider: the CPU of a bare grpc.aio client on uvloop (in a process of
its own) receiving the same long streams, per message.

    PYTHONPATH=. .venv/bin/python bench/grpc_vs_direct.py [--rounds 40] [--tokens 400] [--short-rounds 200]

(from the repository root: MLServer is started by the tests' launcher, in the peer venv that
scripts/ensure-peers.sh makes)"""

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

import grpc
from tests.e2e.harness import free_port
from tests.upstreams.grpc_peers import MLServerPeer

from clawdbot.providers.oip import open_inference_pb2 as pb

CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds by thread group: the event loop (the main thread), grpc's (its event engine and
    the grpc.aio poller) and the rest (the log writer, ...)."""
    out = {"loop": 0.0, "grpc": 0.0, "other": 0.0}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:  # a thread that ended
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        group = "loop" if tid == str(pid) else "grpc" if name in ("event_engine", "python") else "other"
        out[group] += (int(fields[11]) + int(fields[12])) / CLK  # utime, stime
    return out


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in after}


def prompt(words: int) -> str:
    return " ".join(f"w{i}" for i in range(words))


class Direct:
    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.call = self.channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer",
                                               request_serializer=pb.ModelInferRequest.SerializeToString,
                                               response_deserializer=pb.ModelInferResponse.FromString)

    def round(self, text: str, max_tokens: int) -> tuple[float, int]:
        req = pb.ModelInferRequest(model_name="echo", id="bench")
        t = req.inputs.add(name="prompt", datatype="BYTES", shape=[1])
        t.contents.bytes_contents.append(text.encode())
        req.parameters["max_tokens"].int64_param = max_tokens
        started = time.perf_counter()
        first, n = 0.0, 0
        for resp in self.call(iter([req]), timeout=60):
            if resp.outputs and resp.outputs[0].contents.bytes_contents:
                first = first or time.perf_counter()
                n += 1
        return (first - started) * 1000.0, n


class Gateway:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = port

    def round(self, text: str, max_tokens: int) -> tuple[float, int]:
        body = json.dumps({"model": "echo", "stream": True, "max_tokens": max_tokens,
                           "messages": [{"role": "user", "content": text}]}).encode()
        head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        started = time.perf_counter()
        self.sock.sendall(head + body)
        first, n, buf = 0.0, 0, b""
        while not buf.endswith(b"\r\n0\r\n\r\n"):  # the chunked body's end
            data = self.sock.recv(262144)
            if not data:
                raise ConnectionError("the gateway closed the connection")
            if not first and b'"content":' in data:
                first = time.perf_counter()
            buf += data
        n = buf.count(b'"content":"')
        return (first - started) * 1000.0, n


FLOOR = """
import asyncio, resource, sys, uvloop, grpc.aio
from clawdbot.providers.oip import open_inference_pb2 as pb
target, text, n, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
async def main():
    ch = grpc.aio.insecure_channel(target)
    mc = ch.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer",
                          request_serializer=pb.ModelInferRequest.SerializeToString)
    req = pb.ModelInferRequest(model_name="echo", id="floor")
    t = req.inputs.add(name="prompt", datatype="BYTES", shape=[1])
    t.contents.bytes_contents.append(text.encode())
    req.parameters["max_tokens"].int64_param = n
    got = 0
    for i in range(rounds + 3):
        if i == 3:
            r0, got = resource.getrusage(resource.RUSAGE_SELF), 0
        call = mc()
        await call.write(req)
        await call.done_writing()
        while isinstance(await call.read(), bytes):
            got += 1
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    print((r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / got * 1e6)
uvloop.run(main())
"""


def floor_us(target: str, text: str, tokens: int, rounds: int) -> float:
    out = subprocess.run([sys.executable, "-c", FLOOR, target, text, str(tokens), str(rounds)], capture_output=True,
                         text=True, timeout=600, check=True)
    return float(out.stdout.strip())


def stats(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"p50 {statistics.median(xs):.3f} p90 {xs[int(len(xs) * 0.9)]:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=40, help="long rounds per side")
    ap.add_argument("--tokens", type=int, default=400, help="tokens per long round")
    ap.add_argument("--short-rounds", type=int, default=200, help="one-token rounds per side")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, MLServerPeer(Path(tmp)) as peer:
        config = Path(tmp) / "grpc.yaml"
        config.write_text(f"services:\n  - name: mls\n    type: grpc\n    endpoint: {peer.target}\n"
                          f"    metadata: {{model_id: echo}}\n    grpc: {{preset: mlserver, chat_template: raw}}\n"
                          "request_log: {enabled: false}\n")
        port = free_port()
        env = {**os.environ, "CLAWDBOT_DATA_DIR": tmp}
        gw = subprocess.Popen([sys.executable, "-m", "clawdbot", "serve", "--config", str(config), "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:  # polls the port until the gateway listens
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or gw.poll() is not None:
                        raise SystemExit("the gateway did not start") from None
                    time.sleep(0.1)
            direct, through = Direct(peer.target), Gateway(port)
            long_text, short_text = prompt(a.tokens), prompt(4)
            for side in (direct, through):  # warm-up: connections, caches
                for _ in range(5):
                    side.round(long_text, a.tokens)
            ttft: dict[str, list[float]] = {"direct": [], "clawdbot": []}
            gw_cpu, tokens = {"loop": 0.0, "grpc": 0.0, "other": 0.0}, 0
            for _ in range(a.rounds):
                ttft["direct"].append(direct.round(long_text, a.tokens)[0])
                before = cpu_seconds(gw.pid)
                ms, n = through.round(long_text, a.tokens)
                for k, v in spent(before, cpu_seconds(gw.pid)).items():
                    gw_cpu[k] += v
                ttft["clawdbot"].append(ms)
                tokens += n
            short: dict[str, list[float]] = {"direct": [], "clawdbot": []}
            short_cpu = 0.0
            for _ in range(a.short_rounds):
                short["direct"].append(direct.round(short_text, 1)[0])
                before = cpu_seconds(gw.pid)
                short["clawdbot"].append(through.round(short_text, 1)[0])
                short_cpu += sum(spent(before, cpu_seconds(gw.pid)).values())
            print(f"long rounds: {a.rounds} x {a.tokens} tokens; one-token rounds: {a.short_rounds}")
            for side in ("direct", "clawdbot"):
                print(f"  {side:9s} TTFT ms (long) {stats(ttft[side])}   (one-token) {stats(short[side])}")
            added = statistics.median(ttft["clawdbot"]) - statistics.median(ttft["direct"])
            added_short = statistics.median(short["clawdbot"]) - statistics.median(short["direct"])
            print(f"  added TTFT p50: {added:.3f} ms (long), {added_short:.3f} ms (one-token)")
            floor = floor_us(peer.target, long_text, a.tokens, a.rounds)
            total = sum(gw_cpu.values())
            split = ", ".join(f"{k} {v / max(tokens, 1) * 1e6:.1f}" for k, v in gw_cpu.items())
            print(f"  clawdbot CPU: {total / max(tokens, 1) * 1e6:.1f} us per relayed token ({split}; {tokens} "
                  f"tokens, {total:.2f} s); {short_cpu / a.short_rounds * 1e6:.0f} us per one-token request")
            print(f"  a bare grpc.aio client (uvloop): {floor:.1f} us per message received")
        finally:
            gw.terminate()
            gw.wait(timeout=10)


if __name__ == "__main__":
    main()

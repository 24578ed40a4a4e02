"""The log writer (observability/logging.py BufferedHandler): lines reach a real file or pipe in the
order they were logged; a reader that stops reading never stalls the caller (lines past the bound are
dropped and counted, warnings kept before info lines, one line reports the drops once the reader is
back); nothing is lost at a normal exit, and an exit does not hang on a stuck reader. End to end: a
gateway whose stderr is a pipe nobody reads keeps answering, counts the lines it dropped on /metrics
and says so in its log once the pipe is read again."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TextIO

import openai
import pytest

from clawdbot.observability.logging import EXIT_TIMEOUT, LINE_COST, BufferedHandler, TextFormatter
from tests.e2e.harness import free_port, healthy
from tests.upstreams.openai_server import OpenAIUpstream

MASTER = "sk-test-master-log-writer-0123"
ROOT = Path(__file__).resolve().parents[2]
DROPPED = re.compile(r"(\d+) log lines dropped")


def wait_until(done: Callable[[], bool], timeout: float, what: str) -> None:
    """Polls `done` until it holds (bounded: `timeout` seconds), never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.01)
    raise AssertionError(f"{what}: not after {timeout}s")


class PipeReader:
    """Reads a pipe into memory in a thread, once started (until then nobody reads it)."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self.pipe = pipe
        self.data = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def start(self) -> PipeReader:
        self._thread.start()
        return self

    def _read(self) -> None:
        fd = self.pipe.fileno()
        with contextlib.suppress(OSError):
            while chunk := os.read(fd, 1 << 16):
                with self._lock:
                    self.data += chunk

    def text(self) -> str:
        with self._lock:
            return self.data.decode(errors="replace")

    def join(self, timeout: float) -> None:
        if self._thread.ident is not None:  # started
            self._thread.join(timeout)


def full_pipe() -> tuple[IO[bytes], TextIO]:
    """A pipe whose buffer is already full: the first write to it blocks until it is read. (Filled
    before the handler gets it, so that how far its writer got is never a matter of timing.)"""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    with contextlib.suppress(BlockingIOError):
        for _ in range(1024):  # 4 MiB at most; a pipe holds 64 KiB by default
            os.write(write_fd, b"#" * 4095 + b"\n")  # PIPE_BUF bytes: written whole or not at all
    os.set_blocking(write_fd, True)
    return os.fdopen(read_fd, "rb"), open(write_fd, "w")  # both closed by the tests


def reported_drops(text: str) -> int:
    return sum(int(n) for n in DROPPED.findall(text))


# in one process: the handler on a real file and a real pipe


def test_file_target_gets_every_line_in_order(tmp_path: Path) -> None:
    path = tmp_path / "gateway.log"
    with path.open("w") as stream:
        handler = BufferedHandler(stream)
        # warnings are written without waiting for the batch: they must not overtake the info lines
        # logged before them, and lines from a second thread keep their own order
        def from_a_thread() -> None:
            for i in range(3000):
                handler.write_line(f"thread {i}")

        other = threading.Thread(target=from_a_thread)
        other.start()
        for i in range(5000):
            handler.write_line(f"main {i}", urgent=i % 700 == 0)
        other.join(30)
        handler.flush()
        lines = path.read_text().splitlines()
    assert [ln for ln in lines if ln.startswith("main")] == [f"main {i}" for i in range(5000)]
    assert [ln for ln in lines if ln.startswith("thread")] == [f"thread {i}" for i in range(3000)]
    assert len(lines) == 8000
    assert handler.dropped == 0


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux's scheduling policies")
def test_the_writer_never_preempts_the_event_loop_when_woken(tmp_path: Path) -> None:
    # SCHED_BATCH: no wake-up preemption (a hand-over cost the loop its CPU slice under load, where
    # both share a core), a fair share otherwise
    with (tmp_path / "log").open("w") as stream:
        handler = BufferedHandler(stream)
        handler.write_line("the first line starts the writer")
        handler.flush()
        writers = [t.native_id for t in threading.enumerate() if t.name == "log-writer" and t.native_id]
        assert writers and all(os.sched_getscheduler(tid) == os.SCHED_BATCH for tid in writers)


def test_a_reader_that_stops_never_stalls_the_caller() -> None:
    read_end, write_end = full_pipe()
    reader = PipeReader(read_end)
    try:
        handler = BufferedHandler(write_end, max_bytes=64 * 1024)
        handler.setFormatter(TextFormatter())
        line = "i" * 99  # 100 bytes with its newline
        # ~8 MB against a full pipe and a 64 KiB buffer: a write on the caller's thread would block
        # for good at the first line; the caller is a thread here, joined with a bound
        def produce() -> None:
            for i in range(80_000):
                handler.write_line(f"{i:06d} {line}")

        producer = threading.Thread(target=produce)
        producer.start()
        producer.join(30)
        assert not producer.is_alive(), "write_line waited for the reader"
        assert handler.dropped > 0
        # the buffer is full of info lines: warnings still get in (their reserve), info lines do not
        dropped = handler.dropped
        for i in range(5):
            handler.write_line(f"warning {i}", urgent=True)
        assert handler.dropped == dropped
        handler.write_line("one more info line")
        assert handler.dropped == dropped + 1
        assert handler.stats()["pending_bytes"] <= 64 * 1024 + 5 * (LINE_COST + 9)  # the warnings' reserve

        reader.start()
        # with no event loop to time it, the report goes out with the next line or flush
        handler.flush()
        wait_until(lambda: reported_drops(reader.text()) == handler.dropped, 20,
                   "the drops reported once the reader is back")
    finally:
        write_end.close()  # the reader reads to the end
        reader.join(10)
        read_end.close()
    text = reader.text()
    numbers = [int(m) for m in re.findall(r"^(\d{6}) i", text, re.M)]
    assert numbers == sorted(numbers)  # what got through, in order
    assert len(numbers) + handler.dropped - 1 == 80_000  # the extra info line was dropped too
    assert [ln for ln in text.splitlines() if ln.startswith("warning")] == [f"warning {i}" for i in range(5)]
    # the report comes after the lines that waited while it dropped, and says how many
    report = next(ln for ln in text.splitlines() if "log lines dropped" in ln)
    assert "WARN" in report and "clawdbot.logging" in report


def test_on_the_event_loop_drops_are_reported_once_the_writer_has_caught_up() -> None:
    read_end, write_end = full_pipe()
    reader = PipeReader(read_end)

    async def scenario() -> None:
        handler = BufferedHandler(write_end, max_bytes=32 * 1024, interval=0.01)
        for i in range(5000):  # ~500 KB from the loop's thread, the pipe full: past 32 KiB lines drop
            handler.write_line(f"{i:06d} " + "b" * 93)
        dropped = handler.stats()["dropped"]
        assert dropped > 0
        reader.start()
        # nothing more is logged: the hand-over timer looks again until the writer has caught up
        for _ in range(2000):  # 20 s at most: polling what the reader has read
            if reported_drops(reader.text()) >= dropped:
                break
            await asyncio.sleep(0.01)
        handler.write_line("after the report")
        handler.flush()
        assert handler.stats()["dropped"] == dropped

    try:
        asyncio.run(scenario())
    finally:
        write_end.close()  # the reader reads to the end
        reader.join(10)
        read_end.close()
    text = reader.text()
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]  # the pipe's filling left out
    report = next(i for i, ln in enumerate(lines) if "log lines dropped" in ln)
    numbers = [int(ln[:6]) for ln in lines[:report]]
    assert numbers == sorted(numbers) and len(numbers) + reported_drops(text) == 5000
    assert lines[report + 1:] == ["after the report"]


CHILD = """
import logging, sys
from clawdbot.observability.logging import setup_logging
setup_logging("text", "info")
log = logging.getLogger("child")
for i in range(int(sys.argv[1])):
    log.info("line %06d %s", i, "x" * 100)
"""


def run_child(n: int, stderr: int | IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(n)], stderr=stderr, stdout=subprocess.DEVNULL,
                            cwd=ROOT)


def test_nothing_lost_at_a_normal_exit(tmp_path: Path) -> None:
    # 20,000 lines logged as fast as a loop can, then the interpreter exits at once: the last batch
    # is still waiting for its 50 ms when the program ends, and the exit writes it
    with (tmp_path / "child.log").open("wb") as out:
        child = run_child(20_000, out)
        assert child.wait(60) == 0
    lines = (tmp_path / "child.log").read_text().splitlines()
    assert [int(ln.split()[4]) for ln in lines] == list(range(20_000))


def test_exit_does_not_hang_on_a_reader_that_never_reads() -> None:
    child = run_child(50_000, subprocess.PIPE)  # ~6 MB; nobody reads the pipe until the child is gone
    started = time.monotonic()
    try:
        code = child.wait(EXIT_TIMEOUT + 28)  # the exit gives the writer EXIT_TIMEOUT seconds
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        assert child.stderr is not None
        child.stderr.close()
    assert code == 0
    assert time.monotonic() - started < EXIT_TIMEOUT + 28


# end to end: a real gateway whose stderr is a pipe


@contextlib.contextmanager
def gateway_on_a_pipe(tmp: Path, upstream: OpenAIUpstream) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`clawdbot serve` with stderr (its log) on a pipe that nobody reads until the test says so."""
    config = tmp / "clawdbot.yaml"
    config.write_text(f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
services:
  - name: oa
    type: openai
    endpoint: {upstream.base_url}
    breaker: {{enabled: false}}
models:
  chat: [oa/mock-a]
""")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDBOT_")}
    env.update(TEST_MASTER_KEY=MASTER, CLAWDBOT_DATA_DIR=str(tmp / "data"))
    proc = subprocess.Popen([sys.executable, "-m", "clawdbot", "serve", "--config", str(config), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT,
                            start_new_session=True)
    try:
        wait_until(lambda: healthy(port, timeout=2) or proc.poll() is not None, 60, "the gateway's /healthz")
        assert proc.poll() is None, "the gateway exited"
        yield proc, port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # its stderr may be blocked: no graceful stop to wait for
        proc.wait(15)
        assert proc.stderr is not None
        proc.stderr.close()




def dropped_metric(port: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {MASTER}"})
        body = conn.getresponse().read().decode()
    finally:
        conn.close()
    found = re.search(r"^clawdbot_log_lines_dropped_total (\S+)$", body, re.M)
    assert found, "clawdbot_log_lines_dropped_total not on /metrics"
    return float(found.group(1))


def flood(port: int, n: int) -> None:
    """`n` requests whose access lines are ~8 KB each (an unknown path of 8,000 characters, with its
    number first): a few hundred fill the pipe (64 KiB) and the writer's buffer (2 MiB)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for i in range(n):
            conn.request("GET", f"/v1/flood-{i:05d}-" + "p" * 8000)
            conn.getresponse().read()
    finally:
        conn.close()


def test_gateway_keeps_answering_while_nobody_reads_its_stderr(tmp_path: Path) -> None:
    with OpenAIUpstream() as upstream, gateway_on_a_pipe(tmp_path, upstream) as (proc, port):
        flood(port, 400)  # 3.2 MB of access log: the pipe and the buffer fill, lines are dropped
        assert dropped_metric(port) > 0
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=MASTER, max_retries=0, timeout=10)
        slowest = 0.0
        for i in range(40):
            started = time.monotonic()
            if i % 2:
                stream = client.chat.completions.create(model="chat", stream=True,
                                                        messages=[{"role": "user", "content": f"hi {i}"}])
                text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            else:
                answer = client.chat.completions.create(model="chat",
                                                        messages=[{"role": "user", "content": f"hi {i}"}])
                text = answer.choices[0].message.content or ""
            slowest = max(slowest, time.monotonic() - started)
            assert text == f"echo: hi {i}"
        # A write on the event loop would have hung every request here for good (the openai client's
        # 10 s timeout); a request takes milliseconds. 3 s leaves room for a loaded CI machine.
        assert slowest < 3.0
        assert proc.poll() is None

        assert proc.stderr is not None
        reader = PipeReader(proc.stderr).start()
        # once read again, the writer catches up and reports every drop the counter has
        wait_until(lambda: reported_drops(reader.text()) == dropped_metric(port) > 0, 20,
                   "a 'log lines dropped' report matching /metrics")
        numbers = [int(n) for n in re.findall(r"path=/v1/flood-(\d{5})-", reader.text())]
        assert numbers and numbers == sorted(numbers)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        reader.join(10)


def requests_then_stop(tmp: Path, sig: int) -> tuple[list[str], str]:
    """200 requests through the openai client, `sig` right after the last answer (whose access line
    is then still in the batch the writer gathers): the request ids answered, and the log."""
    with OpenAIUpstream() as upstream, gateway_on_a_pipe(tmp, upstream) as (proc, port):
        assert proc.stderr is not None
        reader = PipeReader(proc.stderr).start()
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=MASTER, max_retries=0, timeout=10)
        ids = []
        for i in range(200):
            raw = client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": f"hi {i}"}])
            ids.append(raw.headers["x-request-id"])
        os.killpg(proc.pid, sig)
        proc.wait(20)
        reader.join(10)
    return ids, reader.text()


def access_ids(log: str) -> list[str]:
    return re.findall(r"clawdbot\.access request_id=(\S+) method=POST path=/v1/chat/completions", log)


def test_gateway_writes_every_line_before_it_exits(tmp_path: Path) -> None:
    # Ctrl-C: uvicorn re-raises SIGINT after its shutdown, the interpreter exits and atexit runs
    ids, log = requests_then_stop(tmp_path, signal.SIGINT)
    assert access_ids(log) == ids
    assert "Finished server process" in log  # uvicorn's last line, logged just before the exit


def test_gateway_writes_every_line_before_it_exits_on_sigterm(tmp_path: Path) -> None:
    """uvicorn re-raises SIGTERM after its shutdown, whose default action ends the process without
    atexit: cli/server.py writes the log's last batch before that."""
    ids, log = requests_then_stop(tmp_path, signal.SIGTERM)
    assert access_ids(log) == ids
    assert "Finished server process" in log

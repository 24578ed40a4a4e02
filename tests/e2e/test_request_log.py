"""The request log on a real gateway process (SQLite in its data directory): requests made through
the `openai` package are logged with their service, attempts, tokens and plugin actions; GET
/admin/api/requests filters and pages; bodies are kept only with `log_bodies` (a model's or a
key's), after the pii plugin's masking; `clawdbot replay` and `clawdbot tail --json` run as real
commands against it. A second gateway on PostgreSQL with a tiny row budget shows the writer's
pruning deleting rows."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import openai
import pytest
import sqlalchemy as sa

from tests.e2e.harness import GatewayProcess, serve_config, until
from tests.e2e.test_metrics import samples, scrape_text, total
from tests.e2e.test_tenancy import call as tenancy_call
from tests.state.test_chat_store import PostgresServer, postgres  # noqa: F401  (the fixture)
from tests.upstreams.openai_server import OpenAIUpstream

MASTER = "sk-reqlog-master-0123456789"
EMAIL = "alice.liddell@example.com"
DEADLINE_S = 10.0


def config(upstream: OpenAIUpstream, extra: str = "") -> str:
    return f"""server:
  master_key: ${{TEST_MASTER_KEY}}
request_log:
  enabled: true
  flush_interval: 0.05
services:
  - name: oa
    type: openai
    endpoint: {upstream.base_url}
models:
  chat-plain: [oa/mock-a]
  chat-bodies: {{targets: [oa/mock-b], log_bodies: true}}
  chat-other: [oa/mock-c]
plugins:
  - name: pii
    with: {{types: [EMAIL]}}
{extra}"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, openai_upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    with serve_config(tmp_path_factory.mktemp("reqlog"), config(openai_upstream), MASTER) as g:
        yield g


def call(gw: GatewayProcess, method: str, path: str, body: Any = None, key: str = MASTER) -> tuple[int, Any]:
    return tenancy_call(gw, method, path, body, key)


def client(gw: GatewayProcess, key: str = MASTER) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=20)


def ask(gw: GatewayProcess, text: str, model: str = "chat-plain", key: str = MASTER, **kw: Any) -> tuple[str, str]:
    """(the answer, the request id)"""
    raw = client(gw, key).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], **kw)
    return raw.parse().choices[0].message.content or "", raw.headers["x-request-id"]


def record(gw: GatewayProcess, rid: str) -> dict[str, Any]:
    def get() -> dict[str, Any] | None:
        status, out = call(gw, "GET", f"/admin/api/requests/{quote(rid, safe='')}")
        return out if status == 200 else None

    found = until(get)
    assert found, f"request {rid} was never logged"
    return dict(found)


def listing(gw: GatewayProcess, query: str) -> dict[str, Any]:
    status, out = call(gw, "GET", f"/admin/api/requests?{query}")
    assert status == 200, out
    return dict(out)


def test_a_request_is_logged_with_where_it_went(gw: GatewayProcess) -> None:
    answer, rid = ask(gw, "hello there", max_tokens=50)
    assert answer == "echo: hello there"
    rec = record(gw, rid)
    assert rec["id"] == rid and rec["model"] == "chat-plain" and rec["service"] == "oa"
    assert rec["upstream_model"] == "mock-a" and rec["status"] == 200 and rec["principal"] == "master"
    assert rec["path"] == "/v1/chat/completions" and rec["method"] == "POST" and rec["stream"] is False
    assert rec["prompt_tokens"] > 0 and rec["completion_tokens"] > 0 and rec["latency_ms"] > 0
    assert [a["service"] for a in rec["attempts"]] == ["oa"] and rec["attempts"][0]["ok"] is True
    assert abs(rec["at"] - time.time() * 1000) < 60_000
    assert rec["has_bodies"] is False and rec["request_body"] is None and rec["answer"] is None


def test_metrics_count_the_records_written(gw: GatewayProcess) -> None:
    def written() -> float:
        found = samples(scrape_text(gw, key=MASTER))
        return total(found, "clawdbot_request_log_records_total", outcome="written")

    before = written()
    _, rid = ask(gw, "count me in the log")
    record(gw, rid)  # in the table: the writer counted it
    assert written() >= before + 1
    found = samples(scrape_text(gw, key=MASTER))
    assert total(found, "clawdbot_request_log_records_total", outcome="dropped") == 0
    assert ("clawdbot_request_log_streams", frozenset()) in found


def test_a_stream_has_its_time_to_first_token(gw: GatewayProcess) -> None:
    raw = client(gw).chat.completions.with_raw_response.create(
        model="chat-plain", messages=[{"role": "user", "content": "stream me"}], stream=True)
    rid = raw.headers["x-request-id"]
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices) == "echo: stream me"
    rec = record(gw, rid)
    assert rec["stream"] is True and rec["ttft_ms"] is not None and 0 < rec["ttft_ms"] <= rec["latency_ms"]


def test_bodies_only_with_log_bodies_and_after_masking(gw: GatewayProcess) -> None:
    answer, rid = ask(gw, f"mail {EMAIL} today", model="chat-bodies")
    assert answer == f"echo: mail {EMAIL} today"  # the client gets its address back (pii restores it)
    rec = record(gw, rid)
    assert rec["has_bodies"] is True and rec["body_truncated"] is False
    assert rec["plugins"] == ["pii: masked 1 item (EMAIL 1)"]
    sent = rec["request_body"]["messages"][-1]["content"]
    assert EMAIL not in sent and "<EMAIL_1>" in sent and rec["request_body"]["model"] == "chat-bodies"
    assert EMAIL not in rec["response_body"] and rec["answer"] == "echo: mail <EMAIL_1> today"
    # the same through a model without log_bodies: nothing kept
    _, plain = ask(gw, f"mail {EMAIL} today", model="chat-plain")
    assert record(gw, plain)["request_body"] is None
    # streamed: the upstream's SSE is kept, and the answer read back from it
    raw = client(gw).chat.completions.with_raw_response.create(
        model="chat-bodies", messages=[{"role": "user", "content": "stream the body"}], stream=True)
    list(raw.parse())
    streamed = record(gw, raw.headers["x-request-id"])
    assert streamed["answer"] == "echo: stream the body" and "data:" in streamed["response_body"]


def test_a_keys_log_bodies(gw: GatewayProcess) -> None:
    status, out = call(gw, "POST", "/admin/api/keys", {"name": "bodies", "metadata": {"log_bodies": "yes"}})
    assert status == 400 and out["error"]["param"] == "metadata.log_bodies"
    status, made = call(gw, "POST", "/admin/api/keys", {"name": "bodies", "metadata": {"log_bodies": True}})
    assert status == 201, made
    _, rid = ask(gw, "from a key that logs", key=made["key"])
    rec = record(gw, rid)
    assert rec["key_id"] == made["id"] and rec["principal"] == made["id"]
    assert rec["request_body"]["messages"][-1]["content"] == "from a key that logs"


def test_filters_and_cursor_pages(gw: GatewayProcess) -> None:
    since = int(time.time() * 1000)
    ids = [ask(gw, f"page {i}", model="chat-other")[1] for i in range(5)]
    with pytest.raises(openai.BadRequestError):
        client(gw).chat.completions.create(model="chat-other", messages=[{"role": "user", "content": "fault:400"}])
    until(lambda: len(listing(gw, f"since={since}&model=chat-other")["data"]) == 6)
    out = listing(gw, f"since={since}&model=chat-other&status=200&limit=2")
    seen = [r["id"] for r in out["data"]]
    while out["next_cursor"] is not None:
        out = listing(gw, f"since={since}&model=chat-other&status=200&limit=2&cursor={out['next_cursor']}")
        seen += [r["id"] for r in out["data"]]
    assert seen == ids[::-1]
    failed = listing(gw, f"since={since}&errors=true")["data"]
    assert [r["status"] for r in failed] == [400] and failed[0]["model"] == "chat-other"
    assert listing(gw, f"since={since}&status=4xx")["data"][0]["id"] == failed[0]["id"]
    assert listing(gw, f"since={since}&model=chat-other&min_latency_ms=600000")["data"] == []
    assert listing(gw, f"until={since}&model=chat-other")["data"] == []
    assert all("request_body" not in r for r in listing(gw, "limit=50")["data"])  # lists: never bodies


@pytest.mark.parametrize(("query", "param"), [
    ("cursor=bm90LWEtY3Vyc29y", "cursor"),
    ("cursor=%25%25", "cursor"),
    ("status=abc", "status"),
    ("status=700", "status"),
    ("min_latency_ms=-1", "min_latency_ms"),
    ("min_latency_ms=fast", "min_latency_ms"),
    ("limit=0", "limit"),
    ("limit=5000", "limit"),
    ("since=yesterday", "since"),
    ("since=2026-03-02&until=2026-03-01", "until"),
    ("errors=maybe", "errors"),
    ("key=k_1", "key"),
])
def test_bad_filters_are_named(gw: GatewayProcess, query: str, param: str) -> None:
    status, out = call(gw, "GET", f"/admin/api/requests?{query}")
    assert status == 400, out
    assert out["error"]["param"] == param and param in out["error"]["message"]


def test_unknown_id_and_methods(gw: GatewayProcess) -> None:
    status, out = call(gw, "GET", "/admin/api/requests/no-such-request")
    assert status == 404 and out["error"]["code"] == "request_not_found"
    status, out = call(gw, "DELETE", "/admin/api/requests/no-such-request")
    assert status == 405
    status, out = call(gw, "GET", "/admin/api/requests/a/b")
    assert status == 404
    status, made = call(gw, "POST", "/admin/api/keys", {"name": "not-admin"})
    status, out = call(gw, "GET", "/admin/api/requests", key=made["key"])
    assert status == 403 and out["error"]["code"] == "admin_required"


def cli(gw: GatewayProcess, *args: str, **popen: Any) -> subprocess.Popen[str]:
    env = {**gw.env, "CLAWDBOT_MASTER_KEY": MASTER, "NO_COLOR": ""}
    return subprocess.Popen([sys.executable, "-m", "clawdbot", *args, "--url", gw.url], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def test_replay_to_another_model_prints_both_answers(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    _, rid = ask(gw, f"replay me {EMAIL}", model="chat-bodies")
    assert record(gw, rid)["has_bodies"]
    proc = cli(gw, "replay", rid, "--model", "chat-other", "--width", "140")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    head = out.splitlines()[0]
    assert "original: chat-bodies via oa" in head and "replay: chat-other via oa" in head
    # the masked request went out again: both answers echo the placeholder, side by side
    both = [ln for ln in out.splitlines() if ln.count("echo: replay me <EMAIL_1>") == 2]
    assert both and " | " in both[0], out
    assert openai_upstream.last_request is not None and openai_upstream.last_request.body["model"] == "mock-c"
    assert EMAIL not in out
    # --json, same model
    proc = cli(gw, "replay", rid, "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    doc = json.loads(out)
    assert doc["original"]["answer"] == doc["replay"]["answer"] == "echo: replay me <EMAIL_1>"
    assert doc["replay"]["model"] == "chat-bodies" and doc["replay"]["service"] == "oa"


def test_replay_refuses_what_it_cannot_send(gw: GatewayProcess) -> None:
    _, rid = ask(gw, "no bodies here")
    record(gw, rid)
    proc = cli(gw, "replay", rid)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "without its bodies" in err
    proc = cli(gw, "replay", "never-logged")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "404" in err


class Lines:
    """A child's pipe read line by line in a thread, so a test waits for a line with a deadline."""

    def __init__(self, pipe: IO[str]) -> None:
        self.q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.q.put(line)
        self.q.put(None)

    def next(self, deadline: float = DEADLINE_S) -> str:
        line = self.q.get(timeout=deadline)
        assert line is not None, "the stream ended"
        return line

    def wait_for(self, needle: str) -> str:
        end = time.monotonic() + DEADLINE_S
        while True:
            line = self.next(max(end - time.monotonic(), 0.01))
            if needle in line:
                return line


def test_tail_json_prints_a_line_per_request(gw: GatewayProcess) -> None:
    proc = cli(gw, "tail", "--json")
    only_other = cli(gw, "tail", "--model", "chat-other", "--errors")
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert only_other.stdout is not None and only_other.stderr is not None
        out, other = Lines(proc.stdout), Lines(only_other.stdout)
        Lines(proc.stderr).wait_for("following")  # subscribed: every request from now on is seen
        Lines(only_other.stderr).wait_for("following")
        ids = [ask(gw, f"tail {i}")[1] for i in range(3)]
        with pytest.raises(openai.BadRequestError):
            client(gw).chat.completions.create(model="chat-other", messages=[{"role": "user", "content": "fault:400"}])
        got = sorted((json.loads(out.next()) for _ in range(4)), key=lambda r: r["status"])
        assert sorted(r["id"] for r in got[:3]) == sorted(ids)
        assert all(r["model"] == "chat-plain" and r["status"] == 200 and r["service"] == "oa" for r in got[:3])
        assert got[3]["status"] == 400 and got[3]["model"] == "chat-other" and "request_body" not in got[3]
        line = other.next()  # the plain form: one line, no colour when piped
        assert "400" in line and "chat-other" in line and "\033[" not in line
    finally:
        for p in (proc, only_other):
            p.terminate()
            p.wait(10)


def test_the_live_stream_is_bounded(gw: GatewayProcess) -> None:
    status, out = call(gw, "GET", "/admin/api/requests/stream?bogus=1")
    assert status == 400 and out["error"]["param"] == "bogus"


def test_row_budget_on_postgresql(tmp_path: Path, openai_upstream: OpenAIUpstream,
                                  postgres: PostgresServer) -> None:  # noqa: F811
    url = postgres.create()
    extra = f"database_url: {url}\n" + "request_log: {enabled: true, flush_interval: 0.05, max_rows: 16, " \
        "prune_interval: 0.1}\n"
    text = config(openai_upstream).replace("request_log:\n  enabled: true\n  flush_interval: 0.05\n", "") + extra
    try:
        with serve_config(tmp_path, text, MASTER) as g:
            ids = [ask(g, f"budget {i}")[1] for i in range(30)]

            def newest_kept() -> bool:  # at most 16, at least 14 (a ring of 8 segments of 2), the newest
                kept = [r["id"] for r in listing(g, "limit=100")["data"]]
                return 14 <= len(kept) <= 16 and kept == ids[:-len(kept) - 1:-1]

            assert until(newest_kept), listing(g, "limit=100")
    finally:
        postgres.drop(sa.make_url(url).database or "")


def test_stopping_ends_the_live_streams_first(tmp_path: Path, openai_upstream: OpenAIUpstream) -> None:
    """SIGTERM with a `clawdbot tail` open: the gateway ends the stream as it begins to stop, so the
    tail says so and exits 0, and the server's graceful wait is not spent on it (uvicorn cancels
    what is still open when it runs out, and says so)."""
    g = serve_config(tmp_path, config(openai_upstream), MASTER).start()
    tail = cli(g, "tail")
    try:
        assert tail.stderr is not None
        err = Lines(tail.stderr)
        err.wait_for("following")
        g.stop()
        err.wait_for("the gateway ended the stream")
        assert tail.wait(60) == 0
        assert "graceful shutdown exceeded" not in g.log() and "Shutting down" in g.log()
    finally:
        tail.kill()
        g.stop()


def test_the_record_names_the_model_the_answer_named(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    openai_upstream.answer_model = "mock-a-2026-01-01"
    try:
        _, rid = ask(gw, "which model?")
    finally:
        openai_upstream.answer_model = None
    rec = record(gw, rid)
    assert (rec["model"], rec["upstream_model"], rec["response_model"]) == ("chat-plain", "mock-a", "mock-a-2026-01-01")
    _, plain = ask(gw, "and now?")
    assert record(gw, plain)["response_model"] == "mock-a"  # what the answer named: the model asked for

"""Virtual keys end to end: a real gateway process with a master key, keys made through the admin
API and the CLI, and the openai package as the client."""

from __future__ import annotations

import http.client
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.harness import GatewayProcess
from tests.upstreams.openai_server import OpenAIUpstream

MASTER = "sk-test-tenancy-master-0123456789"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, openai_upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    d = tmp_path_factory.mktemp("tenancy")
    cfg = d / "clawdbot.yaml"
    cfg.write_text(f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
  log_format: json
services:
  - name: oa
    type: openai
    endpoint: {openai_upstream.url}/v1
    timeouts: {{connect: 1, first_byte: 5, total: 10}}
costs:  # a key with a budget may only use priced models
  chat-oa: {{input: 1.0, output: 2.0}}
models:
  chat-oa: [oa/mock-a]
  chat-other: [oa/mock-b]
  tagged:
    deployments:
      - {{service: oa, model: mock-a}}
      - {{service: oa, model: mock-b, weight: 0, tags: [batch]}}
  prioritised:
    strategy: rules
    deployments:
      - {{service: oa, model: mock-b}}
      - {{service: oa, model: mock-a, tags: [fastlane]}}
    rules:
      - {{when: {{priority: high}}, use: [fastlane]}}
""")
    with GatewayProcess(["serve", "--config", str(cfg)], d / "gateway.log", {"TEST_MASTER_KEY": MASTER}) as g:
        yield g


def call(gw: GatewayProcess, method: str, path: str, body: Any = None, key: str = MASTER) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    data = None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers={"Authorization": f"Bearer {key}",
                                                    "Content-Type": "application/json"})
    resp = conn.getresponse()
    out = json.loads(resp.read())
    conn.close()
    return resp.status, out


def create_key(gw: GatewayProcess, **fields: Any) -> dict[str, Any]:
    status, out = call(gw, "POST", "/admin/api/keys", fields)
    assert status == 201, out
    return dict(out)


def client(gw: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=20)


def chat(gw: GatewayProcess, key: str, model: str = "chat-oa") -> str:
    r = client(gw, key).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    return r.choices[0].message.content or ""


def db_file(gw: GatewayProcess) -> Path:
    return Path(gw.env["CLAWDBOT_DATA_DIR"]) / "clawdbot.db"


def test_a_key_from_the_admin_api_works_for_its_models_only(gw: GatewayProcess) -> None:
    out = create_key(gw, name="ci", allowed_models=["chat-oa"], rpm=60, tags=["batch"])
    key = out["key"]
    assert key.startswith("sk-cb-") and len(key) >= 6 + 43
    assert out["hint"].startswith("sk-cb-") and key not in json.dumps(out["hint"])
    assert chat(gw, key) == "echo: hi"
    with pytest.raises(openai.PermissionDeniedError) as err:
        chat(gw, key, model="chat-other")
    assert err.value.code == "model_not_allowed"
    assert "chat-oa" in str(err.value.message)
    assert chat(gw, MASTER, model="chat-other") == "echo: hi"  # the master key may use every model


def test_lists_and_reads_never_show_the_key(gw: GatewayProcess) -> None:
    out = create_key(gw, name="secret-holder")
    status, listed = call(gw, "GET", "/admin/api/keys")
    assert status == 200 and out["id"] in [k["id"] for k in listed["data"]]
    status, shown = call(gw, "GET", f"/admin/api/keys/{out['id']}")
    assert status == 200 and shown["hint"] == out["hint"]
    assert out["key"] not in json.dumps(listed) + json.dumps(shown)
    assert "key_hash" not in shown and "key" not in shown


def test_a_revoked_key_is_refused_within_a_second(gw: GatewayProcess) -> None:
    out = create_key(gw, name="short-lived")
    assert chat(gw, out["key"]) == "echo: hi"
    status, revoked = call(gw, "POST", f"/admin/api/keys/{out['id']}/revoke")
    assert status == 200 and revoked["revoked_at"] is not None
    started = time.monotonic()
    while True:  # polls: the cache may hold the key for up to server.key_cache_ttl (1 s)
        try:
            chat(gw, out["key"])
        except openai.AuthenticationError as exc:
            assert "revoked" in str(exc.message)
            break
        assert time.monotonic() - started < 1.5, "the revoked key still works"
    assert time.monotonic() - started < 1.5


def test_an_expired_key_is_refused(gw: GatewayProcess) -> None:
    out = create_key(gw, name="old", expires_at=int(time.time() * 1000) - 1000)
    with pytest.raises(openai.AuthenticationError) as err:
        chat(gw, out["key"])
    assert "expired" in str(err.value.message)
    with pytest.raises(openai.AuthenticationError):
        chat(gw, "sk-cb-" + "x" * 43)  # well-formed, never issued


def test_a_plain_key_cannot_reach_the_admin_api_but_an_admin_key_can(gw: GatewayProcess) -> None:
    plain = create_key(gw, name="plain")["key"]
    for method, path in (("GET", "/admin/api/keys"), ("POST", "/admin/api/keys"), ("GET", "/admin/api/audit"),
                         ("POST", "/admin/reload")):
        status, out = call(gw, method, path, {} if method == "POST" else None, key=plain)
        assert status == 403, (method, path, out)
        assert out["error"]["type"] == "permission_error"
    admin = create_key(gw, name="ops", metadata={"role": "admin"})["key"]
    status, out = call(gw, "GET", "/admin/api/keys", key=admin)
    assert status == 200
    status, out = call(gw, "POST", "/admin/reload", {}, key=admin)  # as docs/api.md says: master or admin key
    assert status == 200 and out["status"] == "reloaded", out
    assert "POST /admin/reload by " in gw.wait_for_log("config reloaded (POST /admin/reload by ")
    status, out = call(gw, "GET", "/admin/api/keys", key="sk-cb-nope")
    assert status == 401


def test_users_teams_and_the_audit_log(gw: GatewayProcess) -> None:
    status, team = call(gw, "POST", "/admin/api/teams", {"name": "research", "budget_usd": 100,
                                                         "budget_period": "month"})
    assert status == 201, team
    status, user = call(gw, "POST", "/admin/api/users", {"name": "ada", "team_id": team["id"], "rpm": 30})
    assert status == 201, user
    status, dup = call(gw, "POST", "/admin/api/users", {"name": "ada"})
    assert status == 409 and dup["error"]["code"] == "conflict"
    status, bad = call(gw, "POST", "/admin/api/users", {"name": "bob", "rpm": -1})
    assert status == 400 and bad["error"]["code"] == "invalid_body"
    out = create_key(gw, name="ada's", user_id=user["id"], team_id=team["id"],
                     metadata={"api_token": "hunter2", "owner": "ada"})
    status, patched = call(gw, "PATCH", f"/admin/api/keys/{out['id']}", {"rpm": 5, "allowed_models": None})
    assert status == 200 and patched["rpm"] == 5
    status, _ = call(gw, "PATCH", f"/admin/api/users/{user['id']}", {"tpm": 1000})
    assert status == 200
    status, gone = call(gw, "DELETE", f"/admin/api/users/{user['id']}")
    assert status == 200 and gone["deleted"]
    status, audit = call(gw, "GET", "/admin/api/audit?limit=100")
    assert status == 200
    entries = audit["data"]
    actions = [(e["action"], e["target_id"]) for e in entries]
    for expected in (("team.create", team["id"]), ("user.create", user["id"]), ("key.create", out["id"]),
                     ("key.update", out["id"]), ("user.update", user["id"]), ("user.delete", user["id"])):
        assert expected in actions
    assert all(e["actor"] == "master" for e in entries[:6])
    update = next(e for e in entries if e["action"] == "key.update" and e["target_id"] == out["id"])
    assert update["before"]["rpm"] is None and update["after"]["rpm"] == 5
    text = json.dumps(audit)
    assert out["key"] not in text and "hunter2" not in text and "key_hash" not in text
    assert update["after"]["metadata"] == {"api_token": "***", "owner": "ada"}
    # paging: `before` the oldest entry of this page gives the next one
    status, page = call(gw, "GET", f"/admin/api/audit?limit=2&before={entries[1]['at']}")
    assert [e["id"] for e in page["data"]] == [e["id"] for e in entries[2:4]]


def test_the_key_is_never_stored_in_clear(gw: GatewayProcess) -> None:
    out = create_key(gw, name="stored")
    with sqlite3.connect(db_file(gw)) as db:
        rows = db.execute("SELECT key_hash, hint FROM api_keys WHERE id = ?", (out["id"],)).fetchall()
        dump = "\n".join(db.iterdump())
    assert len(rows) == 1 and len(rows[0][0]) == 64 and rows[0][0] != out["key"]
    assert out["key"] not in dump
    assert out["key"].encode() not in db_file(gw).read_bytes()


def test_openapi_document(gw: GatewayProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn.request("GET", "/openapi.json")
    doc = json.loads(conn.getresponse().read())
    conn.close()
    assert doc["openapi"] == "3.1.0"
    for path in ("/v1/chat/completions", "/v1/embeddings", "/v1/models", "/healthz", "/readyz", "/admin/reload",
                 "/admin/api/keys", "/admin/api/keys/{id}", "/admin/api/keys/{id}/revoke", "/admin/api/users",
                 "/admin/api/teams/{id}", "/admin/api/audit"):
        assert path in doc["paths"], path


def cli(gw: GatewayProcess, *args: str, key: str | None = MASTER) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDBOT_")}
    if key is not None:
        env["CLAWDBOT_MASTER_KEY"] = key
    return subprocess.run([sys.executable, "-m", "clawdbot", "keys", "--url", gw.url, *args],
                          env=env, capture_output=True, text=True, timeout=60)


def test_the_cli_creates_lists_shows_and_revokes(gw: GatewayProcess) -> None:
    made = cli(gw, "create", "--name", "from-cli", "--models", "chat-oa", "--rpm", "10", "--expires-in", "30d",
               "--budget", "5", "--period", "day")
    assert made.returncode == 0, made.stderr
    key = made.stdout.splitlines()[0]
    assert key.startswith("sk-cb-") and "only time" in made.stdout
    key_id = next(line.split()[1] for line in made.stdout.splitlines() if line.startswith("id "))
    assert chat(gw, key) == "echo: hi"
    with pytest.raises(openai.PermissionDeniedError):
        chat(gw, key, model="chat-other")

    listed = cli(gw, "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "HINT", "MODELS", "RPM", "TPM", "BUDGET", "EXPIRES", "STATUS"]
    mine = next(line for line in lines if line.startswith(key_id))
    assert "from-cli" in mine and "chat-oa" in mine and "$5/day" in mine and mine.endswith("active")
    assert lines[1].index("sk-cb-") == lines[0].index("HINT")  # columns line up
    assert key not in listed.stdout

    shown = cli(gw, "show", key_id)
    assert shown.returncode == 0 and "from-cli" in shown.stdout and key not in shown.stdout

    gone = cli(gw, "revoke", key_id)
    assert gone.returncode == 0 and key_id in gone.stdout
    assert "revoked" in cli(gw, "show", key_id).stdout
    started = time.monotonic()
    while True:
        try:
            chat(gw, key)
        except openai.AuthenticationError:
            break
        assert time.monotonic() - started < 1.5


def test_the_cli_explains_its_failures(gw: GatewayProcess) -> None:
    out = cli(gw, "list", key=None)
    assert out.returncode == 2 and "CLAWDBOT_MASTER_KEY" in out.stderr
    out = cli(gw, "list", key="wrong")
    assert out.returncode == 1 and "401" in out.stderr
    out = cli(gw, "show", "k_missing")
    assert out.returncode == 1 and "404" in out.stderr


def upstream_model(gw: GatewayProcess, key: str, model: str, headers: dict[str, str] | None = None) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    conn.request("POST", "/v1/chat/completions", body=body, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.status == 200
    attempts = resp.getheader("x-clawdbot-attempts") or ""
    return attempts.split(";")[0]  # "oa/mock-b"


def test_a_keys_tag_and_priority_steer_routing(gw: GatewayProcess) -> None:
    tagged = create_key(gw, tags=["batch"], metadata={"priority": "high"})["key"]
    plain = create_key(gw)["key"]
    assert upstream_model(gw, plain, "tagged") == "oa/mock-a"
    assert upstream_model(gw, tagged, "tagged") == "oa/mock-b"  # the key's first tag
    assert upstream_model(gw, tagged, "tagged", {"X-Clawdbot-Tag": "none"}) == "oa/mock-a"  # the header wins
    assert upstream_model(gw, plain, "prioritised") == "oa/mock-b"
    assert upstream_model(gw, tagged, "prioritised") == "oa/mock-a"  # the key's priority
    # a caller cannot promote itself past its key's priority... but a key without one may set its own
    assert upstream_model(gw, plain, "prioritised", {"X-Clawdbot-Priority": "high"}) == "oa/mock-a"

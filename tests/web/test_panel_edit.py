"""Route edits from the control panel (web/panel.py, config/edit.py) against a real gateway process
and two test upstreams: a preview changes nothing, a bad edit is refused with the loader's file:line
error, an applied edit is written with the file's comments kept, hot-reloaded, audited, and moves
the traffic; a gateway without a config file refuses edits. Services: renamed with every reference
rewritten (a taken or bad name refused by field), the keys the form has no field for kept as the
file has them, secret headers and a proxy's password only as ${VAR}, every bound a 400."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.harness import GatewayProcess, openai_upstreams
from tests.upstreams.openai_server import OpenAIUpstream
from tests.web.conftest import MASTER_KEY
from tests.web.test_panel_api import Session


def config(a: OpenAIUpstream, b: OpenAIUpstream) -> str:
    return f"""# the gateway of the panel tests
server:
  master_key: {MASTER_KEY}   # never in a real file
services:
  - name: a
    type: openai
    endpoint: {a.url}/v1
  - name: b
    type: openai
    endpoint: {b.url}/v1
    auth: {{type: api_key, key: "${{B_KEY}}"}}
  - name: legacy
    type: openai
    endpoint: {b.url}/v1
    auth: {{type: api_key, key: sk-typed-into-the-file-0123}}
  - name: extras
    type: openai
    endpoint: {b.url}/v1
    max_pool: 8   # kept through panel edits
    headers: {{X-Team: blue, X-Api-Key: sk-literal-header-0123}}
    limits: {{max_queue: 5, fair_share: {{by: team}}}}
models:
  # the one the panel edits
  split:
    strategy: weighted
    deployments:
      - {{service: a, model: mock-a, weight: 1}}
      - {{service: b, model: mock-a, weight: 1}}
    log_bodies: false   # kept through edits
"""


@pytest.fixture(scope="module")
def ups() -> Iterator[dict[str, OpenAIUpstream]]:
    with openai_upstreams("a", "b") as servers:
        yield servers


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, ups: dict[str, OpenAIUpstream]) -> Iterator[GatewayProcess]:
    d = tmp_path_factory.mktemp("panel-edit")
    (d / "clawdbot.yaml").write_text(config(ups["a"], ups["b"]))
    with GatewayProcess(["serve", "--config", str(d / "clawdbot.yaml")], d / "gateway.log",
                        {"CLAWDBOT_DATA_DIR": str(d), "B_KEY": "sk-b-from-the-environment-0123"}) as g:
        yield g


def path_of(gw: GatewayProcess) -> Path:
    return Path(gw.args[gw.args.index("--config") + 1])


def entry(weight_a: float, weight_b: float, service_b: str = "b") -> dict[str, Any]:
    return {"strategy": "weighted", "deployments": [{"service": "a", "model": "mock-a", "weight": weight_a},
                                                     {"service": service_b, "model": "mock-a", "weight": weight_b}]}


def test_a_preview_shows_the_diff_and_writes_nothing(gw: GatewayProcess) -> None:
    before = path_of(gw).read_text()
    status, out = Session(gw, MASTER_KEY).send("POST", "/panel/api/models/split", {"entry": entry(0, 1)})
    assert status == 200 and out["valid"] and not out["applied"]
    assert "-      - {service: a, model: mock-a, weight: 1}" in out["diff"]
    assert "+      - {service: a, model: mock-a, weight: 0}" in out["diff"]
    assert path_of(gw).read_text() == before


def test_an_edit_the_loader_refuses_is_not_written(gw: GatewayProcess) -> None:
    before = path_of(gw).read_text()
    status, out = Session(gw, MASTER_KEY).send("POST", "/panel/api/models/split",
                                               {"entry": entry(1, 1, service_b="nope"), "apply": True})
    assert status == 200 and not out["valid"] and not out["applied"]
    assert "clawdbot.yaml:" in out["error"] and "nope" in out["error"]
    assert path_of(gw).read_text() == before


def test_an_applied_edit_moves_the_traffic_and_keeps_the_file_s_comments(
        gw: GatewayProcess, ups: dict[str, OpenAIUpstream]) -> None:
    s = Session(gw, MASTER_KEY)
    status, out = s.send("POST", "/panel/api/models/split", {"entry": entry(0, 1), "apply": True})
    assert status == 200 and out["applied"], out
    text = path_of(gw).read_text()
    assert "# the one the panel edits" in text and "log_bodies: false   # kept through edits" in text
    assert "{service: a, model: mock-a, weight: 0}" in text
    before = {n: u.request_count for n, u in ups.items()}
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    for _ in range(6):
        c.chat.completions.create(model="split", messages=[{"role": "user", "content": "hi"}])
    assert ups["b"].request_count - before["b"] == 6 and ups["a"].request_count == before["a"]
    [split] = [m for m in s.get("/panel/api/overview")[1]["models"] if m["name"] == "split"]
    assert [d["weight"] for d in split["deployments"]] == [0.0, 1.0]
    status, audit = s.get("/panel/api/admin/audit")
    assert any(e["action"] == "config.update" and e["target_id"] == "models.split" and e["actor"] == "master"
               for e in audit["data"]), json.dumps(audit)[:2000]


def test_a_viewer_cannot_edit(gw: GatewayProcess) -> None:
    admin = Session(gw, MASTER_KEY)
    status, key = admin.send("POST", "/panel/api/admin/keys", {"name": "v", "metadata": {"panel_role": "viewer"}})
    assert status == 201
    status, out = Session(gw, key["key"]).send("POST", "/panel/api/models/split", {"entry": entry(1, 1)})
    assert status == 403 and out["error"]["code"] == "panel_read_only"


def test_without_a_config_file_routes_cannot_be_edited(tmp_path: Path, ups: dict[str, OpenAIUpstream]) -> None:
    env = {"CLAWDBOT_MODEL_ENDPOINT": ups["a"].url + "/v1", "CLAWDBOT_MASTER_KEY": MASTER_KEY,
           "CLAWDBOT_DATA_DIR": str(tmp_path)}
    with GatewayProcess(["serve"], tmp_path / "gateway.log", env, cwd=tmp_path) as g:
        status, out = Session(g, MASTER_KEY).send("POST", "/panel/api/models/x", {"entry": entry(1, 1)})
    assert status == 409 and out["error"]["code"] == "config_read_only"
    assert "without a config file" in out["error"]["message"]


def test_services_are_shown_with_their_secrets_only_as_references(gw: GatewayProcess) -> None:
    status, out = Session(gw, MASTER_KEY).get("/panel/api/services")
    assert status == 200 and out["editable"]
    by_name = {s["name"]: s for s in out["services"]}
    assert by_name["b"]["auth"]["key"] == "${B_KEY}"
    assert by_name["legacy"]["auth"]["key"] == "********"
    assert "sk-typed-into-the-file" not in json.dumps(out) and "sk-b-from-the-environment" not in json.dumps(out)


def test_a_service_is_tested_before_it_is_saved(gw: GatewayProcess, ups: dict[str, OpenAIUpstream]) -> None:
    s = Session(gw, MASTER_KEY)
    status, out = s.send("POST", "/panel/api/service-test",
                         {"service": {"name": "c", "type": "openai", "endpoint": ups["a"].url + "/v1"}})
    assert status == 200 and out["ok"] and "mock-a" in out["models"]
    status, out = s.send("POST", "/panel/api/service-test",
                         {"service": {"name": "c", "type": "openai", "endpoint": "http://127.0.0.1:9/v1"}})
    assert status == 200 and not out["ok"] and out["detail"]
    status, out = s.send("POST", "/panel/api/service-test", {"service": {"name": "c", "type": "nope"}})
    assert status == 200 and not out["ok"] and "expected one of" in out["detail"]


def test_a_literal_secret_is_never_written(gw: GatewayProcess, ups: dict[str, OpenAIUpstream]) -> None:
    before = path_of(gw).read_text()
    service = {"type": "openai", "endpoint": ups["b"].url + "/v1", "auth": {"type": "api_key", "key": "sk-raw-1234"}}
    status, out = Session(gw, MASTER_KEY).send("POST", "/panel/api/services/c", {"service": service, "apply": True})
    assert status == 400 and out["error"]["code"] == "secret_in_config" and "sk-raw-1234" not in json.dumps(out)
    assert path_of(gw).read_text() == before


def test_a_service_added_and_removed(gw: GatewayProcess, ups: dict[str, OpenAIUpstream]) -> None:
    s = Session(gw, MASTER_KEY)
    service = {"type": "openai", "endpoint": ups["b"].url + "/v1", "auth": {"type": "api_key", "key": "${B_KEY}"}}
    status, out = s.send("POST", "/panel/api/services/c", {"service": service, "apply": True})
    assert status == 200 and out["applied"], out
    assert "  - name: c\n    type: openai\n" in path_of(gw).read_text()
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    before = ups["b"].request_count
    c.chat.completions.create(model="c/mock-a", messages=[{"role": "user", "content": "hi"}])
    assert ups["b"].request_count == before + 1
    status, out = s.send("POST", "/panel/api/services/c", {"service": None, "apply": True})
    assert status == 200 and out["applied"] and "name: c" not in path_of(gw).read_text()
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="c/mock-a", messages=[{"role": "user", "content": "hi"}])


def test_plugins_listed_with_their_settings_forms_then_pii_masking_enabled(
        gw: GatewayProcess, ups: dict[str, OpenAIUpstream]) -> None:
    s = Session(gw, MASTER_KEY)
    status, out = s.get("/panel/api/plugins")
    assert status == 200 and out["editable"] and out["configured"] == []
    pii = next(p for p in out["installed"] if p["name"] == "pii")
    assert pii["source"] == "clawdbot.plugins.pii:PiiPlugin" and "mode" in json.dumps(pii["schema"])
    secret = [{"name": "pii", "with": {"mode": "mask", "api_key": "sk-raw-secret-1"}}]
    status, out = s.send("POST", "/panel/api/plugins", {"plugins": secret})
    assert status == 400 and out["error"]["code"] == "secret_in_config" and "sk-raw-secret-1" not in json.dumps(out)
    status, out = s.send("POST", "/panel/api/plugins", {"plugins": [{"name": "pii", "with": {"mode": "mask"},
                                                                     "models": ["split"]}], "apply": True})
    assert status == 200 and out["applied"], out
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    r = c.chat.completions.with_raw_response.create(
        model="split", messages=[{"role": "user", "content": "mail zhang.san@example.org please"}])
    answer = r.parse().choices[0].message.content or ""
    assert "zhang.san@example.org" in answer  # masked on the way up, restored in the answer
    seen = ups["b"].last_request  # the weights of an earlier test send `split` to b
    assert seen is not None and seen.body["messages"][0]["content"] == "mail <EMAIL_1> please"
    status, out = s.send("POST", "/panel/api/plugins", {"plugins": [], "apply": True})
    assert status == 200 and out["applied"] and "plugins:" not in path_of(gw).read_text()


def test_a_literal_key_already_in_the_file_survives_an_edit_sent_back_masked(
        gw: GatewayProcess, ups: dict[str, OpenAIUpstream]) -> None:
    """The page is shown `********` for the key the file holds as it is; the service sent back
    with that mask (its timeouts changed) keeps the file's key, and the key is never echoed."""
    s = Session(gw, MASTER_KEY)
    legacy = next(x for x in s.get("/panel/api/services")[1]["services"] if x["name"] == "legacy")
    assert legacy["auth"]["key"] == "********"
    legacy["timeouts"] = {"total": 42}
    status, out = s.send("POST", "/panel/api/services/legacy", {"service": legacy, "apply": True})
    assert status == 200 and out["applied"], out
    assert "sk-typed-into-the-file" not in json.dumps(out)
    text = path_of(gw).read_text()
    assert "key: sk-typed-into-the-file-0123" in text and "total: 42" in text and "********" not in text
    status, audit = s.get("/panel/api/admin/audit?action=config.update&target_id=services.legacy")
    assert status == 200 and audit["data"] and "sk-typed-into-the-file" not in json.dumps(audit)
    # the mask where the file holds nothing to keep is refused, and nothing is written
    fresh = {"type": "openai", "endpoint": ups["b"].url + "/v1", "auth": {"type": "api_key", "key": "********"}}
    status, out = s.send("POST", "/panel/api/services/d", {"service": fresh, "apply": True})
    assert status == 400 and out["error"]["code"] == "secret_in_config" and "holds none" in out["error"]["message"]
    assert path_of(gw).read_text() == text


def test_a_whole_model_added_then_removed(gw: GatewayProcess, ups: dict[str, OpenAIUpstream]) -> None:
    s = Session(gw, MASTER_KEY)
    new = {"strategy": "ordered", "deployments": [{"service": "a", "model": "mock-b"}], "fallbacks": ["split"]}
    status, out = s.send("POST", "/panel/api/models/fresh", {"entry": new, "apply": True})
    assert status == 200 and out["applied"] and "+  fresh:" in out["diff"], out
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    before = ups["a"].request_count
    c.chat.completions.create(model="fresh", messages=[{"role": "user", "content": "hi"}])
    assert ups["a"].request_count == before + 1
    names = [m["name"] for m in s.get("/panel/api/overview")[1]["models"]]
    assert "fresh" in names
    # a model another one falls back to cannot go: the loader's error, nothing written
    text = path_of(gw).read_text()
    status, out = s.send("POST", "/panel/api/models/split", {"entry": None, "apply": True})
    assert status == 200 and not out["valid"] and not out["applied"] and "split" in out["error"]
    assert path_of(gw).read_text() == text
    status, out = s.send("POST", "/panel/api/models/fresh", {"entry": None, "apply": True})
    assert status == 200 and out["applied"] and "fresh:" not in path_of(gw).read_text()
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="fresh", messages=[{"role": "user", "content": "hi"}])


def _service(s: Session, name: str) -> dict[str, Any]:
    return next(x for x in s.get("/panel/api/services")[1]["services"] if x["name"] == name)


def test_a_service_renamed_with_every_reference_rewritten(gw: GatewayProcess, ups: dict[str, OpenAIUpstream]) -> None:
    s = Session(gw, MASTER_KEY)
    a = _service(s, "a")
    status, out = s.send("POST", "/panel/api/services/a", {"service": {**a, "name": "a2"}})
    assert status == 200 and out["valid"] and not out["applied"], out
    assert "-  - name: a\n" in out["diff"] and "+  - name: a2\n" in out["diff"]
    assert "+      - {service: a2, model: mock-a, weight: 0}" in out["diff"]  # the route's reference, in the preview
    status, out = s.send("POST", "/panel/api/services/a", {"service": {**a, "name": "a2"}, "apply": True})
    assert status == 200 and out["applied"], out
    text = path_of(gw).read_text()
    assert "  - name: a2\n" in text and "service: a2" in text and "service: a," not in text
    assert "# the one the panel edits" in text and "# the gateway of the panel tests" in text
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    before = ups["a"].request_count
    c.chat.completions.create(model="a2/mock-a", messages=[{"role": "user", "content": "hi"}])
    assert ups["a"].request_count == before + 1
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="a/mock-a", messages=[{"role": "user", "content": "hi"}])
    status, audit = s.get("/panel/api/admin/audit?action=config.update&target_id=services.a")
    assert status == 200 and audit["data"][0]["after"]["name"] == "a2", json.dumps(audit)[:2000]
    # and back, so that the other tests find `a`
    status, out = s.send("POST", "/panel/api/services/a2", {"service": {**_service(s, "a2"), "name": "a"},
                                                            "apply": True})
    assert status == 200 and out["applied"] and "service: a2" not in path_of(gw).read_text(), out


def test_a_rename_to_a_taken_or_bad_name_is_refused_by_field(gw: GatewayProcess) -> None:
    s = Session(gw, MASTER_KEY)
    before = path_of(gw).read_text()
    b = _service(s, "b")
    status, out = s.send("POST", "/panel/api/services/b", {"service": {**b, "name": "legacy"}, "apply": True})
    assert status == 409 and out["error"]["code"] == "name_taken" and out["error"]["param"] == "name", out
    assert "legacy" in out["error"]["message"]
    for bad in ("x/y", "", "a b", "n" * 201):
        status, out = s.send("POST", "/panel/api/services/b", {"service": {**b, "name": bad}, "apply": True})
        assert status == 400 and out["error"]["param"] == "name", (bad, out)
    status, out = s.send("POST", "/panel/api/services/nope", {"service": {**b, "name": "other"}})
    assert status == 400 and out["error"]["param"] == "name" and "no service `nope`" in out["error"]["message"]
    assert path_of(gw).read_text() == before


def test_settings_without_a_field_are_kept_and_a_literal_header_survives_masked(gw: GatewayProcess) -> None:
    """The page sends the service as GET gave it, with the breaker and a limit set: the keys it has
    no field for (max_pool with its comment, limits.fair_share), and the literal X-Api-Key the page
    saw only masked, stay in the file as they were."""
    s = Session(gw, MASTER_KEY)
    extras = _service(s, "extras")
    assert extras["headers"] == {"X-Team": "blue", "X-Api-Key": "********"}
    assert "sk-literal-header" not in json.dumps(s.get("/panel/api/services")[1])
    extras["breaker"] = {"failures": 3, "cooldown": 5}
    extras["limits"]["max_inflight"] = 2
    status, out = s.send("POST", "/panel/api/services/extras", {"service": extras, "apply": True})
    assert status == 200 and out["applied"], out
    assert "sk-literal-header" not in json.dumps(out)
    text = path_of(gw).read_text()
    assert "    max_pool: 8   # kept through panel edits\n" in text
    assert "X-Api-Key: sk-literal-header-0123" in text and "fair_share: {by: team}" in text
    assert "failures: 3" in text and "max_inflight: 2" in text
    got = _service(s, "extras")
    assert got["breaker"] == {"failures": 3, "cooldown": 5} and got["limits"]["max_inflight"] == 2
    # a loader's refusal names the key: shown by its field in the page
    extras["breaker"] = {"error_rate": 2}
    status, out = s.send("POST", "/panel/api/services/extras", {"service": extras})
    assert status == 200 and not out["valid"] and out["path"].endswith(".breaker.error_rate"), out


def test_a_secret_header_or_proxy_password_is_only_a_reference(gw: GatewayProcess) -> None:
    s = Session(gw, MASTER_KEY)
    before = path_of(gw).read_text()
    base = {"type": "openai", "endpoint": "http://127.0.0.1:9/v1"}
    for headers in ({"Authorization": "Bearer sk-raw-header-1"}, {"X-Custom": "sk-raw-header-1"},
                    {"X-Session-Token": "raw-header-1"}, {"X-Trace": "A1b2C3d4E5f6G7h8I9j0K1l2raw-header-1"}):
        status, out = s.send("POST", "/panel/api/services/c", {"service": {**base, "headers": headers}, "apply": True})
        assert status == 400 and out["error"]["code"] == "secret_in_config", (headers, out)
        assert "raw-header-1" not in json.dumps(out)
    status, out = s.send("POST", "/panel/api/services/c", {"service": {**base, "proxy": "http://u:pw-raw-1@127.0.0.1:3128"}})
    assert status == 400 and out["error"]["code"] == "secret_in_config" and "pw-raw-1" not in json.dumps(out)
    # references are fine (a preview: valid, nothing written)
    ok = {**base, "headers": {"Authorization": "${B_KEY}", "X-Team": "red"}, "proxy": "http://u:${B_KEY}@127.0.0.1:3128"}
    status, out = s.send("POST", "/panel/api/services/c", {"service": ok})
    assert status == 200 and out["valid"], out
    assert path_of(gw).read_text() == before


def test_what_the_page_sends_is_bounded(gw: GatewayProcess) -> None:
    s = Session(gw, MASTER_KEY)
    before = path_of(gw).read_text()
    base = {"type": "openai", "endpoint": "http://127.0.0.1:9/v1"}
    deep: dict[str, Any] = {}
    for _ in range(20):
        deep = {"x": deep}
    for service in ({**base, "headers": {f"X-H{i}": "v" for i in range(65)}}, {**base, "metadata": deep},
                    {**base, "metadata": {"note": "n" * 9000}}, {**base, "metadata": {"list": list(range(600))}}):
        status, out = s.send("POST", "/panel/api/services/c", {"service": service})
        assert status == 400 and out["error"]["code"] == "invalid_value", out
    for body in ({"service": "x"}, {"service": {**base}, "apply": "yes"}, {"service": {**base}, "extra": 1}):
        status, out = s.send("POST", "/panel/api/services/c", body)
        assert status == 400, (body, out)
    status, out = s.send("POST", "/panel/api/services/c", {"service": {**base, "breaker": {"failures": "many"}}})
    assert status == 200 and not out["valid"] and out["path"].endswith("breaker.failures"), out
    status, out = s.send("POST", "/panel/api/service-test", {"service": {**base, "metadata": deep}})
    assert status == 400 and out["error"]["code"] == "invalid_value"
    assert path_of(gw).read_text() == before


def test_a_file_broken_by_hand_after_start_is_a_clear_refusal(gw: GatewayProcess) -> None:
    """The file changed under a running gateway: YAML that does not parse, or nests deeper than any
    config may (a parser would spend seconds on it), is a 409 naming the file, never a 500."""
    path = path_of(gw)
    good = path.read_text()
    s = Session(gw, MASTER_KEY)
    try:
        for broken in (good + "\nmodels: [unclosed\n", good + "\nextra: " + "[" * 5000 + "]" * 5000 + "\n"):
            path.write_text(broken)
            status, out = s.send("POST", "/panel/api/models/split", {"entry": entry(1, 1)})
            assert status == 409 and out["error"]["code"] == "config_unreadable", out
            assert "clawdbot.yaml" in out["error"]["message"]
            status, out = s.send("POST", "/panel/api/services/a", {"service": {"type": "openai",
                                                                               "endpoint": "http://127.0.0.1:9/v1"}})
            assert status == 409 and out["error"]["code"] == "config_unreadable", out
            for listing in ("/panel/api/services", "/panel/api/plugins"):  # the running config, not editable
                status, out = s.get(listing)
                assert status == 200 and out["editable"] is False and "cannot be read" in out["reason"], out
            assert path.read_text() == broken
    finally:
        path.write_text(good)
    status, out = s.send("POST", "/panel/api/models/split", {"entry": entry(1, 1)})
    assert status == 200 and out["valid"], out

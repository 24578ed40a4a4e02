"""The plugin pipeline end to end: a third-party plugin package built as a wheel here, installed
with uv, found through its entry points by a real gateway process, driven with the openai package.
Order of the hooks, short-circuit answers (whole and streamed), refusals in the client's dialect,
guards that fail closed and observers that do not, time budgets, per-key overrides, config errors
at file:line, and hot reload."""

from __future__ import annotations

import http.client
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.harness import GatewayProcess
from tests.e2e.wheel import build_wheel, install
from tests.upstreams.openai_server import OpenAIUpstream

MASTER = "sk-test-plugins-master-0123456789"
PACKAGE = Path(__file__).parent.parent / "fixtures" / "plugin_wheel" / "clawdbot_testplugins"
ENTRY_POINTS = {n: f"clawdbot_testplugins:{c}" for n, c in (
    ("shout", "Shout"), ("order", "Order"), ("canned", "Canned"), ("guard_fails", "GuardFails"),
    ("observer_fails", "ObserverFails"))}
PLUGINS = """
plugins:
  - name: order
    with: {label: A}
  - name: canned
  - name: shout
    with: {suffix: "!"}
    models: [chat, "guard*"]
  - name: order
    id: order2
    with: {label: B}
  - name: guard_fails
    models: [guarded]
  - name: observer_fails
    models: [observed]
  - name: guard_fails
    id: slow_guard
    with: {how: hang}
    models: [slow]
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(PACKAGE, "clawdbot_testplugins", "1.0.0", ENTRY_POINTS, d)
    return install(wheel, d / "site")


def config(upstream: OpenAIUpstream, plugins: str = PLUGINS) -> str:
    return f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
  log_format: json
services:
  - name: oa
    type: openai
    endpoint: {upstream.url}/v1
    timeouts: {{connect: 1, first_byte: 5, total: 10}}
models:
  chat: [oa/mock-a]
  plain: [oa/mock-b]
  guarded: [oa/mock-c]
  observed: [oa/mock-d]
  slow: [oa/mock-e]
{plugins}"""


def start(tmp: Path, site: Path, text: str) -> GatewayProcess:
    cfg = tmp / "clawdbot.yaml"
    cfg.write_text(text)
    return GatewayProcess(["serve", "--config", str(cfg)], tmp / "gateway.log",
                          {"TEST_MASTER_KEY": MASTER,
                           "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))})


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, site: Path,
       openai_upstream: OpenAIUpstream) -> Iterator[GatewayProcess]:
    with start(tmp_path_factory.mktemp("plugins"), site, config(openai_upstream)) as g:
        yield g


def client(gw: GatewayProcess, key: str = MASTER) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=20)


def access_line(gw: GatewayProcess, request_id: str) -> dict[str, Any]:
    line = gw.wait_for_log(f'"request_id":"{request_id}","event":"access"')
    found = [json.loads(x) for x in line.splitlines() if request_id in x and '"event":"access"' in x]
    return found[-1]


def ask(gw: GatewayProcess, text: str, model: str = "chat", key: str = MASTER) -> tuple[str, dict[str, Any], Any]:
    raw = client(gw, key).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}])
    rid = raw.headers["x-request-id"]
    return raw.parse().choices[0].message.content or "", access_line(gw, rid), raw.headers


def test_pre_in_order_post_in_reverse(gw: GatewayProcess) -> None:
    text, line, headers = ask(gw, "hello there")
    assert text == "ECHO: HELLO THERE!"
    assert line["plugins"] == "order: pre A; order2: pre B; order2: post B; shout: post; order: post A"
    assert headers["x-order-a"] == "pre" and headers["x-order-b"] == "pre"
    # scoped by model: shout is not on `plain`
    text, line, _ = ask(gw, "hello there", model="plain")
    assert text == "echo: hello there"
    assert line["plugins"] == "order: pre A; order2: pre B; order2: post B; order: post A"


def test_a_stream_goes_through_the_chunk_hooks(gw: GatewayProcess) -> None:
    stream = client(gw).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "one two three"}], stream=True,
        stream_options={"include_usage": True})
    parts, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert "".join(parts) == "ECHO: ONE TWO THREE!"  # the suffix came from on_stream_end
    assert usage is not None and usage.completion_tokens > 0


def test_a_short_circuit_answer_whole_and_streamed(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    before = openai_upstream.request_count
    text, line, headers = ask(gw, "a canned question")
    assert text == "a canned answer" and headers["x-canned"] == "yes"
    # the plugins before it saw the answer on its way back; shout (after it) never ran
    assert line["plugins"] == "order: pre A; canned: answered; order: post A"
    assert line["cost_free"] is True and line.get("service") is None
    stream = client(gw).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "canned again"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "a canned answer"
    assert openai_upstream.request_count == before  # no model was asked


def test_a_refusal_is_an_error_in_the_clients_dialect(gw: GatewayProcess) -> None:
    with pytest.raises(openai.PermissionDeniedError) as err:
        client(gw).chat.completions.create(model="chat", messages=[{"role": "user", "content": "please refuse"}])
    assert err.value.status_code == 403
    body: Any = err.value.body
    assert body["code"] == "canned_refusal" and body["message"] == "refused by the canned plugin"
    rid = err.value.response.headers["x-request-id"]
    assert access_line(gw, rid)["plugins"] == "order: pre A; order: error A"


def test_a_failing_guard_fails_closed_and_an_observer_does_not(gw: GatewayProcess) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        client(gw).chat.completions.create(model="guarded", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 503
    body: Any = err.value.body
    assert body["code"] == "plugin_failed" and "guard_fails" in body["message"]
    assert "secret detail" not in json.dumps(body)  # the plugin's own error stays in the log
    rid = err.value.response.headers["x-request-id"]
    log = gw.wait_for_log("plugin guard_fails failed (RuntimeError) in pre")
    assert rid in log
    text, _, _ = ask(gw, "still answered", model="observed")
    assert text == "echo: still answered"
    gw.wait_for_log("plugin observer_fails failed (RuntimeError) in pre; the request goes on")


def test_a_plugin_over_its_time_budget_is_a_failure(gw: GatewayProcess) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        client(gw).chat.completions.create(model="slow", messages=[{"role": "user", "content": "hi"}])
    body: Any = err.value.body
    assert err.value.status_code == 503 and "slow_guard timed out" in body["message"]


def admin(gw: GatewayProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn.request(method, path, body=None if body is None else json.dumps(body),
                 headers={"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    out = json.loads(resp.read())
    conn.close()
    return resp.status, out


def test_a_key_turns_a_plugin_off_or_changes_its_settings(gw: GatewayProcess) -> None:
    status, off = admin(gw, "POST", "/admin/api/keys", {"metadata": {"plugins": {"shout": False}}})
    assert status == 201, off
    status, other = admin(gw, "POST", "/admin/api/keys", {"metadata": {"plugins": {"shout": {"suffix": "?"}}}})
    assert status == 201, other
    assert ask(gw, "quiet please", key=off["key"])[0] == "echo: quiet please"
    assert ask(gw, "asking", key=other["key"])[0] == "ECHO: ASKING?"
    assert ask(gw, "asking")[0] == "ECHO: ASKING!"  # the configured settings for everyone else


def test_a_keys_plugin_overrides_are_checked_before_it_is_saved(gw: GatewayProcess) -> None:
    status, out = admin(gw, "POST", "/admin/api/keys", {"metadata": {"plugins": {"shuot": False}}})
    assert status == 400 and out["error"]["param"] == "metadata.plugins.shuot"
    assert "configured" in out["error"]["message"] and "shout" in out["error"]["message"]
    status, out = admin(gw, "POST", "/admin/api/keys", {"metadata": {"plugins": {"shout": {"suffix": 3}}}})
    assert status == 400 and out["error"]["param"] == "metadata.plugins.shout.suffix"
    assert "Expected `str`, got `int`" in out["error"]["message"]
    status, made = admin(gw, "POST", "/admin/api/keys", {"name": "later"})
    assert status == 201
    status, out = admin(gw, "PATCH", f"/admin/api/keys/{made['id']}", {"metadata": {"plugins": {"shout": "loud"}}})
    assert status == 400 and out["error"]["param"] == "metadata.plugins.shout"


def test_a_bad_plugin_config_stops_start_up_at_its_line(tmp_path: Path, site: Path,
                                                         openai_upstream: OpenAIUpstream) -> None:
    bad_setting = config(openai_upstream, "plugins:\n  - name: shout\n    with: {sufix: '!'}\n")
    code, out = start(tmp_path, site, bad_setting).run_to_exit()
    line = bad_setting.splitlines().index("    with: {sufix: '!'}") + 1
    assert code == 2 and f"clawdbot.yaml:{line}" in out and "sufix" in out, out
    unknown = config(openai_upstream, "plugins:\n  - name: shuot\n")
    code, out = start(tmp_path, site, unknown).run_to_exit()
    line = unknown.splitlines().index("  - name: shuot") + 1
    assert code == 2 and f"clawdbot.yaml:{line}" in out and "unknown plugin 'shuot'" in out, out
    assert "shout" in out  # the installed ones are listed


def test_hot_reload_swaps_the_plugins_and_refuses_a_bad_change(tmp_path: Path, site: Path,
                                                                openai_upstream: OpenAIUpstream) -> None:
    with start(tmp_path, site, config(openai_upstream, "plugins:\n  - name: shout\n")) as g:
        assert ask(g, "loud")[0] == "ECHO: LOUD"
        cfg = tmp_path / "clawdbot.yaml"
        cfg.write_text(config(openai_upstream, "plugins:\n  - name: shout\n    with: {suffix: ' :)'}\n"))
        assert g.proc is not None
        g.proc.send_signal(signal.SIGHUP)
        g.wait_for_log("config reloaded (SIGHUP)")
        assert ask(g, "loud")[0] == "ECHO: LOUD :)"
        cfg.write_text(config(openai_upstream, "plugins:\n  - name: shout\n    with: {suffix: 3}\n"))
        status, out = admin(g, "POST", "/admin/reload")
        assert status == 400 and out["error"]["code"] == "config_rejected"
        assert "clawdbot.yaml:" in out["error"]["message"] and "suffix" in out["error"]["message"]
        assert ask(g, "loud")[0] == "ECHO: LOUD :)"  # the previous chain keeps serving

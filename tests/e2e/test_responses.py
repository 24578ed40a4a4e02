"""OpenAI's Responses API (POST /v1/responses, stored responses) through a real gateway with the
`openai` package: text and items in, every upstream dialect out (OpenAI, Ollama, Anthropic), the
semantic stream events, function calls and their results, reasoning, JSON schema, the output
limit, an upstream failing mid-stream, previous_response_id across turns, stored responses per key
(another key sees none), input_items, delete, retention, store=false, and what is refused by name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.e2e.harness import GatewayProcess, http_call, serve_config
from tests.upstreams.anthropic_server import AnthropicUpstream
from tests.upstreams.ollama_server import OllamaTestServer
from tests.upstreams.openai_server import OpenAIUpstream

MASTER = "sk-test-responses-0123456789"
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


@pytest.fixture(scope="module")
def anthropic_up() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream(api_key="sk-ant-responses") as u:
        yield u


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, openai_upstream: OpenAIUpstream,
       ollama_upstream: OllamaTestServer, anthropic_up: AnthropicUpstream) -> Iterator[GatewayProcess]:
    with serve_config(tmp_path_factory.mktemp("responses"), f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
services:
  - name: oa
    type: openai
    endpoint: {openai_upstream.url}/v1
    breaker: {{enabled: false}}
  - name: ol
    type: ollama
    endpoint: {ollama_upstream.url}
  - name: an
    type: anthropic
    endpoint: {anthropic_up.url}
    auth: {{key: sk-ant-responses}}
models:
  r-oa: [oa/mock-a]
  r-ol: [ol/llama3.2:latest]
  r-an: [an/claude-test]
""", MASTER) as g:
        yield g


def client(gw: GatewayProcess, key: str = MASTER) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=20)


def sent(up: OpenAIUpstream) -> dict[str, Any]:
    req = up.last_request
    assert req is not None
    return dict(req.body)


@pytest.mark.parametrize("model", ["r-oa", "r-ol", "r-an"])
def test_text_whole_and_streamed_from_every_upstream(gw: GatewayProcess, model: str) -> None:
    c = client(gw)
    r = c.responses.create(model=model, input="Say hello", instructions="Be brief.")
    assert r.object == "response" and r.status == "completed" and r.id.startswith("resp_")
    assert "Say hello" in r.output_text and r.model == model
    assert r.usage is not None and r.usage.output_tokens > 0 and r.usage.input_tokens > 0
    assert r.instructions == "Be brief." and r.store is True
    with c.responses.stream(model=model, input="one two three") as s:
        kinds = [ev.type for ev in s]
        final = s.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds and kinds.count("response.output_item.done") == 1
    assert "one two three" in final.output_text and final.usage is not None and final.usage.output_tokens > 0
    # streamed responses are stored too
    assert c.responses.retrieve(final.id).output_text == final.output_text


def test_instructions_and_items_reach_the_upstream(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    img = "data:image/png;base64,iVBORw0KGgo="
    client(gw).responses.create(model="r-oa", instructions="You are terse.", temperature=0.5, max_output_tokens=50,
                                input=[{"role": "developer", "content": "Answer in English."},
                                       {"role": "user", "content": [
                                           {"type": "input_text", "text": "What is this?"},
                                           {"type": "input_image", "image_url": img, "detail": "low"}]}])
    body = sent(openai_upstream)
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert body["messages"][1]["role"] == "developer"
    parts = body["messages"][2]["content"]
    assert parts[0] == {"type": "text", "text": "What is this?"}
    assert parts[1] == {"type": "image_url", "image_url": {"url": img, "detail": "low"}}
    assert body["temperature"] == 0.5 and body.get("max_tokens", body.get("max_completion_tokens")) == 50


def test_function_call_and_its_result(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    c = client(gw)
    r = c.responses.create(model="r-oa", input="call:get_weather please", tools=[WEATHER])  # type: ignore[list-item]
    calls = [o for o in r.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and json.loads(calls[0].arguments) == {"x": 1}
    assert sent(openai_upstream)["tools"][0]["function"]["name"] == "get_weather"
    # the result goes back as an item, continuing the stored conversation
    r2 = c.responses.create(model="r-oa", previous_response_id=r.id, tools=[WEATHER],  # type: ignore[list-item]
                            input=[{"type": "function_call_output", "call_id": calls[0].call_id,
                                    "output": "sunny, 21 C"}])
    msgs = sent(openai_upstream)["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool"]
    assert msgs[1]["tool_calls"][0]["id"] == calls[0].call_id
    assert msgs[2] == {"role": "tool", "content": "sunny, 21 C", "tool_call_id": calls[0].call_id}
    assert r2.status == "completed"


@pytest.mark.parametrize("model", ["r-oa", "r-an"])
def test_an_input_of_reasoning_only_is_a_400(gw: GatewayProcess, model: str) -> None:
    """issue 14: was an empty prompt sent upstream."""
    with pytest.raises(openai.BadRequestError) as err:
        client(gw).responses.create(model=model, instructions="Be brief.", input=[  # type: ignore[list-item]
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thinking"}]}])
    body: Any = err.value.body
    assert err.value.status_code == 400 and body["param"] == "input[0]" and "reasoning" in body["message"]


def test_streamed_function_call_events(gw: GatewayProcess) -> None:
    with client(gw).responses.stream(model="r-an", input="call:get_weather now",
                                     tools=[WEATHER]) as s:  # type: ignore[list-item]
        events = list(s)
        final = s.get_final_response()
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(deltas) > 1  # the Anthropic upstream streams its input in fragments: each one relayed
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    call = next(o for o in final.output if o.type == "function_call")
    assert done and done[0].arguments == "".join(deltas) == call.arguments and call.name == "get_weather"


def test_reasoning_becomes_a_reasoning_item(gw: GatewayProcess) -> None:
    r = client(gw).responses.create(model="r-oa", input="reasoning: think first")
    kinds = [o.type for o in r.output]
    assert kinds == ["reasoning", "message"]
    item = r.output[0]
    assert item.type == "reasoning" and item.content and item.content[0].text
    with client(gw).responses.stream(model="r-oa", input="reasoning: and stream") as s:
        types = {e.type for e in s}
    assert {"response.reasoning_text.delta", "response.reasoning_text.done"} <= types


def test_json_schema_and_the_output_limit(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    client(gw).responses.create(model="r-oa", input="json please",
                                text={"format": {"type": "json_schema", "name": "thing", "schema": schema}})
    fmt = sent(openai_upstream)["response_format"]
    assert fmt == {"type": "json_schema", "json_schema": {"name": "thing", "schema": schema}}
    r = client(gw).responses.create(model="r-oa", input=" ".join(["w"] * 40), max_output_tokens=3)
    assert r.status == "incomplete" and r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"


def test_upstream_failing_mid_stream_ends_with_response_failed(gw: GatewayProcess) -> None:
    with client(gw).responses.stream(model="r-oa", input="fault:midstream hello there") as s:
        events = list(s)
    assert events[-2].type == "error" and events[-1].type == "response.failed"
    failed = events[-1].response
    assert failed.status == "failed" and failed.error is not None and failed.error.code == "server_error"


def test_previous_response_id_carries_the_conversation(gw: GatewayProcess, openai_upstream: OpenAIUpstream) -> None:
    c = client(gw)
    r1 = c.responses.create(model="r-oa", input="first turn", instructions="Old instructions.")
    r2 = c.responses.create(model="r-oa", input="second turn", previous_response_id=r1.id)
    msgs = sent(openai_upstream)["messages"]
    # the earlier instructions are not carried over (as in OpenAI's API); the turns are
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("user", "first turn"), ("assistant", "echo: first turn"), ("user", "second turn")]
    with c.responses.stream(model="r-oa", input="third turn", previous_response_id=r2.id,
                            instructions="New.") as s:
        list(s)
    msgs = sent(openai_upstream)["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[0]["content"] == "New." and msgs[4]["content"] == "echo: second turn"
    items = list(c.responses.input_items.list(r2.id))
    assert len(items) == 1 and items[0].type == "message" and items[0].content[0].text == "second turn"  # type: ignore


def test_stored_responses_belong_to_their_key(gw: GatewayProcess) -> None:
    status, out = http_call(gw, "POST", "/admin/api/keys", {"name": "other"},
                            {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"})
    assert status == 201, out
    other = client(gw, json.loads(out)["key"])
    mine = client(gw).responses.create(model="r-oa", input="private")
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(mine.id)
    with pytest.raises(openai.BadRequestError) as err:
        other.responses.create(model="r-oa", input="x", previous_response_id=mine.id)
    assert err.value.code == "previous_response_not_found"
    assert client(gw).responses.retrieve(mine.id).output_text == "echo: private"  # still there for its owner
    client(gw).responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        client(gw).responses.retrieve(mine.id)


def test_store_false_keeps_nothing(gw: GatewayProcess) -> None:
    r = client(gw).responses.create(model="r-oa", input="forget me", store=False)
    assert r.store is False
    with pytest.raises(openai.NotFoundError):
        client(gw).responses.retrieve(r.id)


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"input": "x", "background": True}, "background"),
    ({"input": "x", "truncation": "auto"}, "truncation"),
    ({"input": "x", "include": ["message.output_text.logprobs"]}, "include[0]"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input[0].content[0]"),
    ({"input": "x", "unknown_field": 1}, "unknown_field"),
    ({"input": []}, "input"),
    ({"input": "x", "previous_response_id": "resp_nope"}, "previous_response_id"),
])
def test_what_cannot_be_honoured_is_refused_by_name(gw: GatewayProcess, body: dict[str, Any], param: str,
                                                     openai_upstream: OpenAIUpstream) -> None:
    before = openai_upstream.request_count
    status, out = http_call(gw, "POST", "/v1/responses", {"model": "r-oa", **body},
                            {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"})
    err = json.loads(out)["error"]
    assert status == 400 and err["param"] == param and err["type"] == "invalid_request_error", out
    assert openai_upstream.request_count == before  # refused before any upstream call


def test_the_stored_paths_answer_only_what_they_serve(gw: GatewayProcess) -> None:
    auth = {"Authorization": f"Bearer {MASTER}"}
    assert http_call(gw, "PUT", "/v1/responses/resp_x", None, auth)[0] == 405
    assert http_call(gw, "GET", "/v1/responses/resp_x/other", None, auth)[0] == 404
    assert http_call(gw, "GET", "/v1/responses/resp_x")[0] == 401  # a key is needed
    r = client(gw).responses.create(model="r-oa", input="page me")
    status, out = http_call(gw, "GET", f"/v1/responses/{r.id}/input_items?limit=0", None, auth)
    assert status == 400 and json.loads(out)["error"]["param"] == "limit"


def test_retention(tmp_path_factory: pytest.TempPathFactory, openai_upstream: OpenAIUpstream) -> None:
    """A response past its retention is gone (here: kept for a microsecond)."""
    with serve_config(tmp_path_factory.mktemp("responses-retention"), f"""
server:
  master_key: ${{TEST_MASTER_KEY}}
responses: {{retention_hours: 0.0000000001}}
services:
  - name: oa
    type: openai
    endpoint: {openai_upstream.url}/v1
models:
  r-oa: [oa/mock-a]
""", MASTER) as g:
        r = client(g).responses.create(model="r-oa", input="short-lived")
        assert r.status == "completed"
        with pytest.raises(openai.NotFoundError):
            client(g).responses.retrieve(r.id)

"""/openapi.json is generated from the structs the handlers decode with: every field a body or a
query accepts is documented, nothing else is, the document is self-consistent (references, links,
operation ids), and the parts the configuration decides follow it."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import msgspec
import pytest

from clawdbot.api import admin_bodies as ab
from clawdbot.api import admin_queries as aq
from clawdbot.api.openapi import DEFAULT, Shape, document
from clawdbot.api.openapi_schemas import REF, name_of
from clawdbot.api.request_bounds import MAX_OUTPUT_TOKENS
from clawdbot.api.responses import InputItemsQuery
from clawdbot.codecs import anthropic, ollama_inbound, openai, openai_completions, openai_responses
from clawdbot.codecs import anthropic_wire as aw
from clawdbot.codecs import openai_wire as ow
from clawdbot.core.errors import BadRequest
from clawdbot.web.layer import LoginBody

DOC = document()
SCHEMAS = DOC["components"]["schemas"]
METHODS = {"get", "post", "patch", "delete"}


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, m, op) for path, item in DOC["paths"].items() for m, op in item.items() if m in METHODS]


def body_schema(path: str, method: str) -> dict[str, Any]:
    ref = DOC["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return dict(SCHEMAS[ref.removeprefix(REF)])


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_every_reference_resolves_and_every_schema_compiles() -> None:
    for ref in refs(DOC):
        section, _, name = ref.removeprefix("#/components/").partition("/")
        assert name in DOC["components"][section], ref
    for schema in SCHEMAS.values():  # each a valid JSON Schema (2020-12) with the others beside it
        jsonschema_rs.validator_for({**schema, "$defs": {}, "components": DOC["components"]})


def test_operation_ids_are_unique_and_links_name_them() -> None:
    ids = [op["operationId"] for _, _, op in operations()]
    assert len(ids) == len(set(ids))
    for path, method, op in operations():
        for answer in op["responses"].values():
            for link in answer.get("links", {}).values():
                assert link["operationId"] in ids, (path, method, link)
        if "{id}" in path:
            assert any(p["name"] == "id" and p["in"] == "path" for p in op["parameters"]), path


@pytest.mark.parametrize(("path", "method", "kind"), [
    ("/admin/api/keys", "post", ab.KeyCreate), ("/admin/api/keys/{id}", "patch", ab.KeyFields),
    ("/admin/api/users", "post", ab.UserCreate), ("/admin/api/users/{id}", "patch", ab.UserUpdate),
    ("/admin/api/teams", "post", ab.TeamCreate), ("/admin/api/teams/{id}", "patch", ab.TeamUpdate),
    ("/v1/chat/completions", "post", ow.WireChatRequest), ("/v1/embeddings", "post", ow.WireEmbeddingRequest),
    ("/v1/completions", "post", openai_completions.CompletionBody),
    ("/v1/responses", "post", openai_responses.ResponsesBody),
    ("/v1/messages", "post", aw.WireMessagesRequest), ("/v1/messages/count_tokens", "post", aw.WireCountTokensRequest),
    ("/api/chat", "post", ollama_inbound.ChatBody), ("/api/generate", "post", ollama_inbound.GenerateBody),
    ("/api/embed", "post", ollama_inbound.EmbedBody), ("/api/embeddings", "post", ollama_inbound.EmbeddingsBody),
    ("/api/show", "post", ollama_inbound.ModelBody),
])
def test_a_body_is_documented_as_the_struct_that_decodes_it(path: str, method: str, kind: type[msgspec.Struct]) -> None:
    """Every field the struct accepts is a property (the key-create schema once left one out), and
    extra properties are refused exactly when the struct refuses unknown fields."""
    ref = DOC["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == REF + name_of(kind)
    schema = body_schema(path, method)
    names = {f.encode_name for f in msgspec.structs.fields(kind)}
    assert set(schema["properties"]) == names
    assert (schema.get("additionalProperties") is False) == kind.__struct_config__.forbid_unknown_fields


def test_the_decoders_are_the_documented_structs() -> None:
    """The codecs' decoders decode into the structs the document is generated from."""
    assert openai._chat_decoder.type is ow.WireChatRequest
    assert openai._embed_decoder.type is ow.WireEmbeddingRequest
    assert anthropic._request_decoder.type is aw.WireMessagesRequest
    assert anthropic._count_decoder.type is aw.WireCountTokensRequest


@pytest.mark.parametrize(("path", "kind"), [
    ("/admin/api/keys", aq.PageQuery), ("/admin/api/audit", aq.AuditQuery), ("/admin/api/spend", aq.SpendQuery),
    ("/admin/api/requests", aq.RequestsQuery), ("/admin/api/requests/stream", aq.StreamQuery),
    ("/v1/responses/{id}/input_items", InputItemsQuery),
])
def test_query_parameters_are_the_struct_fields(path: str, kind: type[msgspec.Struct]) -> None:
    params = [p for p in DOC["paths"][path]["get"]["parameters"] if p["in"] == "query"]
    assert [p["name"] for p in params] == list(kind.__struct_fields__)
    assert all(not p["required"] for p in params)


def test_key_create_takes_what_the_handler_takes() -> None:
    props = body_schema("/admin/api/keys", "post")["properties"]
    assert {"key", "expires_in", "expires_at"} <= set(props)
    assert DOC["paths"]["/admin/api/keys"]["post"]["requestBody"]["required"] is False  # an empty body: all defaults
    assert body_schema("/admin/api/keys/{id}", "patch")["minProperties"] == 1  # an empty change is refused


def test_page_bounds_are_the_checks() -> None:
    params = {p["name"]: p["schema"] for p in DOC["paths"]["/admin/api/keys"]["get"]["parameters"]}
    assert params["limit"]["minimum"] == 1 and params["limit"]["maximum"] == 1000
    assert params["offset"]["minimum"] == 0 and params["offset"]["maximum"] == aq.MAX_QUERY_INT


def test_the_login_body_is_the_web_layers() -> None:
    """The login body lives in web/layer.py (the api package may not import it): the document's
    copy is held to it here."""
    (_, ), defs = msgspec.json.schema_components([LoginBody], ref_template="{name}")
    assert set(SCHEMAS["LoginBody"]["properties"]) == set(defs["LoginBody"]["properties"])
    assert SCHEMAS["LoginBody"]["required"] == defs["LoginBody"]["required"]


def test_the_configuration_shapes_the_document() -> None:
    proxy = document(Shape(web=False))
    assert "/auth/login" not in proxy["paths"] and "/auth/login" in DOC["paths"]
    small = document(Shape(max_messages=7))
    chat = small["components"]["schemas"][name_of(ow.WireChatRequest)]["properties"]["messages"]
    assert chat["maxItems"] == 7
    plugged = document(Shape(plugins=("cache", "pii")))
    meta = plugged["components"]["schemas"][name_of(ab.KeyCreate)]["properties"]["metadata"]["anyOf"][0]
    assert meta["properties"]["plugins"]["anyOf"][0]["propertyNames"] == {"enum": ["cache", "pii"]}
    bare = SCHEMAS[name_of(ab.KeyCreate)]["properties"]["metadata"]["anyOf"][0]
    assert bare["properties"]["plugins"]["anyOf"][0]["maxProperties"] == 0
    assert Shape() == DEFAULT


def chat_body(**fields: Any) -> bytes:
    return msgspec.json.encode({"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields})


def accepted(body: bytes) -> bool:
    try:
        openai.parse_chat_request(body)
    except BadRequest:
        return False
    return True


@pytest.mark.parametrize("name", ["temperature", "top_p", "frequency_penalty", "presence_penalty"])
def test_documented_ranges_are_the_parsers(name: str) -> None:
    """The narrowed schema's bounds are where the codec's hand checks draw the line."""
    schema = SCHEMAS[name_of(ow.WireChatRequest)]["properties"][name]["anyOf"][0]
    lo, hi = schema["minimum"], schema["maximum"]
    assert accepted(chat_body(**{name: lo})) and accepted(chat_body(**{name: hi}))
    assert not accepted(chat_body(**{name: lo - 0.001})) and not accepted(chat_body(**{name: hi + 0.001}))


def test_documented_message_rules_are_the_parsers() -> None:
    variants = SCHEMAS[name_of(ow.WireChatRequest)]["properties"]["messages"]["items"]["anyOf"]
    validator = jsonschema_rs.validator_for({"anyOf": variants, "components": DOC["components"]})
    for message in ({"role": "user", "content": "x"}, {"role": "assistant"}, {"role": "tool", "content": "r",
                    "tool_call_id": "c"}, {"role": "user"}, {"role": "tool", "content": "r"},
                    {"role": "tool", "content": "r", "tool_call_id": ""}, {"role": "system", "content": None}):
        assert validator.is_valid(message) == accepted(chat_body(messages=[message])), message


def test_output_limits_are_documented_with_the_checks_bound() -> None:
    chat = SCHEMAS[name_of(ow.WireChatRequest)]["properties"]
    assert chat["max_tokens"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": MAX_OUTPUT_TOKENS}
    messages = SCHEMAS[name_of(aw.WireMessagesRequest)]["properties"]["max_tokens"]
    assert messages["maximum"] == MAX_OUTPUT_TOKENS

"""The dialects' request schemas narrowed to what their parsers accept.

The codecs' structs (codecs/openai_wire.py, anthropic_wire.py, ...) are the first check and
api/openapi_schemas.py generates their schemas; each parser then checks more by hand (a range, a
field that must not be empty, which blocks a role may hold, options that are refused). Each
function here states one parser's hand checks on the generated schema, next to the parser it
mirrors, so that a schema-valid request is one the gateway serves and any other is a 400. The
schemathesis run (tests/e2e/test_schemathesis.py) holds the two to each other."""

from __future__ import annotations

import copy
from typing import Any

from clawdbot.api.openapi_schemas import (
    NON_EMPTY,
    NULL,
    Schema,
    name_of,
    nullable,
    number,
    obj,
    props,
    ref,
    string,
)
from clawdbot.api.request_bounds import MAX_DIMENSIONS, MAX_OUTPUT_TOKENS
from clawdbot.codecs import anthropic_wire as aw
from clawdbot.codecs import ollama_inbound as oi
from clawdbot.codecs import openai_completions as oc
from clawdbot.codecs import openai_responses as orq
from clawdbot.codecs import openai_wire as ow

OUTPUT_LIMIT = number("integer", 1, MAX_OUTPUT_TOKENS)
DIMENSIONS = nullable(number("integer", 1, MAX_DIMENSIONS))
# a value Python reads as false (`x or []`), or a list
FALSY_OR_LIST = {"anyOf": [{"type": "array"}, {"enum": [None, False, 0, ""]}, {"type": "object", "maxProperties": 0}]}


def _not_null(schema: Schema) -> Schema:
    """`schema` without the null branch msgspec writes for `X | None`."""
    kept = [b for b in schema.get("anyOf", [schema]) if b != NULL]
    return kept[0] if len(kept) == 1 else {"anyOf": kept}


def _variant(base: Schema, fields: dict[str, Schema], required: tuple[str, ...]) -> Schema:
    """A copy of the object schema `base` with `fields` narrowed and `required` added."""
    out = copy.deepcopy(base)
    out["properties"] = {**out["properties"], **fields}
    out["required"] = sorted({*out.get("required", ()), *required})
    return out


def openai_chat(c: dict[str, Schema], max_messages: int) -> None:
    """codecs/openai.py to_canonical and _message; api/chat.py (both output limits)."""
    p = props(c, ow.WireChatRequest)
    message = c["OpenAIWireMessage"]
    content = _not_null(message["properties"]["content"])
    # the role decides what a message needs: content (all but assistant), tool_call_id (tool)
    p["messages"] = {"type": "array", "minItems": 1, "maxItems": max_messages, "items": {"anyOf": [
        _variant(message, {"role": {"enum": ["developer", "system", "user"]}, "content": content}, ("content",)),
        _variant(message, {"role": {"const": "function"}, "content": content, "name": NON_EMPTY}, ("content", "name")),
        _variant(message, {"role": {"const": "tool"}, "content": content, "tool_call_id": NON_EMPTY},
                 ("content", "tool_call_id")),
        _variant(message, {"role": {"const": "assistant"}}, ()),
    ]}}
    p["model"] = NON_EMPTY
    p["n"] = {"enum": [1, None]}
    for name, lo, hi in (("temperature", 0, 2), ("top_p", 0, 1), ("frequency_penalty", -2, 2),
                         ("presence_penalty", -2, 2)):
        p[name] = nullable(number("number", lo, hi))
    p["max_tokens"] = p["max_completion_tokens"] = nullable(OUTPUT_LIMIT)
    p["stop"] = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 4}, NULL]}
    function = obj({"name": {"type": "string"}}, ["name"])
    p["tool_choice"] = {"anyOf": [{"enum": ["auto", "none", "required"]}, obj({"function": function}, ["function"]),
                                  NULL]}
    p["response_format"] = nullable(obj({"type": {"enum": ["text", "json_object", "json_schema"]}}, ["type"]))
    # the legacy forms of tools and tool_choice (codecs/openai_legacy.py); with neither of those
    p["function_call"] = {"anyOf": [{"enum": ["auto", "none"]}, obj({"name": NON_EMPTY}, ["name"]), NULL]}


def openai_embeddings(c: dict[str, Schema]) -> None:
    """codecs/openai.py parse_embedding_request (strings only); api/endpoints.py (dimensions)."""
    p = props(c, ow.WireEmbeddingRequest)
    p["model"] = NON_EMPTY
    p["input"] = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
    p["dimensions"] = DIMENSIONS


def openai_completions(c: dict[str, Schema]) -> None:
    """codecs/openai_completions.py parse: one text prompt; what needs a raw text model is refused."""
    p = props(c, oc.CompletionBody)
    p["model"] = NON_EMPTY
    p["prompt"] = {"anyOf": [{"type": "string"},
                             {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1}]}
    p["n"] = p["best_of"] = {"enum": [1, None]}
    p["echo"] = {"enum": [False, None]}
    p["suffix"] = {"enum": ["", None]}
    p["logprobs"] = NULL
    p["max_tokens"] = nullable(OUTPUT_LIMIT)


def _responses_item() -> Schema:
    """codecs/openai_responses.py _messages: the input items it turns into messages."""
    text_part = obj({"type": {"enum": ["input_text", "output_text"]}, "text": {"type": "string"}}, ["type", "text"])
    refusal = obj({"type": {"const": "refusal"}, "refusal": {"type": "string"}}, ["type", "refusal"])
    image = obj({"type": {"const": "input_image"}, "image_url": NON_EMPTY}, ["type", "image_url"])
    part = {"anyOf": [text_part, refusal, image]}
    message = obj({"type": {"const": "message"}, "role": {"enum": ["user", "system", "developer", "assistant"]},
                   "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": part}]},
                   "id": nullable({"type": "string"})}, ["role", "content"])
    call = obj({"type": {"const": "function_call"}, "call_id": NON_EMPTY, "name": NON_EMPTY, "arguments": NON_EMPTY},
               ["type", "call_id", "name", "arguments"])
    output = obj({"type": {"const": "function_call_output"}, "call_id": NON_EMPTY,
                  "output": {"anyOf": [{"type": "string"}, {"type": "array", "items": text_part}]}},
                 ["type", "call_id", "output"])
    reasoning = obj({"type": {"const": "reasoning"}, "content": FALSY_OR_LIST, "summary": FALSY_OR_LIST}, ["type"])
    return {"anyOf": [message, call, output, reasoning]}


def openai_responses(c: dict[str, Schema]) -> None:
    """codecs/openai_responses.py parse and _refuse_unsupported; api/responses.py (output limit)."""
    p = props(c, orq.ResponsesBody)
    p["model"] = NON_EMPTY
    p["input"] = {"anyOf": [{"type": "string"}, {"type": "array", "items": _responses_item(), "minItems": 1}]}
    c[name_of(orq.ResponsesBody)]["required"] = ["input", "model"]  # no input: 'input' must not be empty
    p["max_output_tokens"] = nullable(OUTPUT_LIMIT)
    p["background"] = {"enum": [False, None]}
    p["truncation"] = {"enum": ["disabled", None]}
    p["include"] = nullable({"type": "array", "items": {"enum": sorted(orq.HARMLESS_INCLUDES)}})
    for name in ("prompt", "conversation", "top_logprobs", "max_tool_calls"):
        p[name] = NULL
    p["service_tier"] = {"enum": ["auto", "default", None]}
    p["metadata"] = nullable({"type": "object", "maxProperties": orq.MAX_METADATA_PAIRS,
                              "propertyNames": {"maxLength": orq.MAX_METADATA_KEY},
                              "additionalProperties": string(max_length=orq.MAX_METADATA_VALUE)})
    tool = obj({"type": {"const": "function"}, "name": NON_EMPTY, "parameters": nullable({"type": "object"})},
               ["type", "name"])
    p["tools"] = nullable({"type": "array", "items": tool})
    p["tool_choice"] = {"anyOf": [{"enum": ["auto", "none", "required"]},
                                  obj({"type": {"const": "function"}, "name": {"type": "string"}}, ["type", "name"]),
                                  NULL]}
    c["ResponsesTextConfig"]["properties"]["verbosity"] = NULL
    fmt = c["ResponsesTextFormat"]
    c["ResponsesTextConfig"]["properties"]["format"] = nullable({"anyOf": [
        _variant(fmt, {"type": {"enum": ["text", "json_object"]}}, ()),
        _variant(fmt, {"type": {"const": "json_schema"}, "name": NON_EMPTY, "schema": {"type": "object"}},
                 ("type", "name", "schema")),
    ]})


def _anthropic_turns(max_messages: int | None) -> Schema:
    """codecs/anthropic.py messages_of: at least one turn; which blocks each role may hold."""
    def turn(role: str, blocks: tuple[type[Any], ...]) -> Schema:
        items = {"anyOf": [ref("Anthropic" + b.__name__) for b in blocks]}  # generated with WireMessage
        return obj({"role": {"const": role}, "content": {"anyOf": [{"type": "string"},
                                                                   {"type": "array", "items": items}]}},
                   ["role", "content"])

    out: Schema = {"type": "array", "minItems": 1, "items": {"anyOf": [
        turn("user", (aw.TextBlock, aw.ImageBlock, aw.ToolResultBlock)),
        turn("assistant", (aw.TextBlock, aw.ToolUseBlock, aw.ThinkingBlock, aw.RedactedThinkingBlock)),
    ]}}
    if max_messages is not None:
        out["maxItems"] = max_messages
    return out


def anthropic(c: dict[str, Schema], max_messages: int) -> None:
    """codecs/anthropic.py parse_messages_request, thinking_effort, tools_of, tool_choice_of;
    parse_count_tokens_request (its tool_choice and thinking are not read); api/messages.py."""
    c["AnthropicWireTool"]["properties"]["type"] = {"enum": ["custom", None]}
    p = props(c, aw.WireMessagesRequest)
    p["model"] = NON_EMPTY
    p["max_tokens"] = OUTPUT_LIMIT
    p["temperature"] = p["top_p"] = nullable(number("number", 0, 1))
    p["messages"] = _anthropic_turns(max_messages)
    p["tool_choice"] = nullable({"anyOf": [obj({"type": {"enum": ["auto", "any", "none"]}}, ["type"]),
                                           obj({"type": {"const": "tool"}, "name": {"type": "string"}},
                                               ["type", "name"])]})
    p["thinking"] = nullable({"anyOf": [
        obj({"type": {"enum": ["adaptive", "disabled", None]}}),
        obj({"type": {"const": "enabled"}, "budget_tokens": number("integer", 1)}, ["type", "budget_tokens"]),
    ]})
    props(c, aw.WireCountTokensRequest)["messages"] = _anthropic_turns(None)
    # `system` is a list of TextBlock alone, not in a union of blocks: msgspec then takes a block
    # without its `type` tag (and refuses any other tag), which its schema does not say
    text = copy.deepcopy(c["AnthropicTextBlock"])
    text["required"] = [r for r in text["required"] if r != "type"]
    for kind in (aw.WireMessagesRequest, aw.WireCountTokensRequest):
        props(c, kind)["system"] = {"anyOf": [{"type": "string"}, {"type": "array", "items": text}, NULL]}


def _ollama_options() -> Schema:
    """codecs/ollama_inbound.py _settings: the options the canonical request holds are typed;
    any other goes to Ollama upstreams as it came."""
    num = nullable({"type": "number"})
    return nullable(obj({
        "stop": nullable({"type": "array", "items": {"type": "string"}}),
        "num_predict": nullable(number("integer", None, MAX_OUTPUT_TOKENS)),  # 0 or less: no limit
        "temperature": num, "top_p": num, "frequency_penalty": num, "presence_penalty": num,
        "seed": nullable({"type": "integer"}),
    }))


def ollama(c: dict[str, Schema]) -> None:
    """codecs/ollama_inbound.py parse_chat, parse_generate, parse_embed, parse_embeddings,
    parse_model; api/ollama_api.py (output limit, dimensions)."""
    fmt = {"anyOf": [{"enum": ["json", ""]}, {"type": "object"}, NULL]}
    for kind in (oi.ChatBody, oi.GenerateBody):
        p = props(c, kind)
        p["model"] = NON_EMPTY
        p["options"] = _ollama_options()
        p["format"] = fmt
    c["Ollama_Msg"]["properties"]["role"] = {"enum": ["system", "user", "assistant", "tool"]}
    g = props(c, oi.GenerateBody)
    g["raw"] = {"enum": [False, None]}
    g["template"] = g["suffix"] = {"enum": ["", None]}
    g["context"] = nullable({"type": "array", "maxItems": 0})
    e = props(c, oi.EmbedBody)
    e["model"] = NON_EMPTY
    e["input"] = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
    e["dimensions"] = DIMENSIONS
    props(c, oi.EmbeddingsBody)["model"] = NON_EMPTY
    show = c["OllamaModelBody"]
    show["anyOf"] = [obj({"model": NON_EMPTY}, ["model"]), obj({"name": NON_EMPTY}, ["name"])]


def narrow(c: dict[str, Schema], max_messages: int) -> None:
    """Every dialect's request schemas, narrowed in place."""
    openai_chat(c, max_messages)
    openai_embeddings(c)
    openai_completions(c)
    openai_responses(c)
    anthropic(c, max_messages)
    ollama(c)

"""Valid wire documents of every dialect, as JSON values: what a client sends each inbound API and
what each kind of upstream answers. The seeds the mutations start from, and the inputs of the
round trips. Fields are drawn within the ranges each API documents."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import strategies as st

from tests.property.strategies import clean_text, clean_values, name_text

Doc = dict[str, Any]


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


opt = st.fixed_dictionaries
counts = st.integers(0, 2**40)
schema = st.one_of(st.just({"type": "object", "properties": {}}),
                   st.dictionaries(clean_text, clean_values, max_size=3).map(lambda d: {"type": "object", **d}))
args_object = st.dictionaries(name_text, clean_values, max_size=3)  # a tool call's arguments, decoded

# ---- OpenAI Chat Completions ----------------------------------------------------------------------

OPENAI_KEYS = ["model", "messages", "stream", "tools", "tool_choice", "response_format", "temperature", "top_p",
               "max_tokens", "max_completion_tokens", "stop", "seed", "n", "stream_options", "frequency_penalty",
               "presence_penalty", "user", "logit_bias", "logprobs", "top_logprobs", "parallel_tool_calls",
               "reasoning_effort", "metadata", "role", "content", "name", "tool_calls", "tool_call_id", "type",
               "text", "image_url", "url", "detail", "function", "arguments", "id", "include_usage", "function_call"]

openai_part = st.one_of(
    opt({"type": st.just("text"), "text": clean_text}),
    opt({"type": st.just("image_url"), "image_url": opt(
        {"url": clean_text}, optional={"detail": st.sampled_from(["auto", "low", "high"])})}),
)
openai_call = opt({"id": name_text, "type": st.just("function"),
                   "function": opt({"name": name_text, "arguments": args_object.map(lambda a: _json(a))})})
openai_message = st.one_of(
    opt({"role": st.sampled_from(["system", "developer"]), "content": clean_text}, optional={"name": name_text}),
    opt({"role": st.just("user"), "content": clean_text | st.lists(openai_part, min_size=1, max_size=3)},
        optional={"name": name_text}),
    opt({"role": st.just("assistant"), "content": st.none() | clean_text},
        optional={"tool_calls": st.lists(openai_call, min_size=1, max_size=3), "reasoning_content": clean_text,
                  "name": name_text}),
    opt({"role": st.just("tool"), "tool_call_id": name_text, "content": clean_text}),
    opt({"role": st.just("assistant"), "content": st.none(),  # legacy function calling
         "function_call": opt({"name": name_text, "arguments": args_object.map(lambda a: _json(a))})}),
    opt({"role": st.just("function"), "name": name_text, "content": clean_text}),
)
openai_tool = opt({"type": st.just("function"), "function": opt(
    {"name": name_text}, optional={"description": clean_text, "parameters": schema, "strict": st.booleans()})})
openai_request = opt(
    {"model": name_text, "messages": st.lists(openai_message, min_size=1, max_size=5)},
    optional={
        "stream": st.booleans(), "temperature": st.floats(0, 2), "top_p": st.floats(0, 1),
        "max_tokens": st.integers(1, 2**40), "max_completion_tokens": st.integers(1, 2**40),
        "stop": clean_text | st.lists(clean_text, max_size=4), "seed": st.integers(-(2**63), 2**63 - 1),
        "n": st.just(1), "stream_options": opt({"include_usage": st.booleans()}),
        "frequency_penalty": st.floats(-2, 2), "presence_penalty": st.floats(-2, 2), "user": clean_text,
        "tools": st.lists(openai_tool, min_size=1, max_size=3),
        "tool_choice": st.sampled_from(["auto", "none", "required"]) | opt(
            {"type": st.just("function"), "function": opt({"name": name_text})}),
        "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]) | opt(
            {"type": st.just("json_schema"), "json_schema": opt({"name": name_text, "schema": schema})}),
        "logit_bias": st.dictionaries(st.integers(0, 10**6).map(str), st.floats(-100, 100), max_size=3),
        "parallel_tool_calls": st.booleans(), "reasoning_effort": st.sampled_from(["low", "medium", "high"]),
        "metadata": st.dictionaries(clean_text, clean_text, max_size=3),
    },
)
embedding_request = opt({"model": name_text, "input": clean_text | st.lists(clean_text, min_size=1, max_size=3)},
                        optional={"dimensions": st.integers(1, 4096), "encoding_format": st.sampled_from(
                            ["float", "base64"]), "user": clean_text})
completion_request = opt({"model": name_text, "prompt": clean_text | st.lists(clean_text, min_size=1, max_size=1)},
                         optional={"max_tokens": st.integers(1, 10**6), "temperature": st.floats(0, 2),
                                   "stream": st.booleans(), "stream_options": opt({"include_usage": st.booleans()}),
                                   "stop": clean_text | st.lists(clean_text, max_size=4), "n": st.just(1),
                                   "seed": st.integers(0, 2**31), "user": clean_text, "echo": st.just(False)})
COMPLETION_KEYS = ["model", "prompt", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options", "stop",
                   "seed", "user", "echo", "suffix", "logprobs", "best_of", "logit_bias"]

# ---- OpenAI Responses -------------------------------------------------------------------------------

responses_item = st.one_of(
    opt({"type": st.just("message"), "role": st.sampled_from(["user", "system", "developer", "assistant"]),
         "content": clean_text | st.lists(st.one_of(
             opt({"type": st.sampled_from(["input_text", "output_text"]), "text": clean_text}),
             opt({"type": st.just("input_image"), "image_url": name_text})), min_size=1, max_size=3)}),
    opt({"type": st.just("function_call"), "call_id": name_text, "name": name_text,
         "arguments": args_object.map(lambda a: _json(a))}),
    opt({"type": st.just("function_call_output"), "call_id": name_text, "output": clean_text}),
    opt({"type": st.just("reasoning"), "summary": st.lists(opt({"type": st.just("summary_text"),
                                                                  "text": clean_text}), max_size=2)}),
)


def _answered(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A valid input: each reasoning item followed, somewhere, by the assistant turn it belongs to."""
    last = max((i for i, t in enumerate(items) if t["type"] == "reasoning"), default=-1)
    if last >= 0 and not any(t["type"] == "function_call" or t.get("role") == "assistant" for t in items[last:]):
        items.append({"type": "message", "role": "assistant", "content": "answered"})
    return items


responses_request = opt(
    {"model": name_text, "input": clean_text | st.lists(responses_item, min_size=1, max_size=4).map(_answered)},
    optional={"instructions": clean_text, "max_output_tokens": st.integers(1, 10**6), "temperature": st.floats(0, 2),
              "stream": st.booleans(), "store": st.booleans(), "parallel_tool_calls": st.booleans(),
              "tools": st.lists(opt({"type": st.just("function"), "name": name_text},
                                    optional={"parameters": schema, "description": clean_text}), max_size=2),
              "tool_choice": st.sampled_from(["auto", "none", "required"]),
              "text": opt({"format": st.sampled_from([{"type": "text"}, {"type": "json_object"}])}),
              "reasoning": opt({"effort": st.sampled_from(["low", "medium", "high"])}),
              "metadata": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)},
)
RESPONSES_KEYS = ["model", "input", "instructions", "tools", "tool_choice", "text", "reasoning", "max_output_tokens",
                  "temperature", "top_p", "user", "metadata", "store", "previous_response_id", "stream", "truncation",
                  "include", "background", "service_tier", "prompt", "conversation", "type", "role", "content",
                  "call_id", "name", "arguments", "output", "summary", "format", "effort", "image_url"]

# ---- Anthropic Messages -----------------------------------------------------------------------------

ANTHROPIC_KEYS = ["model", "messages", "max_tokens", "system", "stop_sequences", "stream", "temperature", "top_p",
                  "top_k", "tools", "tool_choice", "metadata", "thinking", "type", "text", "source", "media_type",
                  "data", "url", "id", "name", "input", "tool_use_id", "content", "is_error", "thinking", "signature",
                  "budget_tokens", "input_schema", "cache_control", "role", "user_id", "disable_parallel_tool_use"]

text_block = opt({"type": st.just("text"), "text": clean_text})
image_block = opt({"type": st.just("image"), "source": st.one_of(
    opt({"type": st.just("base64"), "media_type": st.sampled_from(["image/png", "image/jpeg"]), "data": name_text}),
    opt({"type": st.just("url"), "url": name_text}))})
tool_use_block = opt({"type": st.just("tool_use"), "id": name_text, "name": name_text, "input": args_object})
tool_result_block = opt({"type": st.just("tool_result"), "tool_use_id": name_text},
                        optional={"content": clean_text | st.lists(text_block, max_size=2), "is_error": st.booleans()})
anthropic_turn = st.one_of(
    opt({"role": st.sampled_from(["user", "assistant"]), "content": clean_text}),
    opt({"role": st.just("user"), "content": st.lists(text_block | image_block | tool_result_block, min_size=1,
                                                      max_size=3)}),
    opt({"role": st.just("assistant"), "content": st.lists(
        text_block | tool_use_block | opt({"type": st.just("thinking"), "thinking": clean_text}), min_size=1,
        max_size=3)}),
)
anthropic_request = opt(
    {"model": name_text, "max_tokens": st.integers(1, 2**40), "messages": st.lists(anthropic_turn, min_size=1,
                                                                                   max_size=4)},
    optional={"system": clean_text | st.lists(text_block, max_size=2),
              "stop_sequences": st.lists(clean_text, max_size=3),
              "stream": st.booleans(), "temperature": st.floats(0, 1), "top_p": st.floats(0, 1),
              "top_k": st.integers(1, 500), "metadata": opt({"user_id": clean_text}),
              "tools": st.lists(opt({"name": name_text}, optional={"description": clean_text, "input_schema": schema}),
                                min_size=1, max_size=2),
              "tool_choice": st.sampled_from([{"type": "auto"}, {"type": "any"}, {"type": "none"},
                                              {"type": "auto", "disable_parallel_tool_use": True}]) | opt(
                  {"type": st.just("tool"), "name": name_text}),
              "thinking": st.sampled_from([{"type": "disabled"}, {"type": "adaptive"}]) | opt(
                  {"type": st.just("enabled"), "budget_tokens": st.integers(1, 10**5)})},
)

# ---- Ollama -------------------------------------------------------------------------------------------

OLLAMA_KEYS = ["model", "messages", "stream", "format", "options", "keep_alive", "think", "tools", "role", "content",
               "images", "tool_calls", "thinking", "tool_name", "tool_call_id", "function", "name", "arguments",
               "prompt", "system", "suffix", "raw", "template", "context", "input", "truncate", "dimensions",
               "temperature", "top_p", "num_predict", "stop", "seed", "num_ctx"]
ollama_options = opt({}, optional={"temperature": st.floats(0, 2), "top_p": st.floats(0, 1),
                                   "num_predict": st.integers(-2, 10**6), "stop": st.lists(clean_text, max_size=3),
                                   "seed": st.integers(0, 2**31), "num_ctx": st.integers(1, 2**20),
                                   "frequency_penalty": st.floats(-2, 2), "top_k": st.integers(1, 100)})
ollama_message = st.one_of(
    opt({"role": st.sampled_from(["system", "user"]), "content": clean_text},
        optional={"images": st.lists(name_text, min_size=1, max_size=2)}),
    opt({"role": st.just("assistant"), "content": clean_text},
        optional={"thinking": clean_text, "tool_calls": st.lists(opt({"function": opt(
            {"name": name_text, "arguments": args_object})}), min_size=1, max_size=2)}),
    opt({"role": st.just("tool"), "content": clean_text}, optional={"tool_name": name_text}),
)
ollama_common = {"stream": st.booleans(), "options": ollama_options, "keep_alive": st.sampled_from(["5m", 0, -1, 1.5]),
                 "think": st.booleans() | st.sampled_from(["low", "high"]),
                 "format": st.just("json") | schema}
ollama_chat = opt({"model": name_text, "messages": st.lists(ollama_message, max_size=4)},
                  optional={**ollama_common, "tools": st.lists(opt({"type": st.just("function"), "function": opt(
                      {"name": name_text}, optional={"description": clean_text, "parameters": schema})}),
                      max_size=2)})
ollama_generate = opt({"model": name_text, "prompt": clean_text},
                      optional={**ollama_common, "system": clean_text, "images": st.lists(name_text, max_size=2)})
ollama_embed = opt({"model": name_text, "input": clean_text | st.lists(clean_text, min_size=1, max_size=3)},
                   optional={"truncate": st.booleans(), "dimensions": st.integers(1, 4096)})
ollama_embeddings = opt({"model": name_text, "prompt": clean_text})

# ---- upstream answers ---------------------------------------------------------------------------------

usage_doc = opt({"prompt_tokens": counts, "completion_tokens": counts},
                optional={"prompt_tokens_details": opt({"cached_tokens": counts}),
                          "completion_tokens_details": opt({"reasoning_tokens": counts})})
openai_answer = opt(
    {"id": clean_text, "object": st.just("chat.completion"), "created": st.integers(0, 2**40), "model": clean_text,
     "choices": st.lists(opt({"index": st.integers(0, 3), "finish_reason": st.none() | st.sampled_from(
         ["stop", "length", "tool_calls", "content_filter"]),
         "message": opt({"role": st.just("assistant"), "content": st.none() | clean_text},
                        optional={"tool_calls": st.lists(openai_call, min_size=1, max_size=2),
                                  "reasoning_content": clean_text, "refusal": st.none()})},
         optional={"logprobs": st.none()}), min_size=1, max_size=2)},
    optional={"usage": usage_doc, "system_fingerprint": clean_text},
)
openai_chunk = opt(
    {"id": clean_text, "object": st.just("chat.completion.chunk"), "created": st.integers(0, 2**40),
     "model": clean_text, "choices": st.lists(opt({"index": st.just(0), "delta": opt({}, optional={
         "role": st.just("assistant"), "content": st.none() | clean_text, "reasoning_content": clean_text,
         "tool_calls": st.lists(opt({"index": st.integers(0, 3)}, optional={
             "id": name_text, "function": opt({}, optional={"name": name_text, "arguments": clean_text})}),
             max_size=2)}), "finish_reason": st.none() | st.sampled_from(["stop", "length", "tool_calls"])}),
         max_size=1)},
    optional={"usage": st.none() | usage_doc},
)
anthropic_usage = opt({"input_tokens": counts, "output_tokens": counts},
                      optional={"cache_read_input_tokens": counts, "cache_creation_input_tokens": counts})
anthropic_answer = opt(
    {"id": clean_text, "type": st.just("message"), "role": st.just("assistant"), "model": clean_text,
     "content": st.lists(text_block | tool_use_block | opt({"type": st.just("thinking"), "thinking": clean_text,
                                                            "signature": clean_text}), max_size=3),
     "stop_reason": st.none() | st.sampled_from(["end_turn", "max_tokens", "tool_use", "stop_sequence", "refusal"]),
     "usage": anthropic_usage})
anthropic_event = st.one_of(
    opt({"type": st.just("message_start"), "message": anthropic_answer}),
    opt({"type": st.just("content_block_start"), "index": st.integers(0, 5), "content_block": text_block | opt(
        {"type": st.just("tool_use"), "id": name_text, "name": name_text, "input": st.just({})})}),
    opt({"type": st.just("content_block_delta"), "index": st.integers(0, 5), "delta": st.one_of(
        opt({"type": st.just("text_delta"), "text": clean_text}),
        opt({"type": st.just("thinking_delta"), "thinking": clean_text}),
        opt({"type": st.just("input_json_delta"), "partial_json": clean_text}))}),
    opt({"type": st.just("content_block_stop"), "index": st.integers(0, 5)}),
    opt({"type": st.just("message_delta"), "delta": opt({"stop_reason": st.sampled_from(["end_turn", "tool_use"]),
                                                         "stop_sequence": st.none()}), "usage": anthropic_usage}),
    st.sampled_from([{"type": "message_stop"}, {"type": "ping"},
                     {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]),
)
ollama_reply = opt(
    {"model": clean_text, "created_at": st.sampled_from(["2025-07-07T20:21:40.514862Z", "2025-01-01T00:00:00Z"]) |
     clean_text, "message": opt({"role": st.just("assistant"), "content": clean_text}, optional={
         "thinking": clean_text, "tool_calls": st.lists(opt({"function": opt(
             {"name": name_text, "arguments": args_object})}), max_size=2)}), "done": st.booleans()},
    optional={"done_reason": st.sampled_from(["stop", "length", "load"]), "prompt_eval_count": counts,
              "eval_count": counts},
)
ollama_embed_reply = opt({"model": clean_text, "embeddings": st.lists(st.lists(st.floats(allow_nan=False),
                                                                               max_size=4), max_size=3)},
                         optional={"prompt_eval_count": counts})

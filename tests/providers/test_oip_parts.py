"""The gRPC provider's pure parts: addresses, prompt templates, stop strings, tensors and statuses
(providers/oip/, config/grpc_schema.py, config/prompt_templates.py). The provider against real
servers: tests/e2e/test_grpc_*.py."""

from __future__ import annotations

import struct

import grpc
import pytest

from clawdbot.config.grpc_schema import GrpcSettings, Tensor, grpc_target
from clawdbot.config.loader import ConfigError, load_config_text
from clawdbot.config.prompt_templates import TemplateError, compile_template, template_problem
from clawdbot.core.errors import UpstreamError, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from clawdbot.providers.oip import open_inference_pb2 as pb
from clawdbot.providers.oip.presets import resolve
from clawdbot.providers.oip.status import status_error
from clawdbot.providers.oip.stops import StopScanner
from clawdbot.providers.oip.tensors import infer_request, output_text, parameter, top_level_fields

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


@pytest.mark.parametrize(("endpoint", "want"), [
    ("model-server-1:50051", ("model-server-1", 50051, False)),
    ("grpc://10.0.0.2:8001", ("10.0.0.2", 8001, False)),
    ("grpcs://triton.example:443/", ("triton.example", 443, True)),
    ("[::1]:8001", ("::1", 8001, False)),
])
def test_grpc_addresses(endpoint: str, want: tuple[str, int, bool]) -> None:
    assert tuple(grpc_target(endpoint)) == want


def test_ipv6_address_keeps_its_brackets_for_grpc() -> None:
    assert grpc_target("grpcs://[::1]:8001").address == "[::1]:8001"


@pytest.mark.parametrize("endpoint", ["http://h:1", "h", "h:0", "h:99999", "grpc://user@h:1", "h:x"])
def test_bad_grpc_addresses(endpoint: str) -> None:
    with pytest.raises(ValueError):
        grpc_target(endpoint)


def test_chatml_is_the_default_template() -> None:
    t = compile_template(None)
    assert t.render(CHAT, "", "") == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                                      "<|im_start|>assistant\n")
    assert t.stop == ("<|im_end|>",)


def test_llama3_and_gemma_templates() -> None:
    assert compile_template("llama3").render(CHAT, "<|begin_of_text|>", "") == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    # Gemma has no system turn: its text opens the first user turn
    assert compile_template("gemma").render(CHAT, "", "") == (
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n")


def test_raw_sends_the_last_user_message_alone() -> None:
    assert compile_template("raw").render([*CHAT, {"role": "assistant", "content": "Hello"}], "", "") == "Hi"


def test_a_jinja_template_as_models_ship_them() -> None:
    source = ("{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
              "{% if add_generation_prompt %}[assistant] {% endif %}")
    assert compile_template(source).render(CHAT, "<s>", "</s>") == "<s>[system] Be brief.\n[user] Hi\n[assistant] "


def test_a_template_that_raises_says_so() -> None:
    t = compile_template("{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}")
    with pytest.raises(TemplateError, match="no system role"):
        t.render(CHAT, "", "")


def test_the_jinja_sandbox_refuses_reaching_python_internals() -> None:
    problem = template_problem("{{ messages.__class__.__mro__[1].__subclasses__() }}")
    assert problem is not None and "failed" in problem


def test_template_problems_are_config_errors_with_a_line() -> None:
    assert "unknown chat template `chatmll`" in (template_problem("chatmll") or "")
    assert "does not compile" in (template_problem("{% for %}") or "")
    with pytest.raises(ConfigError, match=r"t.yaml:6.*services\[0\].grpc.chat_template.*unknown chat template"):
        load_config_text("services:\n  - name: g\n    type: grpc\n    endpoint: h:1\n    grpc:\n"
                         "      chat_template: chatmll\n", "t.yaml")


def test_grpc_settings_belong_to_grpc_services() -> None:
    with pytest.raises(ConfigError, match="`grpc` applies to gRPC services"):
        load_config_text("services:\n  - name: m\n    type: mock\n    grpc: {preset: triton}\n", "t.yaml")
    with pytest.raises(ConfigError, match="`tls` applies to https and grpcs endpoints"):
        load_config_text("services:\n  - name: g\n    type: grpc\n    endpoint: h:1\n    tls: {ca_bundle: /x}\n",
                         "t.yaml")
    with pytest.raises(ConfigError, match="expected one of"):
        load_config_text("services:\n  - name: g\n    type: grpc\n    endpoint: h:1\n    grpc: {preset: tritn}\n",
                         "t.yaml")


def test_stop_strings_split_across_responses() -> None:
    s = StopScanner(["<|im_end|>", "STOP"])
    assert s.feed("Hello <|im") == "Hello "  # held: it may be the start of a stop string
    assert s.feed("_en") == ""
    assert s.feed("d|> more") == ""
    assert s.stopped and s.feed("after") == "" and s.flush() == ""


def test_held_text_that_was_no_stop_string_goes_out() -> None:
    s = StopScanner(["STOP"])
    assert s.feed("a ST") == "a "
    assert s.feed("ART") == "START"
    assert s.feed("x S") == "x "
    assert s.flush() == "S" and not s.stopped


def test_a_whole_answer_is_cut_at_its_first_stop() -> None:
    assert StopScanner(["b", "a"]).cut("xxaxb") == ("xx", True)
    assert StopScanner([]).cut("abc") == ("abc", False)


def test_triton_request_tensors() -> None:
    shape = resolve(GrpcSettings(preset="triton"))
    req = infer_request("ensemble", shape, "Hi", {"max_tokens": 8, "temperature": 0.5, "stop": ["\n"], "seed": 7,
                                                  "top_p": None}, True, "rid", final_marker=True)
    got = {t.name: (t.datatype, list(t.shape)) for t in req.inputs}
    assert got == {"text_input": ("BYTES", [1, 1]), "max_tokens": ("INT32", [1, 1]), "temperature": ("FP32", [1, 1]),
                   "stop_words": ("BYTES", [1, 1]), "random_seed": ("UINT64", [1, 1]), "stream": ("BOOL", [1, 1])}
    inputs = {t.name: t.contents for t in req.inputs}
    assert list(inputs["text_input"].bytes_contents) == [b"Hi"]
    assert list(inputs["max_tokens"].int_contents) == [8]
    assert list(inputs["stream"].bool_contents) == [True]
    assert list(inputs["random_seed"].uint64_contents) == [7]
    assert req.parameters["triton_enable_empty_final_response"].bool_param is True
    assert [o.name for o in req.outputs] == ["text_output"] and req.id == "rid"


def test_mlserver_request_parameters() -> None:
    shape = resolve(GrpcSettings(preset="mlserver"))
    req = infer_request("echo", shape, "Hi", {"max_tokens": 8, "temperature": 0.25, "stop": ["a", "b"]}, True, "r")
    assert [(t.name, t.datatype, list(t.shape)) for t in req.inputs] == [("prompt", "BYTES", [1])]
    assert req.parameters["max_tokens"].int64_param == 8
    assert req.parameters["temperature"].string_param == "0.25"  # MLServer's parameters have no floats
    assert req.parameters["stop"].string_param == '["a", "b"]'


def test_settings_override_the_preset() -> None:
    g = GrpcSettings(preset="triton", input=Tensor("prompt_text"), output="out", stream_flag="",
                     settings={"max_tokens": Tensor("max_new_tokens", "INT64"), "stop": None})
    shape = resolve(g)
    req = infer_request("m", shape, "Hi", {"max_tokens": 3, "stop": ["x"]}, True, "r")
    assert [(t.name, t.datatype, list(t.shape)) for t in req.inputs] == [
        ("prompt_text", "BYTES", [1, 1]), ("max_new_tokens", "INT64", [1, 1])]
    assert shape.output == "out"


def test_text_from_contents_and_from_raw_output() -> None:
    resp = pb.ModelInferResponse()
    out = resp.outputs.add(name="output", datatype="BYTES", shape=[1])
    out.contents.bytes_contents.append("héllo".encode())
    assert output_text(resp, "output", "s") == "héllo"
    raw = pb.ModelInferResponse()
    raw.outputs.add(name="text_output", datatype="BYTES", shape=[1, 2])
    raw.raw_output_contents.append(struct.pack("<I", 2) + b"ab" + struct.pack("<I", 1) + b"c")
    assert output_text(raw, "text_output", "s") == "abc"
    assert output_text(raw, "other", "s") is None


def test_a_truncated_raw_output_is_an_upstream_error() -> None:
    raw = pb.ModelInferResponse()
    raw.outputs.add(name="text_output", datatype="BYTES")
    raw.raw_output_contents.append(struct.pack("<I", 9) + b"ab")
    with pytest.raises(UpstreamError, match="runs past its end"):
        output_text(raw, "text_output", "s")


def test_stream_shapes_are_told_apart_by_their_fields() -> None:
    bare = pb.ModelInferResponse(model_name="m", id="1")
    bare.outputs.add(name="output")
    wrapped = pb.ModelStreamInferResponse(infer_response=bare)
    assert top_level_fields(wrapped.SerializeToString()) == {2}
    assert top_level_fields(pb.ModelStreamInferResponse(error_message="x").SerializeToString()) == {1}
    assert {1, 3, 5} <= top_level_fields(bare.SerializeToString())
    assert top_level_fields(b"\xff") == set()  # a malformed tag stops the scan


def test_response_parameters() -> None:
    resp = pb.ModelInferResponse()
    resp.parameters["completion_tokens"].int64_param = 4
    resp.parameters["triton_final_response"].bool_param = True
    assert parameter(resp.parameters, "completion_tokens") == 4
    assert parameter(resp.parameters, "triton_final_response") is True
    assert parameter(resp.parameters, "missing") is None


@pytest.mark.parametrize(("code", "kind", "retryable"), [
    (grpc.StatusCode.UNAVAILABLE, UpstreamUnavailable, True),
    (grpc.StatusCode.DEADLINE_EXCEEDED, UpstreamTimeout, True),
    (grpc.StatusCode.INVALID_ARGUMENT, UpstreamRejected, False),
    (grpc.StatusCode.FAILED_PRECONDITION, UpstreamUnavailable, True),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, UpstreamError, True),
    (grpc.StatusCode.INTERNAL, UpstreamError, True),
    (grpc.StatusCode.NOT_FOUND, UpstreamError, False),
    (grpc.StatusCode.UNAUTHENTICATED, UpstreamError, False),
])
def test_statuses_become_typed_errors(code: grpc.StatusCode, kind: type, retryable: bool) -> None:
    err = status_error("svc", code, "why")
    assert type(err) is kind and err.retryable is retryable
    assert "'svc'" in err.message and "why" in err.message


def test_mlservers_not_ready_model_is_not_the_callers_fault() -> None:
    err = status_error("svc", grpc.StatusCode.INVALID_ARGUMENT, "Model notready with version  is not ready yet.")
    assert isinstance(err, UpstreamUnavailable) and err.retryable


def test_the_callers_fault_comes_back_as_400() -> None:
    err = status_error("svc", grpc.StatusCode.INVALID_ARGUMENT, "prompt too long")
    assert err.status == 400 and err.code == "invalid_argument"


def test_reserved_metadata_names_are_refused_at_load() -> None:
    with pytest.raises(ConfigError, match="`grpc-timeout` cannot be sent as gRPC metadata"):
        load_config_text("services:\n  - name: g\n    type: grpc\n    endpoint: h:1\n    headers: {grpc-timeout: 1S}\n",
                         "t.yaml")

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from clawdbot.config.loader import ConfigError, load_config, load_config_text
from clawdbot.config.schema import Config, ModelEntry

SEED = Path(__file__).parent.parent / "fixtures" / "config" / "seed_services.yaml"


def load(text: str, env: dict[str, str] | None = None) -> Config:
    return load_config_text(textwrap.dedent(text), "test.yaml", env=env or {})


def fails(text: str, line: int, path: str, *fragments: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(text, env)
    err = info.value
    assert (err.file, err.line, err.path) == ("test.yaml", line, path), str(err)
    message = str(err)
    assert message.startswith(f"test.yaml:{line}: {path}: " if path else f"test.yaml:{line}: ")
    for fragment in fragments:
        assert fragment in message
    return err


# The seed's example, unchanged


def test_seed_example_loads() -> None:
    config = load_config(SEED, env={"ENV_MODEL_API_KEY": "sk-seed"})
    v1, v2 = config.services
    assert (v1.name, v1.type, v1.endpoint) == ("text_generator_v1", "grpc", "model-server-1:50051")
    assert v1.model_id == "llama-3-7b"
    assert (v2.name, v2.type, v2.endpoint) == (
        "text_generator_v2", "http", "https://api.model-provider.com/v1/generate")
    assert v2.auth is not None
    assert (v2.auth.type, v2.auth.key) == ("api_key", "sk-seed")


def test_seed_example_without_its_variable_names_file_line_and_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(SEED, env={})
    err = info.value
    assert (err.file, err.line, err.path) == (str(SEED), 12, "services[1].auth.key")
    assert str(err).startswith(f"{SEED}:12: services[1].auth.key: ")
    assert "ENV_MODEL_API_KEY" in str(err)


# ${VAR} substitution


def test_variable_default_and_escape() -> None:
    config = load(
        """\
        server:
          host: "${HOST:-0.0.0.0}"
          port: "${PORT}"
          master_key: "$${NOT_A_VAR}-${KEY}"
        """,
        env={"PORT": "8080", "KEY": "k1"},
    )
    assert config.server.host == "0.0.0.0"
    assert config.server.port == 8080
    assert config.server.master_key == "${NOT_A_VAR}-k1"


def test_set_variable_beats_default_and_empty_takes_default() -> None:
    text = 'server:\n  host: "${HOST:-fallback}"\n'
    assert load(text, {"HOST": "10.0.0.1"}).server.host == "10.0.0.1"
    assert load(text, {"HOST": ""}).server.host == "fallback"


def test_numbers_from_variables_convert() -> None:
    config = load(
        """\
        server:
          discovery_interval: ${EVERY}
        services:
          - name: m
            type: mock
            timeouts: {total: "${TOTAL}"}
        """,
        env={"EVERY": "2.5", "TOTAL": "30"},
    )
    assert config.server.discovery_interval == 2.5
    assert config.services[0].timeouts.total == 30.0


def test_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWDBOT_TEST_HOST", "192.0.2.1")
    config = load_config_text('server: {host: "${CLAWDBOT_TEST_HOST}"}\n')
    assert config.server.host == "192.0.2.1"


def test_missing_variable() -> None:
    fails('server:\n  host: a\n  master_key: "${SECRET}"\n', 3, "server.master_key", "`SECRET` is not set")


def test_unterminated_and_invalid_references() -> None:
    fails('server:\n  host: "${HOST"\n', 2, "server.host", "unterminated")
    fails('server:\n  host: "${1X}"\n', 2, "server.host", "invalid variable reference")


# YAML shape


@pytest.mark.parametrize("text", ["", "# only a comment\n", "~\n"])
def test_empty_file_is_default_config(text: str) -> None:
    assert load(text) == Config()


def test_invalid_yaml_names_the_line() -> None:
    fails("server:\n  host: a\n    port: 1\n", 3, "", "invalid YAML")


def test_top_level_must_be_a_mapping() -> None:
    fails("\n- a\n- b\n", 2, "", "top level must be a mapping")


def test_duplicate_key() -> None:
    fails("server:\n  port: 1\n  port: 2\n", 3, "server.port", "duplicate key")


def test_merge_keys_work() -> None:
    config = load(
        """\
        services:
          - &base {name: a, type: mock, max_pool: 4}
          - <<: *base
            name: b
        """
    )
    assert [(s.name, s.max_pool) for s in config.services] == [("a", 4), ("b", 4)]


# Schema errors


def test_unknown_key_suggests_the_field() -> None:
    fails(
        """\
        services:
          - name: a
            type: http
            endpint: http://127.0.0.1:8000
        """,
        4, "services[0].endpint", "unknown key `endpint`", "did you mean `endpoint`?",
    )


def test_unknown_nested_and_top_level_keys() -> None:
    fails("services:\n  - name: a\n    type: mock\n    auth:\n      kye: x\n", 5, "services[0].auth.kye",
          "did you mean `key`?")
    fails("servces: []\n", 1, "servces", "did you mean `services`?")
    fails("server: {}\nzzz: 1\n", 2, "zzz",
          "valid keys: server, data_dir, database_url, redis_url, redis_prefix, costs, metering, metrics, ",
          "web, services, models, routing, plugins, mcp)")


def test_wrong_type_names_the_expected_type() -> None:
    fails("server:\n  host: a\n  port: eighty\n", 3, "server.port", "expected `int`")


def test_invalid_choice_lists_the_choices() -> None:
    fails("services:\n  - name: a\n    type: grpcc\n", 3, "services[0].type", "expected one of:",
          "did you mean `grpc`?")


def test_missing_required_key() -> None:
    fails("services:\n  - type: mock\n", 2, "services[0].name", "missing required key `name`")


def test_error_inside_a_dict_entry_names_its_key() -> None:
    fails("models:\n  ok: [a]\n  bad: 5\n", 3, "models.bad", "expected `object | array`")
    fails("services:\n  - name: a\n    type: mock\n    headers:\n      X-A: b\n      X-B: 1\n", 6,
          "services[0].headers.X-B", "expected `str`")
    fails("models:\n  m:\n    targets: [a, 3]\n", 3, "models.m.targets[1]", "expected `str`")


# Semantic checks


def test_duplicate_service_names() -> None:
    fails("services:\n  - {name: a, type: mock}\n  - {name: a, type: mock}\n", 3, "services[1].name",
          "duplicate service name `a`", "first at line 2")


@pytest.mark.parametrize("kind", ["http", "openai", "ollama"])
def test_endpoint_required(kind: str) -> None:
    fails(f"services:\n  - name: a\n    type: {kind}\n", 2, "services[0].endpoint", "`endpoint` is required")


@pytest.mark.parametrize("url", ["127.0.0.1:11434", "ftp://h/x", "http://", "http://h:99999"])
def test_endpoint_must_be_http_url(url: str) -> None:
    fails(f"services:\n  - name: a\n    type: ollama\n    endpoint: '{url}'\n", 4, "services[0].endpoint",
          "not an http(s) URL")


def test_local_takes_no_endpoint_and_needs_none() -> None:
    assert load("services:\n  - {name: l, type: local}\n").services[0].endpoint is None
    fails("services:\n  - name: l\n    type: local\n    endpoint: http://h\n", 4, "services[0].endpoint",
          "takes no `endpoint`")


def test_model_targets_must_name_services() -> None:
    config = load(
        """\
        services:
          - {name: ollama, type: ollama, endpoint: "http://127.0.0.1:11434"}
        models:
          fast: [ollama/llama3.2:1b, ollama]
          smart: {targets: [ollama], description: the big one}
        """
    )
    assert config.model_targets("fast") == ["ollama/llama3.2:1b", "ollama"]
    assert isinstance(config.models["smart"], ModelEntry)
    fails(
        """\
        services:
          - {name: ollama, type: ollama, endpoint: "http://127.0.0.1:11434"}
        models:
          fast:
            - ollama
            - olama/llama3
        """,
        6, "models.fast[1]", "unknown service `olama`", "did you mean `ollama`?",
    )
    fails("models:\n  m:\n    targets: []\n", 3, "models.m.targets", "at least one target")


def test_port_range() -> None:
    fails("server:\n  port: 70000\n", 2, "server.port", "1..65535")
    fails("server:\n  port: 0\n", 2, "server.port", "1..65535")


def test_timeouts_positive() -> None:
    fails("services:\n  - name: a\n    type: mock\n    timeouts:\n      connect: 1\n      total: 0\n", 6,
          "services[0].timeouts.total", "must be positive")
    fails("services:\n  - name: a\n    type: mock\n    timeouts: {first_byte: -1}\n", 4,
          "services[0].timeouts.first_byte", "must be positive")


def test_discovery_interval_zero_means_off() -> None:
    assert load("server: {discovery_interval: 0}\n").server.discovery_interval == 0
    fails("server:\n  discovery_interval: -1\n", 2, "server.discovery_interval", "0 (off) or positive")


def test_header_auth_needs_a_header_name() -> None:
    fails("services:\n  - name: a\n    type: mock\n    auth: {type: header, key: k}\n", 4,
          "services[0].auth.header", "needs `header`")


@pytest.mark.parametrize(("endpoint", "given", "field"), [
    ("https://api.openai.com/v1", None, "max_completion_tokens"),  # its reasoning models refuse max_tokens
    ("http://127.0.0.1:8000/v1", None, "max_tokens"),  # llama.cpp, vLLM, Ollama ignore the other one
    ("https://api.openai.com/v1", "max_tokens", "max_tokens"),
    ("http://127.0.0.1:8000/v1", "max_completion_tokens", "max_completion_tokens"),
])
def test_the_output_limit_field_has_a_default_per_endpoint(endpoint: str, given: str | None, field: str) -> None:
    extra = f"\n    max_tokens_field: {given}" if given else ""
    svc = load(f"services:\n  - name: a\n    type: openai\n    endpoint: {endpoint}{extra}\n").services[0]
    assert svc.limit_field() == field


def test_the_output_limit_field_is_checked() -> None:
    fails("services:\n  - name: a\n    type: openai\n    endpoint: http://h\n    max_tokens_field: max_token\n",
          5, "services[0].max_tokens_field", "expected one of: max_tokens, max_completion_tokens")
    fails("services:\n  - name: a\n    type: ollama\n    endpoint: http://h\n    max_tokens_field: max_tokens\n",
          5, "services[0].max_tokens_field", "applies to OpenAI-compatible services", "not type `ollama`")


# Files and the error type


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert (info.value.file, info.value.line) == (str(missing), None)
    assert str(info.value).startswith(f"{missing}: cannot read config file")


def test_load_config_reports_the_real_file_name(tmp_path: Path) -> None:
    path = tmp_path / "clawdbot.yaml"
    path.write_text("server:\n  prot: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}:2: server.prot: unknown key `prot`, did you mean `port`?"


def test_odd_keys_are_quoted_in_paths() -> None:
    fails("models:\n  'a.b c': 5\n", 2, 'models["a.b c"]', "expected")


def test_local_settings_load() -> None:
    c = load("""
        services:
          - name: l
            type: local
            model: gemma-3-270m
            chat_format: transcript
            system_prompt: Answer briefly.
            sampling: {temperature: 0.5, repeat_penalty: 1.2, top_k: 20}
        """)
    svc = c.services[0]
    assert (svc.model, svc.chat_format, svc.system_prompt) == ("gemma-3-270m", "transcript", "Answer briefly.")
    assert svc.sampling is not None and svc.sampling.repeat_penalty == 1.2 and svc.sampling.top_k == 20


def test_local_only_settings_are_refused_elsewhere() -> None:
    fails("""
        services:
          - name: o
            type: openai
            endpoint: http://h/v1
            chat_format: chatml
        """, 6, "services[0].chat_format", "applies to local services", "not type `openai`")


def test_unknown_packaged_model_suggests_one() -> None:
    fails("""
        services:
          - name: l
            type: local
            model: smollm2-135m
        """, 5, "services[0].model", "no packaged model `smollm2-135m`", "smollm2-135m-instruct", "model_path")


def test_packaged_model_and_path_exclude_each_other() -> None:
    fails("""
        services:
          - name: l
            type: local
            model: gemma-3-270m
            model_path: /m.gguf
        """, 5, "services[0].model", "not both")


def test_sampling_out_of_range() -> None:
    fails("""
        services:
          - name: l
            type: local
            sampling: {top_p: 1.5}
        """, 5, "services[0].sampling.top_p", "must be in 0.0..1.0")


def test_chat_format_is_one_of_three() -> None:
    fails("""
        services:
          - name: l
            type: local
            chat_format: llama-2
        """, 5, "services[0].chat_format", "template", "chatml", "transcript")


def test_the_collector_settings() -> None:
    """server.gc_freeze, gc_thaw_interval and gc_young_every (api/heap.py): the modes, and the errors."""
    assert load("services: []\n").server.gc_freeze == "full"
    assert load("server: {gc_freeze: none, gc_thaw_interval: 30}\n").server.gc_freeze == "none"
    fails("server:\n  gc_freeze: off\n", 2, "server.gc_freeze")  # YAML's `off` is a boolean: `none` is the word
    fails("server:\n  gc_freeze: all\n", 2, "server.gc_freeze", "full", "young", "none")
    fails("server:\n  gc_thaw_interval: 0\n", 2, "server.gc_thaw_interval", "must be positive")
    assert load("services: []\n").server.gc_young_every == 0
    assert load("server: {gc_freeze: young, gc_young_every: 0.1}\n").server.gc_young_every == 0.1
    fails("server:\n  gc_young_every: -1\n", 2, "server.gc_young_every", "0 (off) to 60 seconds")
    fails("server:\n  gc_young_every: .nan\n", 2, "server.gc_young_every", "0 (off) to 60 seconds")
    fails("server:\n  gc_young_every: 0.1\n", 2, "server.gc_young_every", "`gc_freeze: young` only",
          "gc_freeze: full")  # the default mode: the setting would do nothing

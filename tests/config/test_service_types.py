"""config/service_types.py: one table of service types, read by the schema, the loader, the
providers' registry and pricing."""

from __future__ import annotations

import importlib
from typing import get_args, get_type_hints

import pytest

from clawdbot.config.loader import ConfigError, load_config_text
from clawdbot.config.schema import Service
from clawdbot.config.service_types import TYPES


def test_the_schema_accepts_exactly_the_table_s_types() -> None:
    assert set(get_args(get_type_hints(Service)["type"])) == set(TYPES)


@pytest.mark.parametrize("name", sorted(TYPES))
def test_each_provider_is_importable_by_its_string(name: str) -> None:
    module, _, cls = TYPES[name].provider.partition(":")
    assert callable(getattr(importlib.import_module(module), cls))


def test_endpoint_rules_come_from_the_table() -> None:
    cfg = load_config_text("services:\n  - name: a\n    type: anthropic\n", "t.yaml")  # optional: a default
    assert cfg.services[0].endpoint is None
    with pytest.raises(ConfigError, match="not an http"):
        load_config_text("services:\n  - name: a\n    type: anthropic\n    endpoint: ftp://x\n", "t.yaml")
    with pytest.raises(ConfigError, match="is required for type `ollama`"):
        load_config_text("services:\n  - name: a\n    type: ollama\n", "t.yaml")
    load_config_text("services:\n  - name: a\n    type: grpc\n    endpoint: host:50051\n", "t.yaml")  # not a URL
    with pytest.raises(ConfigError, match="not a gRPC address"):
        load_config_text("services:\n  - name: a\n    type: grpc\n    endpoint: http://host:50051\n", "t.yaml")


def test_auth_headers_per_type() -> None:
    assert TYPES["http"].auth_headers("k", None) == {"Authorization": "Bearer k"}
    assert TYPES["anthropic"].auth_headers("k", None) == {"x-api-key": "k"}
    assert TYPES["http"].auth_headers("k", "Authorization") == {"Authorization": "k"}  # named: raw
    assert TYPES["ollama"].auth_headers(None, None) == {}
    # type bearer: Authorization whatever the service type's own header (Anthropic's is x-api-key)
    assert TYPES["anthropic"].auth_headers("k", None, "bearer") == {"Authorization": "Bearer k"}
    assert TYPES["anthropic"].auth_headers("k", "X-Key", "bearer") == {"X-Key": "k"}
    assert TYPES["http"].auth_headers("k", None, "bearer") == {"Authorization": "Bearer k"}


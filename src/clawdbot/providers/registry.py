"""Service type -> provider factory. Data, not a chain of ifs; modules are imported lazily so an
unused provider (llama.cpp above all) costs no memory."""

from __future__ import annotations

import importlib

from clawdbot.config.schema import UNSUPPORTED_TYPES, Service
from clawdbot.providers.base import Provider

# type -> "module:class"; each class is constructed as cls(service)
FACTORIES: dict[str, str] = {
    "http": "clawdbot.providers.openai_http:OpenAIProvider",
    "openai": "clawdbot.providers.openai_http:OpenAIProvider",
    "ollama": "clawdbot.providers.ollama:OllamaProvider",
    "local": "clawdbot.providers.local:LocalProvider",
    "mock": "clawdbot.providers.mock:MockProvider",
    "grpc": "clawdbot.providers.unsupported:UnsupportedProvider",
    "anthropic": "clawdbot.providers.anthropic:AnthropicProvider",
}

# The wire dialect each type speaks upstream (the fast path needs inbound == upstream dialect).
DIALECTS: dict[str, str] = {
    "http": "openai", "openai": "openai", "ollama": "ollama", "local": "local", "mock": "mock",
    "grpc": "grpc", "anthropic": "anthropic",
}


def build_provider(svc: Service) -> Provider:
    module_name, _, cls_name = FACTORIES[svc.type].partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    provider: Provider = cls(svc)
    return provider


def is_supported(svc: Service) -> bool:
    return svc.type not in UNSUPPORTED_TYPES

"""Service type -> provider, read from the one table of service types (config/service_types.py).
The provider's module is imported only when a service of its type is built, so an unused provider
(llama.cpp above all) costs no memory."""

from __future__ import annotations

import importlib

from clawdbot.config.schema import Service
from clawdbot.config.service_types import TYPES
from clawdbot.providers.base import Provider


def build_provider(svc: Service) -> Provider:
    module_name, _, cls_name = TYPES[svc.type].provider.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    provider: Provider = cls(svc)
    return provider

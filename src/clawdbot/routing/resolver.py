"""Which (service, upstream model) pairs a request's `model` names.

Order: a `models:` entry; a service name; a service's metadata.model_id; `service/model`; a model
that exactly one dynamic service reports (Ollama's `name:latest` also answers to `name`)."""

from __future__ import annotations

import difflib

import msgspec

from clawdbot.config.schema import Config, Service
from clawdbot.core.errors import BadRequest, ModelNotFound
from clawdbot.core.types import ModelInfo
from clawdbot.routing.health import HealthMonitor


class Target(msgspec.Struct, frozen=True):
    service: str
    model: str


def default_model(svc: Service, monitor: HealthMonitor) -> str:
    if svc.model_id:
        return svc.model_id
    models = monitor.states[svc.name].models if svc.name in monitor.states else []
    return models[0] if models else svc.name


def _same_model(reported: str, asked: str) -> bool:
    return reported == asked or reported == f"{asked}:latest"


class Resolver:
    def __init__(self, config: Config, monitor: HealthMonitor) -> None:
        self.config = config
        self.monitor = monitor
        self.services = {s.name: s for s in config.services}

    def _target(self, ref: str) -> Target:
        if ref in self.services:
            return Target(ref, default_model(self.services[ref], self.monitor))
        svc, _, model = ref.partition("/")
        return Target(svc, model)

    def resolve(self, name: str) -> list[Target]:
        refs = self.config.model_targets(name)
        if refs is not None:
            return [self._target(r) for r in refs]
        if name in self.services:
            return [self._target(name)]
        by_id = [s for s in self.config.services if s.model_id == name]
        if by_id:
            return [Target(s.name, name) for s in by_id]
        svc_name, sep, model = name.partition("/")
        if sep and svc_name in self.services and model:
            reported = self.monitor.states[svc_name].models
            if not reported or any(_same_model(m, model) for m in reported):
                return [Target(svc_name, model)]
        offering = [(s, m) for s, st in self.monitor.states.items() for m in st.models if _same_model(m, name)]
        if len(offering) == 1:
            return [Target(offering[0][0], offering[0][1])]
        if len(offering) > 1:
            names = ", ".join(f"{s}/{m}" for s, m in offering)
            raise BadRequest(f"The model '{name}' is served by several services; name one of: {names}.",
                             param="model", code="model_ambiguous")
        close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ModelNotFound(f"The model '{name}' does not exist or is not served by this gateway.{hint}",
                            param="model")

    def names(self) -> list[str]:
        return [m.id for m in self.models()]

    def models(self) -> list[ModelInfo]:
        seen: dict[str, ModelInfo] = {}

        def add(id_: str, owner: str, desc: str | None = None) -> None:
            seen.setdefault(id_, ModelInfo(id_, owner, description=desc))

        for name, entry in self.config.models.items():
            add(name, "clawdbot", None if isinstance(entry, list) else entry.description)
        counts: dict[str, int] = {}
        for st in self.monitor.states.values():
            for m in st.models:
                counts[m] = counts.get(m, 0) + 1
        for svc in self.config.services:
            desc = svc.metadata.get("description")
            add(svc.name, svc.name, str(desc) if desc else None)
            if svc.model_id:
                add(svc.model_id, svc.name, str(desc) if desc else None)
            for m in self.monitor.states[svc.name].models:
                add(f"{svc.name}/{m}", svc.name)
                if counts[m] == 1:
                    add(m, svc.name)
        return list(seen.values())

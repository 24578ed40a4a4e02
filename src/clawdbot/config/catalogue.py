"""The catalogue `clawdbot models` shows and installs from: a curated, versioned list of Ollama
library models (catalogue.json beside this module; its `version` goes up whenever an entry changes)
and the PyPI-packaged GGUF models of config/local_models.py (PACKAGED, not repeated in the file).

An Ollama name without a tag means `:latest`, as Ollama reads it; `canonical()` spells that out so
that a catalogue name and a name from /api/tags compare equal."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from clawdbot.config.local_models import PACKAGED, PackagedModel


@dataclass(frozen=True)
class Entry:
    name: str
    source: str  # "ollama" (an Ollama library name) or "local" (a PyPI-packaged GGUF)
    kind: str  # chat | embedding | base
    size_mb: int
    license: str
    context: int
    description: str
    parameters: str = ""
    quantization: str = ""
    packaged: PackagedModel | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "source": self.source, "kind": self.kind, "size_mb": self.size_mb,
                               "license": self.license, "context": self.context, "parameters": self.parameters,
                               "quantization": self.quantization, "description": self.description}
        if self.packaged is not None:
            out.update(distribution=self.packaged.distribution, version=self.packaged.version)
        return out


@dataclass(frozen=True)
class Catalogue:
    version: int
    entries: tuple[Entry, ...]

    def find(self, name: str) -> Entry | None:
        if name in PACKAGED:
            return next(e for e in self.entries if e.name == name)
        want = canonical(name)
        return next((e for e in self.entries if e.source == "ollama" and canonical(e.name) == want), None)


def canonical(name: str) -> str:
    """An Ollama model name with its tag: `phi4-mini` is `phi4-mini:latest`."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def local_entry(m: PackagedModel) -> Entry:
    return Entry(name=m.name, source="local", kind="chat" if m.instruct else "base", size_mb=m.size_mb,
                 license=m.license, context=m.context, description=m.description, quantization=m.quantization,
                 packaged=m)


@cache
def load() -> Catalogue:
    doc = json.loads((resources.files("clawdbot.config") / "catalogue.json").read_text(encoding="utf-8"))
    ollama = tuple(Entry(source="ollama", **e) for e in doc["ollama"])
    return Catalogue(int(doc["version"]), ollama + tuple(local_entry(m) for m in PACKAGED.values()))

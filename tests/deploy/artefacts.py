"""Paths of the deployment artefacts, and the Dockerfile read as instructions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_DIR = ROOT / "deploy" / "compose"
NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
CHART = ROOT / "deploy" / "helm" / "clawdbot"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    args: str
    stage: int  # index of the FROM it belongs to; -1 before the first

    def exec_form(self) -> list[str] | None:
        """The JSON array form's words (CMD, ENTRYPOINT, HEALTHCHECK ... CMD [...]), else None."""
        text = self.args.split("CMD", 1)[1] if self.keyword == "HEALTHCHECK" else self.args
        text = text.strip()
        if not text.startswith("["):
            return None
        words: list[str] = json.loads(text)
        return words


def dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    """Instructions with their continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, re.sub(r"\s+", " ", args).strip(), stage))
    return out

"""What every `clawdbot models` verb works with (cli/models.py, cli/models_pull.py): the parsed
arguments, the output, the environment and the config, and the choice of Ollama service."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from clawdbot.cli.admin_http import CliError
from clawdbot.cli.models_gateway import GatewayView
from clawdbot.cli.output import Output
from clawdbot.config import local_models
from clawdbot.config.local_models import PACKAGED
from clawdbot.config.schema import Config, Service


class Usage(CliError):
    """A mistake in the command line: exit status 2."""


@dataclass
class Context:
    args: argparse.Namespace
    out: Output
    env: dict[str, str]
    config: Config
    notes: list[str] = field(default_factory=list)

    @property
    def gateway(self) -> GatewayView:
        return GatewayView(self.args.url, self.args.key or self.config.server.master_key)

    def models_dir(self) -> Any:
        return local_models.models_dir(self.env, self.config.data_dir)

    def ollama_services(self) -> list[Service]:
        return [s for s in self.config.services if s.type == "ollama"]

    def ollama_service(self) -> Service:
        """--service, else the config's only Ollama service. Raises Usage."""
        services = self.ollama_services()
        wanted = getattr(self.args, "service", None)
        if wanted:
            svc = next((s for s in self.config.services if s.name == wanted), None)
            if svc is None:
                raise Usage(f"no service named {wanted!r} in the config (services: "
                            f"{', '.join(s.name for s in self.config.services) or 'none'})")
            if svc.type != "ollama":
                raise Usage(f"service {wanted!r} is of type {svc.type}, not ollama: only Ollama services pull models")
            return svc
        if not services:
            raise Usage("the config has no Ollama service: add one (type: ollama) or name a packaged model "
                        f"({', '.join(PACKAGED)})")
        if len(services) > 1:
            raise Usage(f"the config has several Ollama services ({', '.join(s.name for s in services)}): "
                        f"choose one with --service")
        return services[0]

    def fail(self, message: str) -> None:
        """An error, said once: a JSON document on stdout with --json (pull: its last line), else stderr."""
        if self.args.json:
            self.out.stream.write(json.dumps({"error": message}, ensure_ascii=False) + "\n")
        else:
            print(f"clawdbot models {self.args.verb}: {message}", file=sys.stderr)

    def say_notes(self) -> None:
        for note in self.notes:
            print(f"clawdbot models {self.args.verb}: {note}", file=sys.stderr)

"""`clawdbot init [TEMPLATE]`: writes a commented clawdbot.yaml from a template (cli/templates/), a
.env.example listing the variables it reads, and for `compose` a docker-compose.yml.

On a terminal without TEMPLATE it asks which one; otherwise it asks nothing (scripts, CI) and takes
`local`. It never overwrites a file unless `--force`; it writes nothing at all when one of the files
exists, so a refused run leaves no half-written set. Every template passes `clawdbot config
validate` with the variables of its .env.example set (tests/cli/test_init.py)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from importlib import resources
from typing import Any

from clawdbot.cli.config_cmd import PLACEHOLDER
from clawdbot.cli.output import Output
from clawdbot.config.dump import is_secret_name

TEMPLATES = {
    "local": "the embedded model, in-process on the CPU (nothing else to run)",
    "ollama": "an Ollama server",
    "openai-compatible": "an OpenAI-compatible server: vLLM, llama.cpp's llama-server, LM Studio, ...",
    "multi": "several servers: weighted routing, retries and a fallback to a cloud model",
    "team": "virtual keys and budgets, PostgreSQL and Redis, the request log, PII masking",
    "compose": "the team setup as docker-compose.yml (clawdbot, PostgreSQL, Redis, Ollama)",
}
EXTRA_FILES = {"compose": ("docker-compose.yml",)}
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def register(sub: Any) -> None:
    p = sub.add_parser("init", help="write a commented clawdbot.yaml from a template",
                       description="Write clawdbot.yaml (and .env.example) from a template: "
                                   + "; ".join(f"{k}: {v}" for k, v in TEMPLATES.items()) + ".")
    p.add_argument("template", nargs="?", choices=tuple(TEMPLATES), metavar="TEMPLATE",
                   help=f"one of {', '.join(TEMPLATES)} (default: asked on a terminal, else local)")
    p.add_argument("--dir", default=".", help="where to write (default: the current directory)")
    p.add_argument("--force", action="store_true", help="overwrite files that exist")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(func=run)


def template_text(name: str, file: str | None = None) -> str:
    return (resources.files("clawdbot.cli") / "templates" / (file or f"{name}.yaml")).read_text(encoding="utf-8")


def env_example(texts: list[str]) -> str:
    """The variables the files read, in order of first use: those without a default uncommented
    (they must be set; secrets get a placeholder to change), those with one commented out."""
    seen: dict[str, str | None] = {}
    for text in texts:
        for m in _REF.finditer(text):
            name, default = m.group(1), m.group(2)
            if name not in seen:
                seen[name] = default
    lines = ["# The variables clawdbot.yaml reads. Copy to .env (docker compose reads it) or export them.",
             "# Commented lines show the default that applies when the variable is not set."]
    for name, default in seen.items():
        if default is not None:
            lines.append(f"# {name}={default}")
        elif is_secret_name(name) or name.endswith("_PASSWORD"):
            lines.append(f"{name}={PLACEHOLDER}-{name.lower().replace('_', '-')}")
        else:
            lines.append(f"{name}=")
    return "\n".join(lines) + "\n"


def choose(out: Output) -> str | None:
    names = list(TEMPLATES)
    for i, name in enumerate(names, 1):
        out.line(f"  {i}. {name:<18} {TEMPLATES[name]}")
    while True:
        try:
            answer = input(f"template [1-{len(names)}, default 1]: ").strip()
        except EOFError:
            return None
        if not answer:
            return names[0]
        if answer in TEMPLATES:
            return answer
        if answer.isdigit() and 1 <= int(answer) <= len(names):
            return names[int(answer) - 1]
        out.line(f"type a number from 1 to {len(names)} or a template's name")


def run(args: argparse.Namespace) -> int:
    out = Output(args.json)
    name = args.template
    if name is None:
        name = choose(out) if sys.stdin.isatty() and sys.stdout.isatty() and not args.json else "local"
        if name is None:
            return 1
    files = {"clawdbot.yaml": template_text(name)}
    for extra in EXTRA_FILES.get(name, ()):
        files[extra] = template_text(name, extra)
    files[".env.example"] = env_example(list(files.values()))
    os.makedirs(args.dir, exist_ok=True)
    paths = {f: os.path.join(args.dir, f) for f in files}
    existing = [p for p in paths.values() if os.path.lexists(p)]
    if existing and not args.force:
        print(f"clawdbot: {', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
              f"nothing written (--force overwrites)", file=sys.stderr)
        return 1
    for file, text in files.items():
        with open(paths[file], "w", encoding="utf-8") as f:
            f.write(text)
    if args.json:
        out.data({"template": name, "written": list(paths.values())})
        return 0
    for path in paths.values():
        out.verdict("ok", f"wrote {path}")
    config = paths["clawdbot.yaml"]
    flag = "" if os.path.abspath(args.dir) == os.getcwd() else f" --config {config}"
    out.line(f"next: clawdbot config validate{'' if not flag else ' ' + config}   then: clawdbot serve{flag}")
    return 0

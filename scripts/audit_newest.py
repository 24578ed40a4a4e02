"""scripts/audit.sh's fallback when pip-audit cannot reach its feed: PyPI's project JSON
(`/pypi/NAME/json`), which some networks serve while they refuse the per-release API pip-audit asks
(`/pypi/NAME/VERSION/json`). Its `vulnerabilities` are those of the project's newest release only,
so a pin is audited only when it is that release; any other pin is reported as not audited (with
the newest version, which a `uv lock --upgrade-package` would take), never as clean.

    python scripts/audit_newest.py REQUIREMENTS OUT.json [--from-dir DIR] [--index URL]

REQUIREMENTS: `name==version` lines (uv export's format). OUT.json: pip-audit's JSON report format,
which audit.sh then judges against scripts/audit-ignore.txt as it judges pip-audit's. `--from-dir`
reads DIR/NAME.json (saved project JSON documents; the tests) instead of the index. Exit status 0
once the report is written, whatever it holds; 3 when no package could be looked up at all."""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import platform
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
TIMEOUT_S = 30
MAX_BYTES = 64 << 20  # a project document (every release's files) is a few MiB at most
WORKERS = 8


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: Path) -> list[tuple[str, str]]:
    out = []
    for line in requirements.read_text().splitlines():
        m = PIN.match(line.strip())
        if m:
            out.append((normalized(m[1]), m[2]))
    return out


def fetch(name: str, index: str | None, folder: Path | None) -> dict[str, Any]:
    if folder is not None:
        return dict(json.loads((folder / f"{name}.json").read_text()))
    assert index is not None
    with urllib.request.urlopen(f"{index.rstrip('/')}/{name}/json", timeout=TIMEOUT_S) as r:
        return dict(json.loads(r.read(MAX_BYTES)))


def excluded_python(spec: str | None) -> str:
    """' (it needs Python SPEC)' when the newest release cannot run on this Python (so no lock
    upgrade takes it: the lock keeps a fork for older Pythons), else ''."""
    if not spec:
        return ""
    try:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
    except ImportError:
        return ""
    try:
        admitted = SpecifierSet(spec).contains(platform.python_version())
    except InvalidSpecifier:
        return ""
    return "" if admitted else f" (it needs Python {spec})"


def entry(name: str, version: str, doc: dict[str, Any]) -> dict[str, Any]:
    """One dependency as pip-audit reports it: its vulns, or why it was not audited."""
    newest = str(doc["info"]["version"])
    if version != newest:
        why = excluded_python(doc["info"].get("requires_python"))
        return {"name": name, "skip_reason": f"locked {version}, the newest release is {newest}{why}: PyPI's "
                                              "project JSON lists the newest release's vulnerabilities only"}
    vulns = [{"id": v["id"], "fix_versions": list(v.get("fixed_in") or []), "aliases": list(v.get("aliases") or []),
              "description": v.get("details") or v.get("summary") or ""}
             for v in doc.get("vulnerabilities") or [] if not v.get("withdrawn")]
    return {"name": name, "version": version, "vulns": vulns}


def audit(pinned: list[tuple[str, str]], index: str | None, folder: Path | None) -> list[dict[str, Any]]:
    def one(pin: tuple[str, str]) -> dict[str, Any]:
        name, version = pin
        try:
            return entry(name, version, fetch(name, index, folder))
        except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError) as exc:
            return {"name": name, "skip_reason": f"could not be looked up ({type(exc).__name__}: {exc})"}

    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(one, pinned))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("requirements", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--index", default="https://pypi.org/pypi", help="the JSON API's base (default PyPI's)")
    ap.add_argument("--from-dir", type=Path, help="saved project documents, DIR/NAME.json, instead of the index")
    a = ap.parse_args()
    deps = audit(pins(a.requirements), None if a.from_dir else a.index, a.from_dir)
    a.out.write_text(json.dumps({"dependencies": deps, "fixes": []}))
    looked_up = [d for d in deps if not d.get("skip_reason", "").startswith("could not be looked up")]
    return 0 if looked_up else 3


if __name__ == "__main__":
    sys.exit(main())

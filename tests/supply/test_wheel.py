"""What `pip install clawdbot` gets: the wheel built from this tree (`uv build --wheel`, offline) holds
the package's source and data files and nothing else (no tests, no caches, no editor or OS litter,
no .env or keys, no databases or logs, no file past the size bound), its RECORD matches its files,
its metadata names the package, its Python, its dependencies and every extra, and it works when
installed on its own."""

from __future__ import annotations

import email.parser
import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path, PurePosixPath

import pytest
import yaml

from tests.e2e.wheel import record_mismatches

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
DIST_INFO = f"clawdbot-{VERSION}.dist-info"
# docs/configuration.md names each
EXTRAS = {"local", "postgres", "redis", "semantic", "presidio", "otel", "plot", "grpc", "mcp"}

# Files other than Python source that belong in the package, by pattern (relative to clawdbot/).
DATA = ("web/static/*.html", "web/static/*.css", "web/static/*.svg", "web/static/js/*.js",
        "cli/templates/*.yaml", "cli/templates/*.yml", "config/catalogue.json", "state/migrations/script.py.mako",
        "providers/oip/open_inference.proto", "providers/oip/open_inference_pb2.pyi",  # the messages' source and types
        "py.typed")  # PEP 561: the package's annotations are for plugin authors too
MAX_FILE_BYTES = 64 * 1024  # a module past ~800 lines must be split anyway (ARCHITECTURE.md)
LARGE_OK: dict[str, str] = {}  # path -> why it may be bigger (none today)
MAX_WHEEL_BYTES = 2 * 1024 * 1024
# Never shipped, whatever a build configuration or a .gitignore says.
FORBIDDEN = ("*/__pycache__/*", "*.pyc", "*.pyo", "*/.DS_Store", ".DS_Store", "*~", "*.swp", "*.swo", "*/.#*",
             "*.orig", "*.rej", "*.bak", "*.tmp", "*/.env", "*/.env.*", "*.pem", "*.key", "*.crt", "*.p12",
             "*.db", "*.sqlite", "*.sqlite3", "*-wal", "*-shm", "*.log", "*.journal", "*.gguf", "*/tests/*",
             "*/conftest.py", "*/test_*.py", "*/test-artifacts/*", "*/.gitignore", "*/.idea/*", "*/.vscode/*",
             "*.ipynb")
# Credentials in shipped text: a private key, a token of a well-known shape, a literal secret value
SECRET_SHAPES = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|\bsk-(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,}"  # OpenAI-style keys (a real one has digits)
    r"|\bsk-ant-[A-Za-z0-9_-]{20,}|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{30,}|\bxox[abprs]-[A-Za-z0-9-]{10,}"
    r"|\bAIza[0-9A-Za-z_-]{35}\b|\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.")
SECRET_FIELD = re.compile(r"(^|[_-])(key|api[_-]?key|secret|token|password|credentials?)$", re.IGNORECASE)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv")
    assert uv is not None, "uv builds the wheel (make install-dev puts it on PATH)"
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([uv, "build", "--wheel", "--offline", "--no-create-gitignore", "--out-dir", str(out),
                        str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    [built] = out.glob("*.whl")
    assert built.name == f"clawdbot-{VERSION}-py3-none-any.whl"
    return built


def files(wheel: Path) -> dict[str, zipfile.ZipInfo]:
    with zipfile.ZipFile(wheel) as z:
        return {i.filename: i for i in z.infolist() if not i.is_dir()}


def package_files(wheel: Path) -> list[str]:
    return [n.removeprefix("clawdbot/") for n in files(wheel) if n.startswith("clawdbot/")]


def test_only_the_package_and_its_metadata(wheel: Path) -> None:
    names = files(wheel)
    outside = [n for n in names if not n.startswith(("clawdbot/", f"{DIST_INFO}/"))]
    assert outside == [], "files outside the package"
    meta = sorted(PurePosixPath(n).name for n in names if n.startswith(f"{DIST_INFO}/"))
    assert meta == ["LICENSE", "METADATA", "RECORD", "WHEEL", "entry_points.txt"]  # licenses/LICENSE


def test_nothing_that_never_belongs(wheel: Path) -> None:
    bad = [n for n in files(wheel) if any(fnmatch.fnmatch(n, p) for p in FORBIDDEN)]
    assert bad == [], "caches, tests, editor or OS files, keys, databases or logs in the wheel"


def test_every_non_python_file_is_a_known_kind_of_data(wheel: Path) -> None:
    stray = [n for n in package_files(wheel)
             if not n.endswith(".py") and not any(fnmatch.fnmatch(n, p) for p in DATA)]
    assert stray == [], "files that are neither source nor the package's data (add them to DATA if they belong)"


def test_the_package_is_what_git_has_under_src(wheel: Path) -> None:
    """Every file git tracks under src/clawdbot is shipped (no data left behind by the build
    configuration), and nothing else is (no file git ignores, nothing from outside src/clawdbot)."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git work tree (a source distribution): the other checks still apply")

    def git(*args: str) -> set[str]:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", *args, "src/clawdbot"], capture_output=True,
                             text=True, check=True).stdout
        return {line.removeprefix("src/clawdbot/") for line in out.splitlines() if line}

    tracked, new = git(), git("--others", "--exclude-standard")  # new: not added yet, not ignored
    shipped = set(package_files(wheel))
    assert sorted(tracked - shipped) == [], "tracked files the wheel leaves out"
    assert sorted(shipped - tracked - new) == [], "shipped files git does not know"


def test_no_file_is_past_the_size_bound(wheel: Path) -> None:
    big = {n: i.file_size for n, i in files(wheel).items()
           if i.file_size > MAX_FILE_BYTES and n.removeprefix("clawdbot/") not in LARGE_OK}
    assert big == {}, f"files over {MAX_FILE_BYTES} bytes (document them in LARGE_OK with the reason)"
    assert wheel.stat().st_size <= MAX_WHEEL_BYTES


def test_no_credentials_in_what_ships(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        found = {n: f"{m.group()[:4]}... at offset {m.start()}" for n in z.namelist() if n.startswith("clawdbot/")
                 for m in [SECRET_SHAPES.search(z.read(n).decode("utf-8", "replace"))] if m}
    assert found == {}, "credential-shaped text in shipped files (the report keeps to its first 4 characters)"


def _secret_values(data: object, path: str = "") -> list[tuple[str, str]]:
    if isinstance(data, dict):
        out = []
        for k, v in data.items():
            here = f"{path}.{k}" if path else str(k)
            if isinstance(v, str) and SECRET_FIELD.search(str(k)):
                out.append((here, v))
            out += _secret_values(v, here)
        return out
    if isinstance(data, list):
        return [x for i, v in enumerate(data) for x in _secret_values(v, f"{path}[{i}]")]
    return []


def test_config_templates_take_secrets_from_the_environment(wheel: Path) -> None:
    """`clawdbot init` writes these: a key in them would be every user's key."""
    with zipfile.ZipFile(wheel) as z:
        templates = [n for n in z.namelist()
                     if n.startswith("clawdbot/cli/templates/") and n.endswith((".yaml", ".yml"))]
        assert templates
        literal = [(n, field) for n in templates for field, value in _secret_values(yaml.safe_load(z.read(n)) or {})
                   if not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-)?\}", value)]
    assert literal == [], "secret fields with literal values in the templates"


def test_record_matches_the_files(wheel: Path) -> None:
    assert record_mismatches(wheel) == []


def test_metadata_names_the_package_its_python_dependencies_and_extras(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        meta = email.parser.Parser().parsestr(z.read(f"{DIST_INFO}/METADATA").decode())
        tags = email.parser.Parser().parsestr(z.read(f"{DIST_INFO}/WHEEL").decode())
        entry_points = z.read(f"{DIST_INFO}/entry_points.txt").decode()
    assert meta["Name"] == "clawdbot" and meta["Version"] == VERSION
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["License"] == "Apache-2.0" or meta["License-Expression"] == "Apache-2.0"
    assert set(meta.get_all("Provides-Extra")) == EXTRAS == set(PYPROJECT["project"]["optional-dependencies"])
    requires = meta.get_all("Requires-Dist")
    def name(req: str) -> str:  # PEP 503's normal form: the METADATA writes ruamel.yaml as ruamel-yaml
        return re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~;\s]", req, maxsplit=1)[0]).lower()

    bare = {name(r) for r in requires if "extra ==" not in r}
    declared = {name(d) for d in PYPROJECT["project"]["dependencies"]}
    assert bare == declared
    for extra in EXTRAS:
        assert any(f"extra == '{extra}'" in r for r in requires), extra
    assert tags["Root-Is-Purelib"] == "true" and tags.get_all("Tag") == ["py3-none-any"]
    assert "[console_scripts]\nclawdbot = clawdbot.cli.main:main" in entry_points


def test_the_installed_wheel_runs_on_its_own(wheel: Path, tmp_path: Path) -> None:
    """Installed apart from the source tree (its dependencies from this environment), the command
    starts and finds its data files: the chat page, the templates, the migrations, the catalogue."""
    uv = shutil.which("uv")
    assert uv is not None
    target = tmp_path / "site"
    subprocess.run([uv, "pip", "install", "--quiet", "--no-deps", "--offline", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=120)
    probe = f"""
import sys
sys.path.insert(0, {str(target)!r})
import clawdbot
from pathlib import Path
root = Path(clawdbot.__file__).parent
assert root.parent == Path({str(target)!r}), root
for rel in ("web/static/index.html", "cli/templates/team.yaml", "config/catalogue.json",
            "state/migrations/script.py.mako"):
    assert (root / rel).is_file(), rel
assert list((root / "state/migrations").rglob("*.py")), "no migrations"
from clawdbot.cli.main import main
sys.argv = ["clawdbot", "--version"]
main()
"""
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == f"clawdbot {VERSION}", r.stdout + r.stderr

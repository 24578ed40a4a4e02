"""A wheel built from a directory of Python files (the format of PEP 427: a zip with a .dist-info
holding METADATA, WHEEL, entry_points.txt and RECORD), installed with uv into a directory that a
gateway process then has on its PYTHONPATH: how a user ships a plugin as a pip package. And the
reading side, for any wheel (clawdbot's own, in tests/supply/test_wheel.py): its RECORD checked
against its files."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import zipfile
from pathlib import Path


def record_line(name: str, data: bytes) -> str:
    """A RECORD row: path, the urlsafe-base64 sha256 of the bytes without padding, the size."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(package_dir: Path, dist: str, version: str, entry_points: dict[str, str], out: Path) -> Path:
    """`package_dir` is an importable package; `entry_points` maps plugin names to "module:Class"."""
    info = f"{dist}-{version}.dist-info"
    files: dict[str, bytes] = {}
    for path in sorted(package_dir.rglob("*.py")):
        files[f"{package_dir.name}/{path.relative_to(package_dir).as_posix()}"] = path.read_bytes()
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: clawdbot-tests\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n")
    eps = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    files[f"{info}/entry_points.txt"] = f"[clawdbot.plugins]\n{eps}".encode()
    record = [record_line(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = out / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return wheel


def install(wheel: Path, target: Path) -> Path:
    """`uv pip install --target`: the package and its entry points, nothing else."""
    uv = shutil.which("uv")
    assert uv is not None, "uv is needed to install the test plugin wheel"
    subprocess.run([uv, "pip", "install", "--quiet", "--no-deps", "--offline", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=120)
    return target


def record_mismatches(wheel: Path) -> list[str]:
    """What in `wheel` disagrees with its RECORD: files missing from it, rows for absent files, and
    hashes or sizes that do not match (empty when the wheel is whole)."""
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if not n.endswith("/")]
        record_name = next((n for n in names if n.endswith(".dist-info/RECORD")), None)
        if record_name is None:
            return ["no .dist-info/RECORD"]
        rows = {line.split(",", 1)[0]: line for line in z.read(record_name).decode().splitlines() if line}
        out = [f"not in RECORD: {n}" for n in names if n not in rows]
        for name, row in rows.items():
            if name == record_name:
                continue
            if name not in names:
                out.append(f"in RECORD but not in the wheel: {name}")
            elif row != record_line(name, z.read(name)):
                out.append(f"hash or size differs from RECORD: {name}")
        return out

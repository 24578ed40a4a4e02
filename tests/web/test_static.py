"""The chat page and its files: content types, security headers, revalidation, no traversal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clawdbot.web.static_files import CSP, STATIC_DIR
from tests.e2e.harness import GatewayProcess
from tests.web.client import http_request

pytestmark = pytest.mark.skipif(not (STATIC_DIR / "index.html").is_file(), reason="the page is not there yet")

EXPECTED_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
                "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
         ".html": "text/html; charset=utf-8"}


def page_assets() -> list[str]:
    """What index.html loads, relative to the page, plus every module main.js imports (transitively)."""
    html = (STATIC_DIR / "index.html").read_text()
    refs = [r for r in re.findall(r'(?:src|href)="([^"#:]+)"', html) if not r.startswith("//")]
    seen: list[str] = []
    todo = [r.lstrip("/").removeprefix("static/") for r in refs]
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.append(rel)
        if rel.endswith(".js"):
            text = (STATIC_DIR / rel).read_text()
            base = Path(rel).parent
            for imp in re.findall(r'(?:from|import)\s*\(?\s*"(\./[^"]+|\.\./[^"]+)"', text):
                todo.append(str(base / imp).replace("\\", "/").removeprefix("./"))
    return [str(Path(s)) for s in seen]


def test_index_is_html_with_security_headers(gw: GatewayProcess) -> None:
    status, headers, body = http_request(gw.url, "GET", "/")
    assert status == 200 and body == (STATIC_DIR / "index.html").read_bytes()
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-security-policy"] == EXPECTED_CSP == CSP.decode()
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-cache" and headers["etag"].startswith('"')
    assert int(headers["content-length"]) == len(body)


def test_every_file_the_page_loads_is_served_with_its_type(gw: GatewayProcess) -> None:
    assets = page_assets()
    assert any(a.endswith("main.js") for a in assets) and any(a.endswith(".css") for a in assets)
    for rel in assets:
        for path in (f"/{rel}", f"/static/{rel}"):  # as the page at / links it, and under /static/
            status, headers, body = http_request(gw.url, "GET", path)
            assert status == 200, path
            assert body == (STATIC_DIR / rel).read_bytes(), path
            assert headers["content-type"] == TYPES[Path(rel).suffix], path
            assert headers["x-content-type-options"] == "nosniff" and headers["cache-control"] == "no-cache"


def test_etag_revalidation_answers_304(gw: GatewayProcess) -> None:
    for path in ("/", "/static/js/main.js"):
        _, headers, _ = http_request(gw.url, "GET", path)
        status, again, body = http_request(gw.url, "GET", path, headers={"If-None-Match": headers["etag"]})
        assert status == 304 and body == b"" and again["etag"] == headers["etag"]
        status, _, body = http_request(gw.url, "GET", path, headers={"If-None-Match": '"stale"'})
        assert status == 200 and body


@pytest.mark.parametrize("path", [
    "/static/../layer.py", "/static/../../web/layer.py", "/static/%2e%2e/layer.py", "/static/js/../../layer.py",
    "/..%2flayer.py", "/static/..%2F..%2Fpyproject.toml", "/static/", "/static/js", "/js", "/static//etc/passwd",
    "/static/js/%00main.js", "/static/js\\main.js", "/static/nope.js",
])
def test_no_directory_traversal_or_listing(gw: GatewayProcess, path: str) -> None:
    status, _, body = http_request(gw.url, "GET", path)
    assert status in (400, 404), (path, status)
    assert b"import" not in body and b"def " not in body


def test_other_paths_and_methods(gw: GatewayProcess) -> None:
    status, _, body = http_request(gw.url, "GET", "/no-such-page")
    assert status == 404 and b"unknown_url" in body
    status, _, _ = http_request(gw.url, "POST", "/", {})
    assert status == 405
    status, _, _ = http_request(gw.url, "GET", "/v1/models")  # the API is still the API
    assert status == 200

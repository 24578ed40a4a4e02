"""The chat page: `GET /` is static/index.html, `GET /static/<path>` the files beside it.

Files are read when they change (stat per request, content cached, bounded), revalidated by the
browser on every load (`Cache-Control: no-cache` + a content ETag: a 304 costs a round trip, never
a stale page after an upgrade). Paths are resolved and must stay inside the static folder."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import OrderedDict
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_CACHED_FILES = 256
MAX_CACHED_BYTES = 1024 * 1024  # larger files are read on each request

CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",  # ES modules need a JavaScript type to load
    ".mjs": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".json": b"application/json",
    ".map": b"application/json",
    ".webmanifest": b"application/manifest+json",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
    ".jpg": b"image/jpeg",
    ".jpeg": b"image/jpeg",
    ".gif": b"image/gif",
    ".webp": b"image/webp",
    ".ico": b"image/x-icon",
    ".woff2": b"font/woff2",
    ".woff": b"font/woff",
    ".txt": b"text/plain; charset=utf-8",
}
CSP = (b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
COMMON_HEADERS = [(b"cache-control", b"no-cache"), (b"x-content-type-options", b"nosniff")]
HTML_HEADERS = [(b"content-security-policy", CSP), (b"referrer-policy", b"no-referrer")]


class StaticFile:
    __slots__ = ("body", "content_type", "etag", "key")

    def __init__(self, key: tuple[int, int], body: bytes, content_type: bytes) -> None:
        self.key = key  # (mtime_ns, size): the file changed when this does
        self.body = body
        self.content_type = content_type
        self.etag = b'"' + hashlib.blake2b(body, digest_size=12).hexdigest().encode() + b'"'

    def headers(self) -> list[tuple[bytes, bytes]]:
        out = [(b"etag", self.etag), *COMMON_HEADERS]
        if self.content_type.startswith(b"text/html"):
            out += HTML_HEADERS
        return out


class StaticFiles:
    def __init__(self, root: Path = STATIC_DIR) -> None:
        self.root = root.resolve()
        self._cache: OrderedDict[Path, StaticFile] = OrderedDict()

    def resolve(self, rel: str) -> Path | None:
        """The file `rel` names inside the root, or None (missing, a folder, or outside)."""
        if not rel or "\x00" in rel or "\\" in rel or any(p in ("..", "") for p in rel.split("/")):
            return None
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return None
        return path

    async def load(self, rel: str) -> StaticFile | None:
        path = self.resolve(rel)
        if path is None:
            return None
        try:
            st = path.stat()
        except OSError:
            return None
        key = (st.st_mtime_ns, st.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached.key == key:
            self._cache.move_to_end(path)
            return cached
        try:
            body = await asyncio.to_thread(path.read_bytes)  # off the event loop
        except OSError:
            return None
        ctype = CONTENT_TYPES.get(os.path.splitext(path.name)[1].lower(), b"application/octet-stream")
        f = StaticFile(key, body, ctype)
        if len(body) <= MAX_CACHED_BYTES:
            self._cache[path] = f
            self._cache.move_to_end(path)
            while len(self._cache) > MAX_CACHED_FILES:
                self._cache.popitem(last=False)
        return f

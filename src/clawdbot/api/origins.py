"""Which browser origins may use this gateway's HTTP routes, and the CORS headers they get.

A web page anywhere can make a browser send a "simple" request (a POST with a text/plain or form
body, no preflight) to a gateway on the user's loopback: it cannot read the answer, but without a
master key (the loopback default) the request runs, and an Ollama route reads JSON whatever the
Content-Type says, so the page could spend the user's upstream credit. Browsers name the page's
origin in an `Origin` header on every such request (and on every non-GET one, same-origin too), so
a request whose Origin is not allowed is refused with a 403 before anything else runs, as Ollama
refuses origins outside OLLAMA_ORIGINS and as MCP's transport asks of its servers.

Allowed: the gateway's own origin (the one the Host header names), pages on loopback (any local
process can reach a loopback gateway anyway), `web.allowed_origins` and `server.cors_origins`:
exact origins (`https://app.example.com`), one wildcard label (`https://*.example.com`), any port
(`http://intranet:*`), a scheme (`chrome-extension://*`), or `*` for any (with a master key only:
cli/serve.py). An allowed foreign origin gets CORS headers, so a browser app can read the answers,
errors included, and its preflights are answered (dispatch in api/app.py). No Origin: not a browser."""

from __future__ import annotations

from clawdbot.api.hosts import is_loopback_name, is_own_origin, split_port
from clawdbot.core.errors import Forbidden

MAX_CACHED = 256
MAX_AGE = b"600"  # seconds a browser may keep a preflight's answer
MAX_REQUESTED_HEADERS = 2048  # bytes of Access-Control-Request-Headers echoed back; longer: none allowed
_TOKEN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~, ")


# what `_decide` found for an (Origin, Host) pair
REFUSED, OWN, FOREIGN = 0, 1, 2


def _split(origin: str) -> tuple[str, str, str] | None:
    """`scheme://host:port` as (scheme, host, port); None when it is not one."""
    scheme, sep, rest = origin.partition("://")
    if not sep or not scheme or "/" in rest:
        return None
    return (scheme, *split_port(rest))


class AllowedOrigins:
    def __init__(self, cors_origins: list[str], web_origins: list[str]) -> None:
        entries = [o.strip().rstrip("/").lower() for o in (*cors_origins, *web_origins)]
        self.any = "*" in entries
        self.exact = frozenset(e for e in entries if "*" not in e)
        self.patterns = tuple(p for e in entries if "*" in e and e != "*" and (p := _split(e)) is not None)
        self._seen: dict[tuple[bytes, bytes | None], int] = {}

    def headers(self, origin: bytes, host: bytes | None) -> list[tuple[bytes, bytes]] | None:
        """None for the gateway's own origin; the CORS headers for another allowed one; Forbidden
        (403) for any other."""
        key = (origin, host)
        found = self._seen.get(key)
        if found is None:
            found = self._decide(origin, host)
            if len(self._seen) >= MAX_CACHED:
                self._seen.clear()
            self._seen[key] = found
        if found == OWN:
            return None  # its own pages
        if found == REFUSED:
            shown = origin.decode("latin-1")[:200]
            raise Forbidden(f"Requests from the browser origin {shown!r} are not allowed here (server.cors_origins).",
                            code="forbidden_origin")
        return [(b"access-control-allow-origin", origin), (b"vary", b"Origin"),
                (b"access-control-expose-headers", b"*")]

    def _decide(self, origin: bytes, host: bytes | None) -> int:
        text = origin.decode("latin-1").strip().rstrip("/").lower()
        if is_own_origin(text, host):
            return OWN
        if self.any or text in self.exact:
            return FOREIGN
        parts = _split(text)
        if parts is None:
            return REFUSED  # "null" (a sandboxed page, a file) and anything malformed, unless listed
        scheme, name, port = parts
        if scheme in ("http", "https") and is_loopback_name(name):
            return FOREIGN
        for p_scheme, p_host, p_port in self.patterns:
            if p_scheme != scheme or p_port not in ("*", port):
                continue
            if p_host == "*" or p_host == name or (p_host.startswith("*.") and name.endswith(p_host[1:])):
                return FOREIGN
        return REFUSED


def preflight(methods: str, hdrs: dict[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    """The headers answering a CORS preflight for a route that takes `methods`: the headers the page
    asked to send are allowed as asked (the key travels in Authorization or x-api-key; the SDKs
    add their own), when the list is short and well-formed."""
    out = [(b"access-control-allow-methods", methods.replace(" ", ", ").encode()),
           (b"access-control-max-age", MAX_AGE)]
    asked = hdrs.get(b"access-control-request-headers")
    if asked and len(asked) <= MAX_REQUESTED_HEADERS and all(c in _TOKEN for c in asked):
        out.append((b"access-control-allow-headers", asked))
    return out

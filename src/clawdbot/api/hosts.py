"""Which Host header values this gateway answers (DNS rebinding).

A web page on `evil.example` whose name the attacker re-points at 127.0.0.1 is, to the browser, the
same origin as `http://evil.example:18789`: it may read the answers of a gateway on loopback. Its
requests carry `Host: evil.example:18789`, so a gateway that answers only the names it is known
by closes that door. Without a master key (loopback only, no auth) those are the loopback names
and `server.allowed_hosts`; with a master key every request must authenticate anyway, so any Host
is answered unless `server.allowed_hosts` names some (then only those and loopback)."""

from __future__ import annotations

import ipaddress

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def split_port(text: str) -> tuple[str, str]:
    """`host[:port]` (lower-cased) as (host, port): `[::1]:80` -> (`[::1]`, `80`), `::1` -> (`::1`, ``)."""
    if text.startswith("["):
        end = text.find("]")
        return (text[: end + 1], text[end + 2:]) if end > 0 else (text, "")
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, port
    return text, ""


def host_name(value: bytes) -> str:
    """`Host` without its port, lower-cased: `[::1]:80` -> `[::1]`, `Example.com:1` -> `example.com`."""
    return split_port(value.decode("latin-1").strip().lower())[0]


def is_own_origin(origin: str, host: bytes | None) -> bool:
    """Whether a browser Origin (lower-cased, no trailing slash) is the gateway's own: http(s) at the
    host and port this request's Host header names."""
    if not host:
        return False
    scheme, sep, rest = origin.partition("://")
    return bool(sep) and scheme in ("http", "https") and rest == host.decode("latin-1").strip().lower()


def is_loopback_name(name: str) -> bool:
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


class AllowedHosts:
    """`allowed("host:port")` for each request; decisions are cached (bounded) so the hot path is
    one dict lookup."""

    MAX_CACHED = 256

    def __init__(self, names: list[str], auth_on: bool) -> None:
        self.any = "*" in names or (auth_on and not names)
        exact: set[str] = set()
        self.suffixes: tuple[str, ...] = ()
        for raw in names:
            name = raw.strip().lower()
            if name.startswith("*."):
                self.suffixes += (name[1:],)  # "*.example.com" -> ".example.com"
            elif name and name != "*":
                exact.add(host_name(name.encode("latin-1")))
        self.exact = frozenset(exact)
        self._seen: dict[bytes, bool] = {}

    def allowed(self, host: bytes | None) -> bool:
        if self.any or host is None:  # no Host: not a browser (every browser sends one)
            return True
        hit = self._seen.get(host)
        if hit is not None:
            return hit
        name = host_name(host)
        ok = is_loopback_name(name) or name in self.exact or name.endswith(self.suffixes)
        if len(self._seen) < self.MAX_CACHED:
            self._seen[host] = ok
        return ok

"""Which outbound proxy, if any, a service's requests go through.

A service's own `proxy` wins: a URL, or "direct" for none. Without one, the environment decides as
curl and requests do: `https_proxy`/`HTTPS_PROXY` for https services, `http_proxy`/`HTTP_PROXY` for
http ones (`all_proxy`/`ALL_PROXY` for both; the lower-case name first), unless `no_proxy`/`NO_PROXY`
lists the host. Loopback services (localhost, 127.0.0.0/8, ::1) never take a proxy from the
environment: a local model server is never reached through a corporate proxy by accident.
Only http:// proxies are supported (https services still get end-to-end TLS through CONNECT)."""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DIRECT = "direct"


@dataclass(frozen=True)
class ProxyURL:
    host: str
    port: int
    auth: str | None  # the Proxy-Authorization value (Basic), from the URL's user:password
    display: str  # host:port, never the credentials


def parse_proxy(url: str) -> ProxyURL:
    """A proxy URL (http://[user:pass@]host[:port]); ValueError says what is wrong with it."""
    u = urlsplit(url if "://" in url else f"http://{url}")
    if u.scheme != "http":
        raise ValueError(f"only http:// proxies are supported, not {u.scheme}://")
    port = u.port or 80  # ValueError for a malformed port
    if not u.hostname:
        raise ValueError("the proxy URL names no host")
    if u.path not in ("", "/") or u.query or u.fragment:
        raise ValueError("a proxy URL is scheme://host:port, without a path")
    auth = None
    if u.username is not None:
        pair = f"{unquote(u.username)}:{unquote(u.password or '')}"
        auth = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    return ProxyURL(u.hostname, port, auth, f"{host}:{port}")


def proxy_for(url: str, setting: str | None, env: Mapping[str, str] | None = None) -> ProxyURL | None:
    """The proxy for a request to `url` under a service's `proxy` setting (None: the environment)."""
    if setting is not None:
        return None if setting == DIRECT else parse_proxy(setting)
    env = os.environ if env is None else env
    u = urlsplit(url)
    host = (u.hostname or "").lower()
    if _loopback(host):
        return None
    scheme = u.scheme
    port = u.port or (443 if scheme == "https" else 80)
    if _bypassed(host, port, _get(env, "no_proxy")):
        return None
    value = _get(env, f"{scheme}_proxy") or _get(env, "all_proxy")
    return parse_proxy(value) if value else None


def _get(env: Mapping[str, str], name: str) -> str:
    return (env.get(name) or env.get(name.upper()) or "").strip()


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bypassed(host: str, port: int, no_proxy: str) -> bool:
    """NO_PROXY: `*`, host names (a name matches itself and its subdomains, a leading dot or `*.`
    alike), optional `:port`, IP addresses and CIDR ranges."""
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        addr = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_port = None
        if entry.count(":") == 1 or (entry.startswith("[") and "]:" in entry):
            entry, _, p = entry.rpartition(":")
            if not p.isdigit():
                continue
            entry_port = int(p)
        if entry_port is not None and entry_port != port:
            continue
        entry = entry.strip("[]")
        if addr is not None:
            try:
                if addr in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = entry.removeprefix("*").lstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False

"""An HTTP service's connection settings, checked once when the config loads and used by the
upstream client (providers/http.py, http_transport.py): header syntax, the proxy, TLS files."""

from __future__ import annotations

import os
import ssl
from urllib.parse import urlsplit

from clawdbot.config.proxy import DIRECT, parse_proxy
from clawdbot.config.schema import Service, UpstreamTLS

_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_BREAKS = ("\r", "\n", "\x00")


class UnsafeHeader(ValueError):
    """A header or request target that would split the request (RFC 9110 field syntax)."""


def check_header(name: str, value: str) -> None:
    """Raise UnsafeHeader unless `name: value` is one well-formed header line."""
    if not name or not _TOKEN.issuperset(name):
        raise UnsafeHeader(f"header name {name[:60]!r} is not an HTTP token")
    if any(c in value for c in _BREAKS):
        raise UnsafeHeader(f"header {name!r} contains a line break or NUL")


def tls_context(tls: UpstreamTLS | None) -> ssl.SSLContext:
    """The system's trust store, or the service's CA bundle instead; its client certificate for mTLS.
    Verification is always on (a private CA goes in `ca_bundle`)."""
    ctx = ssl.create_default_context(cafile=tls.ca_bundle if tls is not None else None)
    if tls is not None and tls.client_cert:
        ctx.load_cert_chain(tls.client_cert, tls.client_key)
    return ctx


def problem(svc: Service) -> tuple[tuple[str, ...], str] | None:
    """The first thing wrong with a service's headers, proxy or TLS settings: (the key under the
    service, what is wrong), for the loader's file:line error; None when all is well."""
    for name, value in svc.headers.items():
        try:
            check_header(name, value)
        except UnsafeHeader as exc:
            return ("headers", name), str(exc)
    if svc.max_response_bytes <= 0:
        return ("max_response_bytes",), f"`max_response_bytes` must be positive, got {svc.max_response_bytes}"
    if svc.proxy is not None and svc.proxy != DIRECT:
        try:
            parse_proxy(svc.proxy)
        except ValueError as exc:
            return ("proxy",), f"`proxy` {exc} (or `direct` for none)"
    tls = svc.tls
    if tls is None:
        return None
    if urlsplit(svc.endpoint or "").scheme not in ("https", "grpcs"):
        return ("tls",), "`tls` applies to https and grpcs endpoints"
    if tls.client_key and not tls.client_cert:
        return ("tls", "client_key"), "`client_key` needs `client_cert`"
    for field in ("ca_bundle", "client_cert", "client_key"):
        path = getattr(tls, field)
        if path is not None and not os.path.isfile(path):
            return ("tls", field), f"no such file: {path}"
    try:
        tls_context(tls)
    except (OSError, ssl.SSLError) as exc:  # a missing file, or one that holds no usable PEM
        return ("tls",), f"cannot load the TLS files: {exc.strerror or exc}"
    return None

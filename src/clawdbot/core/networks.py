"""IP networks named in the config (`server.trusted_proxies`): parsed once, checked by the loader."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """`server.trusted_proxies` as networks (ValueError names a bad one)."""
    out = []
    for c in cidrs:
        try:
            out.append(ipaddress.ip_network(c.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{c!r} is not an IP address or network (CIDR)") from None
    return tuple(out)

"""Client address resolution with trusted proxies (CONTRACT §6.2)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"TRUSTED_PROXIES entry {entry!r} is not an IP address or CIDR") from None
    return tuple(networks)


def _parse_ip(text: str | None) -> IPAddress | None:
    """An address, accepting the forms proxies and servers write: ``[v6]``, ``v4:port``, ``[v6]:port``."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted_proxy(address: str | None) -> bool:
    ip = _parse_ip(address)
    if ip is None:
        return False
    return any(ip in network for network in _networks(tuple(settings.TRUSTED_PROXIES)))


def client_ip_from(remote_addr: str | None, forwarded_for: str | None) -> str | None:
    """``REMOTE_ADDR``, or the first ``X-Forwarded-For`` address when the peer is a trusted proxy.

    The result is a normalised IP address or None (never an arbitrary string: it is stored in ``inet`` columns
    and used as a throttle key).
    """
    if forwarded_for and is_trusted_proxy(remote_addr):
        first = _parse_ip(forwarded_for.split(",")[0])
        if first is not None:
            return str(first)
    remote = _parse_ip(remote_addr)
    return str(remote) if remote is not None else None


def client_ip(request) -> str | None:
    return client_ip_from(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))

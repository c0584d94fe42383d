"""Outbound webhook URL rules (CONTRACT §6.7): checked when a channel is saved (422) and again before each send
(a problem then is a permanent delivery failure)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
URL_MAX_LENGTH = 2000


def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (a literal address is itself); empty when it does not resolve."""
    try:
        return [_unmapped(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    addresses = []
    for info in infos:
        try:
            addresses.append(_unmapped(ipaddress.ip_address(info[4][0].split("%")[0])))
        except ValueError:
            continue
    return addresses


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_problem(address: IPAddress, *, scheme: str) -> str | None:
    """Why an outbound request to ``address`` is refused, or None."""
    if address.is_link_local:
        return f"Webhook host resolves to a link-local address ({address})"
    if address.is_multicast:
        return f"Webhook host resolves to a multicast address ({address})"
    if address.is_unspecified:
        return f"Webhook host resolves to an unspecified address ({address})"
    if address.is_loopback or not address.is_global:
        if not settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS:
            return f"Webhook host resolves to a private or loopback address ({address}), not allowed here"
        return None
    if scheme != "https":
        return "Webhook URLs to public addresses must use https"
    return None


def webhook_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a webhook target under §6.7, or None when it may be called."""
    if not isinstance(url, str) or not url:
        return "Webhook URL is required"
    if len(url) > URL_MAX_LENGTH:
        return f"Webhook URL is longer than {URL_MAX_LENGTH} characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "Webhook URL is not a valid URL"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return "Webhook URL must use http or https"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "Webhook URL must not contain credentials"
    host = parts.hostname
    if not host:
        return "Webhook URL has no host"
    addresses = _resolve(host, port or (443 if scheme == "https" else 80))
    if not addresses:
        return f"Webhook host {host} does not resolve"
    for address in addresses:
        problem = address_problem(address, scheme=scheme)
        if problem:
            return problem
    return None

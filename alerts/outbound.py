"""Outbound webhook URL rules (CONTRACT §6.7): checked when a channel is saved (422) and again before each send.

At send time ``webhook_target`` resolves the host once and returns the checked addresses: the transport connects to
one of those (never resolving again, so a DNS answer that changes between check and connect cannot point the
request elsewhere). IPv6 forms that embed an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) are
judged by the IPv4 address too. A §6.7 address rule is a permanent failure; a name that does not resolve at send
time is a retryable connection error (DNS trouble is usually temporary), while at save time it is refused.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
URL_MAX_LENGTH = 2000
NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class Unresolvable(Exception):
    """The host name did not resolve (now)."""


@dataclass(frozen=True)
class WebhookTarget:
    """A webhook URL judged for sending: ``problem`` is None when it may be called at ``addresses``."""

    url: str
    scheme: str = ""
    host: str = ""
    host_header: str = ""  # the URL's host[:port], as sent in ``Host``
    addresses: list[IPAddress] = field(default_factory=list)
    problem: str | None = None
    retryable: bool = False  # the problem may go away by itself (the name did not resolve)


def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (a literal address is itself); ``Unresolvable`` when it does not."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise Unresolvable(str(error)) from None
    addresses: list[IPAddress] = []
    for info in infos:
        try:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        except ValueError:
            continue
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Unresolvable("no usable address")
    return addresses


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, compatible, NAT64, 6to4, both Teredo ends)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    value = int(address)
    if any(address in prefix for prefix in NAT64_PREFIXES) or (value >> 32 == 0 and value > 1):
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    return found


def _single_address_problem(address: IPAddress, *, scheme: str) -> str | None:
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


def address_problem(address: IPAddress, *, scheme: str) -> str | None:
    """Why an outbound request to ``address`` is refused, or None. The IPv4 addresses an IPv6 address embeds are
    judged first (``[64:ff9b::a9fe:a9fe]`` is 169.254.169.254, link-local), then the address itself."""
    for inner in embedded_ipv4(address):
        problem = _single_address_problem(inner, scheme=scheme)
        if problem:
            return problem
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return None  # judged as the IPv4 address it is
    return _single_address_problem(address, scheme=scheme)


def webhook_target(url: str) -> WebhookTarget:
    """``url`` judged under §6.7 for a send now: the checked addresses, or the problem (``retryable`` when the host
    name did not resolve)."""
    if not isinstance(url, str) or not url:
        return WebhookTarget(str(url or ""), problem="Webhook URL is required")
    if len(url) > URL_MAX_LENGTH:
        return WebhookTarget(url, problem=f"Webhook URL is longer than {URL_MAX_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return WebhookTarget(url, problem="Webhook URL is not a valid URL")
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return WebhookTarget(url, problem="Webhook URL must use http or https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return WebhookTarget(url, problem="Webhook URL must not contain credentials")
    host = parts.hostname
    if not host:
        return WebhookTarget(url, problem="Webhook URL has no host")
    target = {"url": url, "scheme": scheme, "host": host, "host_header": parts.netloc}
    try:
        addresses = _resolve(host, port or (443 if scheme == "https" else 80))
    except Unresolvable as error:
        return WebhookTarget(**target, problem=f"Webhook host {host} does not resolve ({error})", retryable=True)
    for address in addresses:
        problem = address_problem(address, scheme=scheme)
        if problem:
            return WebhookTarget(**target, addresses=addresses, problem=problem)
    return WebhookTarget(**target, addresses=addresses)


def webhook_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a webhook target under §6.7 (save time: a host that does not resolve is
    refused too), or None when it may be called."""
    target = webhook_target(url)
    if target.problem and target.retryable:
        return f"Webhook host {target.host} does not resolve"
    return target.problem

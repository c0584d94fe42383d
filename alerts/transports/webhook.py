"""Webhook transport (CONTRACT §5.9): one signed JSON POST, redirects not followed, §6.7 URL rules before sending.

The host is resolved and checked once (``alerts.outbound.webhook_target``) and the request goes to a checked address
(the URL's host replaced by it, ``Host`` and, for https, the TLS server name set to the original host so the
certificate is verified against it). The whole attempt has one deadline of ``timeout_seconds``: the socket is shut
down when it passes, whatever phase the request is in (a server dripping bytes cannot hold the worker), and at most
64 KiB of the response are read.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import re
import socket
import ssl
import threading
import time

import certifi
import httpx
from django.conf import settings

from alerts.outbound import IPAddress, WebhookTarget, webhook_target
from alerts.payloads import body_bytes
from alerts.transports.base import SendResult, Transport

RESERVED_HEADERS = frozenset({"host", "content-length", "content-type"})
RESPONSE_MAX_BYTES = 64 * 1024
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
HEADER_VALUE = re.compile(r"^[\x20-\x7e\t]*$")  # visible ASCII, space and tab


class InvalidHeader(ValueError):
    pass


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, ``<timestamp>.<raw body bytes>``)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def request_headers(channel, body: bytes, *, event_type: str, delivery_id: str, timestamp: str) -> dict[str, str]:
    headers = {
        str(name): str(value)
        for name, value in ((channel.config or {}).get("headers") or {}).items()
        if str(name).lower() not in RESERVED_HEADERS and not str(name).lower().startswith("x-hsi-")
    }
    headers.update(
        {
            "Content-Type": "application/json",
            "User-Agent": f"HSI/{settings.HSI_VERSION}",
            "X-HSI-Event": event_type,
            "X-HSI-Delivery": str(delivery_id),
            "X-HSI-Timestamp": timestamp,
        }
    )
    if channel.secret:
        headers["X-HSI-Signature"] = signature(channel.secret, timestamp, body)
    return headers


def check_headers(headers: dict[str, str]) -> None:
    """``InvalidHeader`` for a header name that is not a token or a value with anything but visible ASCII, space
    and tab (such a request cannot be sent, now or later)."""
    for name, value in headers.items():
        if not HEADER_NAME.match(name):
            raise InvalidHeader(f"Invalid header name {name!r}")
        if not HEADER_VALUE.match(value):
            raise InvalidHeader(f"Header {name} has a value that is not visible ASCII")


def timeout_of(channel) -> float:
    value = (channel.config or {}).get("timeout_seconds")
    return float(value) if value else float(settings.WEBHOOK_TIMEOUT_SECONDS)


class Deadline:
    """One overall deadline for an attempt. Given to httpcore as its ``trace`` extension, it learns each socket the
    request opens and shuts it down when the deadline passes, which ends any blocked connect, read or write."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()

    @property
    def expired(self) -> bool:
        return self._expired or time.monotonic() >= self.at

    def remaining(self) -> float:
        return max(self.at - time.monotonic(), 0.001)

    def trace(self, event_name: str, info: dict) -> None:
        if event_name not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            expired = self._expired
        if expired:
            self._shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError):
            sock.shutdown(socket.SHUT_RDWR)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process (building one costs hundreds of milliseconds; sharing it is safe)."""
    return ssl.create_default_context(cafile=certifi.where())


class DeadlineExceeded(Exception):
    pass


def _read_limited(response: httpx.Response, deadline: Deadline) -> bytes:
    """At most ``RESPONSE_MAX_BYTES`` of the raw body (no decompression), within the deadline."""
    content = bytearray()
    for chunk in response.iter_raw():
        content += chunk[: RESPONSE_MAX_BYTES - len(content)]
        if len(content) >= RESPONSE_MAX_BYTES:
            break
        if deadline.expired:
            raise DeadlineExceeded
    return bytes(content)


def _post(target: WebhookTarget, address: IPAddress, body: bytes, headers: dict, deadline: Deadline):
    """POST to ``address`` (a checked address of the target's host); returns (status, location, body excerpt)."""
    url = httpx.URL(target.url).copy_with(host=str(address))
    extensions: dict = {"trace": deadline.trace}
    if target.scheme == "https":
        extensions["sni_hostname"] = target.host
    client = httpx.Client(follow_redirects=False, trust_env=False, timeout=deadline.remaining(), verify=_tls_context())
    with client:
        request_headers_ = {**headers, "Host": target.host_header}
        with client.stream("POST", url, content=body, headers=request_headers_, extensions=extensions) as response:
            content = _read_limited(response, deadline)
            return response.status_code, response.headers.get("location", ""), content


class WebhookTransport(Transport):
    kind = "webhook"

    def send(self, channel, payload, *, event_type, delivery_id, thumbnail=None) -> SendResult:
        target = webhook_target((channel.config or {}).get("url") or "")
        if target.problem:
            error_type = "connection_error" if target.retryable else "invalid_url"
            return SendResult(success=False, error=target.problem, retryable=target.retryable, error_type=error_type)
        body = body_bytes(payload)
        timestamp = str(int(time.time()))
        started = time.monotonic()
        try:
            headers = request_headers(
                channel, body, event_type=event_type, delivery_id=delivery_id, timestamp=timestamp
            )
            check_headers(headers)
        except (ValueError, UnicodeError) as error:
            return self._failure(started, f"Invalid header: {error}", False, error_type="invalid_header")
        timeout = timeout_of(channel)
        with Deadline(timeout) as deadline:
            try:
                status, location, content = self._post_to_any(target, body, headers, deadline)
            except (DeadlineExceeded, httpx.TimeoutException) as error:
                return self._failure(started, f"Timed out after {timeout:g} s: {error}", True, error_type="timeout")
            except httpx.HTTPError as error:
                if deadline.expired:
                    return self._failure(started, f"Timed out after {timeout:g} s", True, error_type="timeout")
                return self._failure(
                    started, f"Connection error: {error or type(error).__name__}", True, error_type="connection_error"
                )
            except (ValueError, UnicodeError) as error:  # a header httpx/h11 will not encode
                return self._failure(started, f"Invalid header: {error}", False, error_type="invalid_header")
        latency = (time.monotonic() - started) * 1000
        if 200 <= status < 300:
            return SendResult(success=True, status_code=status, message=f"HTTP {status}", latency_ms=latency)
        excerpt = content[:300].decode(errors="replace") if content else ""
        error = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
        if 300 <= status < 400:
            error = f"HTTP {status} redirect not followed" + (f" (to {location})" if location else "")
            return SendResult(False, status, error=error, retryable=False, latency_ms=latency, error_type="redirect")
        retryable = status >= 500 or status in (408, 429)
        error_type = "http_5xx" if status >= 500 else "http_4xx"
        return SendResult(False, status, error=error, retryable=retryable, latency_ms=latency, error_type=error_type)

    @staticmethod
    def _post_to_any(target: WebhookTarget, body: bytes, headers: dict, deadline: Deadline):
        """Try the checked addresses in order until one accepts the connection."""
        last = len(target.addresses) - 1
        for index, address in enumerate(target.addresses):
            try:
                return _post(target, address, body, headers, deadline)
            except httpx.ConnectError:
                if index == last or deadline.expired:
                    raise
        raise httpx.ConnectError("no address to connect to")

    @staticmethod
    def _failure(started: float, error: str, retryable: bool, *, error_type: str) -> SendResult:
        latency = (time.monotonic() - started) * 1000
        return SendResult(success=False, error=error, retryable=retryable, latency_ms=latency, error_type=error_type)


TRANSPORT = WebhookTransport()

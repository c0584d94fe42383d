"""Webhook transport (CONTRACT §5.9): one signed JSON POST, redirects not followed, §6.7 URL rules before sending."""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx
from django.conf import settings

from alerts.outbound import webhook_url_problem
from alerts.payloads import body_bytes
from alerts.transports.base import SendResult, Transport

RESERVED_HEADERS = frozenset({"host", "content-length", "content-type"})


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


def timeout_of(channel) -> float:
    value = (channel.config or {}).get("timeout_seconds")
    return float(value) if value else float(settings.WEBHOOK_TIMEOUT_SECONDS)


class WebhookTransport(Transport):
    kind = "webhook"

    def send(self, channel, payload, *, event_type, delivery_id, thumbnail=None) -> SendResult:
        url = (channel.config or {}).get("url") or ""
        problem = webhook_url_problem(url)
        if problem:
            return SendResult(success=False, error=problem, retryable=False, error_type="invalid_url")
        body = body_bytes(payload)
        timestamp = str(int(time.time()))
        headers = request_headers(channel, body, event_type=event_type, delivery_id=delivery_id, timestamp=timestamp)
        started = time.monotonic()
        try:
            with httpx.Client(follow_redirects=False, trust_env=False, timeout=timeout_of(channel)) as client:
                response = client.post(url, content=body, headers=headers)
        except httpx.TimeoutException as error:
            return self._failure(started, f"Timed out: {error}", retryable=True, error_type="timeout")
        except httpx.HTTPError as error:
            return self._failure(
                started, f"Connection error: {error or type(error).__name__}", True, error_type="connection_error"
            )
        latency = (time.monotonic() - started) * 1000
        status = response.status_code
        if 200 <= status < 300:
            return SendResult(success=True, status_code=status, message=f"HTTP {status}", latency_ms=latency)
        excerpt = response.text[:300] if response.content else ""
        error = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
        if 300 <= status < 400:
            location = response.headers.get("location", "")
            error = f"HTTP {status} redirect not followed" + (f" (to {location})" if location else "")
            return SendResult(False, status, error=error, retryable=False, latency_ms=latency, error_type="redirect")
        retryable = status >= 500 or status in (408, 429)
        error_type = "http_5xx" if status >= 500 else "http_4xx"
        return SendResult(False, status, error=error, retryable=retryable, latency_ms=latency, error_type=error_type)

    @staticmethod
    def _failure(started: float, error: str, retryable: bool, *, error_type: str) -> SendResult:
        latency = (time.monotonic() - started) * 1000
        return SendResult(success=False, error=error, retryable=retryable, latency_ms=latency, error_type=error_type)


TRANSPORT = WebhookTransport()

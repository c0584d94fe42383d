"""The base class every notification transport implements, and the registry that finds one by channel kind."""

from __future__ import annotations

import datetime as dt
import importlib
from dataclasses import dataclass

MODULES = {"webhook": "alerts.transports.webhook", "email": "alerts.transports.email", "mqtt": "alerts.transports.mqtt"}


@dataclass(frozen=True)
class SendResult:
    """What one send attempt gave. ``retryable`` failures go back to ``pending`` with backoff (§5.8)."""

    success: bool
    status_code: int | None = None
    message: str = ""
    error: str = ""
    retryable: bool = False
    latency_ms: float = 0.0
    error_type: str = ""  # FailedJob error type of a failure (§1.4): timeout, connection_error, http_4xx, ...
    # Nothing was attempted (the kind's breaker is open): the outbox puts the row back without counting an attempt
    # and tries again at ``retry_at`` (when the breaker may half-open).
    not_attempted: bool = False
    retry_at: dt.datetime | None = None


class Transport:
    """Sends one payload over one channel. ``send`` never raises for a delivery failure: it returns a result."""

    kind: str = ""

    def send(
        self,
        channel,
        payload: dict,
        *,
        event_type: str,
        delivery_id: str,
        thumbnail: bytes | None = None,
    ) -> SendResult:
        raise NotImplementedError


def transport_for(kind: str) -> Transport:
    """The transport of a channel kind (``webhook``, ``email``, ``mqtt``); ``KeyError`` for an unknown kind."""
    module = importlib.import_module(MODULES[kind])
    return module.TRANSPORT

"""Circuit breakers and dead-lettering for the delivery outbox (CONTRACT §4.8, §5.8).

The breakers are the shared ones of ``hsi.resilience`` (one per channel kind); failed deliveries go to the durable
DLQ through ``hsi.dead_letter``, the hook ``pipeline`` installs (``alerts`` may not import ``pipeline``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.utils import timezone

from hsi import dead_letter
from hsi.resilience import CircuitOpenError, PipelineError, breaker

T = TypeVar("T")

DELIVER_TASK = "alerts.deliver"
NOTIFICATION_QUEUE = "notification"


BREAKER_RETRY_MIN = dt.timedelta(seconds=5)


class BreakerOpen(Exception):
    """The channel kind's breaker is open: no send was attempted. ``retry_at`` is when it may let a trial through."""

    def __init__(self, message: str, *, retry_at: dt.datetime):
        super().__init__(message)
        self.retry_at = retry_at


def breaker_retry_at(kind: str, *, now: dt.datetime | None = None) -> dt.datetime:
    """When the ``kind`` breaker may half-open (its ``opened_at`` + ``CIRCUIT_RECOVERY_SECONDS``), at least
    ``BREAKER_RETRY_MIN`` from now (a half-open breaker busy with another caller's trial)."""
    now = now or timezone.now()
    earliest = now + BREAKER_RETRY_MIN
    opened_at = breaker(kind).snapshot().opened_at
    if opened_at is None:
        return earliest
    half_open_at = dt.datetime.fromtimestamp(opened_at + float(settings.CIRCUIT_RECOVERY_SECONDS), tz=dt.UTC)
    return max(half_open_at, earliest)


def call_under_breaker(kind: str, operation: Callable[[], T], *, failed: Callable[[T], bool]) -> T:
    """Run ``operation`` under the ``kind`` breaker. ``failed(result)`` says whether the result counts as a failure
    for the breaker (retryable failures do; permanent 4xx-like ones do not). Raises ``BreakerOpen`` when open."""
    holder: dict = {}

    class Counted(PipelineError):
        pass

    def attempt():
        result = operation()
        holder["result"] = result
        if failed(result):
            raise Counted("delivery attempt failed", error_type="delivery_failed")
        return result

    try:
        return breaker(kind).call(attempt)
    except CircuitOpenError as error:
        raise BreakerOpen(str(error), retry_at=breaker_retry_at(kind)) from None
    except Counted:
        return holder["result"]


def dead_letter_delivery(
    delivery_id: int,
    *,
    camera_id: str | None,
    error: str,
    error_type: str,
    attempts: int,
    first_failed_at: dt.datetime,
    now: dt.datetime,
):
    """Write the delivery's FailedJob (queue ``notification``, payload ``{"delivery_id": N}``) in the caller's
    transaction; ``dlq.job_added`` goes out after commit. Requeue re-runs ``alerts.deliver(N)``."""
    failure = dead_letter.Failure(
        error=error or error_type,
        error_type=error_type,
        stack_trace="",
        attempts=attempts,
        requeue_count=0,
        first_failed_at=first_failed_at,
        last_failed_at=now,
    )
    return dead_letter.record(
        NOTIFICATION_QUEUE, DELIVER_TASK, {"delivery_id": delivery_id}, failure, camera_id=camera_id
    )

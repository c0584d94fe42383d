"""Circuit breakers and dead-lettering for the delivery outbox (CONTRACT §4.8, §5.8).

The breakers are the shared ones of ``hsi.resilience`` (one per channel kind); failed deliveries go to the durable
DLQ through ``hsi.dead_letter``, the hook ``pipeline`` installs (``alerts`` may not import ``pipeline``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TypeVar

from hsi import dead_letter
from hsi.resilience import CircuitOpenError, PipelineError, breaker

T = TypeVar("T")

DELIVER_TASK = "alerts.deliver"
NOTIFICATION_QUEUE = "notification"


class BreakerOpen(Exception):
    """The channel kind's breaker is open: no send was attempted."""


class _CountedFailure(Exception):
    pass


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
        raise BreakerOpen(str(error)) from None
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

"""The dead-letter hook (CONTRACT §4.8, §5.8): how an app that may not import ``pipeline`` dead-letters a job.

The durable DLQ (``pipeline.FailedJob``, ``pipeline.services.dlq``) belongs to ``pipeline``, which imports
``alerts``; the notification outbox in ``alerts`` must write its failed deliveries there too. ``pipeline`` installs
its recorder here when its app is ready, and ``record`` hands each dead letter to it in the caller's transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Failure:
    """What a dead-lettered job records about its last failed attempt."""

    error: str
    error_type: str
    stack_trace: str
    attempts: int
    requeue_count: int
    first_failed_at: dt.datetime
    last_failed_at: dt.datetime


Recorder = Callable[..., Any]
_recorder: Recorder | None = None


def install(recorder: Recorder) -> None:
    """``recorder(queue, task_name, payload, failure, *, camera_id)`` writes one durable dead letter."""
    global _recorder
    _recorder = recorder


def record(queue: str, task_name: str, payload: dict, failure: Failure, *, camera_id: str | None = None) -> Any:
    """Dead-letter one job in the caller's transaction; returns what the recorder returns (the FailedJob row)."""
    if _recorder is None:
        raise RuntimeError("No dead-letter queue is installed: the pipeline app must be in INSTALLED_APPS")
    return _recorder(queue, task_name, payload, failure, camera_id=camera_id)

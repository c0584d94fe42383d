"""The dead-letter hook (CONTRACT §4.8, §5.8): how an app that may not import ``pipeline`` dead-letters a job.

The durable DLQ (``pipeline.FailedJob``, ``pipeline.services.dlq``) belongs to ``pipeline``, which imports
``alerts``; the notification outbox in ``alerts`` must write its failed deliveries there too. ``pipeline`` installs
its recorder (and resolver) here when its app is ready; ``record`` hands each dead letter to it in the caller's
transaction, and ``resolve`` removes the dead letters of a job that was handled another way (a manual retry).
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
Resolver = Callable[[str, dict], int]
_recorder: Recorder | None = None
_resolver: Resolver | None = None


def install(recorder: Recorder, resolver: Resolver | None = None) -> None:
    """``recorder(queue, task_name, payload, failure, *, camera_id)`` writes one durable dead letter;
    ``resolver(queue, payload)`` deletes the dead letters of that job and returns how many."""
    global _recorder, _resolver
    _recorder = recorder
    if resolver is not None:
        _resolver = resolver


def record(queue: str, task_name: str, payload: dict, failure: Failure, *, camera_id: str | None = None) -> Any:
    """Dead-letter one job in the caller's transaction; returns what the recorder returns (the FailedJob row)."""
    if _recorder is None:
        raise RuntimeError("No dead-letter queue is installed: the pipeline app must be in INSTALLED_APPS")
    return _recorder(queue, task_name, payload, failure, camera_id=camera_id)


def resolve(queue: str, payload: dict) -> int:
    """Delete the dead letters of ``queue`` whose payload is ``payload`` (in the caller's transaction): the job was
    handled another way, so a later requeue must not run it again. Returns how many were deleted."""
    if _resolver is None:
        raise RuntimeError("No dead-letter queue is installed: the pipeline app must be in INSTALLED_APPS")
    return _resolver(queue, payload)

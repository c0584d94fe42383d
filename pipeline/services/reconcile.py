"""``pipeline.reconcile`` (every 60 s; CONTRACT §4.5, §10): the sweeper that makes lost messages harmless.

A broker cannot close every gap (DESIGN §6): a crash between a commit and its enqueue, a killed worker or a Redis
that restarted empty loses the message, never the work, because the work is a status in PostgreSQL. This sweep
closes due batches and dispatches again what has been waiting too long:

- batches ``closed`` or ``analyzing`` whose ``updated_at`` is older than ``ANALYSIS_STUCK_SECONDS``;
- files ``pending`` or ``processing`` received more than ``FILE_STUCK_SECONDS`` ago (IngestedFile has no
  ``updated_at``).

Every task is idempotent, so a second copy of a message that was only slow is a no-op. A row dispatched by one
sweep is not dispatched again for the same stuck period (a cache mark), so a long backlog is not flooded.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from hsi import dispatch
from pipeline.models import Batch, BatchStatus, FileStatus, IngestedFile
from pipeline.services.batching import batches_close_expired
from pipeline.task_names import PROCESS_FILE_TASK

logger = logging.getLogger("hsi.pipeline.reconcile")

SWEEP_LIMIT = 1000


@dataclasses.dataclass(frozen=True)
class ReconcileResult:
    closed_batches: int
    batches: list[str]
    files: list[int]


def pipeline_reconcile(*, now: dt.datetime | None = None) -> ReconcileResult:
    """Close due batches, then re-dispatch stuck batches and files (oldest first, at most 1000 of each)."""
    now = now or timezone.now()
    closed = batches_close_expired(now=now)
    batch_cutoff = now - dt.timedelta(seconds=settings.ANALYSIS_STUCK_SECONDS)
    stuck_batches = (
        Batch.objects.filter(status__in=(BatchStatus.CLOSED, BatchStatus.ANALYZING), updated_at__lt=batch_cutoff)
        .order_by("updated_at")
        .values_list("pk", flat=True)[:SWEEP_LIMIT]
    )
    batches = [str(pk) for pk in stuck_batches if _first_sweep("batch", pk, settings.ANALYSIS_STUCK_SECONDS)]
    for batch_id in batches:
        dispatch.send("pipeline.analyze_batch", batch_id)
    file_cutoff = now - dt.timedelta(seconds=settings.FILE_STUCK_SECONDS)
    stuck_files = (
        IngestedFile.objects.filter(status__in=(FileStatus.PENDING, FileStatus.PROCESSING), received_at__lt=file_cutoff)
        .order_by("received_at", "id")
        .values_list("pk", flat=True)[:SWEEP_LIMIT]
    )
    files = [pk for pk in stuck_files if _first_sweep("file", pk, settings.FILE_STUCK_SECONDS)]
    for file_id in files:
        dispatch.send(PROCESS_FILE_TASK, file_id)
    if closed or batches or files:
        logger.info(
            "Reconcile: closed %d batch(es), re-dispatched %d batch(es), %d file(s)", closed, len(batches), len(files)
        )
    return ReconcileResult(closed_batches=closed, batches=batches, files=files)


def _first_sweep(kind: str, pk, period: float) -> bool:
    """True once per ``period`` for a row (the cache remembers the re-dispatch); True when the cache is down."""
    try:
        return cache.add(f"hsi:reconcile:{kind}:{pk}", 1, timeout=max(int(period), 1))
    except Exception:
        logger.warning("Cache unavailable; re-dispatching %s %s anyway", kind, pk, exc_info=True)
        return True

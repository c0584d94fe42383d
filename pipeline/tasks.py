"""Celery tasks of the pipeline (CONTRACT §4.4–4.8, §8.3). Thin: ids in, one service call, own retry policy.

Every task is idempotent and tolerates missing rows (``acks_late`` + ``reject_on_worker_lost`` may deliver a
message twice; ``pipeline.reconcile`` dispatches stuck rows again). A failed attempt of ``process_file``,
``analyze_batch`` or ``reanalyze_event`` is retried with the §4.8 backoff when it may succeed, up to
``PIPELINE_MAX_RETRIES``; then (or at once for a permanent error) it is dead-lettered. In eager mode Celery runs a
retry inline at once, so the backoff is slept first: a dead detector is not hammered. After every task the worker
heartbeat ``hsi:hb:worker:<hostname>`` is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from celery import shared_task
from celery.exceptions import Retry
from celery.signals import task_postrun
from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from hsi import dispatch
from hsi.resilience import retry_delay
from hsi.timeutils import utc_iso
from pipeline.services import analysis, batching, dlq, processing, reconcile
from pipeline.task_names import PROCESS_FILE_TASK

logger = logging.getLogger("hsi.pipeline.tasks")

TASK_OPTIONS = {"bind": True, "acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


def run_with_retries(
    task,
    work: Callable[[], object],
    dead_letter: Callable[[dlq.Failure], object],
    *,
    args: tuple,
    requeue_count: int,
    first_failed_at: str | None,
) -> None:
    """Run one attempt; on failure retry (``args`` + requeue count + first failure time) or dead-letter."""
    try:
        work()
    except Retry:
        raise
    except Exception as error:
        now = timezone.now()
        first = (parse_datetime(first_failed_at) if first_failed_at else None) or now
        retries = task.request.retries or 0
        error_type, retryable = dlq.classify(error)
        if retryable and retries < settings.PIPELINE_MAX_RETRIES:
            delay = retry_delay(retries + 1)
            logger.warning(
                "%s%r attempt %d failed (%s); retry in %.1fs", task.name, args, retries + 1, error_type, delay
            )
            if task.request.is_eager:
                time.sleep(delay)
            raise task.retry(
                args=(*args, requeue_count, utc_iso(first)),
                kwargs={},
                countdown=delay,
                max_retries=settings.PIPELINE_MAX_RETRIES,
            ) from error
        dead_letter(
            dlq.failure_of(error, attempts=retries + 1, requeue_count=requeue_count, first_failed_at=first, now=now)
        )


@shared_task(name="pipeline.process_file", **TASK_OPTIONS)
def process_file(self, file_id: int, requeue_count: int = 0, first_failed_at: str | None = None) -> None:
    """Detect, store and batch one ingested file (§4.4)."""
    file_id = int(file_id)
    run_with_retries(
        self,
        lambda: processing.file_process(file_id),
        lambda failure: dlq.file_dead_letter(file_id, failure),
        args=(file_id,),
        requeue_count=int(requeue_count or 0),
        first_failed_at=first_failed_at,
    )


@shared_task(name="pipeline.process_files", **TASK_OPTIONS)
def process_files(self, file_ids: list[int]) -> None:
    """Process a chunk of files together (a burst the watcher coalesced). A file whose attempt failed for good
    (a permanent detector error, a file gone) is dead-lettered after this one attempt, as ``process_file`` would;
    one that may succeed later, and every file of a chunk that failed as a whole, goes on as a
    ``pipeline.process_file`` of its own, which owns the retries: a chunk never loses or dead-letters a file early.
    """
    ids = [int(file_id) for file_id in file_ids]
    now = timezone.now()
    try:
        failed = processing.files_process(ids).failed
    except Exception as error:  # noqa: BLE001 - split into single-file tasks, whatever it was
        logger.warning("%s of %d files failed as a whole (%s); processing them one by one", self.name, len(ids), error)
        for file_id in ids:  # each on its own: the files that are fine get through, the bad one meets its retries
            dispatch.send(PROCESS_FILE_TASK, file_id)
        return
    for file_id, error in failed.items():
        if dlq.classify(error)[1] and settings.PIPELINE_MAX_RETRIES > 0:
            # The chunk's attempt was the first: what follows is retry 1, after its backoff, as in run_with_retries.
            delay = retry_delay(1)
            logger.warning("%s: file %d failed (%s); retry in %.1fs", self.name, file_id, type(error).__name__, delay)
            dispatch.send_retry(PROCESS_FILE_TASK, file_id, 0, utc_iso(now), retries=1, countdown=delay)
        else:
            dlq.file_dead_letter(file_id, dlq.failure_of(error, attempts=1, first_failed_at=now, now=now))


@shared_task(name="pipeline.analyze_batch", **TASK_OPTIONS)
def analyze_batch(self, batch_id: str, requeue_count: int = 0, first_failed_at: str | None = None) -> None:
    """Analyse one closed batch into its event (§4.6)."""
    batch_id = str(batch_id)
    run_with_retries(
        self,
        lambda: analysis.batch_analyze(batch_id),
        lambda failure: dlq.batch_dead_letter(batch_id, failure),
        args=(batch_id,),
        requeue_count=int(requeue_count or 0),
        first_failed_at=first_failed_at,
    )


@shared_task(name="pipeline.reanalyze_event", **TASK_OPTIONS)
def reanalyze_event(self, event_id: int, requeue_count: int = 0, first_failed_at: str | None = None) -> None:
    """Run the analysis again on an event's detections (§2.5)."""
    event_id = int(event_id)
    run_with_retries(
        self,
        lambda: analysis.event_reanalyze(event_id),
        lambda failure: dlq.reanalysis_dead_letter(event_id, failure),
        args=(event_id,),
        requeue_count=int(requeue_count or 0),
        first_failed_at=first_failed_at,
    )


@shared_task(name="pipeline.close_expired_batches", bind=True, ignore_result=True, soft_time_limit=60, time_limit=90)
def close_expired_batches(self) -> int:
    """Close the open batches past their window or idle timeout (every ``BATCH_CHECK_INTERVAL_SECONDS``)."""
    return batching.batches_close_expired(now=timezone.now())


@shared_task(name="pipeline.reconcile", bind=True, ignore_result=True, soft_time_limit=120, time_limit=180)
def reconcile_pipeline(self) -> dict:
    """Close due batches and re-dispatch stuck batches and files (every 60 s)."""
    result = reconcile.pipeline_reconcile(now=timezone.now())
    return {"closed_batches": result.closed_batches, "batches": len(result.batches), "files": len(result.files)}


@task_postrun.connect(weak=False, dispatch_uid="hsi.pipeline.worker_heartbeat")
def _worker_heartbeat(sender=None, task=None, **kwargs) -> None:
    """``hsi:hb:worker:<hostname>`` after every task (CONTRACT §8.3); a cache outage never fails a task."""
    from system.tasks import IN_PROCESS, all_queues, worker_heartbeat_write

    try:
        request = task.request if task is not None else None
        if request is None or request.is_eager:
            worker_heartbeat_write(queues=all_queues(), mode=IN_PROCESS)
        else:
            consumed = task.app.amqp.queues.consume_from or {}
            worker_heartbeat_write(request.hostname, queues=consumed.keys())
    except Exception:
        logger.debug("Could not write the worker heartbeat", exc_info=True)


__all__ = [
    "analyze_batch",
    "close_expired_batches",
    "process_file",
    "process_files",
    "reanalyze_event",
    "reconcile_pipeline",
    "run_with_retries",
]

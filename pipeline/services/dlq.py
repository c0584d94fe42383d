"""The dead-letter queue (CONTRACT §4.8, §2.15): failed jobs recorded durably, requeued, discarded, cleared.

A job whose retries are exhausted (or that failed permanently) becomes one ``FailedJob`` row with its payload, error,
error type, truncated stack trace and attempt count, written in the same transaction as the status change of what
it was working on (the file → ``failed``, the batch → ``failed``); ``dlq.job_added`` goes to ``/ws/system`` after
commit. Requeueing deletes the row, resets that status (file → ``pending``, batch → ``closed``, delivery →
``pending``) and re-dispatches the task with a fresh attempt budget and ``requeue_count`` + 1.
"""

from __future__ import annotations

import datetime as dt
import logging
import traceback

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.utils import timezone

from hsi import dispatch
from hsi.dead_letter import Failure
from hsi.realtime import broadcast
from hsi.resilience import PipelineError
from pipeline.models import Batch, BatchStatus, FailedJob, FileStatus, IngestedFile, JobQueue
from pipeline.services.batching import for_update
from pipeline.task_names import PROCESS_FILE_TASK
from system.services import Actor, audit_record

logger = logging.getLogger("hsi.pipeline.dlq")

ERROR_MAX = 2000
STACK_MAX = 4096
ERROR_TYPE_MAX = 50
REQUEUE_LIMIT_MAX = 10000

PROCESS_FILE = PROCESS_FILE_TASK
ANALYZE_BATCH = "pipeline.analyze_batch"
REANALYZE_EVENT = "pipeline.reanalyze_event"
# Pipeline tasks take (id, requeue_count); the payload key that holds the id.
PIPELINE_TASK_KEYS = {PROCESS_FILE: "file_id", ANALYZE_BATCH: "batch_id", REANALYZE_EVENT: "event_id"}


def classify(error: BaseException) -> tuple[str, bool]:
    """(error_type, retryable) of a failed attempt: a ``PipelineError`` says so itself; a soft time limit is a
    retryable ``timeout``; anything else (database trouble, a bug) is retryable under its class name (§4.6 step 7)."""
    if isinstance(error, PipelineError):
        return error.error_type[:ERROR_TYPE_MAX], error.retryable
    if isinstance(error, SoftTimeLimitExceeded):
        return "timeout", True
    return type(error).__name__[:ERROR_TYPE_MAX], True


def failure_of(
    error: BaseException,
    *,
    attempts: int,
    requeue_count: int = 0,
    first_failed_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> Failure:
    now = now or timezone.now()
    stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return Failure(
        error=(str(error) or type(error).__name__)[:ERROR_MAX],
        error_type=classify(error)[0],
        stack_trace=stack[-STACK_MAX:],
        attempts=attempts,
        requeue_count=requeue_count,
        first_failed_at=first_failed_at or now,
        last_failed_at=now,
    )


def failed_job_record(
    queue: str, task_name: str, payload: dict, failure: Failure, *, camera_id: str | None = None
) -> FailedJob:
    """Write one FailedJob row (in the caller's transaction) and broadcast ``dlq.job_added`` after commit."""
    job = FailedJob.objects.create(
        queue=queue,
        task_name=task_name,
        payload=payload,
        camera_id=camera_id,
        error=failure.error[:ERROR_MAX],
        error_type=failure.error_type[:ERROR_TYPE_MAX],
        stack_trace=failure.stack_trace[-STACK_MAX:],
        attempt_count=min(failure.attempts, 32767),
        requeue_count=min(failure.requeue_count, 32767),
        first_failed_at=failure.first_failed_at,
        last_failed_at=failure.last_failed_at,
        created_at=failure.last_failed_at,
    )
    broadcast(
        "system",
        "dlq.job_added",
        {
            "id": job.id,
            "queue": job.queue,
            "task_name": job.task_name,
            "camera_id": job.camera_id,
            "error_type": job.error_type,
            "error": job.error,
        },
    )
    logger.error("%s%s dead-lettered after %d attempt(s): %s", task_name, payload, failure.attempts, failure.error)
    return job


def failed_jobs_resolve(queue: str, payload: dict) -> int:
    """Delete the FailedJob rows of ``queue`` whose payload equals ``payload`` (in the caller's transaction): their
    job was handled another way (a manual delivery retry), so a later requeue must not run it twice. A discard
    broadcasts nothing, and neither does this. Returns how many rows were deleted."""
    deleted, _ = FailedJob.objects.filter(queue=queue, payload=payload).delete()
    if deleted:
        logger.info("Resolved %d dead letter(s) of %s%s", deleted, queue, payload)
    return deleted


def file_dead_letter(file_id: int, failure: Failure) -> FailedJob | None:
    """The file becomes ``failed`` with its FailedJob; nothing when it is gone or already finished."""
    with transaction.atomic():
        file = for_update(IngestedFile.objects.filter(pk=file_id)).first()
        if file is None or file.status not in (FileStatus.PENDING, FileStatus.PROCESSING):
            return None
        IngestedFile.objects.filter(pk=file_id).update(status=FileStatus.FAILED, error=failure.error[:ERROR_MAX])
        return failed_job_record(
            JobQueue.DETECTION, PROCESS_FILE, {"file_id": file_id}, failure, camera_id=file.camera_id
        )


def batch_dead_letter(batch_id, failure: Failure) -> FailedJob | None:
    """The batch becomes ``failed`` with its FailedJob; nothing when it is gone or already has its event."""
    with transaction.atomic():
        batch = for_update(Batch.objects.filter(pk=batch_id)).first()
        if batch is None or batch.status in (BatchStatus.DONE, BatchStatus.FAILED, BatchStatus.OPEN):
            return None
        Batch.objects.filter(pk=batch_id).update(
            status=BatchStatus.FAILED, error=failure.error[:ERROR_MAX], updated_at=failure.last_failed_at
        )
        return failed_job_record(
            JobQueue.ANALYSIS, ANALYZE_BATCH, {"batch_id": str(batch_id)}, failure, camera_id=batch.camera_id
        )


def reanalysis_dead_letter(event_id: int, failure: Failure) -> FailedJob:
    from events.models import Event

    camera_id = Event.objects.filter(pk=event_id).values_list("camera_id", flat=True).first()
    with transaction.atomic():
        return failed_job_record(
            JobQueue.ANALYSIS, REANALYZE_EVENT, {"event_id": event_id}, failure, camera_id=camera_id
        )


# --- Operator actions -------------------------------------------------------------------------------------------


def _job_for_update(job_id: int) -> FailedJob:
    from hsi.api.errors import NotFound

    job = for_update(FailedJob.objects.filter(pk=job_id)).first()
    if job is None:
        raise NotFound(f"Failed job {job_id} not found")
    return job


def _job_summary(job: FailedJob) -> dict:
    return {"queue": job.queue, "task_name": job.task_name, "payload": job.payload, "requeue_count": job.requeue_count}


def dlq_requeue(job_id: int, *, actor: Actor) -> FailedJob:
    """Remove one job from the DLQ, reset what it worked on and dispatch it again after commit (404 when unknown).

    Returns the removed row (its ``id`` still set)."""
    with transaction.atomic():
        job = _job_for_update(job_id)
        _requeue([job])
        audit_record(actor, "dlq_requeued", "failed_job", job_id, details=_job_summary(job))
    return job


def dlq_requeue_many(queue: str | None, limit: int, *, actor: Actor) -> dict:
    """Requeue up to ``limit`` jobs of ``queue`` (None: every queue), oldest first.

    Returns ``{requeued, queue, limit_reached}``."""
    with transaction.atomic():
        jobs = FailedJob.objects.order_by("created_at", "id")
        if queue:
            jobs = jobs.filter(queue=queue)
        selected = list(for_update(jobs, skip_locked=True)[: limit + 1])
        limit_reached = len(selected) > limit
        selected = selected[:limit]
        _requeue(selected)
        result = {"requeued": len(selected), "queue": queue, "limit_reached": limit_reached}
        audit_record(actor, "dlq_requeued", "failed_job", None, details={**result, "limit": limit})
    return result


def _payload(job: FailedJob) -> dict:
    return job.payload if isinstance(job.payload, dict) else {}


def _requeue(jobs: list[FailedJob]) -> None:
    """Reset the jobs' targets, delete the rows and dispatch each ``task_name`` again after commit."""
    if not jobs:
        return
    now = timezone.now()
    targets: dict[str, list] = {"file_id": [], "batch_id": [], "delivery_id": []}
    for job in jobs:
        payload = _payload(job)
        for key, ids in targets.items():
            if payload.get(key) is not None:
                ids.append(payload[key])
    if targets["file_id"]:
        IngestedFile.objects.filter(pk__in=targets["file_id"], status=FileStatus.FAILED).update(
            status=FileStatus.PENDING, error=""
        )
    if targets["batch_id"]:
        Batch.objects.filter(pk__in=targets["batch_id"], status=BatchStatus.FAILED).update(
            status=BatchStatus.CLOSED, error="", updated_at=now
        )
    if targets["delivery_id"]:
        _reset_deliveries(targets["delivery_id"], now)
    FailedJob.objects.filter(pk__in=[job.id for job in jobs]).delete()
    for job in jobs:
        _dispatch_again(job)


def _dispatch_again(job: FailedJob) -> None:
    payload = _payload(job)
    key = PIPELINE_TASK_KEYS.get(job.task_name)
    if key is not None:
        if payload.get(key) is not None:
            dispatch.enqueue(job.task_name, payload[key], job.requeue_count + 1)
    elif _registered(job.task_name):
        dispatch.enqueue(job.task_name, *payload.values())


def _reset_deliveries(delivery_ids: list, now: dt.datetime) -> None:
    """A notification job's ``failed`` Delivery goes back to ``pending`` with a fresh attempt budget (§2.15). A row
    in any other state (retried by hand meanwhile: pending, sending or sent) is left alone, so it is not sent twice."""
    from alerts.models import Delivery, DeliveryStatus

    Delivery.objects.filter(pk__in=delivery_ids, status=DeliveryStatus.FAILED).update(
        status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now, last_error="", updated_at=now
    )


def _registered(task_name: str) -> bool:
    from hsi.celery import app

    return task_name in app.tasks


def dlq_discard(job_id: int, *, actor: Actor) -> None:
    """Delete one job without running it again (404 when unknown); its file or batch stays ``failed``."""
    with transaction.atomic():
        job = _job_for_update(job_id)
        job.delete()
        audit_record(actor, "dlq_discarded", "failed_job", job_id, details=_job_summary(job))


def dlq_clear(queue: str | None, *, actor: Actor) -> dict:
    """Delete every job of ``queue`` (None: of every queue): ``{cleared, queue}``."""
    with transaction.atomic():
        jobs = FailedJob.objects.all()
        if queue:
            jobs = jobs.filter(queue=queue)
        cleared, _ = jobs.delete()
        result = {"cleared": cleared, "queue": queue}
        audit_record(actor, "dlq_cleared", "failed_job", queue or "all", details=result)
    return result

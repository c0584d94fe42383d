"""Pipeline reads: the dead-letter queue as JSON (CONTRACT §2.15)."""

from __future__ import annotations

from django.db.models import Count, Min, QuerySet

from hsi.api.errors import NotFound
from hsi.timeutils import utc_iso
from pipeline.models import FailedJob, JobQueue


def failed_jobs() -> QuerySet[FailedJob]:
    """Every failed job, oldest first (``created_at``, ``id``)."""
    return FailedJob.objects.order_by("created_at", "id")


def failed_job_json(job: FailedJob) -> dict:
    """FailedJob JSON: every §1.4 field."""
    return {
        "id": job.id,
        "queue": job.queue,
        "task_name": job.task_name,
        "payload": job.payload,
        "camera_id": job.camera_id,
        "error": job.error,
        "error_type": job.error_type,
        "stack_trace": job.stack_trace,
        "attempt_count": job.attempt_count,
        "requeue_count": job.requeue_count,
        "first_failed_at": utc_iso(job.first_failed_at),
        "last_failed_at": utc_iso(job.last_failed_at),
        "created_at": utc_iso(job.created_at),
    }


def failed_job_detail(job_id: int) -> dict:
    job = FailedJob.objects.filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"Failed job {job_id} not found")
    return failed_job_json(job)


def failed_job_stats() -> dict:
    """``{detection, analysis, notification, total, oldest_failed_at}`` (two small aggregate queries)."""
    by_queue = dict(FailedJob.objects.order_by().values("queue").annotate(n=Count("id")).values_list("queue", "n"))
    oldest = FailedJob.objects.aggregate(oldest=Min("first_failed_at"))["oldest"]
    counts = {queue: by_queue.get(queue, 0) for queue, _ in JobQueue.choices}
    return {**counts, "total": sum(by_queue.values()), "oldest_failed_at": utc_iso(oldest)}

"""Django admin for the pipeline's durable records (CONTRACT §8.2): ingested files, batches and the DLQ.

These rows are the pipeline's own state, so they are read-only here. Failed jobs have the actions "requeue" and
"discard", which go through the same services as ``/api/dlq`` (same audit rows, actor ``user:<username>``).
"""

from __future__ import annotations

from django.contrib import admin, messages

from pipeline.models import Batch, FailedJob, IngestedFile
from system.admin import ReadOnlyAdmin, admin_actor


@admin.register(IngestedFile)
class IngestedFileAdmin(ReadOnlyAdmin):
    list_display = ("id", "received_at", "camera", "status", "source", "media_type", "size_bytes", "detection_count")
    list_filter = ("status", "source", "media_type", "reject_reason")
    list_select_related = ("camera",)
    search_fields = ("path", "=sha256")
    ordering = ("-received_at", "-id")


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "camera",
        "status",
        "is_fast_path",
        "opened_at",
        "closed_at",
        "close_reason",
        "detection_count",
        "analysis_attempts",
    )
    list_filter = ("status", "close_reason", "is_fast_path")
    list_select_related = ("camera",)
    search_fields = ("=id", "camera__id")
    ordering = ("-opened_at", "id")


@admin.register(FailedJob)
class FailedJobAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "queue",
        "task_name",
        "camera_id",
        "error_type",
        "attempt_count",
        "requeue_count",
        "last_failed_at",
    )
    list_filter = ("queue", "error_type")
    search_fields = ("task_name", "error", "camera_id")
    ordering = ("-created_at", "-id")
    actions = ("requeue", "discard")

    @admin.action(description="Requeue selected jobs (run them again)")
    def requeue(self, request, queryset):
        from pipeline.services import dlq_requeue

        self._apply(request, queryset, dlq_requeue, "requeued")

    @admin.action(description="Discard selected jobs")
    def discard(self, request, queryset):
        from pipeline.services import dlq_discard

        self._apply(request, queryset, dlq_discard, "discarded")

    def _apply(self, request, queryset, service, done: str) -> None:
        from hsi.api.errors import NotFound

        actor = admin_actor(request)
        succeeded = 0
        for job_id in queryset.values_list("pk", flat=True):
            try:
                service(job_id, actor=actor)
            except NotFound:  # removed by someone else meanwhile
                continue
            succeeded += 1
        self.message_user(request, f"{succeeded} job(s) {done}.", messages.SUCCESS)

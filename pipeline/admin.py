"""Django admin for the pipeline's durable records (CONTRACT §8.2): ingested files, batches and the DLQ.

These rows are the pipeline's own state, so they are read-only here; requeueing and discarding failed jobs are
lifecycle actions with their own audit rows (``/api/dlq``).
"""

from __future__ import annotations

from django.contrib import admin

from pipeline.models import Batch, FailedJob, IngestedFile
from system.admin import ReadOnlyAdmin


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

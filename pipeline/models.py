from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from cameras.models import Camera
from hsi.models import TimestampedModel, choices_check


class FileSource(models.TextChoices):
    WATCHER = "watcher"
    UPLOAD = "upload"
    SEED = "seed"


class FileStatus(models.TextChoices):
    PENDING = "pending"
    PROCESSING = "processing"
    PROCESSED = "processed"
    NO_DETECTIONS = "no_detections"
    INVALID = "invalid"
    FAILED = "failed"


class RejectReason(models.TextChoices):
    EMPTY = "empty"
    TOO_SMALL = "too_small"
    TOO_LARGE = "too_large"
    UNREADABLE = "unreadable"
    TRUNCATED = "truncated"
    DECOMPRESSION_BOMB = "decompression_bomb"
    UNSTABLE = "unstable"


class IngestedFile(models.Model):
    """One accepted or rejected file: the durable dedup record (CONTRACT §1.4)."""

    id = models.BigAutoField(primary_key=True)
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="ingested_files")
    path = models.CharField(max_length=1024)
    sha256 = models.CharField(max_length=64, unique=True, null=True, blank=True)
    size_bytes = models.BigIntegerField()
    media_type = models.CharField(max_length=5, choices=[("image", "image"), ("video", "video")])
    mime_type = models.CharField(max_length=50, default="", blank=True)
    source = models.CharField(max_length=10, choices=FileSource.choices, default=FileSource.WATCHER)
    status = models.CharField(max_length=15, choices=FileStatus.choices, default=FileStatus.PENDING)
    reject_reason = models.CharField(max_length=30, choices=RejectReason.choices, null=True, blank=True)
    detection_count = models.IntegerField(default=0)
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(default="", blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["camera", "received_at"], name="ingested_camera_time_idx"),
            models.Index(fields=["status"], name="ingested_status_idx"),
        ]
        constraints = [
            choices_check("source", FileSource, "ingested_source_valid"),
            choices_check("status", FileStatus, "ingested_status_valid"),
        ]

    def __str__(self) -> str:
        return self.path


class BatchStatus(models.TextChoices):
    OPEN = "open"
    CLOSED = "closed"
    ANALYZING = "analyzing"
    DONE = "done"
    FAILED = "failed"


class CloseReason(models.TextChoices):
    WINDOW = "window"
    IDLE = "idle"
    MAX_SIZE = "max_size"
    FAST_PATH = "fast_path"


class Batch(TimestampedModel):
    """Durable batch state: at most one open batch per camera (CONTRACT §1.4, §4.5)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="batches")
    status = models.CharField(max_length=10, choices=BatchStatus.choices, default=BatchStatus.OPEN)
    is_fast_path = models.BooleanField(default=False)
    opened_at = models.DateTimeField(default=timezone.now)
    last_detection_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=10, choices=CloseReason.choices, null=True, blank=True)
    detection_count = models.IntegerField(default=0)
    analysis_attempts = models.SmallIntegerField(default=0)
    error = models.TextField(default="", blank=True)

    class Meta:
        verbose_name_plural = "batches"
        ordering = ["-opened_at", "id"]
        indexes = [models.Index(fields=["status", "opened_at"], name="batch_status_opened_idx")]
        constraints = [
            models.UniqueConstraint(fields=["camera"], condition=Q(status="open"), name="batch_one_open_per_camera"),
            choices_check("status", BatchStatus, "batch_status_valid"),
        ]

    def __str__(self) -> str:
        return f"Batch {self.id} ({self.camera_id}, {self.status})"


class JobQueue(models.TextChoices):
    DETECTION = "detection"
    ANALYSIS = "analysis"
    NOTIFICATION = "notification"


class FailedJob(models.Model):
    """The durable dead-letter queue (CONTRACT §1.4, §2.15)."""

    id = models.BigAutoField(primary_key=True)
    queue = models.CharField(max_length=15, choices=JobQueue.choices)
    task_name = models.CharField(max_length=100)
    payload = models.JSONField()
    camera_id = models.CharField(max_length=64, null=True, blank=True)
    error = models.TextField()
    error_type = models.CharField(max_length=50)
    stack_trace = models.TextField(default="", blank=True)
    attempt_count = models.SmallIntegerField()
    requeue_count = models.SmallIntegerField(default=0)
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["queue", "created_at"], name="failedjob_queue_created_idx"),
            models.Index(fields=["camera_id"], name="failedjob_camera_idx"),
        ]
        constraints = [choices_check("queue", JobQueue, "failedjob_queue_valid")]

    def __str__(self) -> str:
        return f"{self.task_name} ({self.queue})"

from __future__ import annotations

import os
import uuid
from pathlib import Path

from django.conf import settings
from django.db import models

from hsi.models import TimestampedModel, choices_check


class CameraStatus(models.TextChoices):
    ONLINE = "online"
    OFFLINE = "offline"
    ERROR = "error"
    UNKNOWN = "unknown"


class Camera(TimestampedModel):
    id = models.CharField(primary_key=True, max_length=64)
    name = models.CharField(max_length=255, unique=True)
    folder_path = models.CharField(max_length=500, unique=True)
    status = models.CharField(max_length=10, choices=CameraStatus.choices, default=CameraStatus.ONLINE)
    enabled = models.BooleanField(default=True)
    silence_threshold_minutes = models.IntegerField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["status"], name="camera_status_idx")]
        constraints = [
            choices_check("status", CameraStatus, "camera_status_valid"),
            models.CheckConstraint(
                condition=models.Q(silence_threshold_minutes__isnull=True)
                | models.Q(silence_threshold_minutes__gte=1, silence_threshold_minutes__lte=10080),
                name="camera_silence_threshold_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"

    @property
    def resolved_folder(self) -> Path:
        """The camera folder as an absolute path (relative paths live under ``FOSCAM_BASE_PATH``)."""
        return resolve_folder(self.folder_path)


def resolve_folder(folder_path: str) -> Path:
    path = Path(folder_path)
    if not path.is_absolute():
        path = Path(settings.FOSCAM_BASE_PATH) / path
    return Path(os.path.normpath(path))


class ZoneType(models.TextChoices):
    ENTRY_POINT = "entry_point"
    DRIVEWAY = "driveway"
    SIDEWALK = "sidewalk"
    YARD = "yard"
    OTHER = "other"


class ZoneShape(models.TextChoices):
    RECTANGLE = "rectangle"
    POLYGON = "polygon"


class Zone(TimestampedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="zones")
    name = models.CharField(max_length=255)
    zone_type = models.CharField(max_length=20, choices=ZoneType.choices, default=ZoneType.OTHER)
    shape = models.CharField(max_length=10, choices=ZoneShape.choices, default=ZoneShape.RECTANGLE)
    coordinates = models.JSONField()
    color = models.CharField(max_length=7, default="#3B82F6")
    enabled = models.BooleanField(default=True)
    priority = models.SmallIntegerField(default=0)

    class Meta:
        ordering = ["-priority", "name", "id"]
        indexes = [
            models.Index(fields=["camera", "enabled"], name="zone_camera_enabled_idx"),
            models.Index(fields=["camera", "priority"], name="zone_camera_priority_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(priority__gte=0, priority__lte=100), name="zone_priority_range"),
            choices_check("zone_type", ZoneType, "zone_type_valid"),
            choices_check("shape", ZoneShape, "zone_shape_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} on {self.camera_id}"

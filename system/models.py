from __future__ import annotations

from django.db import models
from django.utils import timezone

from hsi.models import choices_check


class AuditStatus(models.TextChoices):
    SUCCESS = "success"
    FAILURE = "failure"


class AuditLog(models.Model):
    id = models.BigAutoField(primary_key=True)
    timestamp = models.DateTimeField(default=timezone.now)
    action = models.CharField(max_length=50)
    resource_type = models.CharField(max_length=50)
    resource_id = models.CharField(max_length=255, null=True, blank=True)
    actor = models.CharField(max_length=150)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, null=True, blank=True)
    request_id = models.CharField(max_length=64, null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=AuditStatus.choices, default=AuditStatus.SUCCESS)

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [
            models.Index(fields=["timestamp"], name="audit_timestamp_idx"),
            models.Index(fields=["action"], name="audit_action_idx"),
            models.Index(fields=["resource_type", "resource_id"], name="audit_resource_idx"),
            models.Index(fields=["actor"], name="audit_actor_idx"),
            models.Index(fields=["status"], name="audit_status_idx"),
        ]
        constraints = [choices_check("status", AuditStatus, "audit_status_valid")]

    def __str__(self) -> str:
        return f"{self.action} {self.resource_type}:{self.resource_id} by {self.actor}"


class LogLevel(models.TextChoices):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class LogSource(models.TextChoices):
    BACKEND = "backend"
    FRONTEND = "frontend"


class LogEntry(models.Model):
    id = models.BigAutoField(primary_key=True)
    timestamp = models.DateTimeField(default=timezone.now)
    level = models.CharField(max_length=8, choices=LogLevel.choices)
    component = models.CharField(max_length=100)
    message = models.TextField()
    camera_id = models.CharField(max_length=64, null=True, blank=True)
    event_id = models.BigIntegerField(null=True, blank=True)
    detection_id = models.BigIntegerField(null=True, blank=True)
    request_id = models.CharField(max_length=64, null=True, blank=True)
    duration_ms = models.IntegerField(null=True, blank=True)
    extra = models.JSONField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=LogSource.choices, default=LogSource.BACKEND)
    user_agent = models.CharField(max_length=500, null=True, blank=True)
    url = models.CharField(max_length=2000, null=True, blank=True)

    class Meta:
        verbose_name_plural = "log entries"
        ordering = ["-timestamp", "-id"]
        indexes = [
            models.Index(fields=["timestamp"], name="log_timestamp_idx"),
            models.Index(fields=["level"], name="log_level_idx"),
            models.Index(fields=["component"], name="log_component_idx"),
            models.Index(fields=["camera_id"], name="log_camera_idx"),
            models.Index(fields=["source"], name="log_source_idx"),
        ]
        constraints = [
            choices_check("level", LogLevel, "log_level_valid"),
            choices_check("source", LogSource, "log_source_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.level} {self.component}: {self.message[:60]}"


class GPUStat(models.Model):
    id = models.BigAutoField(primary_key=True)
    recorded_at = models.DateTimeField(default=timezone.now)
    host = models.CharField(max_length=255)
    gpu_index = models.SmallIntegerField(default=0)
    gpu_name = models.CharField(max_length=255)
    utilization = models.FloatField(null=True, blank=True)
    memory_used = models.IntegerField(null=True, blank=True)
    memory_total = models.IntegerField(null=True, blank=True)
    temperature = models.FloatField(null=True, blank=True)
    power_usage = models.FloatField(null=True, blank=True)
    inference_fps = models.FloatField(null=True, blank=True)

    class Meta:
        verbose_name = "GPU stat"
        ordering = ["-recorded_at", "-id"]

    def __str__(self) -> str:
        return f"{self.host} GPU{self.gpu_index} at {self.recorded_at:%Y-%m-%d %H:%M:%S}"


class ApiKey(models.Model):
    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

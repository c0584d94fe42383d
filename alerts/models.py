from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from cameras.models import Camera
from events.models import Event, RiskLevel
from hsi.models import TimestampedModel, choices_check


class RuleTrigger(models.TextChoices):
    EVENT = "event"
    CAMERA_OFFLINE = "camera_offline"


def default_dedup_template() -> str:
    return "{camera_id}:{rule_id}"


class AlertRule(TimestampedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    description = models.TextField(default="", blank=True)
    enabled = models.BooleanField(default=True)
    trigger = models.CharField(max_length=20, choices=RuleTrigger.choices, default=RuleTrigger.EVENT)
    severity = models.CharField(max_length=8, choices=RiskLevel.choices, default=RiskLevel.MEDIUM)
    risk_threshold = models.SmallIntegerField(null=True, blank=True)
    object_types = models.JSONField(null=True, blank=True)
    camera_ids = models.JSONField(null=True, blank=True)
    zone_ids = models.JSONField(null=True, blank=True)
    min_confidence = models.FloatField(null=True, blank=True)
    schedule = models.JSONField(null=True, blank=True)
    dedup_key_template = models.CharField(max_length=255, default=default_dedup_template)
    cooldown_seconds = models.IntegerField(default=300)
    channels = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            models.Index(fields=["enabled"], name="rule_enabled_idx"),
            models.Index(fields=["severity"], name="rule_severity_idx"),
            models.Index(fields=["name"], name="rule_name_idx"),
        ]
        constraints = [
            choices_check("trigger", RuleTrigger, "rule_trigger_valid"),
            choices_check("severity", RiskLevel, "rule_severity_valid"),
            models.CheckConstraint(
                condition=Q(risk_threshold__isnull=True) | Q(risk_threshold__gte=0, risk_threshold__lte=100),
                name="rule_risk_threshold_range",
            ),
            models.CheckConstraint(
                condition=Q(cooldown_seconds__gte=0, cooldown_seconds__lte=604800), name="rule_cooldown_range"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class AlertKind(models.TextChoices):
    EVENT = "event"
    CAMERA_OFFLINE = "camera_offline"


class AlertStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    DISMISSED = "dismissed"


class Alert(TimestampedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20, choices=AlertKind.choices, default=AlertKind.EVENT)
    rule = models.ForeignKey(AlertRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, null=True, blank=True, related_name="alerts")
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="alerts")
    severity = models.CharField(max_length=8, choices=RiskLevel.choices, default=RiskLevel.MEDIUM)
    status = models.CharField(max_length=12, choices=AlertStatus.choices, default=AlertStatus.PENDING)
    dedup_key = models.CharField(max_length=255)
    channels = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    version = models.IntegerField(default=1)
    delivered_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    dismissed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="alert_status_created_idx"),
            models.Index(fields=["rule", "dedup_key", "created_at"], name="alert_rule_dedup_idx"),
            models.Index(fields=["severity"], name="alert_severity_idx"),
        ]
        constraints = [
            choices_check("kind", AlertKind, "alert_kind_valid"),
            choices_check("status", AlertStatus, "alert_status_valid"),
            choices_check("severity", RiskLevel, "alert_severity_valid"),
        ]

    def __str__(self) -> str:
        return f"Alert {self.id} ({self.severity}, {self.status})"


class ChannelKind(models.TextChoices):
    WEBHOOK = "webhook"
    EMAIL = "email"
    MQTT = "mqtt"


class NotificationChannel(TimestampedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=ChannelKind.choices)
    enabled = models.BooleanField(default=True)
    config = models.JSONField(default=dict, blank=True)
    secret = models.CharField(max_length=255, default="", blank=True)
    min_severity = models.CharField(max_length=8, choices=RiskLevel.choices, default=RiskLevel.LOW)
    publish_events = models.BooleanField(default=False)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(default="", blank=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            choices_check("kind", ChannelKind, "channel_kind_valid"),
            choices_check("min_severity", RiskLevel, "channel_min_severity_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Sound(models.TextChoices):
    NONE = "none"
    DEFAULT = "default"
    ALERT = "alert"
    CHIME = "chime"
    URGENT = "urgent"


class NotificationPreference(models.Model):
    camera = models.ForeignKey(
        Camera, on_delete=models.CASCADE, null=True, blank=True, related_name="notification_preferences"
    )
    enabled = models.BooleanField(default=True)
    severities = models.JSONField(null=True, blank=True)
    min_risk_score = models.SmallIntegerField(null=True, blank=True)
    sound = models.CharField(max_length=10, choices=Sound.choices, default=Sound.DEFAULT)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(Coalesce("camera", models.Value("")), name="notification_pref_one_per_camera"),
            models.CheckConstraint(
                condition=Q(min_risk_score__isnull=True) | Q(min_risk_score__gte=0, min_risk_score__lte=100),
                name="notification_pref_min_risk_range",
            ),
            choices_check("sound", Sound, "notification_pref_sound_valid"),
        ]

    def __str__(self) -> str:
        return f"Preferences ({self.camera_id or 'global'})"


def all_weekdays() -> list[str]:
    return ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class QuietHours(TimestampedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    label = models.CharField(max_length=100, default="", blank=True)
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, null=True, blank=True, related_name="quiet_hours")
    start_time = models.TimeField()
    end_time = models.TimeField()
    days = models.JSONField(default=all_weekdays)
    allow_critical = models.BooleanField(default=True)
    enabled = models.BooleanField(default=True)

    class Meta:
        verbose_name_plural = "quiet hours"
        ordering = ["start_time", "id"]
        constraints = [
            models.CheckConstraint(condition=~Q(start_time=models.F("end_time")), name="quiet_hours_times_differ"),
        ]


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class SuppressedReason(models.TextChoices):
    NOTIFICATIONS_DISABLED = "notifications_disabled"
    CAMERA_DISABLED = "camera_disabled"
    SEVERITY_FILTERED = "severity_filtered"
    RISK_BELOW_THRESHOLD = "risk_below_threshold"
    CHANNEL_MIN_SEVERITY = "channel_min_severity"
    CHANNEL_DISABLED = "channel_disabled"
    QUIET_HOURS = "quiet_hours"


class Delivery(TimestampedModel):
    id = models.BigAutoField(primary_key=True)
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    suppressed_reason = models.CharField(max_length=40, choices=SuppressedReason.choices, null=True, blank=True)
    attempts = models.SmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    response_status = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(default="", blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_status_next_idx")]
        constraints = [
            models.UniqueConstraint(fields=["alert", "channel"], name="delivery_alert_channel_unique"),
            choices_check("status", DeliveryStatus, "delivery_status_valid"),
        ]

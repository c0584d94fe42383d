from __future__ import annotations

import uuid

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from cameras.models import Camera
from hsi.models import TimestampedModel, choices_check


class MediaType(models.TextChoices):
    IMAGE = "image"
    VIDEO = "video"


class RiskLevel(models.TextChoices):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


RISK_LEVEL_ORDER = {"low": 0, "medium": 1, "high": 2, "critical": 3}


class AnalysisStatus(models.TextChoices):
    LLM = "llm"
    RULES = "rules"
    FALLBACK = "fallback"


class Detection(models.Model):
    id = models.BigAutoField(primary_key=True)
    # No index of its own: det_camera_time_idx (camera, detected_at) serves camera lookups and cascades, and every
    # index is one more write per inserted detection.
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="detections", db_index=False)
    source_file = models.ForeignKey(
        "pipeline.IngestedFile", on_delete=models.SET_NULL, null=True, blank=True, related_name="detections"
    )
    batch = models.ForeignKey(
        "pipeline.Batch", on_delete=models.SET_NULL, null=True, blank=True, related_name="detections"
    )
    entity = models.ForeignKey(
        "events.Entity", on_delete=models.SET_NULL, null=True, blank=True, related_name="detections"
    )
    file_path = models.CharField(max_length=1024)
    file_type = models.CharField(max_length=50)
    media_type = models.CharField(max_length=5, choices=MediaType.choices, default=MediaType.IMAGE)
    detected_at = models.DateTimeField()
    object_type = models.CharField(max_length=64)
    confidence = models.FloatField()
    bbox_x = models.IntegerField()
    bbox_y = models.IntegerField()
    bbox_width = models.IntegerField()
    bbox_height = models.IntegerField()
    image_width = models.IntegerField(null=True, blank=True)
    image_height = models.IntegerField(null=True, blank=True)
    frame_time_seconds = models.FloatField(null=True, blank=True)
    video_duration = models.FloatField(null=True, blank=True)
    video_codec = models.CharField(max_length=32, null=True, blank=True)
    video_width = models.IntegerField(null=True, blank=True)
    video_height = models.IntegerField(null=True, blank=True)
    zone_ids = models.JSONField(default=list, blank=True)
    embedding = models.JSONField(null=True, blank=True)
    entity_similarity = models.FloatField(null=True, blank=True)
    thumbnail_path = models.CharField(max_length=1024, null=True, blank=True)
    enrichment_data = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-detected_at", "-id"]
        indexes = [
            models.Index(fields=["camera", "detected_at"], name="det_camera_time_idx"),
            models.Index(fields=["detected_at", "id"], name="det_time_id_idx"),
            models.Index(fields=["object_type", "detected_at"], name="det_type_time_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(confidence__gte=0, confidence__lte=1), name="det_confidence_range"),
            models.CheckConstraint(
                condition=Q(bbox_x__gte=0, bbox_y__gte=0, bbox_width__gte=0, bbox_height__gte=0),
                name="det_bbox_non_negative",
            ),
            choices_check("media_type", MediaType, "det_media_type_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.object_type} {self.confidence:.2f} on {self.camera_id}"


class Event(TimestampedModel):
    id = models.BigAutoField(primary_key=True)
    camera = models.ForeignKey(
        Camera, on_delete=models.CASCADE, related_name="events", db_index=False
    )  # event_camera_time_idx
    batch = models.OneToOneField(
        "pipeline.Batch", on_delete=models.SET_NULL, null=True, blank=True, related_name="event"
    )
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    risk_score = models.SmallIntegerField(null=True, blank=True)
    risk_level = models.CharField(max_length=8, choices=RiskLevel.choices, null=True, blank=True)
    summary = models.TextField(default="", blank=True)
    reasoning = models.TextField(default="", blank=True)
    recommended_action = models.CharField(max_length=500, default="", blank=True)
    analysis_status = models.CharField(max_length=10, choices=AnalysisStatus.choices)
    is_fast_path = models.BooleanField(default=False)
    object_types = models.CharField(max_length=500, default="", blank=True)
    detection_count = models.IntegerField(default=0)
    anomaly_score = models.FloatField(null=True, blank=True)
    suppressed = models.BooleanField(default=False)
    reviewed = models.BooleanField(default=False)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    flagged = models.BooleanField(default=False)
    notes = models.TextField(null=True, blank=True)
    snooze_until = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    version = models.IntegerField(default=1)
    detections = models.ManyToManyField(Detection, through="events.EventDetection", related_name="events")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["started_at", "id"], name="event_time_id_idx"),
            models.Index(fields=["camera", "started_at"], name="event_camera_time_idx"),
            models.Index(fields=["risk_level", "started_at"], name="event_level_time_idx"),
            models.Index(fields=["reviewed"], name="event_reviewed_idx"),
            models.Index(fields=["deleted_at"], name="event_deleted_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(ended_at__gte=F("started_at")), name="event_ended_after_started"),
            models.CheckConstraint(
                condition=Q(risk_score__isnull=True) | Q(risk_score__gte=0, risk_score__lte=100),
                name="event_risk_score_range",
            ),
            models.CheckConstraint(
                condition=Q(risk_level__isnull=True) | Q(risk_level__in=[c for c, _ in RiskLevel.choices]),
                name="event_risk_level_valid",
            ),
            choices_check("analysis_status", AnalysisStatus, "event_analysis_status_valid"),
            models.CheckConstraint(
                condition=Q(anomaly_score__isnull=True) | Q(anomaly_score__gte=0, anomaly_score__lte=1),
                name="event_anomaly_score_range",
            ),
        ]

    def __str__(self) -> str:
        return f"Event {self.id} on {self.camera_id}"

    @property
    def object_type_list(self) -> list[str]:
        return [t for t in self.object_types.split(",") if t]


class EventDetection(models.Model):
    id = models.BigAutoField(primary_key=True)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="detection_links")
    detection = models.OneToOneField(Detection, on_delete=models.CASCADE, related_name="event_link")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        indexes = [models.Index(fields=["event"], name="eventdet_event_idx")]

    def __str__(self) -> str:
        return f"event {self.event_id} ← detection {self.detection_id}"


class AnalyzerBackend(models.TextChoices):
    LLAMACPP = "llamacpp"
    OPENAI = "openai"
    RULES = "rules"


class ParseStatus(models.TextChoices):
    OK = "ok"
    REPAIRED = "repaired"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"


class EvaluationStatus(models.TextChoices):
    PENDING = "pending"
    PARTIAL = "partial"
    COMPLETE = "complete"


class EventAudit(models.Model):
    id = models.BigAutoField(primary_key=True)
    event = models.OneToOneField(Event, on_delete=models.CASCADE, related_name="audit")
    backend = models.CharField(max_length=10, choices=AnalyzerBackend.choices)
    model = models.CharField(max_length=200, default="", blank=True)
    prompt = models.TextField(default="", blank=True)
    prompt_chars = models.IntegerField(default=0)
    prompt_token_estimate = models.IntegerField(default=0)
    raw_response = models.TextField(default="", blank=True)
    parse_status = models.CharField(max_length=15, choices=ParseStatus.choices)
    parse_error = models.TextField(default="", blank=True)
    llm_risk_score = models.IntegerField(null=True, blank=True)
    llm_risk_level = models.CharField(max_length=20, null=True, blank=True)
    rules_risk_score = models.SmallIntegerField()
    attempts = models.SmallIntegerField(default=0)
    latency_ms = models.IntegerField(default=0)
    prompt_tokens = models.IntegerField(null=True, blank=True)
    completion_tokens = models.IntegerField(null=True, blank=True)
    fallback_reason = models.CharField(max_length=200, null=True, blank=True)
    context_flags = models.JSONField(default=dict, blank=True)
    context_usage_score = models.FloatField(null=True, blank=True)
    reasoning_coherence_score = models.FloatField(null=True, blank=True)
    risk_justification_score = models.FloatField(null=True, blank=True)
    consistency_score = models.FloatField(null=True, blank=True)
    overall_quality_score = models.FloatField(null=True, blank=True)
    evaluation_status = models.CharField(
        max_length=10, choices=EvaluationStatus.choices, default=EvaluationStatus.PENDING
    )
    evaluation_critique = models.TextField(default="", blank=True)
    evaluated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["created_at"], name="eventaudit_created_idx"),
            models.Index(fields=["backend"], name="eventaudit_backend_idx"),
            models.Index(fields=["parse_status"], name="eventaudit_parse_idx"),
            models.Index(fields=["overall_quality_score"], name="eventaudit_quality_idx"),
        ]
        constraints = [
            choices_check("backend", AnalyzerBackend, "eventaudit_backend_valid"),
            choices_check("parse_status", ParseStatus, "eventaudit_parse_status_valid"),
            choices_check("evaluation_status", EvaluationStatus, "eventaudit_evaluation_status_valid"),
        ]

    def __str__(self) -> str:
        return f"audit of event {self.event_id} ({self.backend})"


class EntityType(models.TextChoices):
    PERSON = "person"
    VEHICLE = "vehicle"
    ANIMAL = "animal"


class TrustStatus(models.TextChoices):
    TRUSTED = "trusted"
    UNTRUSTED = "untrusted"
    UNKNOWN = "unknown"


class Entity(TimestampedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    entity_type = models.CharField(max_length=10, choices=EntityType.choices)
    label = models.CharField(max_length=100, default="", blank=True)
    trust_status = models.CharField(max_length=10, choices=TrustStatus.choices, default=TrustStatus.UNKNOWN)
    notes = models.TextField(default="", blank=True)
    embedding = models.JSONField()
    # The embedding as the L2-normalised float32 vector (little-endian bytes) that matching reads: a quarter of the
    # JSON's size and no parsing, for the hundreds of candidates compared per file. Null on rows written before it
    # (or by hand): matching then derives it from ``embedding``.
    embedding_unit = models.BinaryField(null=True, blank=True, editable=False)
    embedding_model = models.CharField(max_length=100)
    embedding_dim = models.IntegerField()
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    detection_count = models.IntegerField(default=0)
    cameras_seen = models.JSONField(default=list, blank=True)
    primary_detection = models.ForeignKey(
        Detection, on_delete=models.SET_NULL, null=True, blank=True, related_name="primary_for_entities"
    )

    class Meta:
        verbose_name_plural = "entities"
        ordering = ["-last_seen_at", "id"]
        indexes = [
            models.Index(fields=["entity_type", "last_seen_at"], name="entity_type_seen_idx"),
            models.Index(fields=["trust_status"], name="entity_trust_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(detection_count__gte=0), name="entity_detection_count_non_negative"),
            choices_check("entity_type", EntityType, "entity_type_valid"),
            choices_check("trust_status", TrustStatus, "entity_trust_status_valid"),
        ]

    def __str__(self) -> str:
        return self.label or f"{self.entity_type} {str(self.id)[:8]}"


class ActivityBaseline(models.Model):
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="activity_baselines")
    day_of_week = models.SmallIntegerField()
    hour = models.SmallIntegerField()
    avg_count = models.FloatField(default=0)
    sample_count = models.IntegerField(default=0)
    last_updated = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["camera", "day_of_week", "hour"], name="activity_baseline_slot_unique"),
            models.CheckConstraint(condition=Q(day_of_week__gte=0, day_of_week__lte=6), name="activity_dow_range"),
            models.CheckConstraint(condition=Q(hour__gte=0, hour__lte=23), name="activity_hour_range"),
        ]

    def __str__(self) -> str:
        return f"{self.camera_id} d{self.day_of_week} h{self.hour}: {self.avg_count:.2f}"


class ClassBaseline(models.Model):
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="class_baselines")
    object_class = models.CharField(max_length=64)
    hour = models.SmallIntegerField()
    frequency = models.FloatField(default=0)
    sample_count = models.IntegerField(default=0)
    last_updated = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["camera", "object_class"], name="class_baseline_cam_cls_idx")]
        constraints = [
            models.UniqueConstraint(fields=["camera", "object_class", "hour"], name="class_baseline_slot_unique"),
            models.CheckConstraint(condition=Q(hour__gte=0, hour__lte=23), name="class_hour_range"),
        ]

    def __str__(self) -> str:
        return f"{self.camera_id} {self.object_class} h{self.hour}: {self.frequency:.2f}"


class FeedbackType(models.TextChoices):
    ACCURATE = "accurate"
    FALSE_POSITIVE = "false_positive"
    NORMAL = "normal"
    MISSED_THREAT = "missed_threat"
    SEVERITY_WRONG = "severity_wrong"


class EventFeedback(TimestampedModel):
    id = models.BigAutoField(primary_key=True)
    event = models.OneToOneField(Event, on_delete=models.CASCADE, related_name="feedback")
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="feedback")
    feedback_type = models.CharField(max_length=20, choices=FeedbackType.choices)
    expected_severity = models.CharField(max_length=8, choices=RiskLevel.choices, null=True, blank=True)
    suggested_score = models.SmallIntegerField(null=True, blank=True)
    notes = models.TextField(default="", blank=True)
    suppress = models.BooleanField()
    suppress_until = models.DateTimeField(null=True, blank=True)
    object_types = models.CharField(max_length=500)
    time_of_day_minutes = models.SmallIntegerField()

    class Meta:
        verbose_name_plural = "event feedback"
        indexes = [
            models.Index(fields=["camera", "suppress", "suppress_until"], name="feedback_suppress_idx"),
        ]
        constraints = [
            choices_check("feedback_type", FeedbackType, "feedback_type_valid"),
            models.CheckConstraint(
                condition=Q(suggested_score__isnull=True) | Q(suggested_score__gte=0, suggested_score__lte=100),
                name="feedback_suggested_score_range",
            ),
            models.CheckConstraint(
                condition=Q(time_of_day_minutes__gte=0, time_of_day_minutes__lt=1440),
                name="feedback_time_of_day_range",
            ),
        ]

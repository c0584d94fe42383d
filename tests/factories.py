"""factory-boy factories, one per model (DESIGN §4)."""

from __future__ import annotations

import datetime as dt

import factory
from django.utils import timezone

from alerts.models import Alert, AlertRule, Delivery, NotificationChannel, QuietHours
from cameras.models import Camera, Zone
from events.models import Detection, Entity, Event, EventAudit, EventDetection, EventFeedback
from pipeline.models import Batch, FailedJob, IngestedFile
from system.models import ApiKey, AuditLog, GPUStat, LogEntry


class CameraFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Camera

    id = factory.Sequence(lambda n: f"camera_{n}")
    name = factory.Sequence(lambda n: f"Camera {n}")
    folder_path = factory.LazyAttribute(lambda o: o.id)
    status = "online"
    enabled = True


class ZoneFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Zone

    camera = factory.SubFactory(CameraFactory)
    name = factory.Sequence(lambda n: f"Zone {n}")
    zone_type = "entry_point"
    shape = "rectangle"
    coordinates = factory.LazyFunction(lambda: [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5]])


class IngestedFileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IngestedFile

    camera = factory.SubFactory(CameraFactory)
    path = factory.Sequence(lambda n: f"/export/foscam/cam/img_{n}.jpg")
    sha256 = factory.Sequence(lambda n: f"{n:064x}")
    size_bytes = 20480
    media_type = "image"
    mime_type = "image/jpeg"
    status = "processed"


class BatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Batch

    camera = factory.SubFactory(CameraFactory)
    status = "done"
    close_reason = "idle"
    closed_at = factory.LazyFunction(timezone.now)


class DetectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Detection

    camera = factory.SubFactory(CameraFactory)
    file_path = factory.Sequence(lambda n: f"/export/foscam/cam/img_{n}.jpg")
    file_type = "image/jpeg"
    media_type = "image"
    detected_at = factory.LazyFunction(timezone.now)
    object_type = "person"
    confidence = 0.9
    bbox_x = 100
    bbox_y = 100
    bbox_width = 50
    bbox_height = 120
    image_width = 1280
    image_height = 720


class EventFactory(factory.django.DjangoModelFactory):
    """An analysed event. ``detections=[...]`` links existing detections and fills the derived fields."""

    class Meta:
        model = Event
        skip_postgeneration_save = True

    camera = factory.SubFactory(CameraFactory)
    started_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(minutes=1))
    ended_at = factory.LazyAttribute(lambda o: o.started_at + dt.timedelta(seconds=30))
    risk_score = 20
    risk_level = "low"
    summary = "1 person detected"
    reasoning = "A person walked by."
    recommended_action = "No action needed"
    analysis_status = "rules"
    object_types = "person"
    detection_count = 0

    @factory.post_generation
    def detections(self, create, extracted, **kwargs):
        if not create or not extracted:
            return
        for detection in extracted:
            EventDetection.objects.create(event=self, detection=detection)
        classes = sorted({d.object_type for d in extracted})
        self.object_types = ",".join(classes)
        self.detection_count = len(extracted)
        self.started_at = min(d.detected_at for d in extracted)
        self.ended_at = max(d.detected_at for d in extracted)
        self.save()


class EventAuditFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EventAudit

    event = factory.SubFactory(EventFactory)
    backend = "rules"
    model = "rules-v1"
    parse_status = "not_applicable"
    rules_risk_score = 20


class EntityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Entity

    entity_type = "person"
    embedding = factory.LazyFunction(lambda: [1.0, 0.0, 0.0])
    embedding_model = "hsv-hist-256"
    embedding_dim = 3
    first_seen_at = factory.LazyFunction(timezone.now)
    last_seen_at = factory.LazyFunction(timezone.now)
    detection_count = 1
    cameras_seen = factory.LazyFunction(list)


class EventFeedbackFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EventFeedback

    event = factory.SubFactory(EventFactory)
    camera = factory.SelfAttribute("event.camera")
    feedback_type = "false_positive"
    suppress = True
    suppress_until = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(days=30))
    object_types = factory.SelfAttribute("event.object_types")
    time_of_day_minutes = 600


class AlertRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AlertRule

    name = factory.Sequence(lambda n: f"Rule {n}")
    severity = "high"
    risk_threshold = 50


class AlertFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Alert

    rule = factory.SubFactory(AlertRuleFactory)
    event = factory.SubFactory(EventFactory)
    camera = factory.SelfAttribute("event.camera")
    severity = "high"
    dedup_key = factory.LazyAttribute(lambda o: f"{o.camera.id}:{o.rule.id if o.rule else 'none'}")
    metadata = factory.LazyAttribute(lambda o: {"rule_name": o.rule.name if o.rule else ""})


class NotificationChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NotificationChannel

    name = factory.Sequence(lambda n: f"Channel {n}")
    kind = "webhook"
    config = factory.LazyFunction(lambda: {"url": "http://127.0.0.1:9/hook"})


class DeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Delivery

    alert = factory.SubFactory(AlertFactory)
    channel = factory.SubFactory(NotificationChannelFactory)


class QuietHoursFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = QuietHours

    start_time = dt.time(22, 0)
    end_time = dt.time(6, 0)


class FailedJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FailedJob

    queue = "detection"
    task_name = "pipeline.process_file"
    payload = factory.Sequence(lambda n: {"file_id": n + 1})
    error = "Connection refused"
    error_type = "connection_error"
    attempt_count = 4
    first_failed_at = factory.LazyFunction(timezone.now)
    last_failed_at = factory.LazyFunction(timezone.now)


class AuditLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditLog

    action = "camera_created"
    resource_type = "camera"
    resource_id = "front_door"
    actor = "anonymous"


class LogEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LogEntry

    level = "INFO"
    component = "pipeline"
    message = factory.Sequence(lambda n: f"message {n}")


class GPUStatFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GPUStat

    host = "host-1"
    gpu_name = "NVIDIA Test"
    utilization = 40.0
    memory_used = 2048
    memory_total = 8192
    temperature = 55.0
    power_usage = 80.0


class ApiKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiKey

    name = factory.Sequence(lambda n: f"key-{n}")
    prefix = "hsi_abcdefgh"
    key_hash = factory.Sequence(lambda n: f"{n:064x}")

"""Demo seeding and clearing (CONTRACT §2.16, §8.1) against real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections import Counter

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count, Max, Min
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image

from alerts.models import Alert, AlertRule, NotificationChannel, NotificationPreference
from cameras.models import Camera, Zone
from events.models import Detection, Entity, Event, EventAudit, EventDetection
from pipeline.models import Batch, FailedJob, IngestedFile
from system.models import AuditLog, LogEntry
from system.seeding import DEMO_CAMERAS, demo_clear, demo_seed, level_counts, risk_level_for
from system.services import Actor
from tests.factories import (
    AlertFactory,
    AlertRuleFactory,
    AuditLogFactory,
    CameraFactory,
    DeliveryFactory,
    DetectionFactory,
    EntityFactory,
    EventFactory,
    FailedJobFactory,
    IngestedFileFactory,
    LogEntryFactory,
    NotificationChannelFactory,
    ZoneFactory,
)

pytestmark = pytest.mark.django_db

ACTOR = Actor(name="user:tester")


def seed(**overrides):
    options = {"cameras": 3, "events": 20, "days": 7, "clear_existing": False, "create_media": False, "actor": ACTOR}
    options.update(overrides)
    return demo_seed(**options)


def test_seeding_creates_the_first_demo_cameras_under_the_camera_root():
    result = seed(cameras=4, events=0)

    assert result == {
        "cameras_created": 4,
        "events_created": 0,
        "detections_created": 0,
        "alerts_created": 0,
        "cleared": False,
    }
    cameras = {c.id: c for c in Camera.objects.all()}
    assert sorted(cameras) == sorted(camera_id for camera_id, _ in DEMO_CAMERAS[:4])
    assert cameras["front_door"].name == "Front Door" and cameras["front_door"].folder_path == "front_door"
    assert all(c.status == "online" and c.enabled and c.status_changed_at is not None for c in cameras.values())


def test_counts_returned_match_the_rows_written():
    result = seed(cameras=6, events=120, days=3)

    assert result["events_created"] == Event.objects.count() == 120
    assert result["detections_created"] == Detection.objects.count() == EventDetection.objects.count()
    assert Batch.objects.filter(status="done").count() == 120
    assert EventAudit.objects.count() == 120
    assert result["cameras_created"] == Camera.objects.count() == 6


def test_500_events_have_the_documented_risk_mix_and_levels_derived_from_scores(settings):
    seed(events=500)

    levels = Counter(Event.objects.values_list("risk_level", flat=True))
    shares = {level: levels[level] / 500 for level in ("low", "medium", "high", "critical")}
    assert shares["low"] == pytest.approx(0.60, abs=0.03)
    assert shares["medium"] == pytest.approx(0.25, abs=0.03)
    assert shares["high"] == pytest.approx(0.12, abs=0.02)
    assert shares["critical"] == pytest.approx(0.03, abs=0.01)
    bands = {
        "low": (0, settings.SEVERITY_LOW_MAX),
        "medium": (settings.SEVERITY_LOW_MAX + 1, settings.SEVERITY_MEDIUM_MAX),
        "high": (settings.SEVERITY_MEDIUM_MAX + 1, settings.SEVERITY_HIGH_MAX),
        "critical": (settings.SEVERITY_HIGH_MAX + 1, 100),
    }
    for score, level in Event.objects.values_list("risk_score", "risk_level"):
        low, high = bands[level]
        assert low <= score <= high


def test_levels_follow_the_configured_severity_bands(settings):
    settings.SEVERITY_LOW_MAX, settings.SEVERITY_MEDIUM_MAX, settings.SEVERITY_HIGH_MAX = 10, 20, 30

    seed(events=100)

    for score, level in Event.objects.values_list("risk_score", "risk_level"):
        assert level == ("low" if score <= 10 else "medium" if score <= 20 else "high" if score <= 30 else "critical")
    assert risk_level_for(31) == "critical"


def test_small_seeds_still_show_every_level_in_proportion():
    assert level_counts(20) == {"low": 12, "medium": 5, "high": 2, "critical": 1}
    assert level_counts(1) == {"low": 1, "medium": 0, "high": 0, "critical": 0}
    assert sum(level_counts(499).values()) == 499


def test_the_number_of_queries_does_not_grow_with_the_number_of_events():
    AlertRuleFactory(risk_threshold=50)
    seed(cameras=6, events=0)

    with CaptureQueriesContext(connection) as few:
        seed(cameras=6, events=10)
    with CaptureQueriesContext(connection) as many:
        seed(cameras=6, events=500)

    assert len(many) == len(few) < 40


def test_events_are_consistent_with_their_detections_and_spread_over_the_days():
    before = timezone.now()
    seed(cameras=3, events=60, days=2)

    events = Event.objects.annotate(
        links=Count("detection_links"),
        first=Min("detection_links__detection__detected_at"),
        last=Max("detection_links__detection__detected_at"),
    )
    for event in events:
        classes = sorted(set(event.detections.values_list("object_type", flat=True)))
        assert event.object_types == ",".join(classes)
        assert 1 <= event.detection_count == event.links <= 5
        assert event.started_at == event.first and event.ended_at == event.last
        assert before - dt.timedelta(days=2) <= event.started_at <= before
        assert event.analysis_status == "rules" and event.batch.status == "done"
        assert event.summary.endswith(
            f"detected on {event.camera.name} at {timezone.localtime(event.started_at):%H:%M}."
        )
        assert event.audit.backend == "rules" and event.audit.model == "rules-v1"
        assert event.audit.parse_status == "not_applicable" and event.audit.rules_risk_score == event.risk_score


def test_detections_have_plausible_boxes_in_a_1280x720_frame():
    seed(events=50)

    for d in Detection.objects.all():
        assert (d.image_width, d.image_height) == (1280, 720)
        assert d.bbox_x >= 0 and d.bbox_y >= 0 and d.bbox_width > 0 and d.bbox_height > 0
        assert d.bbox_x + d.bbox_width <= 1280 and d.bbox_y + d.bbox_height <= 720
        assert 0 < d.confidence <= 1 and d.object_type == d.object_type.lower()
        assert d.batch_id is not None and d.file_type == "image/jpeg"


def test_existing_cameras_are_reused_and_left_untouched():
    CameraFactory(id="front_door", name="My Front Door", folder_path="/srv/cams/front")

    first = seed(cameras=2, events=5)
    second = seed(cameras=2, events=5)

    assert first["cameras_created"] == 1 and second["cameras_created"] == 0
    assert Camera.objects.count() == 2
    front = Camera.objects.get(id="front_door")
    assert front.name == "My Front Door" and front.folder_path == "/srv/cams/front"
    assert Event.objects.count() == 10


def test_cameras_last_seen_moves_up_to_their_newest_seeded_event_but_never_back():
    later = timezone.now() + dt.timedelta(hours=1)
    CameraFactory(id="front_door", name="Front Door", folder_path="front_door", last_seen_at=None)
    CameraFactory(id="backyard", name="Backyard", folder_path="backyard", last_seen_at=later)

    seed(cameras=2, events=40)

    newest = Event.objects.filter(camera_id="front_door").aggregate(newest=Max("ended_at"))["newest"]
    assert Camera.objects.get(id="front_door").last_seen_at == newest
    assert Camera.objects.get(id="backyard").last_seen_at == later


def test_a_demo_camera_whose_name_or_folder_is_taken_gets_a_free_one():
    CameraFactory(id="elsewhere", name="Front Door", folder_path="front_door")

    seed(cameras=1, events=0)

    camera = Camera.objects.get(id="front_door")
    assert camera.name == "Front Door (demo)" and camera.folder_path == "demo_front_door"


def test_detections_record_the_enabled_zones_containing_their_centre():
    camera = CameraFactory(id="front_door", name="Front Door", folder_path="front_door")
    whole = ZoneFactory(camera=camera, coordinates=[[0, 0], [1, 0], [1, 1], [0, 1]])
    ZoneFactory(camera=camera, coordinates=[[0, 0], [1, 0], [1, 1], [0, 1]], enabled=False)

    seed(cameras=1, events=10)

    assert all(zone_ids == [str(whole.id)] for zone_ids in Detection.objects.values_list("zone_ids", flat=True))


def test_alerts_are_created_for_enabled_event_rules_that_match():
    rule = AlertRuleFactory(name="Risky", severity="critical", risk_threshold=60, cooldown_seconds=0)
    AlertRuleFactory(name="Off", enabled=False, risk_threshold=0, cooldown_seconds=0)
    AlertRuleFactory(name="Offline", trigger="camera_offline", risk_threshold=None, cooldown_seconds=0)
    AlertRuleFactory(name="Zoned", risk_threshold=0, zone_ids=[str(Zone().id)], cooldown_seconds=0)

    result = seed(events=100)

    risky_events = Event.objects.filter(risk_score__gte=60)
    alerts = Alert.objects.all()
    assert result["alerts_created"] == alerts.count() == risky_events.count() > 0
    assert set(alerts.values_list("event_id", flat=True)) == set(risky_events.values_list("id", flat=True))
    for alert in alerts:
        assert alert.rule_id == rule.id and alert.severity == "critical" and alert.status == "pending"
        assert alert.dedup_key == f"{alert.camera_id}:{rule.id}" and alert.kind == "event"
        assert alert.metadata["rule_name"] == "Risky" and alert.metadata["matched_conditions"] == ["risk_score >= 60"]


def test_rule_conditions_on_cameras_and_classes_are_honoured():
    rule = AlertRuleFactory(risk_threshold=None, camera_ids=["garage"], object_types=["Person"], cooldown_seconds=0)

    seed(cameras=3, events=150)

    expected = {e.id for e in Event.objects.filter(camera_id="garage") if "person" in e.object_types.split(",")}
    assert set(Alert.objects.filter(rule=rule).values_list("event_id", flat=True)) == expected
    alert = Alert.objects.filter(rule=rule).first()
    assert alert.metadata["object_type"] == "person"
    assert alert.metadata["matched_conditions"] == ["camera_id in [garage]", "object_type in [Person]"]


def test_a_rule_without_cooldown_alerts_on_every_matching_event_whatever_their_order():
    AlertRuleFactory(name="Every", risk_threshold=None, cooldown_seconds=0, dedup_key_template="{camera_id}")

    seed(cameras=1, events=400, days=1)  # many events on one camera: some start later than others were created

    assert Alert.objects.filter(metadata__rule_name="Every").count() == Event.objects.count() == 400


def test_alert_dedup_keys_follow_the_rule_template():
    AlertRuleFactory(
        risk_threshold=None,
        severity="high",
        object_types=["person"],
        dedup_key_template="{camera_id}:{object_type}:{severity}",
        cooldown_seconds=0,
    )
    AlertRuleFactory(
        name="Any", risk_threshold=None, dedup_key_template="cam-{camera_id}/{object_type}", cooldown_seconds=0
    )

    seed(cameras=1, events=30)

    keys = set(Alert.objects.values_list("metadata__rule_name", "dedup_key"))
    assert ("Any", "cam-front_door_none") in keys
    assert {key for name, key in keys if name != "Any"} == {"front_door:person:high"}
    assert Alert.objects.filter(metadata__rule_name="Any").count() == 30


def test_cooldown_applies_between_seeded_alerts():
    AlertRuleFactory(risk_threshold=None, cooldown_seconds=604800)

    seed(cameras=2, events=40, days=5)

    per_camera = Counter(Alert.objects.values_list("camera_id", flat=True))
    assert set(per_camera.values()) == {1}


def test_media_writes_jpegs_the_detections_point_at(foscam_root):
    seed(cameras=1, events=4, create_media=True)

    detections = list(Detection.objects.select_related("source_file"))
    assert detections
    for detection in detections:
        path = foscam_root / "front_door" / detection.file_path.rsplit("/", 1)[1]
        assert detection.file_path == str(path) and path.is_file()
        data = path.read_bytes()
        assert len(data) >= 10 * 1024
        assert Image.open(io.BytesIO(data)).size == (1280, 720)
        assert detection.source_file.source == "seed" and detection.source_file.status == "processed"
        assert detection.source_file.sha256 == hashlib.sha256(data).hexdigest()
        assert detection.source_file.size_bytes == len(data)


def test_without_media_no_files_are_written(foscam_root):
    seed(cameras=2, events=5)

    assert not any(foscam_root.rglob("*.jpg"))
    assert IngestedFile.objects.count() == 0


def test_seeding_writes_a_data_seeded_audit_row():
    seed(cameras=2, events=7, days=3)

    row = AuditLog.objects.get(action="data_seeded")
    assert row.actor == "user:tester" and row.resource_type == "system" and row.status == "success"
    assert row.details["parameters"] == {
        "cameras": 2,
        "events": 7,
        "days": 3,
        "clear_existing": False,
        "create_media": False,
    }
    assert row.details["counts"]["events_created"] == 7


def test_clear_existing_replaces_previous_event_data_but_keeps_cameras():
    camera = CameraFactory(id="front_door", name="Front Door", folder_path="front_door")
    zone = ZoneFactory(camera=camera)
    EventFactory(camera=camera, detections=[DetectionFactory(camera=camera)])

    result = seed(cameras=1, events=3, clear_existing=True)

    assert result["cleared"] is True
    assert Event.objects.count() == 3 and Zone.objects.filter(pk=zone.pk).exists()
    assert AuditLog.objects.filter(action="data_cleared").count() == 1


def _populate():
    camera = CameraFactory()
    ZoneFactory(camera=camera)
    detections = [DetectionFactory(camera=camera) for _ in range(3)]
    event = EventFactory(camera=camera, detections=detections)
    entity = EntityFactory(primary_detection=detections[0])
    Detection.objects.filter(pk=detections[1].pk).update(entity=entity)
    alert = AlertFactory(event=event, camera=camera)
    DeliveryFactory(alert=alert)
    FailedJobFactory(camera_id=camera.id)
    IngestedFileFactory(camera=camera)
    NotificationPreference.objects.create(camera=camera, severities=None)
    LogEntryFactory()
    AuditLogFactory()
    return camera


def test_clear_removes_event_and_pipeline_data_and_keeps_configuration_and_history():
    _populate()
    rule = AlertRuleFactory()
    channel = NotificationChannelFactory()
    seeded = seed(cameras=2, events=10)
    audit_rows = AuditLog.objects.count()

    result = demo_clear(keep_cameras=False, actor=ACTOR)

    assert result == {
        "cameras_deleted": 3,
        "events_deleted": 11,
        "detections_deleted": 3 + seeded["detections_created"],
        "alerts_deleted": 1 + seeded["alerts_created"],
        "batches_deleted": 10,
        "entities_deleted": 1,
        "failed_jobs_deleted": 1,
    }
    for model in (Camera, Zone, Event, Detection, EventDetection, EventAudit, Alert, Batch, Entity, FailedJob):
        assert not model.objects.exists(), model
    assert not IngestedFile.objects.exists()
    assert AlertRule.objects.filter(pk=rule.pk).exists() and NotificationChannel.objects.filter(pk=channel.pk).exists()
    assert NotificationPreference.objects.filter(camera__isnull=True).count() == 1
    assert LogEntry.objects.filter(component="pipeline").count() == 1  # kept (clearing also logs lines of its own)
    assert AuditLog.objects.count() == audit_rows + 1
    row = AuditLog.objects.get(action="data_cleared")
    assert row.actor == "user:tester" and row.details["counts"] == result
    assert row.details["parameters"] == {"keep_cameras": False}


def test_clear_can_keep_cameras_and_their_zones():
    camera = _populate()

    result = demo_clear(keep_cameras=True, actor=ACTOR)

    assert result["cameras_deleted"] == 0 and result["events_deleted"] == 1 and result["detections_deleted"] == 3
    assert Camera.objects.filter(pk=camera.pk).exists() and Zone.objects.filter(camera=camera).exists()
    assert not Event.objects.exists() and not Detection.objects.exists()


def test_clear_removes_the_thumbnails_of_deleted_detections(data_dir, django_capture_on_commit_callbacks):
    detection = DetectionFactory()
    thumbnails = data_dir / "thumbnails"
    thumbnails.mkdir()
    (thumbnails / f"{detection.id}_thumb.jpg").write_bytes(b"jpeg")
    (thumbnails / "notes.txt").write_text("keep")

    with django_capture_on_commit_callbacks(execute=True):
        demo_clear(keep_cameras=True, actor=ACTOR)

    assert sorted(p.name for p in thumbnails.iterdir()) == ["notes.txt"]


def test_seed_demo_command_seeds_with_the_cli_actor():
    call_command("seed_demo", "--cameras", "2", "--events", "15", "--days", "4", stdout=io.StringIO())

    assert Camera.objects.count() == 2 and Event.objects.count() == 15
    row = AuditLog.objects.get(action="data_seeded")
    assert row.actor == "cli" and row.details["parameters"]["days"] == 4


def test_seed_demo_command_clears_and_writes_media(foscam_root):
    EventFactory()
    out = io.StringIO()

    call_command("seed_demo", "--cameras", "1", "--events", "2", "--clear", "--with-media", stdout=out)

    assert Event.objects.count() == 2 and any((foscam_root / "front_door").glob("*.jpg"))
    assert "Cleared existing data" in out.getvalue() and "2 event(s)" in out.getvalue()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--cameras", "0"], "--cameras"),
        (["--cameras", "7"], "--cameras"),
        (["--events", "501"], "--events"),
        (["--days", "31"], "--days"),
    ],
)
def test_seed_demo_command_refuses_out_of_range_options(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("seed_demo", *args, stdout=io.StringIO())
    assert not Camera.objects.exists() and not AuditLog.objects.filter(action="data_seeded").exists()

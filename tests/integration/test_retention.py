"""Retention (CONTRACT §4.13): what each retention period deletes and keeps, the §1.6 cascades, thumbnails and
source media on disk, dry runs, the audit row, batching, and ``manage.py run_retention``."""

from __future__ import annotations

import datetime as dt
import io
import os

import pytest
from django.core.management import call_command

from alerts.models import Alert, Delivery
from events.models import Detection, Entity, Event, EventAudit, EventDetection, EventFeedback
from pipeline.models import Batch, FailedJob, IngestedFile
from system.models import AuditLog, GPUStat, LogEntry
from system.retention import COUNT_KEYS, retention_run
from tests.factories import (
    AlertFactory,
    AuditLogFactory,
    BatchFactory,
    CameraFactory,
    DeliveryFactory,
    DetectionFactory,
    EntityFactory,
    EventAuditFactory,
    EventFactory,
    EventFeedbackFactory,
    FailedJobFactory,
    GPUStatFactory,
    IngestedFileFactory,
    LogEntryFactory,
)

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)


def days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


@pytest.fixture(autouse=True)
def _defaults(settings):
    settings.RETENTION_DAYS = 30
    settings.TRASH_RETENTION_DAYS = 7
    settings.LOG_RETENTION_DAYS = 7
    settings.AUDIT_RETENTION_DAYS = 365
    settings.DLQ_RETENTION_DAYS = 30
    settings.RETENTION_DELETE_MEDIA = False


def thumbnail(data_dir, detection_id: int, *, age_hours: float = 0) -> str:
    folder = data_dir / "thumbnails"
    folder.mkdir(exist_ok=True)
    path = folder / f"{detection_id}_thumb.jpg"
    path.write_bytes(b"\xff\xd8thumb")
    stamp = (NOW - dt.timedelta(hours=age_hours)).timestamp()
    os.utime(path, (stamp, stamp))
    return str(path)


def detection(camera, age_days: float, **fields) -> Detection:
    return DetectionFactory(camera=camera, detected_at=days_ago(age_days), **fields)


# --- what is deleted and what is kept -------------------------------------------------------------------------


def test_every_kind_of_old_row_is_deleted_and_every_young_one_kept():
    camera = CameraFactory()
    old_event, young_event = EventFactory(camera=camera, started_at=days_ago(31)), EventFactory(started_at=days_ago(29))
    _old_detection, young_detection = detection(camera, 31), detection(camera, 29)
    _old_batch, young_batch = BatchFactory(camera=camera, opened_at=days_ago(31)), BatchFactory(opened_at=days_ago(29))
    open_batch = BatchFactory(camera=camera, opened_at=days_ago(40), status="open", closed_at=None, close_reason=None)
    analyzing = BatchFactory(camera=camera, opened_at=days_ago(40), status="analyzing")
    _old_file, young_file = (
        IngestedFileFactory(camera=camera, received_at=days_ago(31)),
        IngestedFileFactory(camera=camera, received_at=days_ago(29)),
    )
    EntityFactory(last_seen_at=days_ago(31))
    fresh_unknown = EntityFactory(last_seen_at=days_ago(29))
    trusted = EntityFactory(last_seen_at=days_ago(300), trust_status="trusted")
    old_log, young_log = LogEntryFactory(timestamp=days_ago(8)), LogEntryFactory(timestamp=days_ago(6))
    _old_gpu, young_gpu = GPUStatFactory(recorded_at=days_ago(8)), GPUStatFactory(recorded_at=days_ago(6))
    old_audit, young_audit = AuditLogFactory(timestamp=days_ago(366)), AuditLogFactory(timestamp=days_ago(364))
    _old_job, young_job = FailedJobFactory(created_at=days_ago(31)), FailedJobFactory(created_at=days_ago(29))

    result = retention_run(now=NOW)

    assert {key: result[key] for key in COUNT_KEYS} == {
        "events_deleted": 1,
        "trashed_events_purged": 0,
        "detections_deleted": 1,
        "thumbnails_deleted": 0,
        "media_files_deleted": 0,
        "batches_deleted": 1,
        "ingested_files_deleted": 1,
        "entities_deleted": 1,
        "logs_deleted": 1,
        "audit_logs_deleted": 1,
        "gpu_stats_deleted": 1,
        "failed_jobs_deleted": 1,
    }
    assert result["dry_run"] is False
    assert list(Event.objects.values_list("pk", flat=True)) == [young_event.pk]
    assert list(Detection.objects.values_list("pk", flat=True)) == [young_detection.pk]
    assert set(Batch.objects.values_list("pk", flat=True)) == {young_batch.pk, open_batch.pk, analyzing.pk}
    assert list(IngestedFile.objects.values_list("pk", flat=True)) == [young_file.pk]
    assert set(Entity.objects.values_list("pk", flat=True)) == {fresh_unknown.pk, trusted.pk}
    assert set(LogEntry.objects.filter(pk__in=[old_log.pk, young_log.pk]).values_list("pk", flat=True)) == {
        young_log.pk
    }  # (the run logs a summary entry of its own)
    assert list(GPUStat.objects.values_list("pk", flat=True)) == [young_gpu.pk]
    assert not AuditLog.objects.filter(pk=old_audit.pk).exists() and AuditLog.objects.filter(pk=young_audit.pk).exists()
    assert list(FailedJob.objects.values_list("pk", flat=True)) == [young_job.pk]
    assert not Event.objects.filter(pk=old_event.pk).exists()


def test_deleting_an_old_event_removes_its_links_audit_feedback_alerts_and_deliveries():
    camera = CameraFactory()
    detections = [detection(camera, 40), detection(camera, 40)]
    event = EventFactory(camera=camera, detections=detections)
    EventAuditFactory(event=event)
    EventFeedbackFactory(event=event)
    DeliveryFactory(alert=AlertFactory(event=event))
    named = EntityFactory(trust_status="trusted", primary_detection=detections[0], last_seen_at=days_ago(40))
    young = EventFactory(camera=camera, detections=[detection(camera, 1)])
    DeliveryFactory(alert=AlertFactory(event=young))

    result = retention_run(now=NOW)

    assert (result["events_deleted"], result["detections_deleted"]) == (1, 2)
    assert list(Event.objects.values_list("pk", flat=True)) == [young.pk]
    assert not EventAudit.objects.exists() and not EventFeedback.objects.exists()
    assert list(Alert.objects.values_list("event_id", flat=True)) == [young.pk]
    assert Delivery.objects.count() == 1
    assert list(EventDetection.objects.values_list("event_id", flat=True)) == [young.pk]
    named.refresh_from_db()
    assert named.primary_detection_id is None  # SET NULL (§1.6); a trusted entity is kept


def test_the_trash_is_purged_after_its_own_shorter_retention():
    purged = EventFactory(started_at=days_ago(3), deleted_at=days_ago(8))
    recent = EventFactory(started_at=days_ago(3), deleted_at=days_ago(6))
    live = EventFactory(started_at=days_ago(3))

    result = retention_run(now=NOW)

    assert (result["trashed_events_purged"], result["events_deleted"]) == (1, 0)
    assert set(Event.objects.values_list("pk", flat=True)) == {recent.pk, live.pk}
    assert not Event.objects.filter(pk=purged.pk).exists()


def test_deleting_a_batch_or_an_unknown_entity_keeps_the_detections_and_events_that_pointed_at_it():
    camera = CameraFactory()
    batch = BatchFactory(camera=camera, opened_at=days_ago(31))
    entity = EntityFactory(last_seen_at=days_ago(31))
    kept = detection(camera, 29, batch=batch, entity=entity)
    event = EventFactory(camera=camera, batch=batch, started_at=days_ago(29))

    retention_run(now=NOW)

    kept.refresh_from_db()
    event.refresh_from_db()
    assert (kept.batch_id, kept.entity_id, event.batch_id) == (None, None, None)


# --- files ----------------------------------------------------------------------------------------------------


def test_thumbnails_of_deleted_detections_and_old_orphans_are_removed(data_dir):
    camera = CameraFactory()
    old = detection(camera, 31)
    gone_already = detection(camera, 31)  # its thumbnail is missing: tolerated
    young = detection(camera, 1)
    old_thumb = thumbnail(data_dir, old.pk, age_hours=24 * 31)
    young_thumb = thumbnail(data_dir, young.pk, age_hours=48)
    old_orphan = thumbnail(data_dir, 999_001, age_hours=25)
    fresh_orphan = thumbnail(data_dir, 999_002, age_hours=23)

    result = retention_run(now=NOW)

    assert result["detections_deleted"] == 2 and gone_already.pk
    assert result["thumbnails_deleted"] == 2
    assert not os.path.exists(old_thumb) and not os.path.exists(old_orphan)
    assert os.path.exists(young_thumb) and os.path.exists(fresh_orphan)


def media_file(root, name: str) -> str:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8media")
    return str(path)


def test_source_media_is_removed_only_when_enabled_and_only_inside_the_camera_root(settings, foscam_root, tmp_path):
    camera = CameraFactory()
    inside = media_file(foscam_root, "cam/a.jpg")
    of_ingested = media_file(foscam_root, "cam/b.jpg")
    outside = media_file(tmp_path / "elsewhere", "c.jpg")
    escaping_link = foscam_root / "cam" / "link.jpg"
    escaping_link.symlink_to(media_file(tmp_path / "elsewhere", "d.jpg"))
    for path in (inside, outside, str(escaping_link)):
        detection(camera, 31, file_path=path)
    IngestedFileFactory(camera=camera, path=of_ingested, received_at=days_ago(31))

    assert retention_run(now=NOW)["media_files_deleted"] == 0  # RETENTION_DELETE_MEDIA is false by default
    assert os.path.exists(inside)

    for path in (inside, outside, str(escaping_link)):
        detection(camera, 31, file_path=path)
    IngestedFileFactory(camera=camera, path=of_ingested, received_at=days_ago(31))
    settings.RETENTION_DELETE_MEDIA = True

    result = retention_run(now=NOW)

    assert result["media_files_deleted"] == 2
    assert not os.path.exists(inside) and not os.path.exists(of_ingested)
    assert os.path.exists(outside) and os.path.exists(os.path.realpath(escaping_link))


# --- dry run, audit, cutoffs, batching ------------------------------------------------------------------------


def test_a_dry_run_counts_what_a_run_deletes_and_changes_nothing(settings, data_dir, foscam_root):
    settings.RETENTION_DELETE_MEDIA = True
    camera = CameraFactory()
    old = detection(camera, 31, file_path=media_file(foscam_root, "cam/x.jpg"))
    EventFactory(camera=camera, detections=[old])
    EventFactory(started_at=days_ago(2), deleted_at=days_ago(10))  # trash purge, not counted twice
    EventFactory(started_at=days_ago(40), deleted_at=days_ago(10))
    thumbnail(data_dir, old.pk, age_hours=24 * 31)
    thumbnail(data_dir, 999_003, age_hours=48)
    LogEntryFactory(timestamp=days_ago(8))
    rows_before = (Event.objects.count(), Detection.objects.count(), LogEntry.objects.count(), AuditLog.objects.count())

    preview = retention_run(now=NOW, dry_run=True)

    assert preview["dry_run"] is True
    assert (Event.objects.count(), Detection.objects.count(), LogEntry.objects.count(), AuditLog.objects.count()) == (
        rows_before
    )
    assert len(os.listdir(data_dir / "thumbnails")) == 2 and os.path.exists(foscam_root / "cam" / "x.jpg")

    result = retention_run(now=NOW)

    assert {key: preview[key] for key in COUNT_KEYS} == {key: result[key] for key in COUNT_KEYS}
    assert (result["trashed_events_purged"], result["events_deleted"]) == (2, 1)
    assert (result["thumbnails_deleted"], result["media_files_deleted"], result["logs_deleted"]) == (2, 1, 1)


def test_a_run_writes_cleanup_executed_with_the_counts_and_reports_its_cutoffs(settings):
    settings.LOG_RETENTION_DAYS = 3
    settings.RETENTION_DAYS = 0  # below the minimum of one day: one day is used
    LogEntryFactory(timestamp=days_ago(4))

    result = retention_run(now=NOW)

    assert result["cutoffs"]["events"] == "2026-06-14T12:00:00Z"
    assert result["cutoffs"]["detections"] == "2026-06-14T12:00:00Z"
    assert result["cutoffs"]["trashed_events"] == "2026-06-08T12:00:00Z"
    assert result["cutoffs"]["logs"] == "2026-06-12T12:00:00Z"
    assert result["cutoffs"]["audit_logs"] == "2025-06-15T12:00:00Z"
    assert result["cutoffs"]["failed_jobs"] == "2026-05-16T12:00:00Z"
    assert isinstance(result["duration_ms"], int)
    audit = AuditLog.objects.get(action="cleanup_executed")
    assert (audit.resource_type, audit.actor, audit.status) == ("system", "retention", "success")
    assert audit.details["logs_deleted"] == 1
    assert set(COUNT_KEYS) <= set(audit.details)

    retention_run(now=NOW, dry_run=True)

    assert AuditLog.objects.filter(action="cleanup_executed").count() == 1  # a dry run writes none


def test_rows_beyond_one_batch_are_all_deleted_batch_by_batch():
    camera = CameraFactory()
    Detection.objects.bulk_create(
        [
            Detection(
                camera=camera,
                file_path=f"/x/{n}.jpg",
                file_type="image/jpeg",
                detected_at=days_ago(31 + n / 100),
                object_type="person",
                confidence=0.9,
                bbox_x=0,
                bbox_y=0,
                bbox_width=1,
                bbox_height=1,
            )
            for n in range(25)
        ]
    )
    young = detection(camera, 1)
    reports: list[tuple[str, int, int | None]] = []

    result = retention_run(
        now=NOW, batch_size=10, progress=lambda step, done, total: reports.append((step, done, total))
    )

    assert result["detections_deleted"] == 25
    assert list(Detection.objects.values_list("pk", flat=True)) == [young.pk]
    assert [r for r in reports if r[0] == "detections_deleted"] == [
        ("detections_deleted", 0, 25),
        ("detections_deleted", 10, 25),
        ("detections_deleted", 20, 25),
        ("detections_deleted", 25, 25),
    ]


def test_the_run_ends_with_a_full_baseline_rebuild():
    from events.models import ActivityBaseline

    camera = CameraFactory()
    camera.created_at = days_ago(20)
    camera.save()

    retention_run(now=NOW)

    assert ActivityBaseline.objects.filter(camera=camera).count() == 7 * 24


# --- manage.py run_retention ----------------------------------------------------------------------------------


def test_the_command_shows_progress_and_prints_the_summary():
    camera = CameraFactory()
    detection(camera, 400)
    out, err = io.StringIO(), io.StringIO()

    call_command("run_retention", "--dry-run", stdout=out, stderr=err)

    assert "detections" in err.getvalue() and "1/1" in err.getvalue()
    assert "Would delete" in out.getvalue()
    assert any(line.split() == ["detections_deleted", "1"] for line in out.getvalue().splitlines())
    assert Detection.objects.count() == 1

    call_command("run_retention", stdout=out, stderr=io.StringIO())

    assert Detection.objects.count() == 0
    assert AuditLog.objects.get(action="cleanup_executed").actor == "cli"

"""``file_ingest`` against real PostgreSQL, Redis cache and broker (CONTRACT §4.1 mapping, §4.2 dedup, validation
and acceptance)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from prometheus_client import REGISTRY

from cameras.models import Camera
from pipeline.ingest import dedup_key, file_ingest, file_record_unstable
from pipeline.models import IngestedFile
from system.models import AuditLog
from tests.factories import CameraFactory, IngestedFileFactory
from tests.images import jpeg_bytes, png_bytes, write_video
from tests.integration.ingest_support import (
    PROCESS_FILE,
    bomb_png,
    broker_tasks,
    ensure_process_file_task,
    junk_jpeg,
    small_jpeg,
    truncated_jpeg,
    unreadable_mp4,
    write,
)
from tests.integration.metrics_support import scraped


@pytest.fixture(autouse=True)
def _process_file_task():
    ensure_process_file_task()


def ingested(result: str) -> float:
    return scraped("hsi_files_ingested", result=result)


def ingest_seconds_count() -> float:
    return REGISTRY.get_sample_value("hsi_pipeline_stage_duration_seconds_count", {"stage": "ingest"}) or 0.0


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- acceptance ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_accepted_file_becomes_a_pending_row_and_is_dispatched_after_commit(
    foscam_root, django_capture_on_commit_callbacks
):
    data = jpeg_bytes(seed=1)
    path = write(foscam_root / "front_porch" / "2024" / "12" / "26" / "a.jpg", data)
    accepted_before, timings_before = ingested("accepted"), ingest_seconds_count()

    with django_capture_on_commit_callbacks(execute=True):
        outcome = file_ingest(path)

    assert outcome.result == "accepted" and outcome.reason is None
    row = IngestedFile.objects.get()
    assert outcome.file == row and outcome.camera.id == "front_porch"
    assert row.camera_id == "front_porch"
    assert row.path == str(path)
    assert row.sha256 == sha(data) and row.size_bytes == len(data)
    assert (row.media_type, row.mime_type, row.source, row.status) == ("image", "image/jpeg", "watcher", "pending")
    assert row.reject_reason is None and timezone.now() - row.received_at < dt.timedelta(minutes=1)
    # Dispatched to the detection queue of the broker, once, with the file id
    assert broker_tasks("detection") == [(PROCESS_FILE, [row.id])]
    # The dedup cache remembers the hash
    assert cache.get(dedup_key(row.sha256)) == row.id
    # The camera was auto-created (§4.1) and marked seen
    camera = Camera.objects.get(pk="front_porch")
    assert camera.name == "Front Porch" and camera.folder_path == str(foscam_root / "front_porch")
    assert timezone.now() - camera.last_seen_at < dt.timedelta(minutes=1)
    assert ingested("accepted") == accepted_before + 1
    assert ingest_seconds_count() == timings_before + 1


@pytest.mark.django_db
def test_nothing_is_dispatched_before_the_transaction_commits(foscam_root, django_capture_on_commit_callbacks):
    path = write(foscam_root / "garage" / "a.jpg", jpeg_bytes(seed=2))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        file_ingest(path)
    assert broker_tasks("detection") == [] and callbacks
    for callback in callbacks:
        callback()
    assert broker_tasks("detection") == [(PROCESS_FILE, [IngestedFile.objects.get().id])]


@pytest.mark.django_db
def test_the_mime_type_comes_from_the_content_not_the_extension(foscam_root):
    path = write(foscam_root / "garage" / "really_a_png.jpg", png_bytes(seed=3))
    outcome = file_ingest(path)
    assert outcome.result == "accepted"
    assert (outcome.file.media_type, outcome.file.mime_type) == ("image", "image/png")


@pytest.mark.django_db
def test_a_video_is_accepted_as_video(foscam_root):
    path = write_video(foscam_root / "driveway" / "clip.mp4", seed=4)
    outcome = file_ingest(path)
    assert outcome.result == "accepted"
    assert (outcome.file.media_type, outcome.file.mime_type) == ("video", "video/mp4")


@pytest.mark.django_db
def test_received_at_and_source_can_be_given(foscam_root):
    received = timezone.now() - dt.timedelta(minutes=3)
    camera = CameraFactory(id="porch", folder_path="porch")
    path = write(foscam_root / "porch" / "a.jpg", jpeg_bytes(seed=5))
    outcome = file_ingest(path, source="upload", camera=camera, received_at=received)
    assert (outcome.file.source, outcome.file.received_at) == ("upload", received)


@pytest.mark.parametrize("previous", ["offline", "unknown"])
@pytest.mark.django_db
def test_an_offline_or_unknown_camera_comes_back_online(
    previous, foscam_root, events_stream, django_capture_on_commit_callbacks
):
    CameraFactory(id="yard", name="Yard", folder_path="yard", status=previous)
    path = write(foscam_root / "yard" / "a.jpg", jpeg_bytes(seed=6))

    with django_capture_on_commit_callbacks(execute=True):
        outcome = file_ingest(path)

    camera = Camera.objects.get(pk="yard")
    assert outcome.result == "accepted" and camera.status == "online" and outcome.camera.status == "online"
    assert timezone.now() - camera.status_changed_at < dt.timedelta(minutes=1)
    [message] = [m for m in events_stream.drain() if m["type"] == "camera.status_changed"]
    assert message["data"]["reason"] == "files_received"
    assert (message["data"]["previous_status"], message["data"]["status"]) == (previous, "online")


@pytest.mark.django_db
def test_a_camera_in_error_stays_in_error(foscam_root):
    CameraFactory(id="yard", folder_path="yard", status="error")
    file_ingest(write(foscam_root / "yard" / "a.jpg", jpeg_bytes(seed=7)))
    camera = Camera.objects.get(pk="yard")
    assert camera.status == "error" and camera.last_seen_at is not None


# --- camera mapping (§4.1) --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_camera_is_the_one_whose_resolved_folder_matches(foscam_root):
    CameraFactory(id="cam_a", name="A", folder_path=str(foscam_root / "ftp_dir_17"))
    outcome = file_ingest(write(foscam_root / "ftp_dir_17" / "a.jpg", jpeg_bytes(seed=8)))
    assert outcome.camera.id == "cam_a" and Camera.objects.count() == 1


@pytest.mark.django_db
def test_else_the_camera_whose_id_is_the_folder_slug(foscam_root):
    CameraFactory(id="front_door", name="Front", folder_path="/srv/elsewhere")
    outcome = file_ingest(write(foscam_root / "Front-Door" / "a.jpg", jpeg_bytes(seed=9)))
    assert outcome.camera.id == "front_door" and Camera.objects.count() == 1


@pytest.mark.django_db
def test_without_auto_create_an_unknown_folder_is_ignored(foscam_root, settings):
    settings.AUTO_CREATE_CAMERAS = False
    ignored_before = ingested("ignored")
    outcome = file_ingest(write(foscam_root / "newcam" / "a.jpg", jpeg_bytes(seed=10)))
    assert (outcome.result, outcome.reason) == ("ignored", "no_camera")
    assert not Camera.objects.exists() and not IngestedFile.objects.exists()
    assert ingested("ignored") == ignored_before + 1


@pytest.mark.parametrize(
    ("relative", "reason"),
    [
        ("a.jpg", "outside_camera_folder"),
        ("front/.hidden/a.jpg", "not_accepted"),
        ("front/a.jpg.part", "not_accepted"),
        ("front/notes.txt", "not_accepted"),
        ("!!!/a.jpg", "no_camera"),
    ],
)
@pytest.mark.django_db
def test_ignored_paths_create_no_camera_and_no_row(foscam_root, relative, reason):
    outcome = file_ingest(write(foscam_root / relative, jpeg_bytes(seed=11)))
    assert (outcome.result, outcome.reason) == ("ignored", reason)
    assert not Camera.objects.exists() and not IngestedFile.objects.exists()


@pytest.mark.django_db
def test_a_file_outside_the_root_is_ignored(tmp_path):
    outcome = file_ingest(write(tmp_path / "elsewhere" / "cam" / "a.jpg", jpeg_bytes(seed=12)))
    assert outcome.result == "ignored" and not IngestedFile.objects.exists()


@pytest.mark.django_db
def test_files_of_a_disabled_camera_are_skipped(foscam_root):
    CameraFactory(id="attic", folder_path="attic", enabled=False)
    skipped_before = ingested("skipped_disabled")
    outcome = file_ingest(write(foscam_root / "attic" / "a.jpg", jpeg_bytes(seed=13)))
    assert (outcome.result, outcome.camera.id) == ("skipped_disabled", "attic")
    assert not IngestedFile.objects.exists() and Camera.objects.get(pk="attic").last_seen_at is None
    assert ingested("skipped_disabled") == skipped_before + 1


@pytest.mark.django_db
def test_a_missing_file_or_a_directory_is_ignored(foscam_root):
    camera = CameraFactory(id="porch", folder_path="porch")
    assert file_ingest(foscam_root / "porch" / "gone.jpg", camera=camera).reason == "missing"
    (foscam_root / "porch" / "folder.jpg").mkdir(parents=True)
    assert file_ingest(foscam_root / "porch" / "folder.jpg").reason == "not_a_file"
    assert file_ingest(write(foscam_root / "porch" / "a.gif", b"GIF89a"), camera=camera).reason == "not_media"
    assert not IngestedFile.objects.exists()


# --- validation (§4.2) ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_empty_file_is_invalid_without_a_hash_every_time(foscam_root):
    first = file_ingest(write(foscam_root / "porch" / "a.jpg", b""))
    second = file_ingest(write(foscam_root / "porch" / "b.jpg", b""))
    assert (first.result, first.reason) == ("invalid", "empty")
    rows = IngestedFile.objects.order_by("id")
    assert [(r.status, r.reject_reason, r.sha256, r.size_bytes) for r in rows] == [("invalid", "empty", None, 0)] * 2
    assert second.file == rows[1]


def _reject_case(name: str, settings) -> bytes:
    if name == "too_large_image":
        settings.MAX_IMAGE_BYTES = 50_000
        return jpeg_bytes(seed=20)
    return {
        "too_small": small_jpeg(seed=21),
        "decompression_bomb": bomb_png(),
        "unreadable_image": junk_jpeg(),
        "truncated": truncated_jpeg(seed=22),
    }[name]


@pytest.mark.parametrize(
    ("case", "file_name", "reason"),
    [
        ("too_small", "a.jpg", "too_small"),
        ("too_large_image", "a.jpg", "too_large"),
        ("decompression_bomb", "a.png", "decompression_bomb"),
        ("unreadable_image", "a.jpg", "unreadable"),
        ("truncated", "a.jpg", "truncated"),
    ],
)
@pytest.mark.django_db
def test_each_rejected_image_becomes_an_invalid_row_with_its_reason(
    case, file_name, reason, foscam_root, settings, caplog, django_capture_on_commit_callbacks
):
    data = _reject_case(case, settings)
    path = write(foscam_root / "porch" / file_name, data)
    invalid_before = ingested("invalid")

    with (
        caplog.at_level(logging.WARNING, logger="hsi.pipeline.ingest"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        outcome = file_ingest(path)

    assert (outcome.result, outcome.reason) == ("invalid", reason)
    row = IngestedFile.objects.get()
    assert (row.status, row.reject_reason, row.sha256, row.size_bytes) == ("invalid", reason, sha(data), len(data))
    assert broker_tasks("detection") == []  # no processing, no retry
    assert Camera.objects.get(pk="porch").last_seen_at is None
    assert ingested("invalid") == invalid_before + 1
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert reason in record.getMessage() and str(path) in record.getMessage()
    audit = AuditLog.objects.get(action="file_rejected")
    assert (audit.resource_type, audit.resource_id, audit.status, audit.actor) == (
        "ingested_file",
        str(row.id),
        "failure",
        "watcher",
    )
    assert audit.details == {"camera_id": "porch", "path": str(path), "reason": reason, "source": "watcher"}


@pytest.mark.django_db
def test_max_image_pixels_rejects_a_normal_image_as_a_bomb(foscam_root, settings):
    settings.MAX_IMAGE_PIXELS = 640 * 480 - 1
    outcome = file_ingest(write(foscam_root / "porch" / "a.jpg", jpeg_bytes(seed=23)))
    assert (outcome.result, outcome.reason) == ("invalid", "decompression_bomb")


@pytest.mark.django_db
def test_videos_that_cannot_be_read_or_are_too_large_are_invalid(foscam_root, settings):
    unreadable = file_ingest(write(foscam_root / "porch" / "junk.mp4", unreadable_mp4()))
    assert (unreadable.result, unreadable.reason, unreadable.file.media_type) == ("invalid", "unreadable", "video")
    video = write_video(foscam_root / "porch" / "clip.mp4", seed=24)
    settings.MAX_VIDEO_BYTES = video.stat().st_size - 1
    assert file_ingest(video).reason == "too_large"


@pytest.mark.django_db
def test_a_truncated_image_is_checked_again_once_and_accepted_when_it_completed(foscam_root):
    data = jpeg_bytes(seed=25)
    path = write(foscam_root / "porch" / "a.jpg", data[:-5000])
    rechecks = []

    def writer_finishes():
        rechecks.append(True)
        path.write_bytes(data)

    outcome = file_ingest(path, recheck_truncated=writer_finishes)

    assert rechecks == [True]
    assert outcome.result == "accepted"
    assert (outcome.file.sha256, outcome.file.size_bytes) == (sha(data), len(data))


@pytest.mark.django_db
def test_a_still_truncated_image_is_rejected_after_its_one_recheck(foscam_root):
    path = write(foscam_root / "porch" / "a.jpg", truncated_jpeg(seed=26))
    rechecks = []
    outcome = file_ingest(path, recheck_truncated=lambda: rechecks.append(True))
    assert rechecks == [True] and (outcome.result, outcome.reason) == ("invalid", "truncated")


@pytest.mark.django_db
def test_a_file_removed_during_the_recheck_is_ignored(foscam_root):
    path = write(foscam_root / "porch" / "a.jpg", truncated_jpeg(seed=27))
    outcome = file_ingest(path, recheck_truncated=path.unlink)
    assert (outcome.result, outcome.reason) == ("ignored", "missing") and not IngestedFile.objects.exists()


@pytest.mark.django_db
def test_an_unstable_file_is_recorded_invalid_without_a_hash(foscam_root):
    data = jpeg_bytes(seed=28)[:30_000]
    path = write(foscam_root / "porch" / "a.jpg", data)
    outcome = file_record_unstable(path)
    assert (outcome.result, outcome.reason) == ("invalid", "unstable")
    row = IngestedFile.objects.get()
    assert (row.status, row.reject_reason, row.sha256, row.size_bytes, row.mime_type) == (
        "invalid",
        "unstable",
        None,
        len(data),
        "image/jpeg",
    )
    assert AuditLog.objects.get(action="file_rejected").details["reason"] == "unstable"


@pytest.mark.django_db
def test_unstable_recording_skips_what_ingest_would_skip(foscam_root):
    CameraFactory(id="attic", folder_path="attic", enabled=False)
    camera = CameraFactory(id="porch", folder_path="porch")
    assert file_record_unstable(foscam_root / "a.jpg").result == "ignored"
    assert file_record_unstable(write(foscam_root / "attic" / "a.jpg", b"x")).result == "skipped_disabled"
    assert file_record_unstable(foscam_root / "porch" / "gone.jpg", camera=camera).reason == "missing"
    assert file_record_unstable(write(foscam_root / "porch" / "a.txt", b"x"), camera=camera).reason == "not_media"
    assert not IngestedFile.objects.exists()


# --- dedup (§4.2) -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_same_content_again_is_a_duplicate_without_a_row(foscam_root, django_capture_on_commit_callbacks):
    data = jpeg_bytes(seed=30)
    with django_capture_on_commit_callbacks(execute=True):
        first = file_ingest(write(foscam_root / "porch" / "a.jpg", data))
    duplicates_before = ingested("duplicate")

    with django_capture_on_commit_callbacks(execute=True):
        again = file_ingest(write(foscam_root / "garage" / "copy.jpg", data))

    assert (again.result, again.file) == ("duplicate", first.file)
    assert IngestedFile.objects.count() == 1
    assert broker_tasks("detection") == [(PROCESS_FILE, [first.file.id])]
    assert ingested("duplicate") == duplicates_before + 1


@pytest.mark.django_db
def test_dedup_survives_a_cache_flush_through_the_unique_hash(foscam_root, django_capture_on_commit_callbacks):
    data = jpeg_bytes(seed=31)
    with django_capture_on_commit_callbacks(execute=True):
        first = file_ingest(write(foscam_root / "porch" / "a.jpg", data))
    cache.clear()
    assert cache.get(dedup_key(sha(data))) is None

    again = file_ingest(write(foscam_root / "porch" / "b.jpg", data))

    assert (again.result, again.file) == ("duplicate", first.file)
    assert IngestedFile.objects.count() == 1
    assert cache.get(dedup_key(sha(data))) == first.file.id  # re-learned from the database


@pytest.mark.django_db
def test_a_cache_hit_skips_the_file_even_without_a_row(foscam_root):
    data = jpeg_bytes(seed=32)
    cache.set(dedup_key(sha(data)), 999_999, 60)
    outcome = file_ingest(write(foscam_root / "porch" / "a.jpg", data))
    assert (outcome.result, outcome.file) == ("duplicate", None) and not IngestedFile.objects.exists()


@pytest.mark.parametrize("earlier_status", ["invalid", "failed", "processed"])
@pytest.mark.django_db
def test_content_seen_before_is_never_processed_again_whatever_its_outcome(foscam_root, earlier_status):
    data = jpeg_bytes(seed=33)
    earlier = IngestedFileFactory(sha256=sha(data), status=earlier_status)
    outcome = file_ingest(write(foscam_root / "porch" / "a.jpg", data))
    assert (outcome.result, outcome.file) == ("duplicate", earlier) and IngestedFile.objects.count() == 1


@pytest.mark.django_db
def test_dedup_comes_before_validation(foscam_root, caplog):
    data = truncated_jpeg(seed=36)
    first = file_ingest(write(foscam_root / "porch" / "a.jpg", data))
    assert first.reason == "truncated"
    rechecks = []
    caplog.clear()

    again = file_ingest(write(foscam_root / "porch" / "b.jpg", data), recheck_truncated=lambda: rechecks.append(1))

    # Known content is skipped before any decode: no recheck wait, no second rejection logged or audited
    assert (again.result, again.file) == ("duplicate", first.file) and rechecks == []
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    assert AuditLog.objects.filter(action="file_rejected").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_ingests_of_the_same_content_leave_one_row(foscam_root):
    data = jpeg_bytes(seed=34)
    CameraFactory(id="porch", folder_path="porch")
    paths = [write(foscam_root / "porch" / f"{name}.jpg", data) for name in ("a", "b")]
    barrier = threading.Barrier(2)
    results = []

    def ingest(path: Path) -> None:
        try:
            barrier.wait(timeout=10)
            results.append(file_ingest(path).result)
        finally:
            connection.close()

    threads = [threading.Thread(target=ingest, args=(path,)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(results) == ["accepted", "duplicate"]
    assert IngestedFile.objects.filter(sha256=sha(data)).count() == 1
    assert [args for _name, args in broker_tasks("detection")] == [[IngestedFile.objects.get().id]]


@pytest.mark.django_db(transaction=True)
def test_a_camera_deleted_before_the_insert_commits_makes_the_file_ignored(foscam_root):
    ghost = Camera(id="ghost", name="Ghost", folder_path="ghost", enabled=True)  # never saved
    outcome = file_ingest(write(foscam_root / "ghost" / "a.jpg", jpeg_bytes(seed=35)), camera=ghost)
    assert (outcome.result, outcome.reason) == ("ignored", "camera_deleted") and not IngestedFile.objects.exists()

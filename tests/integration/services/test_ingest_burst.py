"""``files_ingest``: a burst of stable files (what the watcher hands over after an FTP backlog or a rescan) gets,
file by file, the outcome ``file_ingest`` gives (CONTRACT §4.1–4.2), with its statements shared by the burst."""

from __future__ import annotations

import hashlib
import threading

import psycopg
import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from cameras.models import Camera
from pipeline.ingest import BurstIngestError, dedup_key, file_ingest, files_ingest
from pipeline.models import IngestedFile
from system.models import AuditLog
from tests.factories import CameraFactory
from tests.images import jpeg_bytes
from tests.integration.ingest_support import (
    broker_tasks,
    ensure_process_file_task,
    junk_jpeg,
    small_jpeg,
    truncated_jpeg,
    wait_for,
    write,
)
from tests.integration.metrics_support import scraped, scraped_by

PROCESS_FILE = "pipeline.process_file"
RESULTS = ("accepted", "duplicate", "invalid", "ignored", "skipped_disabled")


def ingested(result: str) -> float:
    return scraped("hsi_files_ingested", result=result)


@pytest.fixture(autouse=True)
def _process_file_task():
    ensure_process_file_task()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.django_db
def test_each_file_of_a_burst_gets_the_outcome_it_would_get_alone(
    foscam_root, settings, django_capture_on_commit_callbacks
):
    settings.AUTO_CREATE_CAMERAS = True
    CameraFactory(id="shed", folder_path="shed", enabled=False)
    known = jpeg_bytes(seed=3)
    file_ingest(write(foscam_root / "porch" / "earlier.jpg", known))
    porch, garden = jpeg_bytes(seed=1), jpeg_bytes(seed=2)
    paths = [
        write(foscam_root / "porch" / "a.jpg", porch),
        write(foscam_root / "garden" / "b.jpg", garden),  # a new folder: its camera is created
        write(foscam_root / "porch" / "again.jpg", known),  # recorded before the burst
        write(foscam_root / "porch" / "copy_of_a.jpg", porch),  # repeated within the burst
        write(foscam_root / "porch" / "empty.jpg", b""),
        write(foscam_root / "porch" / "small.jpg", small_jpeg(seed=4)),
        write(foscam_root / "porch" / "junk.jpg", junk_jpeg()),
        write(foscam_root / "porch" / "notes.txt", b"not media"),
        write(foscam_root / "shed" / "c.jpg", jpeg_bytes(seed=5)),
        write(foscam_root / "loose.jpg", jpeg_bytes(seed=6)),  # not inside a camera folder
    ]
    (foscam_root / "porch" / "gone.jpg").touch()
    paths.append(foscam_root / "porch" / "gone.jpg")
    (foscam_root / "porch" / "gone.jpg").unlink()

    counted_before = scraped_by("hsi_files_ingested", "result")

    with django_capture_on_commit_callbacks(execute=True):
        outcomes = files_ingest(paths)

    assert [(o.result, o.reason) for o in outcomes] == [
        ("accepted", None),
        ("accepted", None),
        ("duplicate", None),
        ("duplicate", None),
        ("invalid", "empty"),
        ("invalid", "too_small"),
        ("invalid", "unreadable"),
        ("ignored", "not_accepted"),
        ("skipped_disabled", "camera_disabled"),
        ("ignored", "outside_camera_folder"),
        ("ignored", "missing"),
    ]
    accepted = [outcomes[0].file, outcomes[1].file]
    assert [(f.camera_id, f.sha256, f.status, f.source) for f in accepted] == [
        ("porch", sha(porch), "pending", "watcher"),
        ("garden", sha(garden), "pending", "watcher"),
    ]
    assert outcomes[2].file.path.endswith("earlier.jpg") and outcomes[3].file == accepted[0]
    assert [args for _, args in broker_tasks()] == [[accepted[0].id], [accepted[1].id]]
    assert cache.get_many([dedup_key(sha(porch)), dedup_key(sha(garden))]) == {
        dedup_key(sha(porch)): accepted[0].id,
        dedup_key(sha(garden)): accepted[1].id,
    }
    invalid = IngestedFile.objects.filter(status="invalid").order_by("id")
    assert [r.reject_reason for r in invalid] == ["empty", "too_small", "unreadable"]
    assert AuditLog.objects.filter(action="file_rejected").count() == 3
    for camera in Camera.objects.filter(pk__in=["porch", "garden"]):
        assert timezone.now() - camera.last_seen_at < timezone.timedelta(minutes=1)
    assert IngestedFile.objects.count() == 1 + 2 + 3
    counted_after = scraped_by("hsi_files_ingested", "result")
    counted = {result: counted_after.get(result, 0) - counted_before.get(result, 0) for result in RESULTS}
    assert counted == {"accepted": 2, "duplicate": 2, "invalid": 3, "ignored": 3, "skipped_disabled": 1}  # once each


@pytest.mark.django_db
def test_a_truncated_image_in_a_burst_gets_its_recheck_and_the_rest_is_not_held_back(foscam_root):
    data = jpeg_bytes(seed=7)
    cut = write(foscam_root / "porch" / "cut.jpg", data[:-5000])
    still_cut = write(foscam_root / "porch" / "still_cut.jpg", truncated_jpeg(seed=8))
    whole = write(foscam_root / "porch" / "whole.jpg", jpeg_bytes(seed=9))
    rechecks = []

    def writers_finish():
        rechecks.append(IngestedFile.objects.filter(path=str(whole)).exists())
        cut.write_bytes(data)

    outcomes = files_ingest([cut, still_cut, whole], recheck_truncated=writers_finish)

    assert [(o.result, o.reason) for o in outcomes] == [
        ("accepted", None),
        ("invalid", "truncated"),
        ("accepted", None),
    ]
    assert rechecks == [True, True]  # one recheck per truncated file, after the whole one was recorded
    assert outcomes[0].file.sha256 == sha(data)


@pytest.mark.django_db
def test_a_file_that_fails_after_the_rest_of_its_burst_was_recorded_is_named_and_the_rest_kept(foscam_root):
    cut = write(foscam_root / "porch" / "cut.jpg", truncated_jpeg(seed=12))
    whole = write(foscam_root / "porch" / "whole.jpg", jpeg_bytes(seed=13))
    accepted_before = ingested("accepted")

    def recheck_fails():
        raise OSError("the share went away")

    with pytest.raises(BurstIngestError) as raised:
        files_ingest([cut, whole], recheck_truncated=recheck_fails)

    assert list(raised.value.errors) == [0] and "the share went away" in str(raised.value)
    assert raised.value.outcomes[1].result == "accepted"
    assert list(IngestedFile.objects.values_list("path", flat=True)) == [str(whole)]
    assert ingested("accepted") == accepted_before + 1


@pytest.mark.django_db(transaction=True)
def test_a_burst_that_meets_a_concurrent_ingest_of_its_content_is_recorded_file_by_file(foscam_root, settings):
    CameraFactory(id="porch", folder_path="porch")
    raced, other = jpeg_bytes(seed=10), jpeg_bytes(seed=11)
    paths = [write(foscam_root / "porch" / "raced.jpg", raced), write(foscam_root / "porch" / "other.jpg", other)]
    url = "postgresql://{USER}@{HOST}:{PORT}/{NAME}".format(**settings.DATABASES["default"])
    rival = psycopg.connect(url)  # another ingest of the same content, not yet committed
    rival.execute(
        "INSERT INTO pipeline_ingestedfile (camera_id, path, sha256, size_bytes, media_type, mime_type, source, "
        "status, received_at, detection_count, error) VALUES ('porch', '/elsewhere.jpg', "
        "%s, 1, 'image', 'image/jpeg', 'upload', 'pending', now(), 0, '')",
        [sha(raced)],
    )
    results = []

    def burst():
        try:
            results.extend(files_ingest(paths))
        finally:
            connection.close()

    worker = threading.Thread(target=burst)
    worker.start()
    wait_for(lambda: _waiting_on_a_lock(rival, connection.settings_dict["NAME"]))  # the burst's INSERT waits
    rival.commit()
    worker.join(timeout=30)
    rival.close()

    assert [o.result for o in results] == ["duplicate", "accepted"]
    assert results[0].file.path == "/elsewhere.jpg"
    assert IngestedFile.objects.filter(sha256=sha(raced)).count() == 1
    assert [args for _, args in broker_tasks()] == [[results[1].file.id]]


def _waiting_on_a_lock(observer: psycopg.Connection, database: str) -> bool:
    """Whether a session of this test's database waits on a lock in an INSERT into the ingested files."""
    with psycopg.connect(observer.info.dsn, autocommit=True) as probe:
        row = probe.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock' "
            "AND query LIKE 'INSERT INTO \"pipeline_ingestedfile\"%%'",
            [database],
        ).fetchone()
    return row[0] > 0

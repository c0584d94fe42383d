"""``POST /api/cameras/{id}/uploads`` (CONTRACT §2.2 upload row, §6.5) through DRF's APIClient and real storage."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

import pytest
import time_machine
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from hsi.api.errors import InvalidState
from pipeline.ingest import FileInspection, dedup_key, file_ingest
from pipeline.ingest.uploads import _ingest_stored, upload_store
from pipeline.models import IngestedFile
from pipeline.watcher import CameraWatcher
from system.models import AuditLog
from system.services import Actor
from tests.factories import CameraFactory, IngestedFileFactory
from tests.images import jpeg_bytes, png_bytes, write_video
from tests.integration.ingest_support import (
    PROCESS_FILE,
    FakeClock,
    bomb_png,
    broker_tasks,
    ensure_process_file_task,
    small_jpeg,
    truncated_jpeg,
    unreadable_mp4,
    write,
)
from tests.problems import problem

pytestmark = pytest.mark.django_db

STORED_NAME = re.compile(r"^(?P<time>\d{12})_(?P<name>[A-Za-z0-9._-]{1,100})$")


@pytest.fixture(autouse=True)
def _process_file_task():
    ensure_process_file_task()


@pytest.fixture
def camera(foscam_root):
    return CameraFactory(id="porch", name="Porch", folder_path="porch")


def url(camera_id: str = "porch") -> str:
    return f"/api/cameras/{camera_id}/uploads"


def upload(api_client, data: bytes, name: str = "snap.jpg", camera_id: str = "porch", **extra):
    return api_client.post(url(camera_id), {"file": SimpleUploadedFile(name, data)}, format="multipart", **extra)


def stored_files(foscam_root: Path) -> list[Path]:
    return sorted(path for path in foscam_root.rglob("*") if path.is_file())


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- 202 -------------------------------------------------------------------------------------------------------------


def test_an_upload_is_stored_atomically_ingested_and_queued(
    api_client, camera, foscam_root, django_capture_on_commit_callbacks
):
    data = jpeg_bytes(seed=1)
    before = timezone.now()

    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api_client, data, name="front snap.jpg", HTTP_X_REQUEST_ID="upload-1")

    assert response.status_code == 202, response.content
    body = response.json()
    row = IngestedFile.objects.get()
    assert body == {"file_id": row.id, "camera_id": "porch", "sha256": sha(data), "path": row.path, "status": "queued"}
    stored = Path(row.path)
    assert stored_files(foscam_root) == [stored]
    assert stored.read_bytes() == data
    day = stored.parent
    assert day.parent.parent.parent == foscam_root / "porch" / "uploads"
    match = STORED_NAME.match(stored.name)
    assert match and match["name"] == "front_snap.jpg"
    stamp = dt.datetime.strptime(
        f"{day.parent.parent.name}{day.parent.name}{day.name}{match['time']}", "%Y%m%d%H%M%S%f"
    )
    assert before - dt.timedelta(seconds=1) <= stamp.replace(tzinfo=dt.UTC) <= timezone.now()
    assert (row.source, row.status, row.media_type, row.mime_type) == ("upload", "pending", "image", "image/jpeg")
    assert broker_tasks("detection") == [(PROCESS_FILE, [row.id])]
    audit = AuditLog.objects.get(action="file_uploaded")
    assert (audit.resource_type, audit.resource_id, audit.status, audit.request_id) == (
        "camera",
        "porch",
        "success",
        "upload-1",
    )
    assert audit.details["file_id"] == row.id and audit.details["name"] == "front snap.jpg"


@pytest.mark.parametrize(
    ("name", "data_factory", "media_type", "mime_type"),
    [
        ("still.PNG", lambda tmp: png_bytes(seed=2), "image", "image/png"),
        ("clip.mp4", lambda tmp: write_video(tmp / "clip.mp4", seed=3).read_bytes(), "video", "video/mp4"),
    ],
)
def test_pngs_and_videos_are_accepted(api_client, camera, tmp_path, name, data_factory, media_type, mime_type):
    response = upload(api_client, data_factory(tmp_path), name=name)
    assert response.status_code == 202, response.content
    row = IngestedFile.objects.get(pk=response.json()["file_id"])
    assert (row.media_type, row.mime_type) == (media_type, mime_type) and row.path.endswith(f"_{name}")


def test_the_stored_name_is_sanitised_and_at_most_100_characters(api_client, camera):
    response = upload(api_client, jpeg_bytes(seed=4), name="Ça va? " + "x" * 200 + ".jpeg")
    assert response.status_code == 202
    name = STORED_NAME.match(Path(response.json()["path"]).name)["name"]
    assert len(name) == 100 and name.startswith("_a_va__xxx") and name.endswith(".jpeg")


def test_an_offline_camera_comes_back_online_when_it_uploads(api_client, foscam_root):
    CameraFactory(id="porch", folder_path="porch", status="offline")
    assert upload(api_client, jpeg_bytes(seed=5)).status_code == 202
    camera = IngestedFile.objects.get().camera
    assert camera.status == "online" and camera.last_seen_at is not None


def test_a_camera_with_an_absolute_folder_stores_there(api_client, tmp_path):
    folder = tmp_path / "outside_root" / "cam"
    CameraFactory(id="porch", folder_path=str(folder))
    response = upload(api_client, jpeg_bytes(seed=6))
    assert response.status_code == 202
    assert Path(response.json()["path"]).is_relative_to(folder / "uploads")


# --- 200 duplicate -------------------------------------------------------------------------------------------------


def test_known_content_answers_duplicate_and_writes_nothing(api_client, camera, foscam_root):
    data = jpeg_bytes(seed=7)
    first = upload(api_client, data).json()

    response = upload(api_client, data, name="again.jpg")

    assert response.status_code == 200
    assert response.json() == {
        "file_id": first["file_id"],
        "camera_id": "porch",
        "sha256": sha(data),
        "path": first["path"],
        "status": "duplicate",
    }
    assert IngestedFile.objects.count() == 1
    assert stored_files(foscam_root) == [Path(first["path"])]


def test_content_the_watcher_already_ingested_is_a_duplicate(api_client, camera, foscam_root):
    data = jpeg_bytes(seed=8)
    watched = file_ingest(write(foscam_root / "porch" / "watched.jpg", data))

    response = upload(api_client, data)

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["file_id"]) == ("duplicate", watched.file.id)


def test_the_watcher_never_ingests_an_uploaded_file_twice(api_client, camera, foscam_root):
    response = upload(api_client, jpeg_bytes(seed=9))
    stored = Path(response.json()["path"])

    clock = FakeClock()
    watcher = CameraWatcher(clock=clock)
    watcher.notice(str(stored))  # the observer reports the new file
    for _ in range(8):
        clock.advance(0.5)
        watcher.run_once()
    outcome = file_ingest(stored)  # and even a direct ingest of the same bytes

    assert outcome.result == "duplicate"
    assert list(IngestedFile.objects.values_list("path", flat=True)) == [str(stored)]
    assert watcher.scan(10) == 0  # recorded with the same path and size after its last change


# --- 404 / 409 ------------------------------------------------------------------------------------------------------


def test_an_unknown_camera_is_404(api_client, foscam_root):
    problem(upload(api_client, jpeg_bytes(seed=10), camera_id="nobody"), 404, "not_found")
    assert stored_files(foscam_root) == [] and not IngestedFile.objects.exists()


def test_a_disabled_camera_is_409_invalid_state_with_a_failure_audit(api_client, foscam_root):
    CameraFactory(id="porch", folder_path="porch", enabled=False)
    problem(upload(api_client, jpeg_bytes(seed=11)), 409, "invalid_state")
    assert stored_files(foscam_root) == [] and not IngestedFile.objects.exists()
    audit = AuditLog.objects.get(action="file_uploaded")
    assert (audit.status, audit.details) == ("failure", {"reason": "camera_disabled"})


# --- 413 / 415 ------------------------------------------------------------------------------------------------------


def test_a_file_over_the_upload_limit_is_413(api_client, camera, foscam_root, settings):
    data = jpeg_bytes(seed=12)
    settings.UPLOAD_MAX_BYTES = len(data) - 1
    problem(upload(api_client, data), 413, "payload_too_large")
    settings.UPLOAD_MAX_BYTES = 1_000  # the body alone is too big: refused before it is parsed
    problem(upload(api_client, data), 413, "payload_too_large")
    assert stored_files(foscam_root) == [] and not IngestedFile.objects.exists()


def test_size_is_checked_before_the_extension(api_client, camera, settings):
    settings.UPLOAD_MAX_BYTES = 10
    problem(upload(api_client, b"x" * 100, name="notes.txt"), 413, "payload_too_large")


@pytest.mark.parametrize("name", ["anim.gif", "notes.txt", "noextension", "snap.jpg.tmp", "snap.jpg~", "clip.webm"])
def test_an_extension_outside_the_accepted_list_is_415(api_client, camera, foscam_root, name):
    problem(upload(api_client, jpeg_bytes(seed=13), name=name), 415, "unsupported_media_type")
    assert stored_files(foscam_root) == [] and not IngestedFile.objects.exists()


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("really_png.jpg", png_bytes(seed=14)),
        ("really_jpeg.png", jpeg_bytes(seed=15)),
        ("clip.mkv", unreadable_mp4()),
        ("clip.mp4", b"RIFF\x00\x00\x00\x00AVI " + bytes(20_000)),
        ("clip.avi", b"RIFF\x00\x00\x00\x00WAVE" + bytes(20_000)),
        ("empty.jpg", b""),
    ],
)
def test_leading_bytes_of_another_family_are_415(api_client, camera, foscam_root, name, data):
    problem(upload(api_client, data, name=name), 415, "unsupported_media_type")
    assert stored_files(foscam_root) == [] and not IngestedFile.objects.exists()


def test_a_json_body_is_415(api_client, camera):
    problem(api_client.post(url(), {"file": "x"}, format="json"), 415, "unsupported_media_type")


# --- 422 ------------------------------------------------------------------------------------------------------------


def test_exactly_one_file_field_is_required(api_client, camera):
    missing = api_client.post(url(), {"other": SimpleUploadedFile("a.jpg", jpeg_bytes(seed=16))}, format="multipart")
    assert problem(missing, 422, "validation_error")["errors"][0]["field"] == "file"
    two = api_client.post(
        url(),
        {"file": [SimpleUploadedFile("a.jpg", jpeg_bytes(seed=17)), SimpleUploadedFile("b.jpg", jpeg_bytes(seed=18))]},
        format="multipart",
    )
    assert problem(two, 422, "validation_error")["errors"][0]["field"] == "file"
    assert not IngestedFile.objects.exists()


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("cut.jpg", truncated_jpeg(seed=19), "truncated"),
        ("tiny.jpg", small_jpeg(seed=20), "too_small"),
        ("bomb.png", bomb_png(), "decompression_bomb"),
        ("junk.mp4", unreadable_mp4(), "unreadable"),
    ],
)
def test_content_failing_validation_is_422_naming_the_reason(api_client, camera, foscam_root, name, data, reason):
    body = problem(upload(api_client, data, name=name), 422, "validation_error")
    assert body["errors"][0] == {"field": "file", "message": reason}
    assert stored_files(foscam_root) == [] and not IngestedFile.objects.exists()
    assert not AuditLog.objects.filter(action="file_uploaded").exists()


def test_an_image_over_max_image_bytes_is_422_too_large(api_client, camera, settings):
    data = jpeg_bytes(seed=21)
    settings.MAX_IMAGE_BYTES = len(data) - 1
    body = problem(upload(api_client, data), 422, "validation_error")
    assert body["errors"][0]["message"] == "too_large"


# --- the service with an in-memory upload ----------------------------------------------------------------------------


def test_an_in_memory_upload_is_checked_from_a_temporary_copy(camera, foscam_root):
    data = jpeg_bytes(seed=22)
    result = upload_store(camera, SimpleUploadedFile("mem.jpg", data), actor=Actor.system("test"))
    assert result.status == "queued" and Path(result.path).read_bytes() == data


def test_a_cached_hash_whose_file_was_deleted_does_not_block_a_new_upload(
    camera, foscam_root, django_capture_on_commit_callbacks
):
    data = jpeg_bytes(seed=23)
    with django_capture_on_commit_callbacks(execute=True):
        first = upload_store(camera, SimpleUploadedFile("a.jpg", data), actor=Actor.system("test"))
    assert cache.get(dedup_key(sha(data))) == first.file_id
    IngestedFile.objects.filter(pk=first.file_id).delete()  # e.g. retention removed the row

    again = upload_store(camera, SimpleUploadedFile("a.jpg", data), actor=Actor.system("test"))

    assert again.status == "queued" and again.file_id != first.file_id
    assert IngestedFile.objects.get().id == again.file_id


def test_two_uploads_of_one_name_in_the_same_microsecond_get_distinct_names(camera, foscam_root):
    instant = dt.datetime(2024, 12, 26, 23, 59, 59, 999_998, tzinfo=dt.UTC)
    with time_machine.travel(instant, tick=False):
        first = upload_store(camera, SimpleUploadedFile("a.jpg", jpeg_bytes(seed=24)), actor=Actor.system("t"))
        second = upload_store(camera, SimpleUploadedFile("a.jpg", jpeg_bytes(seed=25)), actor=Actor.system("t"))
    folder = foscam_root / "porch" / "uploads" / "2024" / "12" / "26"
    assert (Path(first.path), Path(second.path)) == (folder / "235959999998_a.jpg", folder / "235959999999_a.jpg")
    assert stored_files(foscam_root) == [Path(first.path), Path(second.path)]  # no partial file left behind


def _stored_copy(foscam_root: Path, data: bytes) -> tuple[Path, FileInspection]:
    stored = write(foscam_root / "porch" / "uploads" / "2024" / "01" / "01" / "000000000000_a.jpg", data)
    return stored, FileInspection(size=len(data), sha256=sha(data), mime_type="image/jpeg")


def test_an_upload_that_loses_a_race_to_another_ingest_is_removed_and_a_duplicate(camera, foscam_root):
    data = jpeg_bytes(seed=26)
    winner = IngestedFileFactory(camera=camera, sha256=sha(data), path="/elsewhere/a.jpg")
    stored, inspection = _stored_copy(foscam_root, data)

    result = _ingest_stored(camera, stored, inspection, timezone.now(), actor=Actor.system("t"), original_name="a")

    assert (result.status, result.file_id, result.path) == ("duplicate", winner.id, "/elsewhere/a.jpg")
    assert not stored.exists() and IngestedFile.objects.count() == 1


def test_an_upload_whose_camera_was_disabled_meanwhile_is_removed_and_refused(camera, foscam_root):
    stored, inspection = _stored_copy(foscam_root, jpeg_bytes(seed=27))
    camera.enabled = False
    with pytest.raises(InvalidState):
        _ingest_stored(camera, stored, inspection, timezone.now(), actor=Actor.system("t"), original_name="a")
    assert not stored.exists() and not IngestedFile.objects.exists()

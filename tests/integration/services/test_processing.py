"""pipeline.process_file (CONTRACT §4.4): an ingested file → Detection rows, status, thumbnails, detection.new;
idempotency; retries and the DLQ when the detector fails (§4.8). Real PostgreSQL, Redis and a fake detector."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import time_machine

from events.models import Detection
from pipeline.models import Batch, FailedJob, IngestedFile
from pipeline.services import dlq_requeue, file_process
from pipeline.video import sample_video
from system.services import Actor
from tests.factories import CameraFactory, ZoneFactory
from tests.fakes.detector_server import detection, person
from tests.fakes.http_fake import Reply
from tests.integration.metrics_support import scraped
from tests.integration.pipeline_support import (
    T0,
    at,
    image_file,
    of_type,
    pipeline_env,  # noqa: F401 - fixture
    run_task,
    system_listener,
    video_file,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pipeline_env")]


@pytest.fixture
def system_stream():
    with system_listener() as stream:
        yield stream


ACTOR = Actor(name="api_key:ops")


@pytest.fixture
def camera():
    return CameraFactory(id="front_door", name="Front Door")


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(at(5), tick=False) as traveller:
        yield traveller


def process(capture, file) -> None:
    run_task(capture, "pipeline.process_file", file.id)


# --- Happy path -------------------------------------------------------------------------------------------------


def test_image_detections_are_stored_with_every_field_and_the_file_is_processed(
    fake_detector, camera, foscam_root, django_capture_on_commit_callbacks
):
    zone = ZoneFactory(camera=camera, coordinates=[[0, 0], [0.5, 0], [0.5, 0.9], [0, 0.9]])
    ZoneFactory(camera=camera, enabled=False, coordinates=[[0, 0], [1, 0], [1, 1], [0, 1]])
    fake_detector.detections = [
        person(0.8, x=100, y=80, width=120, height=260),
        detection("Car", 0.7, bbox=(400, 300, 200, 100)),
        detection("dog", 0.3),  # below DETECTION_CONFIDENCE_THRESHOLD
    ]
    file = image_file(camera, foscam_root, received_at=T0)

    process(django_capture_on_commit_callbacks, file)

    file.refresh_from_db()
    assert (file.status, file.detection_count, file.processed_at) == ("processed", 2, at(5))
    rows = list(Detection.objects.order_by("id"))
    assert [(d.object_type, d.confidence) for d in rows] == [("person", 0.8), ("car", 0.7)]
    walker, car = rows
    assert (walker.bbox_x, walker.bbox_y, walker.bbox_width, walker.bbox_height) == (100, 80, 120, 260)
    assert (walker.image_width, walker.image_height) == (640, 480)
    assert walker.detected_at == T0
    assert walker.source_file_id == file.id
    assert (walker.file_path, walker.file_type, walker.media_type) == (file.path, "image/jpeg", "image")
    assert walker.zone_ids == [str(zone.id)]  # centre (160, 210) of 640×480 is inside; the disabled zone is not listed
    assert car.zone_ids == []
    assert walker.frame_time_seconds is None and walker.video_duration is None
    assert fake_detector.detect_calls == 1


@pytest.mark.parametrize(
    ("box", "source"),
    [((800, 600, 400, 800), "preview"), ((800, 600, 120, 200), "full")],  # 1/8 preview: 50×100 px, 15×25 px
    ids=["large box: from the preview", "small box: from the full decode"],
)
def test_colour_embeddings_come_from_the_preview_unless_the_box_is_small_there(
    fake_detector, camera, foscam_root, django_capture_on_commit_callbacks, box, source
):
    import cv2
    import numpy as np

    from events.entities import detection_embedding

    x, y, width, height = box
    fake_detector.detections = [person(0.8, x=x, y=y, width=width, height=height)]
    file = image_file(camera, foscam_root, size=(2560, 1920))

    process(django_capture_on_commit_callbacks, file)

    data = np.fromfile(file.path, dtype=np.uint8)
    full = cv2.imdecode(data, cv2.IMREAD_COLOR)
    eighth = cv2.imdecode(data, cv2.IMREAD_REDUCED_COLOR_8)
    from_full = detection_embedding("person", box, full, None, "m")[0]
    from_preview = detection_embedding("person", box, eighth, None, "m", pixel_scale=0.125)[0]
    stored = Detection.objects.get().embedding
    assert stored == pytest.approx(from_preview if source == "preview" else from_full)
    assert from_full != pytest.approx(from_preview)  # the two sources differ: the assertion above can tell


def test_a_file_ingested_in_this_process_is_processed_with_the_preview_its_validation_decoded(
    fake_detector, camera, foscam_root, data_dir, django_capture_on_commit_callbacks
):
    import cv2
    import numpy as np

    from events.entities import detection_embedding
    from pipeline.ingest import file_ingest
    from pipeline.previews import preview_take
    from tests.images import write_jpeg

    fake_detector.detections = [person(0.8, x=400, y=200, width=200, height=400)]
    path = write_jpeg(Path(foscam_root) / camera.id / "walker.jpg", 1280, 720, seed=41)

    with django_capture_on_commit_callbacks(execute=True):
        outcome = file_ingest(path)  # eager, as all-in-one runs it: validation, then processing in this process

    stored = Detection.objects.get()
    assert outcome.result == "accepted" and stored.source_file_id == outcome.file.id
    assert preview_take(outcome.file.sha256) is None  # the processing took the preview the validation kept
    quarter = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_REDUCED_COLOR_4)
    expected = detection_embedding("person", (400, 200, 200, 400), quarter, None, "m", pixel_scale=0.25)[0]
    assert stored.embedding == pytest.approx(expected)  # the same colours a decode of its own would have given
    assert os.path.getsize(stored.thumbnail_path) > 0


def test_after_commit_thumbnails_are_written_and_detection_new_is_broadcast(
    fake_detector, camera, foscam_root, data_dir, events_stream, django_capture_on_commit_callbacks
):
    fake_detector.detections = [person(0.8)]
    file = image_file(camera, foscam_root)

    process(django_capture_on_commit_callbacks, file)

    stored = Detection.objects.get()
    assert stored.thumbnail_path == str(Path(data_dir) / "thumbnails" / f"{stored.id}_thumb.jpg")
    assert os.path.getsize(stored.thumbnail_path) > 0
    new = of_type(events_stream.drain(), "detection.new")
    assert new == [
        {
            "id": stored.id,
            "camera_id": "front_door",
            "batch_id": str(stored.batch_id),
            "object_type": "person",
            "confidence": 0.8,
            "bbox_x": 100,
            "bbox_y": 80,
            "bbox_width": 120,
            "bbox_height": 260,
            "detected_at": "2024-05-01T12:00:00Z",
            "media_type": "image",
            "entity_id": str(stored.entity_id),
            "thumbnail_url": f"/api/detections/{stored.id}/thumbnail",
        }
    ]
    assert stored.entity_id is not None  # REID_ENABLED: a person gets an entity


def test_no_detections_marks_the_file_and_opens_no_batch(
    fake_detector, camera, foscam_root, django_capture_on_commit_callbacks
):
    fake_detector.detections = [detection("cat", 0.2)]
    file = image_file(camera, foscam_root)

    process(django_capture_on_commit_callbacks, file)

    file.refresh_from_db()
    assert (file.status, file.detection_count) == ("no_detections", 0)
    assert not Detection.objects.exists()
    assert not Batch.objects.exists()


def test_video_detections_carry_frame_offsets_and_video_properties(
    fake_detector, camera, foscam_root, settings, django_capture_on_commit_callbacks
):
    settings.VIDEO_MAX_DETECTIONS_PER_CLASS = 2
    fake_detector.detections = [detection("car", 0.8, bbox=(10, 10, 60, 40))]
    file = video_file(camera, foscam_root, received_at=T0, seconds=5.0)  # frames at 0, 2, 4 s

    process(django_capture_on_commit_callbacks, file)

    rows = list(Detection.objects.order_by("frame_time_seconds"))
    assert fake_detector.detect_calls == 3
    assert [d.frame_time_seconds for d in rows] == [0.0, 2.0]  # two per class, from distinct frames
    assert [d.detected_at for d in rows] == [T0, at(2)]
    first = rows[0]
    assert (first.media_type, first.file_type) == ("video", "video/mp4")
    assert first.video_codec == sample_video(file.path).codec and len(first.video_codec) == 4  # FourCC
    assert (first.video_width, first.video_height, first.image_width) == (320, 240, 320)
    assert first.video_duration == pytest.approx(5.0)
    file.refresh_from_db()
    assert (file.status, file.detection_count) == ("processed", 2)


# --- Idempotency ------------------------------------------------------------------------------------------------


def test_processing_a_file_twice_stores_its_detections_once(
    fake_detector, camera, foscam_root, django_capture_on_commit_callbacks
):
    fake_detector.detections = [person(0.8), detection("car", 0.7)]
    file = image_file(camera, foscam_root)

    process(django_capture_on_commit_callbacks, file)
    process(django_capture_on_commit_callbacks, file)

    assert Detection.objects.count() == 2
    assert fake_detector.detect_calls == 1


@pytest.mark.parametrize("status", ["processed", "no_detections", "invalid", "failed"])
def test_a_finished_file_is_left_alone(status, fake_detector, camera, foscam_root):
    fake_detector.detections = [person(0.8)]
    file = image_file(camera, foscam_root, status=status)

    assert file_process(file.id) is None

    assert IngestedFile.objects.get(pk=file.id).status == status
    assert fake_detector.detect_calls == 0 and not Detection.objects.exists()


def test_a_file_left_processing_by_a_crash_is_processed_once(
    fake_detector, camera, foscam_root, django_capture_on_commit_callbacks
):
    fake_detector.detections = [person(0.8)]
    file = image_file(camera, foscam_root, status="processing")  # a worker died before its commit

    process(django_capture_on_commit_callbacks, file)
    process(django_capture_on_commit_callbacks, file)

    assert Detection.objects.count() == 1
    assert IngestedFile.objects.get(pk=file.id).status == "processed"


def test_a_missing_file_row_is_a_no_op(fake_detector, django_capture_on_commit_callbacks):
    run_task(django_capture_on_commit_callbacks, "pipeline.process_file", 987654)

    assert not FailedJob.objects.exists() and fake_detector.detect_calls == 0


# --- Failures, retries, DLQ -------------------------------------------------------------------------------------


def test_a_dead_detector_is_retried_then_dead_lettered_and_a_requeue_recovers_the_file(
    fake_detector, camera, foscam_root, system_stream, frozen_clock, django_capture_on_commit_callbacks
):
    fake_detector.detections = [person(0.8)]
    files = [image_file(camera, foscam_root) for _ in range(2)]
    fake_detector.stop()  # connection refused

    for file in files:
        process(django_capture_on_commit_callbacks, file)

    jobs = list(FailedJob.objects.order_by("id"))
    assert len(jobs) == 2
    job = jobs[0]
    assert (job.queue, job.task_name, job.payload) == ("detection", "pipeline.process_file", {"file_id": files[0].id})
    assert (job.error_type, job.attempt_count, job.requeue_count, job.camera_id) == (
        "connection_error",
        4,  # first attempt + PIPELINE_MAX_RETRIES
        0,
        "front_door",
    )
    assert job.error and len(job.error) <= 2000 and 0 < len(job.stack_trace) <= 4096
    assert job.first_failed_at <= job.last_failed_at
    assert [f.status for f in IngestedFile.objects.order_by("id")] == ["failed", "failed"]
    # (both sent at the same frozen instant: the channel layer keeps no order between them)
    added = sorted(of_type(system_stream.drain(), "dlq.job_added"), key=lambda m: m["id"])
    assert [m["id"] for m in added] == [j.id for j in jobs]
    assert added[0] == {
        "id": job.id,
        "queue": "detection",
        "task_name": "pipeline.process_file",
        "camera_id": "front_door",
        "error_type": "connection_error",
        "error": job.error,
    }

    assert added[1]["error_type"] == "circuit_open"  # five failures opened the detector breaker

    fake_detector.restart()
    frozen_clock.shift(31)  # past CIRCUIT_RECOVERY_SECONDS: the breaker lets a trial call through
    for failed in jobs:
        with django_capture_on_commit_callbacks(execute=True):
            dlq_requeue(failed.id, actor=ACTOR)

    # files in = 2; out: 2 processed files with one detection each, nothing left in the DLQ, nothing duplicated
    assert [f.status for f in IngestedFile.objects.order_by("id")] == ["processed", "processed"]
    assert Detection.objects.count() == 2
    assert sorted(Detection.objects.values_list("source_file_id", flat=True)) == sorted(f.id for f in files)
    assert not FailedJob.objects.exists()


def test_a_requeued_job_that_fails_again_counts_its_requeues(
    fake_detector, camera, foscam_root, django_capture_on_commit_callbacks
):
    file = image_file(camera, foscam_root)
    fake_detector.stop()
    process(django_capture_on_commit_callbacks, file)

    with django_capture_on_commit_callbacks(execute=True):
        dlq_requeue(FailedJob.objects.get().id, actor=ACTOR)

    job = FailedJob.objects.get()
    assert (job.payload, job.requeue_count, job.attempt_count) == ({"file_id": file.id}, 1, 4)
    assert IngestedFile.objects.get(pk=file.id).status == "failed"


def test_a_detector_that_recovers_within_the_retries_loses_nothing(
    fake_detector, camera, foscam_root, django_capture_on_commit_callbacks
):
    fake_detector.detections = [person(0.8)]
    fake_detector.fail("POST", "/detect", times=2, status=503)
    file = image_file(camera, foscam_root)

    process(django_capture_on_commit_callbacks, file)

    assert fake_detector.detect_calls == 3
    assert IngestedFile.objects.get(pk=file.id).status == "processed"
    assert Detection.objects.count() == 1 and not FailedJob.objects.exists()


def test_a_permanent_detector_error_goes_to_the_dlq_without_retries(
    fake_detector, camera, foscam_root, django_capture_on_commit_callbacks
):
    fake_detector.script("POST", "/detect", Reply(status=400, json={"error": "bad image"}))
    file = image_file(camera, foscam_root)

    process(django_capture_on_commit_callbacks, file)

    job = FailedJob.objects.get()
    assert (job.error_type, job.attempt_count) == ("http_4xx", 1)
    assert fake_detector.detect_calls == 1


def test_a_file_deleted_from_disk_is_dead_lettered_at_once(camera, foscam_root, django_capture_on_commit_callbacks):
    file = image_file(camera, foscam_root)
    os.remove(file.path)

    process(django_capture_on_commit_callbacks, file)

    job = FailedJob.objects.get()
    assert (job.error_type, job.attempt_count) == ("FileNotFoundError", 1)
    assert IngestedFile.objects.get(pk=file.id).status == "failed"


def test_eager_retries_wait_the_backoff_before_calling_again(
    fake_detector, settings, camera, foscam_root, django_capture_on_commit_callbacks
):
    settings.RETRY_BASE_DELAY_SECONDS = 0.02
    settings.RETRY_JITTER = 0
    settings.PIPELINE_MAX_RETRIES = 2
    fake_detector.fail("POST", "/detect", times=3, status=500)
    file = image_file(camera, foscam_root)

    process(django_capture_on_commit_callbacks, file)

    calls = [request.at for request in fake_detector.requests_to("/detect")]
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 0.02 and calls[2] - calls[1] >= 0.04  # 1 × base, then 2 × base
    assert FailedJob.objects.get().error_type == "http_5xx"


def test_every_task_refreshes_the_worker_heartbeat(camera, foscam_root, django_capture_on_commit_callbacks):
    import socket

    from django.core.cache import cache

    file = image_file(camera, foscam_root)
    process(django_capture_on_commit_callbacks, file)

    beat = cache.get(f"hsi:hb:worker:{socket.gethostname()}")
    assert beat["mode"] == "in-process" and beat["time"] == "2024-05-01T12:00:05Z"


def test_detections_are_counted_in_the_metrics(fake_detector, camera, foscam_root, django_capture_on_commit_callbacks):
    fake_detector.detections = [detection("bicycle", 0.8), detection("bicycle", 0.9, bbox=(200, 200, 40, 40))]
    before = scraped("hsi_detections", object_type="bicycle")

    process(django_capture_on_commit_callbacks, image_file(camera, foscam_root))

    assert scraped("hsi_detections", object_type="bicycle") == before + 2


def test_without_reidentification_no_embedding_or_entity_is_stored(
    fake_detector, settings, camera, foscam_root, django_capture_on_commit_callbacks
):
    settings.REID_ENABLED = False
    fake_detector.detections = [person(0.8)]

    process(django_capture_on_commit_callbacks, image_file(camera, foscam_root))

    stored = Detection.objects.get()
    assert (stored.embedding, stored.entity_id) == (None, None)


def test_an_unreadable_path_is_retried_as_a_transient_error(camera, foscam_root, django_capture_on_commit_callbacks):
    file = image_file(camera, foscam_root)
    os.remove(file.path)
    os.mkdir(file.path)  # reading a directory fails with IsADirectoryError, which may be transient (NFS)

    process(django_capture_on_commit_callbacks, file)

    job = FailedJob.objects.get()
    assert (job.error_type, job.attempt_count) == ("IsADirectoryError", 4)

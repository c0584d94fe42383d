"""pipeline.process_files: a burst of ingested files processed in one task and one transaction, with exactly the
outcome of processing them one by one — and a file that fails is handed on alone, never lost or dead-lettered
early. Real PostgreSQL, Redis and the fake detector."""

from __future__ import annotations

import os

import pytest
import time_machine

from events.models import Detection
from pipeline.models import Batch, FailedJob, IngestedFile
from tests.factories import CameraFactory
from tests.fakes.detector_server import person
from tests.integration.pipeline_support import (
    T0,
    at,
    image_file,
    metric,
    pipeline_env,  # noqa: F401 - fixture
    run_task,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pipeline_env")]


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(at(5), tick=False) as traveller:
        yield traveller


@pytest.fixture
def front():
    return CameraFactory(id="front_door")


@pytest.fixture
def garden():
    return CameraFactory(id="garden")


def process_chunk(capture, files) -> None:
    run_task(capture, "pipeline.process_files", [file.id for file in files])


def files_per_task() -> tuple[float, float]:
    return metric("hsi_pipeline_files_per_task_count"), metric("hsi_pipeline_files_per_task_sum")


def test_a_chunk_of_two_cameras_is_stored_in_received_order_with_one_batch_per_camera(
    fake_detector, front, garden, foscam_root, django_capture_on_commit_callbacks
):
    fake_detector.detections = [person(0.8)]
    received = [(front, 3), (garden, 1), (front, 0), (garden, 2)]
    files = [image_file(camera, foscam_root, received_at=at(seconds)) for camera, seconds in received]
    tasks_before, files_before = files_per_task()

    process_chunk(django_capture_on_commit_callbacks, files)

    assert {f.status for f in IngestedFile.objects.all()} == {"processed"}
    assert fake_detector.detect_calls == 4
    for camera, expected in ((front, [at(0), at(3)]), (garden, [at(1), at(2)])):
        rows = list(Detection.objects.filter(camera=camera).order_by("id"))
        assert [d.detected_at for d in rows] == expected  # ids follow the order the files were received in
        batch = Batch.objects.get(camera=camera)
        assert (batch.status, batch.detection_count) == ("open", 2)
        assert {d.batch_id for d in rows} == {batch.id}
    assert files_per_task() == (tasks_before + 1, files_before + 4)


def test_a_file_whose_detection_fails_goes_on_alone_and_the_rest_of_the_chunk_is_stored(
    fake_detector, front, foscam_root, django_capture_on_commit_callbacks
):
    fake_detector.detections = [person(0.8)]
    fake_detector.fail("POST", "/detect", times=1)  # the first file's first call: a 500
    files = [image_file(front, foscam_root, received_at=at(n)) for n in range(3)]

    process_chunk(django_capture_on_commit_callbacks, files)

    assert [f.status for f in IngestedFile.objects.order_by("received_at")] == ["processed"] * 3
    assert Detection.objects.count() == 3 and not FailedJob.objects.exists()
    assert fake_detector.detect_calls == 4  # the failed file once more, on its own
    assert Batch.objects.get().detection_count == 3


def test_a_permanent_detector_error_in_a_chunk_is_dead_lettered_after_that_one_attempt(
    fake_detector, front, foscam_root, django_capture_on_commit_callbacks
):
    from tests.fakes.http_fake import Reply

    fake_detector.detections = [person(0.8)]
    fake_detector.script("POST", "/detect", Reply(status=400, json={"error": "bad image"}))
    files = [image_file(front, foscam_root, received_at=at(n)) for n in range(3)]

    process_chunk(django_capture_on_commit_callbacks, files)

    job = FailedJob.objects.get()
    assert (job.payload, job.error_type, job.attempt_count) == ({"file_id": files[0].id}, "http_4xx", 1)
    assert fake_detector.detect_calls == 3  # no second call for the refused image
    assert Detection.objects.count() == 2


@pytest.mark.parametrize(("max_retries", "attempts"), [(2, 3), (0, 1)])
def test_the_chunk_attempt_counts_as_the_first_of_a_failing_file(
    max_retries, attempts, fake_detector, front, foscam_root, settings, django_capture_on_commit_callbacks
):
    from tests.fakes.http_fake import Reply

    settings.PIPELINE_MAX_RETRIES = max_retries
    fake_detector.script("POST", "/detect", *[Reply(status=503, json={"error": "warming up"})] * 5)
    file = image_file(front, foscam_root)

    process_chunk(django_capture_on_commit_callbacks, [file])

    job = FailedJob.objects.get()
    assert (job.payload, job.error_type, job.attempt_count) == ({"file_id": file.id}, "http_5xx", attempts)
    assert fake_detector.detect_calls == attempts  # the chunk's call, then the retries the policy allows
    assert IngestedFile.objects.get(pk=file.id).status == "failed"


def test_a_file_gone_from_disk_is_dead_lettered_and_the_others_are_not_held_back(
    fake_detector, front, foscam_root, django_capture_on_commit_callbacks
):
    fake_detector.detections = [person(0.8)]
    files = [image_file(front, foscam_root, received_at=at(n)) for n in range(3)]
    os.remove(files[1].path)

    process_chunk(django_capture_on_commit_callbacks, files)

    statuses = dict(IngestedFile.objects.values_list("id", "status"))
    assert [statuses[f.id] for f in files] == ["processed", "failed", "processed"]
    job = FailedJob.objects.get()
    assert (job.payload, job.error_type, job.attempt_count) == ({"file_id": files[1].id}, "FileNotFoundError", 1)
    assert Detection.objects.count() == 2


def test_a_chunk_the_database_refuses_is_split_and_only_the_bad_file_ends_in_the_dlq(
    fake_detector, front, foscam_root, settings, django_capture_on_commit_callbacks
):
    settings.PIPELINE_MAX_RETRIES = 1
    files = [image_file(front, foscam_root, received_at=at(n)) for n in range(3)]
    bad_name = os.path.basename(files[2].path)

    def answer(filename, content):  # a NUL in an attribute: PostgreSQL's jsonb refuses the whole INSERT
        found = person(0.8)
        return [{**found, "attributes": {"note": "a\u0000b"}}] if filename == bad_name else [found]

    fake_detector.detect_fn = answer

    process_chunk(django_capture_on_commit_callbacks, files)

    statuses = dict(IngestedFile.objects.values_list("id", "status"))
    assert [statuses[f.id] for f in files] == ["processed", "processed", "failed"]
    assert sorted(Detection.objects.values_list("source_file_id", flat=True)) == [files[0].id, files[1].id]
    assert FailedJob.objects.get().payload == {"file_id": files[2].id}


def test_files_finished_meanwhile_or_listed_twice_are_processed_once(
    fake_detector, front, foscam_root, django_capture_on_commit_callbacks
):
    fake_detector.detections = [person(0.8)]
    done = image_file(front, foscam_root, status="processed")
    pending = image_file(front, foscam_root)

    run_task(django_capture_on_commit_callbacks, "pipeline.process_files", [done.id, pending.id, pending.id, 987654])
    run_task(django_capture_on_commit_callbacks, "pipeline.process_files", [pending.id])

    assert fake_detector.detect_calls == 1
    assert list(Detection.objects.values_list("source_file_id", flat=True)) == [pending.id]
    assert IngestedFile.objects.get(pk=done.id).status == "processed"


def test_a_fast_path_file_in_a_chunk_gets_its_own_batch_and_its_neighbours_share_the_open_one(
    fake_detector, front, foscam_root, settings, django_capture_on_commit_callbacks
):
    settings.FAST_PATH_ENABLED = True
    files = [image_file(front, foscam_root, received_at=at(n)) for n in range(3)]
    confidences = {os.path.basename(f.path): c for f, c in zip(files, (0.8, 0.95, 0.7), strict=True)}
    fake_detector.detect_fn = lambda filename, content: [person(confidences[filename])]

    process_chunk(django_capture_on_commit_callbacks, files)

    fast = Batch.objects.get(is_fast_path=True)
    assert (fast.status, fast.close_reason) == ("done", "fast_path")  # closed at once, and analysed
    assert list(Detection.objects.filter(batch=fast).values_list("confidence", flat=True)) == [0.95]
    opened = Batch.objects.get(status="open")
    assert sorted(Detection.objects.filter(batch=opened).values_list("confidence", flat=True)) == [0.7, 0.8]


def test_an_entity_seen_in_two_files_of_a_chunk_is_one_entity(
    fake_detector, front, foscam_root, django_capture_on_commit_callbacks
):
    walker = {**person(0.8), "embedding": [1.0, 0.0, 0.5, 0.25]}
    fake_detector.detections = [walker]
    files = [image_file(front, foscam_root, received_at=at(n)) for n in range(2)]

    process_chunk(django_capture_on_commit_callbacks, files)

    first, second = Detection.objects.order_by("id")
    assert first.entity_id is not None and second.entity_id == first.entity_id
    assert first.entity.detection_count == 2 and second.entity_similarity == pytest.approx(1.0)
    assert first.detected_at == T0


def test_every_batch_a_chunk_closes_is_analysed(
    fake_detector, foscam_root, settings, django_capture_on_commit_callbacks
):
    from events.models import Event

    settings.BATCH_MAX_DETECTIONS = 2
    cameras = [CameraFactory(id=f"cam_{n}") for n in range(5)]
    fake_detector.detections = [person(0.8)]
    files = [image_file(camera, foscam_root, received_at=at(n)) for n in range(2) for camera in cameras]

    process_chunk(django_capture_on_commit_callbacks, files)

    assert sorted(Batch.objects.values_list("camera_id", "status", "close_reason")) == [
        (camera.id, "done", "max_size") for camera in cameras
    ]
    assert Event.objects.count() == 5

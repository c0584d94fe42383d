"""pipeline.reconcile (CONTRACT §4.5, §10): stuck files and batches are dispatched again, due batches closed, so a
crash between commit and enqueue or a Redis that restarted empty delays work and loses none."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from events.models import Detection, Event, EventDetection
from pipeline.models import Batch, FailedJob, IngestedFile
from pipeline.services import pipeline_reconcile
from tests.factories import BatchFactory, CameraFactory, DetectionFactory
from tests.fakes.detector_server import detection
from tests.integration.pipeline_support import (
    T0,
    at,
    image_file,
    pipeline_env,  # noqa: F401 - fixture
    run_task,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pipeline_env")]


@pytest.fixture
def camera():
    return CameraFactory(id="garage", name="Garage")


def reconcile(capture, moment: dt.datetime):
    with time_machine.travel(moment, tick=False), capture(execute=True):
        return pipeline_reconcile()


def test_files_whose_message_was_lost_are_processed_by_the_sweep(
    fake_detector, camera, foscam_root, django_capture_on_commit_callbacks
):
    """Redis flushed mid-stream: 5 files are pending in PostgreSQL and no message exists for any of them."""
    fake_detector.detections = [detection("car", 0.7)]
    files = [image_file(camera, foscam_root, received_at=at(i)) for i in range(5)]

    early = reconcile(django_capture_on_commit_callbacks, at(4 + 120))  # the newest is not stuck yet
    late = reconcile(django_capture_on_commit_callbacks, at(200))

    assert early.files == [f.id for f in files[:4]] and late.files == [files[4].id]
    assert list(IngestedFile.objects.order_by().values_list("status", flat=True).distinct()) == ["processed"]
    # files in = 5 → 5 detections, all batched, no DLQ rows, nothing twice
    assert Detection.objects.count() == 5 and not Detection.objects.filter(batch__isnull=True).exists()
    assert not FailedJob.objects.exists()


def test_a_file_left_processing_by_a_killed_worker_is_processed_again(
    fake_detector, camera, foscam_root, django_capture_on_commit_callbacks
):
    fake_detector.detections = [detection("car", 0.7)]
    file = image_file(camera, foscam_root, received_at=T0, status="processing")

    result = reconcile(django_capture_on_commit_callbacks, at(121))

    assert result.files == [file.id]
    assert IngestedFile.objects.get(pk=file.id).status == "processed" and Detection.objects.count() == 1


def test_recent_and_finished_files_are_not_touched(
    fake_detector, camera, foscam_root, django_capture_on_commit_callbacks
):
    image_file(camera, foscam_root, received_at=at(100))
    for status in ("processed", "no_detections", "invalid", "failed"):
        image_file(camera, foscam_root, received_at=T0, status=status)

    result = reconcile(django_capture_on_commit_callbacks, at(200))

    assert result.files == [] and fake_detector.detect_calls == 0


def test_a_closed_batch_whose_analysis_message_was_lost_gets_its_event(camera, django_capture_on_commit_callbacks):
    batch = BatchFactory(camera=camera, status="closed")
    DetectionFactory(camera=camera, batch=batch, object_type="car", detected_at=T0)
    Batch.objects.filter(pk=batch.pk).update(updated_at=T0)

    assert reconcile(django_capture_on_commit_callbacks, at(599)).batches == []
    assert reconcile(django_capture_on_commit_callbacks, at(601)).batches == [str(batch.id)]

    assert Batch.objects.get(pk=batch.pk).status == "done"
    assert Event.objects.filter(batch=batch).count() == 1 and EventDetection.objects.count() == 1


def test_an_analysis_abandoned_by_its_worker_is_taken_over(camera, django_capture_on_commit_callbacks):
    batch = BatchFactory(camera=camera, status="analyzing", analysis_attempts=1)
    DetectionFactory(camera=camera, batch=batch, detected_at=T0)
    Batch.objects.filter(pk=batch.pk).update(updated_at=T0)

    result = reconcile(django_capture_on_commit_callbacks, at(601))

    assert result.batches == [str(batch.id)]
    batch.refresh_from_db()
    assert (batch.status, batch.analysis_attempts) == ("done", 2) and Event.objects.filter(batch=batch).exists()


def test_open_batches_past_their_idle_time_are_closed_and_analysed(camera, django_capture_on_commit_callbacks):
    batch = BatchFactory(camera=camera, status="open", close_reason=None, closed_at=None, opened_at=T0)
    Batch.objects.filter(pk=batch.pk).update(last_detection_at=T0)
    DetectionFactory(camera=camera, batch=batch, detected_at=T0)

    result = reconcile(django_capture_on_commit_callbacks, at(30))

    batch.refresh_from_db()
    assert result.closed_batches == 1 and (batch.status, batch.close_reason) == ("done", "idle")
    assert Event.objects.filter(batch=batch).exists()


def test_a_stuck_row_is_dispatched_once_per_stuck_period_not_every_minute(camera, foscam_root, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False  # the test Redis broker holds the message; no worker is busy on it
    file = image_file(camera, foscam_root, received_at=T0)

    first = pipeline_reconcile(now=at(121))
    again = pipeline_reconcile(now=at(181))

    assert first.files == [file.id] and again.files == []
    assert IngestedFile.objects.get(pk=file.id).status == "pending"


def test_the_reconcile_task_runs_the_sweep(fake_detector, camera, foscam_root, django_capture_on_commit_callbacks):
    fake_detector.detections = [detection("car", 0.7)]
    file = image_file(camera, foscam_root, received_at=T0)

    with time_machine.travel(at(300), tick=False):
        run_task(django_capture_on_commit_callbacks, "pipeline.reconcile")

    assert IngestedFile.objects.get(pk=file.id).status == "processed"

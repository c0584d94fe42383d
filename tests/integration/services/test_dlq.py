"""The dead-letter queue services (CONTRACT §4.8, §2.15): recording failures once, requeue (one and many),
discard, clear, their audit rows, and what each requeue resets."""

from __future__ import annotations

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from events.models import Event
from hsi.api.errors import NotFound
from hsi.resilience import PipelineError
from pipeline.models import Batch, FailedJob, IngestedFile
from pipeline.services import dlq_clear, dlq_discard, dlq_requeue, dlq_requeue_many
from pipeline.services.dlq import batch_dead_letter, classify, failure_of, file_dead_letter, reanalysis_dead_letter
from system.models import AuditLog
from system.services import Actor
from tests.factories import (
    BatchFactory,
    CameraFactory,
    DeliveryFactory,
    DetectionFactory,
    EventFactory,
    FailedJobFactory,
)
from tests.fakes.detector_server import detection
from tests.integration.pipeline_support import (
    T0,
    at,
    image_file,
    of_type,
    pipeline_env,  # noqa: F401 - fixture
    system_listener,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pipeline_env")]


@pytest.fixture
def system_stream():
    with system_listener() as stream:
        yield stream


ACTOR = Actor(name="api_key:ops", ip_address="192.0.2.9", request_id="req-dlq")


@pytest.fixture
def camera():
    return CameraFactory(id="side_gate", name="Side Gate")


def boom(message: str = "Connection refused", error_type: str = "connection_error", attempts: int = 4):
    try:
        raise PipelineError(message, error_type=error_type)
    except PipelineError as error:
        return failure_of(error, attempts=attempts, first_failed_at=at(-10), now=at(0))


def audits(action: str) -> list[AuditLog]:
    return list(AuditLog.objects.filter(action=action).order_by("id"))


# --- Recording ----------------------------------------------------------------------------------------------------


def test_a_failed_file_is_recorded_once_even_if_two_workers_give_up_on_it(camera, foscam_root, system_stream):
    file = image_file(camera, foscam_root, status="processing")

    first = file_dead_letter(file.id, boom())
    second = file_dead_letter(file.id, boom())

    assert first is not None and second is None
    assert FailedJob.objects.count() == 1
    assert (first.first_failed_at, first.last_failed_at, first.attempt_count) == (at(-10), at(0), 4)
    file.refresh_from_db()
    assert (file.status, file.error) == ("failed", "Connection refused")


def test_nothing_is_recorded_for_a_gone_file_or_a_batch_that_has_its_event(camera):
    done = BatchFactory(camera=camera, status="done")

    assert file_dead_letter(424242, boom()) is None
    assert batch_dead_letter(done.id, boom()) is None
    assert batch_dead_letter("00000000-0000-4000-8000-000000000000", boom()) is None
    assert not FailedJob.objects.exists()


def test_a_failed_reanalysis_is_recorded_in_the_analysis_queue(camera):
    event = EventFactory(camera=camera)

    job = reanalysis_dead_letter(event.id, boom("db down", "OperationalError", attempts=2))

    assert (job.queue, job.task_name, job.payload, job.camera_id) == (
        "analysis",
        "pipeline.reanalyze_event",
        {"event_id": event.id},
        "side_gate",
    )


def test_errors_and_stack_traces_are_truncated():
    try:
        raise RuntimeError("x" * 5000)
    except RuntimeError as error:
        failure = failure_of(error, attempts=1)

    assert len(failure.error) == 2000 and len(failure.stack_trace) == 4096
    assert failure.stack_trace.rstrip().endswith("x")  # the end of the trace (the error itself) is kept
    assert failure.error_type == "RuntimeError"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (PipelineError("refused", error_type="http_4xx", retryable=False), ("http_4xx", False)),
        (PipelineError("down", error_type="connection_error"), ("connection_error", True)),
        (SoftTimeLimitExceeded(), ("timeout", True)),
        (ValueError("bug"), ("ValueError", True)),
    ],
)
def test_failures_are_classified_by_type_and_retryability(error, expected):
    assert classify(error) == expected


# --- Requeue --------------------------------------------------------------------------------------------------


def test_requeue_resets_the_file_dispatches_it_again_and_is_audited(
    fake_detector, camera, foscam_root, django_capture_on_commit_callbacks
):
    fake_detector.detections = [detection("car", 0.7)]
    file = image_file(camera, foscam_root, status="processing")
    job = file_dead_letter(file.id, boom())

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        removed = dlq_requeue(job.id, actor=ACTOR)
    assert IngestedFile.objects.get(pk=file.id).status == "pending" and not FailedJob.objects.exists()
    assert removed.id == job.id and removed.queue == "detection"
    for callback in callbacks:
        callback()

    assert IngestedFile.objects.get(pk=file.id).status == "processed"
    (row,) = audits("dlq_requeued")
    assert (row.resource_type, row.resource_id, row.actor, row.request_id) == (
        "failed_job",
        str(job.id),
        "api_key:ops",
        "req-dlq",
    )
    assert row.details["payload"] == {"file_id": file.id} and row.details["task_name"] == "pipeline.process_file"


def test_requeueing_an_analysis_job_closes_its_batch_again_and_analyses_it(camera, django_capture_on_commit_callbacks):
    batch = BatchFactory(camera=camera, status="analyzing")
    DetectionFactory(camera=camera, batch=batch, detected_at=T0)
    job = batch_dead_letter(batch.id, boom())
    assert Batch.objects.get(pk=batch.pk).status == "failed"

    with django_capture_on_commit_callbacks(execute=True):
        dlq_requeue(job.id, actor=ACTOR)

    assert Batch.objects.get(pk=batch.pk).status == "done"
    assert Event.objects.filter(batch=batch).count() == 1


def test_requeueing_a_notification_job_sets_its_delivery_back_to_pending(camera, django_capture_on_commit_callbacks):
    delivery = DeliveryFactory(status="failed", attempts=5, last_error="HTTP 500")
    job = FailedJobFactory(
        queue="notification", task_name="alerts.deliver_notification", payload={"delivery_id": delivery.id}
    )

    with django_capture_on_commit_callbacks(execute=True):
        dlq_requeue(job.id, actor=ACTOR)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("pending", 0, "")
    assert delivery.next_attempt_at is not None
    assert not FailedJob.objects.exists()  # no such task registered yet: the delivery sweep picks it up


@pytest.mark.parametrize("status", ["pending", "sending", "sent"])
def test_requeueing_a_notification_job_leaves_a_delivery_that_is_no_longer_failed_alone(
    camera, django_capture_on_commit_callbacks, status
):
    # given a delivery retried by hand (or sent) after it was dead-lettered
    delivery = DeliveryFactory(status=status, attempts=2, last_error="HTTP 500")
    job = FailedJobFactory(queue="notification", task_name="alerts.deliver", payload={"delivery_id": delivery.id})

    # when the stale dead letter is requeued
    with django_capture_on_commit_callbacks(execute=False):
        dlq_requeue(job.id, actor=ACTOR)

    # then the delivery keeps its state and attempt count (no second send of an in-flight or sent row)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (status, 2, "HTTP 500")
    assert not FailedJob.objects.exists()


def test_resolving_a_job_through_the_hook_deletes_only_its_dead_letters():
    from hsi import dead_letter

    mine = FailedJobFactory(queue="notification", task_name="alerts.deliver", payload={"delivery_id": 7})
    FailedJobFactory(queue="notification", task_name="alerts.deliver", payload={"delivery_id": 7})
    other = FailedJobFactory(queue="notification", task_name="alerts.deliver", payload={"delivery_id": 8})
    elsewhere = FailedJobFactory(queue="detection", payload={"delivery_id": 7})

    assert dead_letter.resolve("notification", {"delivery_id": 7}) == 2

    assert set(FailedJob.objects.values_list("id", flat=True)) == {other.id, elsewhere.id}
    assert not FailedJob.objects.filter(pk=mine.pk).exists()
    assert dead_letter.resolve("notification", {"delivery_id": 7}) == 0


def test_requeue_of_an_unknown_job_is_not_found():
    with pytest.raises(NotFound):
        dlq_requeue(99999, actor=ACTOR)
    assert audits("dlq_requeued") == []


def test_requeue_many_takes_the_oldest_first_up_to_the_limit(camera, django_capture_on_commit_callbacks):
    jobs = [FailedJobFactory(queue="detection", payload={"file_id": 10_000 + n}, created_at=at(n)) for n in range(3)]
    other = FailedJobFactory(
        queue="analysis", task_name="pipeline.analyze_batch", payload={"batch_id": None}, created_at=at(-1)
    )

    with django_capture_on_commit_callbacks(execute=True):
        result = dlq_requeue_many("detection", 2, actor=ACTOR)

    assert result == {"requeued": 2, "queue": "detection", "limit_reached": True}
    assert set(FailedJob.objects.values_list("id", flat=True)) == {jobs[2].id, other.id}
    with django_capture_on_commit_callbacks(execute=True):
        assert dlq_requeue_many(None, 10, actor=ACTOR) == {"requeued": 2, "queue": None, "limit_reached": False}
    assert not FailedJob.objects.exists()
    first, second = audits("dlq_requeued")
    assert first.details == {"requeued": 2, "queue": "detection", "limit_reached": True, "limit": 2}
    assert second.resource_id is None


def test_requeue_many_of_an_empty_queue_requeues_nothing():
    assert dlq_requeue_many("analysis", 10, actor=ACTOR) == {"requeued": 0, "queue": "analysis", "limit_reached": False}


# --- Discard and clear ----------------------------------------------------------------------------------------


def test_discard_deletes_the_job_and_leaves_its_file_failed(camera, foscam_root):
    file = image_file(camera, foscam_root, status="processing")
    job = file_dead_letter(file.id, boom())

    dlq_discard(job.id, actor=ACTOR)

    assert not FailedJob.objects.exists()
    assert IngestedFile.objects.get(pk=file.id).status == "failed"
    (row,) = audits("dlq_discarded")
    assert (row.resource_id, row.details["queue"]) == (str(job.id), "detection")
    with pytest.raises(NotFound):
        dlq_discard(job.id, actor=ACTOR)


def test_clear_one_queue_or_all(camera):
    FailedJobFactory.create_batch(2, queue="detection")
    FailedJobFactory(queue="analysis", task_name="pipeline.analyze_batch")
    FailedJobFactory(queue="notification", task_name="alerts.deliver_notification")

    assert dlq_clear("detection", actor=ACTOR) == {"cleared": 2, "queue": "detection"}
    assert sorted(FailedJob.objects.values_list("queue", flat=True)) == ["analysis", "notification"]
    assert dlq_clear(None, actor=ACTOR) == {"cleared": 2, "queue": None}
    assert not FailedJob.objects.exists()
    assert [(a.resource_id, a.details["cleared"]) for a in audits("dlq_cleared")] == [("detection", 2), ("all", 2)]


def test_dlq_job_added_reaches_the_system_stream(
    camera, foscam_root, system_stream, django_capture_on_commit_callbacks
):
    file = image_file(camera, foscam_root, status="pending")

    with django_capture_on_commit_callbacks(execute=True):
        job = file_dead_letter(file.id, boom("timed out", "timeout"))

    assert of_type(system_stream.drain(), "dlq.job_added") == [
        {
            "id": job.id,
            "queue": "detection",
            "task_name": "pipeline.process_file",
            "camera_id": "side_gate",
            "error_type": "timeout",
            "error": "timed out",
        }
    ]


# --- Django admin actions (CONTRACT §8.2) -----------------------------------------------------------------------


def _admin_action(admin_client, action: str, jobs) -> None:
    from django.urls import reverse

    response = admin_client.post(
        reverse("admin:pipeline_failedjob_changelist"),
        {"action": action, "_selected_action": [job.id for job in jobs]},
        follow=True,
    )
    assert response.status_code == 200


def test_the_admin_requeue_action_goes_through_the_service(admin_client, admin_user, camera, foscam_root):
    file = image_file(camera, foscam_root, status="processing")
    job = file_dead_letter(file.id, boom())

    _admin_action(admin_client, "requeue", [job])

    assert not FailedJob.objects.exists() and IngestedFile.objects.get(pk=file.id).status == "pending"
    assert audits("dlq_requeued")[0].actor == f"user:{admin_user.username}"


def test_the_admin_discard_action_goes_through_the_service(admin_client, admin_user):
    jobs = FailedJobFactory.create_batch(2)

    _admin_action(admin_client, "discard", jobs)

    assert not FailedJob.objects.exists()
    assert [a.actor for a in audits("dlq_discarded")] == [f"user:{admin_user.username}"] * 2

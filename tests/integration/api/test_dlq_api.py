"""/api/dlq (CONTRACT §2.15, §10): list with filters and paging, stats, detail, requeue one and many, discard,
clear; every status of every route."""

from __future__ import annotations

import pytest

from pipeline.models import FailedJob, IngestedFile
from system.models import AuditLog
from tests.factories import CameraFactory, FailedJobFactory, IngestedFileFactory
from tests.integration.pipeline_support import at
from tests.problems import error_fields, problem

pytestmark = pytest.mark.django_db

JOB_KEYS = {
    "id",
    "queue",
    "task_name",
    "payload",
    "camera_id",
    "error",
    "error_type",
    "stack_trace",
    "attempt_count",
    "requeue_count",
    "first_failed_at",
    "last_failed_at",
    "created_at",
}


def job(**fields) -> FailedJob:
    return FailedJobFactory(**fields)


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


# --- GET /api/dlq -------------------------------------------------------------------------------------------------


def test_list_item_has_every_field_and_the_list_is_oldest_first(api_client):
    newer = job(created_at=at(10))
    older = job(
        created_at=at(0),
        camera_id="front_door",
        payload={"file_id": 7},
        error="boom",
        error_type="timeout",
        stack_trace="Traceback…",
        attempt_count=4,
        requeue_count=1,
        first_failed_at=at(-5),
        last_failed_at=at(0),
    )

    response = api_client.get("/api/dlq")

    assert ids(response) == [older.id, newer.id]
    body = response.json()
    assert body["pagination"] == {"total": 2, "limit": 50, "offset": 0, "next_cursor": None, "has_more": False}
    item = body["items"][0]
    assert set(item) == JOB_KEYS
    assert item == {
        "id": older.id,
        "queue": "detection",
        "task_name": "pipeline.process_file",
        "payload": {"file_id": 7},
        "camera_id": "front_door",
        "error": "boom",
        "error_type": "timeout",
        "stack_trace": "Traceback…",
        "attempt_count": 4,
        "requeue_count": 1,
        "first_failed_at": "2024-05-01T11:59:55Z",
        "last_failed_at": "2024-05-01T12:00:00Z",
        "created_at": "2024-05-01T12:00:00Z",
    }


def test_list_filters_by_queue_camera_and_error_type(api_client):
    detection = job(queue="detection", camera_id="a", error_type="timeout", created_at=at(0))
    analysis = job(queue="analysis", task_name="pipeline.analyze_batch", camera_id="b", created_at=at(1))
    job(queue="notification", task_name="alerts.deliver", camera_id="a", created_at=at(2))

    assert ids(api_client.get("/api/dlq?queue=analysis")) == [analysis.id]
    assert ids(api_client.get("/api/dlq/?camera_id=a&error_type=timeout")) == [detection.id]
    assert ids(api_client.get("/api/dlq?error_type=nothing")) == []


def test_list_pages_by_offset_up_to_1000(api_client):
    jobs = [job(created_at=at(n)) for n in range(3)]

    response = api_client.get("/api/dlq?limit=2&offset=1")

    assert ids(response) == [jobs[1].id, jobs[2].id]
    assert response.json()["pagination"]["has_more"] is False
    assert api_client.get("/api/dlq?limit=1000").status_code == 200
    assert error_fields(api_client.get("/api/dlq?limit=1001")) == {"limit"}
    assert error_fields(api_client.get("/api/dlq?limit=0")) == {"limit"}


def test_an_unknown_queue_is_422(api_client):
    assert error_fields(api_client.get("/api/dlq?queue=email")) == {"queue"}


# --- stats and detail ---------------------------------------------------------------------------------------------


def test_stats_count_each_queue_and_the_oldest_failure(api_client):
    job(queue="detection", first_failed_at=at(5))
    job(queue="detection", first_failed_at=at(-60))
    job(queue="notification", task_name="alerts.deliver", first_failed_at=at(0))

    response = api_client.get("/api/dlq/stats")

    assert response.status_code == 200
    assert response.json() == {
        "detection": 2,
        "analysis": 0,
        "notification": 1,
        "total": 3,
        "oldest_failed_at": "2024-05-01T11:59:00Z",
    }


def test_stats_of_an_empty_dlq(api_client):
    assert api_client.get("/api/dlq/stats/").json() == {
        "detection": 0,
        "analysis": 0,
        "notification": 0,
        "total": 0,
        "oldest_failed_at": None,
    }


def test_detail_and_404(api_client):
    found = job()

    response = api_client.get(f"/api/dlq/{found.id}")

    assert response.status_code == 200 and set(response.json()) == JOB_KEYS
    assert problem(api_client.get("/api/dlq/999999"), 404, "not_found")["detail"] == "Failed job 999999 not found"
    assert api_client.get("/api/dlq/abc").status_code == 404


# --- requeue ------------------------------------------------------------------------------------------------------


def test_requeue_one_is_202_resets_the_file_and_removes_the_row(api_client):
    camera = CameraFactory()
    file = IngestedFileFactory(camera=camera, status="failed", error="Connection refused")
    failed = job(payload={"file_id": file.id}, camera_id=camera.id)

    response = api_client.post(f"/api/dlq/{failed.id}/requeue")

    assert response.status_code == 202
    assert response.json() == {
        "id": failed.id,
        "queue": "detection",
        "task_name": "pipeline.process_file",
        "status": "requeued",
    }
    assert not FailedJob.objects.exists()
    assert IngestedFile.objects.get(pk=file.id).status == "pending"
    assert AuditLog.objects.get(action="dlq_requeued").resource_id == str(failed.id)


def test_requeue_one_unknown_is_404(api_client):
    problem(api_client.post("/api/dlq/123456/requeue/"), 404, "not_found")


def test_requeue_many_reads_queue_and_limit_from_the_body(api_client):
    jobs = [
        job(queue="analysis", task_name="pipeline.analyze_batch", payload={"batch_id": None}, created_at=at(n))
        for n in range(3)
    ]
    untouched = job(queue="detection", payload={"file_id": None})

    response = api_client.post("/api/dlq/requeue", {"queue": "analysis", "limit": 2}, format="json")

    assert response.status_code == 202
    assert response.json() == {"requeued": 2, "queue": "analysis", "limit_reached": True}
    assert set(FailedJob.objects.values_list("id", flat=True)) == {jobs[2].id, untouched.id}


def test_requeue_many_accepts_query_values_and_defaults_to_every_queue(api_client):
    job(queue="detection", payload={"file_id": None})
    job(queue="notification", task_name="alerts.deliver", payload={"delivery_id": 1})

    assert api_client.post("/api/dlq/requeue?limit=1").json() == {"requeued": 1, "queue": None, "limit_reached": True}
    assert api_client.post("/api/dlq/requeue/").json() == {"requeued": 1, "queue": None, "limit_reached": False}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"queue": "email"}, "queue"),
        ({"limit": 0}, "limit"),
        ({"limit": 10001}, "limit"),
        ({"limit": "many"}, "limit"),
    ],
)
def test_requeue_many_validates_its_input(api_client, body, field):
    assert error_fields(api_client.post("/api/dlq/requeue", body, format="json")) == {field}


# --- discard and clear --------------------------------------------------------------------------------------------


def test_discard_is_204_then_404(api_client):
    failed = job()

    assert api_client.delete(f"/api/dlq/{failed.id}").status_code == 204
    assert not FailedJob.objects.exists()
    assert AuditLog.objects.get(action="dlq_discarded").resource_id == str(failed.id)
    problem(api_client.delete(f"/api/dlq/{failed.id}"), 404, "not_found")


def test_clear_one_queue(api_client):
    job(queue="detection")
    job(queue="detection")
    kept = job(queue="analysis", task_name="pipeline.analyze_batch")

    response = api_client.delete("/api/dlq?queue=detection")

    assert response.status_code == 200 and response.json() == {"cleared": 2, "queue": "detection"}
    assert list(FailedJob.objects.values_list("id", flat=True)) == [kept.id]


def test_clear_all(api_client):
    job(queue="detection")
    job(queue="notification", task_name="alerts.deliver")

    response = api_client.delete("/api/dlq/?all=true")

    assert response.status_code == 200 and response.json() == {"cleared": 2, "queue": None}
    assert not FailedJob.objects.exists()
    assert AuditLog.objects.get(action="dlq_cleared").details == {"cleared": 2, "queue": None}


@pytest.mark.parametrize("query", ["", "?all=false", "?queue="])
def test_clear_needs_a_queue_or_all(api_client, query):
    job()

    assert error_fields(api_client.delete(f"/api/dlq{query}")) == {"queue"}
    assert FailedJob.objects.count() == 1


@pytest.mark.parametrize(("query", "field"), [("?queue=email", "queue"), ("?all=maybe", "all")])
def test_clear_validates_its_parameters(api_client, query, field):
    assert error_fields(api_client.delete(f"/api/dlq{query}")) == {field}

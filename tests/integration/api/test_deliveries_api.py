"""The delivery outbox over HTTP: list and manual retry (CONTRACT §2.8, §10 §2.8, §6.8)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from alerts.models import Delivery
from alerts.services.deliveries import delivery_send
from pipeline.models import FailedJob
from system.models import AuditLog
from tests.factories import AlertFactory, DeliveryFactory, FailedJobFactory, NotificationChannelFactory
from tests.fakes.http_fake import FakeHttpServer, Reply
from tests.problems import error_fields, problem

pytestmark = pytest.mark.django_db

URL = "/api/notifications/deliveries"
DELIVERY_KEYS = {
    "id",
    "alert_id",
    "channel_id",
    "status",
    "suppressed_reason",
    "attempts",
    "next_attempt_at",
    "last_attempt_at",
    "sent_at",
    "response_status",
    "last_error",
    "created_at",
    "updated_at",
}
BASE = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


class WebhookReceiver(FakeHttpServer):
    def default_reply(self, request):
        return Reply(status=200, json={"ok": True})


@pytest.fixture
def receiver():
    server = WebhookReceiver().start()
    yield server
    server.stop()


def delivery(minutes: int = 0, **fields) -> Delivery:
    return DeliveryFactory(created_at=BASE + dt.timedelta(minutes=minutes), **fields)


def failed_delivery(**fields) -> Delivery:
    fields.setdefault("status", "failed")
    fields.setdefault("attempts", 5)
    fields.setdefault("last_error", "HTTP 500")
    fields.setdefault("next_attempt_at", timezone.now())
    fields.setdefault("response_status", 500)
    return delivery(**fields)


# --- list ----------------------------------------------------------------------------------------------------------


def test_list_renders_deliveries_newest_first(api_client):
    older = delivery(0, status="sent", attempts=1, response_status=200, sent_at=BASE)
    newer = delivery(5, status="suppressed", suppressed_reason="quiet_hours")

    body = api_client.get(URL).json()

    assert [item["id"] for item in body["items"]] == [newer.id, older.id]
    assert body["pagination"] == {"total": 2, "limit": 50, "offset": 0, "next_cursor": None, "has_more": False}
    item = body["items"][1]
    assert set(item) == DELIVERY_KEYS
    assert (item["alert_id"], item["channel_id"]) == (str(older.alert_id), str(older.channel_id))
    assert (item["status"], item["attempts"], item["response_status"], item["sent_at"]) == (
        "sent",
        1,
        200,
        "2026-03-01T12:00:00Z",
    )
    assert body["items"][0]["suppressed_reason"] == "quiet_hours"


def test_same_created_at_orders_by_id_descending(api_client):
    first, second = delivery(0), delivery(0)

    assert [item["id"] for item in api_client.get(URL).json()["items"]] == [second.id, first.id]


def test_filters_by_alert_channel_and_status_list(api_client):
    alert = AlertFactory()
    channel = NotificationChannelFactory()
    mine = delivery(0, alert=alert, status="failed")
    other_status = delivery(1, alert=alert, status="sent")
    on_channel = delivery(2, channel=channel, status="pending")
    delivery(3, status="suppressed")

    by_alert = api_client.get(URL, {"alert_id": str(alert.id)}).json()
    by_channel = api_client.get(URL, {"channel_id": str(channel.id)}).json()
    by_status = api_client.get(URL, {"status": "failed,pending"}).json()
    combined = api_client.get(URL, {"alert_id": str(alert.id), "status": "sent"}).json()

    assert {item["id"] for item in by_alert["items"]} == {mine.id, other_status.id}
    assert [item["id"] for item in by_channel["items"]] == [on_channel.id]
    assert [item["id"] for item in by_status["items"]] == [on_channel.id, mine.id]
    assert [item["id"] for item in combined["items"]] == [other_status.id]
    assert by_status["pagination"]["total"] == 2


@pytest.mark.parametrize(
    "query",
    [
        {"status": "lost"},
        {"status": "sent,lost"},
        {"alert_id": "not-a-uuid"},
        {"channel_id": "42"},
        {"limit": "101"},
        {"limit": "0"},
        {"offset": "-2"},
    ],
)
def test_bad_list_parameters_are_422(api_client, query):
    assert set(query) <= error_fields(api_client.get(URL, query))


def test_list_pages_and_keeps_a_constant_query_count(api_client, django_assert_max_num_queries):
    for minute in range(60):
        delivery(minute)

    with django_assert_max_num_queries(3):
        first = api_client.get(URL).json()
    last = api_client.get(URL, {"limit": 50, "offset": 50}).json()

    assert len(first["items"]) == 50 and first["pagination"]["has_more"] is True
    assert first["pagination"]["total"] == 60
    assert len(last["items"]) == 10 and last["pagination"]["has_more"] is False and last["pagination"]["total"] == 60


# --- retry ---------------------------------------------------------------------------------------------------------


def test_retry_resets_a_failed_delivery_and_dispatches_it_after_commit(
    api_client, receiver, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    channel = NotificationChannelFactory(config={"url": f"{receiver.url}/hook"})
    row = failed_delivery(channel=channel)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_client.post(f"{URL}/{row.id}/retry")

    assert response.status_code == 202
    body = response.json()
    assert set(body) == DELIVERY_KEYS
    assert (body["id"], body["status"], body["attempts"], body["next_attempt_at"]) == (row.id, "pending", 0, None)
    row.refresh_from_db()
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 0, None)
    assert receiver.requests == []  # nothing is sent before the commit
    audit = AuditLog.objects.get(action="delivery_retried")
    assert (audit.resource_type, audit.resource_id, audit.status) == ("delivery", str(row.id), "success")

    for callback in callbacks:
        callback()

    row.refresh_from_db()
    assert row.status == "sent"
    (request,) = receiver.requests_to("/hook")
    assert request.headers["X-HSI-Delivery"] == str(row.id)


def test_a_manual_retry_removes_the_dead_letter_so_a_later_dlq_requeue_cannot_send_it_twice(
    api_client, receiver, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    channel = NotificationChannelFactory(config={"url": f"{receiver.url}/hook"})
    row = DeliveryFactory(channel=channel, status="pending")
    unrelated = FailedJobFactory(queue="notification", task_name="alerts.deliver", payload={"delivery_id": row.id + 1})
    receiver.fail("POST", "/hook", status=400)  # permanent: failed at once, dead-lettered
    with django_capture_on_commit_callbacks(execute=True):
        assert delivery_send(row.id) == "failed"
    assert FailedJob.objects.filter(queue="notification", payload={"delivery_id": row.id}).count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(f"{URL}/{row.id}/retry")

    assert response.status_code == 202
    row.refresh_from_db()
    assert row.status == "sent"
    assert list(FailedJob.objects.filter(queue="notification").values_list("id", flat=True)) == [unrelated.id]
    with django_capture_on_commit_callbacks(execute=True):
        requeued = api_client.post("/api/dlq/requeue", {"queue": "notification"}, format="json").json()
    assert requeued["requeued"] == 1  # only the unrelated dead letter is left to requeue
    assert len(receiver.requests_to("/hook")) == 2  # the refused attempt and the retry; never a third send


def test_a_refused_retry_keeps_the_dead_letter(api_client):
    row = delivery(status="pending", attempts=1)
    job = FailedJobFactory(queue="notification", task_name="alerts.deliver", payload={"delivery_id": row.id})

    problem(api_client.post(f"{URL}/{row.id}/retry"), 409, "invalid_state")

    assert FailedJob.objects.filter(pk=job.pk).exists()


@pytest.mark.parametrize("status", ["pending", "sending", "sent", "suppressed"])
def test_retry_of_a_delivery_that_has_not_failed_is_409_invalid_state(api_client, status):
    row = delivery(status=status, attempts=1)

    body = problem(api_client.post(f"{URL}/{row.id}/retry"), 409, "invalid_state")

    assert status in body["detail"]
    row.refresh_from_db()
    assert (row.status, row.attempts) == (status, 1)
    audit = AuditLog.objects.get(action="delivery_retried")
    assert audit.status == "failure" and audit.resource_id == str(row.id)


def test_retry_of_an_unknown_delivery_is_404(api_client):
    problem(api_client.post(f"{URL}/987654/retry"), 404, "not_found")
    problem(api_client.post(f"{URL}/9999999999999999999/retry"), 404, "not_found")
    problem(api_client.post(f"{URL}/{uuid.uuid4()}/retry"), 404, "not_found")
    problem(api_client.post(f"{URL}/abc/retry"), 404, "not_found")
    assert not AuditLog.objects.exists()


def test_retry_is_post_only(api_client):
    row = failed_delivery()

    assert api_client.get(f"{URL}/{row.id}/retry").status_code == 405
